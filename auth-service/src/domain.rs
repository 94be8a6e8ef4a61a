//! Request fields parsed into types that can only hold valid values.

use crate::error::{Error, Result};

/// A user name: 1 to 64 characters after trimming, no control characters
/// and no `:` (HTTP Basic splits user and password at the first `:`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserName(String);

impl UserName {
    pub const MAX_CHARS: usize = 64;

    pub fn parse(raw: &str) -> Result<Self> {
        let name = raw.trim();
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
        Ok(Self(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The key names are unique by: Unicode lowercase.
    pub fn key(&self) -> String {
        self.0.to_lowercase()
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
    fn new_passwords_are_bounded_in_bytes() {
        assert!(Password::parse_new("1234567".into()).is_err());
        assert!(Password::parse_new("12345678".into()).is_ok());
        assert!(Password::parse_new("x".repeat(1024)).is_ok());
        assert!(Password::parse_new("x".repeat(1025)).is_err());
        assert!(Password::parse_attempt("short".into()).is_ok());
    }
}
