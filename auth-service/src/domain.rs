//! Request fields parsed into types that can only hold valid values.

use precis_profiles::UsernameCaseMapped;
use precis_profiles::precis_core;
use precis_profiles::precis_core::profile::Profile as _;
use unicode_security::MixedScript as _;

use crate::error::{Error, Result};

/// A user name: 1 to 64 characters after trimming, no `:` (HTTP Basic
/// splits user and password at the first `:`), and a valid RFC 8265
/// username: one or more userparts separated by spaces, each allowed by the
/// PRECIS UsernameCaseMapped profile (no controls, no default-ignorable or
/// unassigned code points, no symbols beyond ASCII), all in one script
/// (UTS #39 single-script: `paypal` with a Cyrillic `а` is refused).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserName {
    /// As given (trimmed): what lists and tokens show.
    name: String,
    /// The profile's enforced form: what names are unique by.
    key: String,
}

impl UserName {
    pub const MAX_CHARS: usize = 64;

    pub fn parse(raw: &str) -> Result<Self> {
        let name = raw.trim();
        Self::check_basics(name)?;
        // RFC 8265 section 3.3: the profile applies to each userpart.
        let mut parts = Vec::new();
        for part in name.split(' ').filter(|part| !part.is_empty()) {
            let enforced = UsernameCaseMapped::new().enforce(part).map_err(|error| refusal(part, &error))?;
            parts.push(enforced.into_owned());
        }
        let key = parts.join(" ");
        if !key.as_str().is_single_script() {
            return Err(Error::invalid("name", "must not mix scripts (as Latin and Cyrillic letters)"));
        }
        Ok(Self { name: name.to_owned(), key })
    }

    fn check_basics(name: &str) -> Result<()> {
        if name.is_empty() {
            return Err(Error::invalid("name", "must not be empty"));
        }
        if name.chars().count() > Self::MAX_CHARS {
            return Err(Error::invalid("name", format!("must be at most {} characters", Self::MAX_CHARS)));
        }
        if name.contains(':') {
            return Err(Error::invalid("name", "must not contain ':'"));
        }
        if name.chars().any(char::is_control) {
            return Err(Error::invalid("name", "must not contain control characters"));
        }
        Ok(())
    }

    pub fn as_str(&self) -> &str {
        &self.name
    }

    /// The key names are unique by: the PRECIS UsernameCaseMapped form
    /// (fullwidth letters narrowed, case folded, NFC), userparts joined by
    /// one space.
    pub fn key(&self) -> String {
        self.key.clone()
    }

    /// The key users registered before names were PRECIS-checked have, if
    /// their name is one the profile now refuses (or whose new key another
    /// user has): Unicode lowercase. Logins fall back to it, so such a user
    /// can still log in with the exact name; nobody can register one.
    pub fn legacy_key(raw: &str) -> Option<String> {
        let name = raw.trim();
        Self::check_basics(name).ok().map(|()| name.to_lowercase())
    }
}

/// Why the profile refused `part`, naming the code point.
fn refusal(part: &str, error: &precis_core::Error) -> Error {
    match error {
        precis_core::Error::BadCodepoint(info) => {
            // The character itself only where it is visible.
            let shown = char::from_u32(info.cp).filter(|c| c.is_alphanumeric() || c.is_ascii_graphic());
            let shown = shown.map_or_else(String::new, |c| format!(" ({c:?})"));
            Error::invalid("name", format!("must not contain U+{:04X}{shown}", info.cp))
        }
        _ => Error::invalid("name", format!("{part:?} is not a valid user name (RFC 8265)")),
    }
}

/// A password: 8 to 1024 bytes. Never logged, never stored in clear.
#[derive(Clone)]
pub struct Password(String);

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

impl Password {
    pub const MIN_BYTES: usize = 8;
    /// Bounds the work one request can ask of the hasher.
    pub const MAX_BYTES: usize = 1024;

    /// A password for a new account.
    pub fn parse_new(raw: String) -> Result<Self> {
        if raw.len() < Self::MIN_BYTES {
            return Err(Error::invalid("password", format!("must be at least {} bytes", Self::MIN_BYTES)));
        }
        Self::parse_attempt(raw)
    }

    /// A password offered at login: only the upper bound is checked, so a
    /// short password fails like any other wrong one.
    pub fn parse_attempt(raw: String) -> Result<Self> {
        if raw.len() > Self::MAX_BYTES {
            return Err(Error::invalid("password", format!("must be at most {} bytes", Self::MAX_BYTES)));
        }
        Ok(Self(raw))
    }

    pub fn expose(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_trimmed_and_bounded_in_characters() {
        assert_eq!(UserName::parse("  alice ").unwrap().as_str(), "alice");
        assert!(UserName::parse(&"я".repeat(64)).is_ok());
        assert!(UserName::parse(&"я".repeat(65)).is_err());
        for bad in ["", "   ", "a:b", "tab\there"] {
            assert!(UserName::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn name_key_ignores_case() {
        assert_eq!(UserName::parse("ÄLICE").unwrap().key(), UserName::parse("älice").unwrap().key());
    }

    #[test]
    fn look_alike_names_share_a_key_or_are_refused() {
        let key = |name: &str| UserName::parse(name).map(|name| name.key());
        // Width, case and composition do not make a new name.
        assert_eq!(key("ａｌｉｃｅ").unwrap(), "alice");
        assert_eq!(key("ALICE").unwrap(), "alice");
        assert_eq!(key("Zoe\u{301}").unwrap(), key("Zoé").unwrap());
        assert_eq!(key("  Mary   Ann ").unwrap(), "mary ann");
        // Invisible and mixed-script names are refused.
        let refused = key("ali\u{200B}ce").unwrap_err().to_string();
        assert_eq!(refused, "name: must not contain U+200B");
        let mixed = key("\u{430}lice").unwrap_err().to_string();
        assert_eq!(mixed, "name: must not mix scripts (as Latin and Cyrillic letters)");
        // One script at a time is fine, digits and ASCII punctuation too.
        for fine in ["алиса", "josé_92", "山田太郎", "o'brien", "user.name-1"] {
            assert!(UserName::parse(fine).is_ok(), "{fine}");
        }
    }

    #[test]
    fn new_passwords_are_bounded_in_bytes() {
        assert!(Password::parse_new("1234567".into()).is_err());
        assert!(Password::parse_new("12345678".into()).is_ok());
        assert!(Password::parse_new("x".repeat(1024)).is_ok());
        assert!(Password::parse_new("x".repeat(1025)).is_err());
        assert!(Password::parse_attempt("short".into()).is_ok());
    }
}
