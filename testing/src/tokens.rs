//! Tokens that must be refused.

/// `token` (a JWT) with one character in the middle of its signature
/// changed: well-formed, but not signed by anyone.
///
/// # Panics
/// When `token` has no `.`.
#[must_use]
pub fn tamper_signature(token: &str) -> String {
    #[allow(clippy::expect_used)]
    let (signed, signature) = token.rsplit_once('.').expect("a JWT has a signature part");
    let mut signature: Vec<char> = signature.chars().collect();
    let middle = signature.len() / 2;
    signature[middle] = if signature[middle] == 'A' { 'B' } else { 'A' };
    format!("{signed}.{}", signature.into_iter().collect::<String>())
}
