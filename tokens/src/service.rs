//! The credential Bookstore's services present to each other for the RPCs
//! only they may call (auth-service's `ListRevocations`): a shared secret in
//! the `x-service-token` metadata. Users' access tokens never pass.

use std::fmt;
use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest as _, Sha256};

/// The metadata key that carries a [`ServiceToken`].
pub const SERVICE_TOKEN_METADATA: &str = "x-service-token";

/// A shared secret of at least [`ServiceToken::MIN_CHARS`] printable ASCII
/// characters. Its `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct ServiceToken(String);

/// A service token that cannot be read or is not one.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ServiceTokenError(String);

impl fmt::Debug for ServiceToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ServiceToken(<redacted>)")
    }
}

impl ServiceToken {
    /// Shorter secrets are refused: they could be guessed.
    pub const MIN_CHARS: usize = 32;

    /// Checks a token's text (surrounding whitespace, as a file's final
    /// newline, does not count).
    pub fn parse(text: &str) -> Result<Self, ServiceTokenError> {
        let text = text.trim();
        if text.len() < Self::MIN_CHARS || !text.bytes().all(|byte| byte.is_ascii_graphic()) {
            return Err(ServiceTokenError(format!(
                "a service token must be at least {} printable ASCII characters without spaces",
                Self::MIN_CHARS
            )));
        }
        Ok(Self(text.to_owned()))
    }

    /// 256 random bits, base64url.
    #[must_use]
    pub fn generate() -> Self {
        let mut bytes = [0; 32];
        crate::os_random(&mut bytes);
        Self(URL_SAFE_NO_PAD.encode(bytes))
    }

    /// Reads a token from a file.
    pub fn read(path: &Path) -> Result<Self, ServiceTokenError> {
        let text = std::fs::read_to_string(path)
            .map_err(|error| ServiceTokenError(format!("cannot read the service token {}: {error}", path.display())))?;
        Self::parse(&text).map_err(|error| ServiceTokenError(format!("{}: {error}", path.display())))
    }

    /// The secret, to send in [`SERVICE_TOKEN_METADATA`] or to write to a file.
    #[must_use]
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether `presented` is this token. Compares SHA-256 digests, so the
    /// time taken tells nothing about how much of the secret matched.
    #[must_use]
    pub fn matches(&self, presented: &str) -> bool {
        Sha256::digest(self.0.as_bytes()) == Sha256::digest(presented.trim().as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_tokens_parse_and_match_only_themselves() {
        let token = ServiceToken::generate();
        assert_eq!(ServiceToken::parse(&format!("{}\n", token.expose())).unwrap(), token);
        assert!(token.matches(token.expose()));
        assert!(!token.matches(&ServiceToken::generate().0));
        assert!(!token.matches(""));
        assert_eq!(format!("{token:?}"), "ServiceToken(<redacted>)");
    }

    #[test]
    fn short_or_spaced_tokens_are_refused() {
        for bad in ["", "short", &"x".repeat(31), &format!("{} {}", "x".repeat(20), "y".repeat(20))] {
            assert!(ServiceToken::parse(bad).is_err(), "{bad:?}");
        }
        assert!(ServiceToken::parse(&"x".repeat(32)).is_ok());
    }
}
