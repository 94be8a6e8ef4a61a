//! Bookstore's access tokens: EdDSA (Ed25519) JWTs, issued by auth-service
//! with a [`TokenSigner`] and checked anywhere with a [`TokenVerifier`] built
//! from the issuer's public keys ([`PublicJwk`], a JWK Set member).
//!
//! Only `EdDSA` is accepted: a token whose header names another algorithm
//! (`none`, `HS256`, `RS256`, ...) is rejected before any key is used, and
//! `exp`, `iss`, `aud` and `sub` are required and checked.

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bookstore_proto::UnixMicros;
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

mod failures;
mod service;

pub use failures::TokenFailures;
pub use service::{SERVICE_TOKEN_METADATA, ServiceToken, ServiceTokenError};

/// How far a verifier tolerates clock skew between issuer and verifier.
pub const CLOCK_SKEW_LEEWAY: Duration = Duration::from_secs(30);

/// The claims of a Bookstore access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The user's public id.
    pub sub: String,
    /// The user's name when the token was issued.
    pub name: String,
    /// Whether the user was an admin when the token was issued.
    pub admin: bool,
    pub iss: String,
    pub aud: String,
    /// Issued at, unix seconds.
    pub iat: u64,
    /// Expires at, unix seconds.
    pub exp: u64,
    /// Unique token id.
    pub jti: String,
    /// The session the token belongs to: logging out, changing the password
    /// or an admin's `revoke-sessions` ends it, and verifiers then refuse
    /// its tokens. Required: a token without one is refused.
    #[serde(default)]
    pub sid: String,
}

/// Why a token was refused. The messages are safe to show to the caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("token is malformed: {0}")]
    Malformed(String),
    #[error("token is signed with an unknown key (kid {0:?})")]
    UnknownKey(String),
    #[error("token has expired")]
    Expired,
    #[error("token signature is invalid")]
    BadSignature,
    #[error("token algorithm is not accepted: only EdDSA is")]
    WrongAlgorithm,
    #[error("token is invalid: {0}")]
    Invalid(String),
}

impl TokenError {
    /// A short, fixed name of the reason, for metrics labels.
    #[must_use]
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Malformed(_) => "malformed",
            Self::UnknownKey(_) => "unknown_key",
            Self::Expired => "expired",
            Self::BadSignature => "bad_signature",
            Self::WrongAlgorithm => "wrong_algorithm",
            Self::Invalid(_) => "invalid",
        }
    }
}

impl From<jsonwebtoken::errors::Error> for TokenError {
    fn from(error: jsonwebtoken::errors::Error) -> Self {
        match error.kind() {
            ErrorKind::ExpiredSignature => Self::Expired,
            ErrorKind::InvalidSignature => Self::BadSignature,
            ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName | ErrorKind::MissingAlgorithm => {
                Self::WrongAlgorithm
            }
            ErrorKind::InvalidIssuer => Self::Invalid("wrong issuer".into()),
            ErrorKind::InvalidAudience => Self::Invalid("wrong audience".into()),
            ErrorKind::MissingRequiredClaim(claim) => Self::Invalid(format!("missing claim {claim:?}")),
            ErrorKind::ImmatureSignature => Self::Invalid("token is not valid yet".into()),
            ErrorKind::InvalidToken | ErrorKind::Base64(_) | ErrorKind::Utf8(_) => {
                Self::Malformed("not a compact JWS".into())
            }
            ErrorKind::Json(source) => Self::Malformed(source.to_string()),
            other => Self::Invalid(format!("{other:?}")),
        }
    }
}

/// A signing key could not be read.
#[derive(Debug, thiserror::Error)]
#[error("invalid Ed25519 signing key: {0}")]
pub struct KeyError(String);

/// A public key in JWK form (RFC 7517, RFC 8037 for Ed25519).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicJwk {
    pub kty: String,
    pub crv: String,
    /// The public key, base64url without padding.
    pub x: String,
    pub kid: String,
    pub alg: String,
    #[serde(rename = "use")]
    pub key_use: String,
}

impl PublicJwk {
    fn ed25519(public_key: &[u8; 32]) -> Self {
        let x = URL_SAFE_NO_PAD.encode(public_key);
        Self {
            kid: thumbprint(&x),
            kty: "OKP".into(),
            crv: "Ed25519".into(),
            x,
            alg: "EdDSA".into(),
            key_use: "sig".into(),
        }
    }

    /// Reads a public key PEM (`-----BEGIN PUBLIC KEY-----`, SPKI), as
    /// written by [`SigningKey::to_public_key_pem`] or `openssl pkey -pubout`.
    pub fn from_public_key_pem(pem: &str) -> Result<Self, KeyError> {
        ed25519_dalek::VerifyingKey::from_public_key_pem(pem)
            .map(|key| Self::ed25519(key.as_bytes()))
            .map_err(|error| KeyError(error.to_string()))
    }

    /// Reads either PEM a key file may hold: a private key (PKCS#8), of
    /// which only the public half is kept, or a public key (SPKI).
    pub fn from_any_pem(pem: &str) -> Result<Self, KeyError> {
        if pem.contains("-----BEGIN PUBLIC KEY-----") {
            return Self::from_public_key_pem(pem);
        }
        SigningKey::from_pkcs8_pem(pem).map(|key| key.jwk)
    }
}

/// The RFC 7638 thumbprint of an Ed25519 JWK: a stable key id.
fn thumbprint(x: &str) -> String {
    let canonical = format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#);
    URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
}

/// An Ed25519 private key and its public JWK.
#[derive(Clone)]
pub struct SigningKey {
    key: ed25519_dalek::SigningKey,
    jwk: PublicJwk,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey").field("kid", &self.jwk.kid).finish_non_exhaustive()
    }
}

/// Fills `bytes` from the operating system's CSPRNG; panics if the OS has
/// none to give, as there is no safe fallback for key material.
pub fn os_random(bytes: &mut [u8]) {
    use rand::{RngCore as _, TryRngCore as _};
    rand::rngs::OsRng.unwrap_err().fill_bytes(bytes);
}

impl SigningKey {
    /// A new random key from the operating system's CSPRNG.
    #[must_use]
    pub fn generate() -> Self {
        // ed25519-dalek 2 takes rand_core 0.6 generators; a seed from the OS
        // is what its `generate` would draw.
        let mut seed = ed25519_dalek::SecretKey::default();
        os_random(&mut seed);
        Self::from_dalek(ed25519_dalek::SigningKey::from_bytes(&seed))
    }

    /// Reads a PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`), as written by
    /// [`SigningKey::to_pkcs8_pem`] or `openssl genpkey -algorithm ed25519`.
    pub fn from_pkcs8_pem(pem: &str) -> Result<Self, KeyError> {
        ed25519_dalek::SigningKey::from_pkcs8_pem(pem)
            .map(Self::from_dalek)
            .map_err(|error| KeyError(error.to_string()))
    }

    /// The key as PKCS#8 PEM. This is the secret: store it with care.
    pub fn to_pkcs8_pem(&self) -> Result<String, KeyError> {
        self.key.to_pkcs8_pem(LineEnding::LF).map(|pem| pem.to_string()).map_err(|error| KeyError(error.to_string()))
    }

    /// The public half as SPKI PEM (`-----BEGIN PUBLIC KEY-----`): enough to
    /// verify tokens, useless for signing them.
    pub fn to_public_key_pem(&self) -> Result<String, KeyError> {
        self.key.verifying_key().to_public_key_pem(LineEnding::LF).map_err(|error| KeyError(error.to_string()))
    }

    fn from_dalek(key: ed25519_dalek::SigningKey) -> Self {
        let jwk = PublicJwk::ed25519(key.verifying_key().as_bytes());
        Self { key, jwk }
    }

    /// The key id (`kid`) that tokens signed with this key carry.
    #[must_use]
    pub fn kid(&self) -> &str {
        &self.jwk.kid
    }

    /// The public half, to publish in a JWK Set.
    #[must_use]
    pub fn public_jwk(&self) -> &PublicJwk {
        &self.jwk
    }
}

/// Who issues tokens and for whom.
#[derive(Debug, Clone)]
pub struct TokenPolicy {
    pub issuer: String,
    pub audience: String,
}

/// Issues access tokens signed with one key.
#[derive(Clone)]
pub struct TokenSigner {
    kid: String,
    encoding: EncodingKey,
    policy: TokenPolicy,
    lifetime: Duration,
}

impl fmt::Debug for TokenSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenSigner")
            .field("kid", &self.kid)
            .field("policy", &self.policy)
            .field("lifetime", &self.lifetime)
            .finish_non_exhaustive()
    }
}

/// A freshly issued token.
#[derive(Debug, Clone)]
pub struct IssuedToken {
    pub token: String,
    pub claims: Claims,
}

impl TokenSigner {
    pub fn new(key: &SigningKey, policy: TokenPolicy, lifetime: Duration) -> Result<Self, KeyError> {
        let der = key.key.to_pkcs8_der().map_err(|error| KeyError(error.to_string()))?;
        Ok(Self { kid: key.kid().to_owned(), encoding: EncodingKey::from_ed_der(der.as_bytes()), policy, lifetime })
    }

    /// How long the tokens this signer issues are valid.
    #[must_use]
    pub fn lifetime(&self) -> Duration {
        self.lifetime
    }

    /// Signs a token for a user's session, valid from now for the configured
    /// lifetime.
    pub fn issue(&self, public_id: &str, name: &str, admin: bool, sid: &str) -> Result<IssuedToken, TokenError> {
        let iat = UnixMicros::now().unsigned_secs();
        let claims = Claims {
            sub: public_id.to_owned(),
            name: name.to_owned(),
            admin,
            iss: self.policy.issuer.clone(),
            aud: self.policy.audience.clone(),
            iat,
            exp: iat + self.lifetime.as_secs(),
            jti: uuid::Uuid::new_v4().to_string(),
            sid: sid.to_owned(),
        };
        self.sign(&claims).map(|token| IssuedToken { token, claims })
    }

    /// Signs arbitrary claims with this signer's key and `kid`. Tests use it
    /// to build expired or otherwise unusual tokens.
    pub fn sign(&self, claims: &Claims) -> Result<String, TokenError> {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.kid.clone());
        Ok(jsonwebtoken::encode(&header, claims, &self.encoding)?)
    }
}

/// Verifies tokens against a fixed set of public keys, selected by `kid`.
#[derive(Clone)]
pub struct TokenVerifier {
    keys: HashMap<String, DecodingKey>,
    validation: Validation,
}

impl fmt::Debug for TokenVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenVerifier").field("kids", &self.keys.keys()).finish_non_exhaustive()
    }
}

impl TokenVerifier {
    /// A verifier for tokens of `policy` signed by any of `keys`. Keys that
    /// are not Ed25519 signing keys are refused.
    pub fn new<'a>(policy: &TokenPolicy, keys: impl IntoIterator<Item = &'a PublicJwk>) -> Result<Self, KeyError> {
        let mut decoding_keys = HashMap::new();
        for jwk in keys {
            if jwk.kty != "OKP" || jwk.crv != "Ed25519" || jwk.alg != "EdDSA" {
                return Err(KeyError(format!("key {:?} is not an Ed25519 EdDSA key", jwk.kid)));
            }
            let key = DecodingKey::from_ed_components(&jwk.x).map_err(|error| KeyError(error.to_string()))?;
            decoding_keys.insert(jwk.kid.clone(), key);
        }
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_issuer(&[&policy.issuer]);
        validation.set_audience(&[&policy.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = CLOCK_SKEW_LEEWAY.as_secs();
        // A token with `nbf` in the future is not valid yet (ours carry none).
        validation.validate_nbf = true;
        Ok(Self { keys: decoding_keys, validation })
    }

    /// The key ids this verifier knows.
    pub fn kids(&self) -> impl Iterator<Item = &str> {
        self.keys.keys().map(String::as_str)
    }

    /// Checks the token's algorithm, signature, issuer, audience and expiry.
    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        let header = jsonwebtoken::decode_header(token)?;
        if header.alg != Algorithm::EdDSA {
            return Err(TokenError::WrongAlgorithm);
        }
        let kid = header.kid.ok_or_else(|| TokenError::Invalid("token header has no kid".into()))?;
        // The kid is the caller's: echo at most a short prefix of it.
        let key = self.keys.get(&kid).ok_or_else(|| TokenError::UnknownKey(kid.chars().take(64).collect()))?;
        let claims = jsonwebtoken::decode::<Claims>(token, key, &self.validation)?.claims;
        // Issued in the future (beyond the clock skew): not valid yet.
        if claims.iat > UnixMicros::now().unsigned_secs() + CLOCK_SKEW_LEEWAY.as_secs() {
            return Err(TokenError::Invalid("token is not valid yet".into()));
        }
        if claims.sid.is_empty() {
            // Tokens from before sessions existed could never be revoked.
            return Err(TokenError::Invalid("token has no session id (sid): log in again".into()));
        }
        Ok(claims)
    }
}

/// No token was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a token is missing: send `authorization: Bearer <token>` or `x-access-tokens: <token>`")]
pub struct MissingToken;

/// Finds the caller's token: `authorization: Bearer <jwt>` first, then the
/// tutorial's `x-access-tokens: <jwt>` (a `Bearer ` prefix there is allowed).
pub fn token_from_headers(headers: &http::HeaderMap) -> Result<&str, MissingToken> {
    let value = |name: &str| headers.get(name).and_then(|value| value.to_str().ok()).map(str::trim);
    let bearer = value("authorization").and_then(strip_bearer);
    let tutorial = value("x-access-tokens").map(|token| strip_bearer(token).unwrap_or(token));
    bearer.or(tutorial).filter(|token| !token.is_empty()).ok_or(MissingToken)
}

fn strip_bearer(value: &str) -> Option<&str> {
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> TokenPolicy {
        TokenPolicy { issuer: "bookstore-auth".into(), audience: "bookstore".into() }
    }

    fn signer(key: &SigningKey) -> TokenSigner {
        TokenSigner::new(key, policy(), Duration::from_secs(60)).unwrap()
    }

    /// Issues a token, lets `edit` change its claims, signs them again and
    /// verifies the result with the signing key's public half.
    fn verify_edited(edit: impl FnOnce(&mut Claims)) -> Result<Claims, TokenError> {
        let key = SigningKey::generate();
        let signer = signer(&key);
        let mut claims = signer.issue("u", "n", false, "s").unwrap().claims;
        edit(&mut claims);
        let verifier = TokenVerifier::new(&policy(), [key.public_jwk()]).unwrap();
        verifier.verify(&signer.sign(&claims).unwrap())
    }

    #[test]
    fn issued_token_verifies_with_the_public_key() {
        let key = SigningKey::generate();
        let issued = signer(&key).issue("user-1", "alice", false, "session-1").unwrap();
        let verifier = TokenVerifier::new(&policy(), [key.public_jwk()]).unwrap();
        assert_eq!(verifier.verify(&issued.token).unwrap(), issued.claims);
    }

    #[test]
    fn pem_round_trip_keeps_the_key_id() {
        let key = SigningKey::generate();
        let again = SigningKey::from_pkcs8_pem(&key.to_pkcs8_pem().unwrap()).unwrap();
        assert_eq!(key.public_jwk(), again.public_jwk());
    }

    #[test]
    fn public_key_pem_gives_the_same_jwk_and_no_private_key() {
        let key = SigningKey::generate();
        let public_pem = key.to_public_key_pem().unwrap();
        assert!(public_pem.starts_with("-----BEGIN PUBLIC KEY-----"), "{public_pem}");
        assert_eq!(&PublicJwk::from_any_pem(&public_pem).unwrap(), key.public_jwk());
        assert_eq!(&PublicJwk::from_any_pem(&key.to_pkcs8_pem().unwrap()).unwrap(), key.public_jwk());
        assert!(SigningKey::from_pkcs8_pem(&public_pem).is_err());
    }

    #[test]
    fn token_of_another_key_with_a_known_kid_has_a_bad_signature() {
        let (real, forger) = (SigningKey::generate(), SigningKey::generate());
        let mut forged = signer(&forger);
        forged.kid = real.kid().to_owned();
        let token = forged.issue("user-1", "alice", true, "session-1").unwrap().token;
        let verifier = TokenVerifier::new(&policy(), [real.public_jwk()]).unwrap();
        assert_eq!(verifier.verify(&token), Err(TokenError::BadSignature));
    }

    #[test]
    fn expired_token_is_refused() {
        let verified =
            verify_edited(|claims| claims.exp = UnixMicros::now().unsigned_secs() - 2 * CLOCK_SKEW_LEEWAY.as_secs());
        assert_eq!(verified, Err(TokenError::Expired));
    }

    #[test]
    fn wrong_audience_is_refused() {
        let verified = verify_edited(|claims| claims.aud = "someone-else".into());
        assert!(matches!(verified, Err(TokenError::Invalid(_))));
    }

    #[test]
    fn alg_none_and_hs256_are_refused() {
        let key = SigningKey::generate();
        let verifier = TokenVerifier::new(&policy(), [key.public_jwk()]).unwrap();
        let claims = signer(&key).issue("u", "n", true, "s").unwrap().claims;
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap());
        let none = format!("{}.{payload}.", URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#));
        assert!(verifier.verify(&none).is_err());
        // HS256 keyed with the public key: the classic algorithm confusion.
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(key.kid().to_owned());
        let hs =
            jsonwebtoken::encode(&header, &claims, &EncodingKey::from_secret(key.public_jwk().x.as_bytes()).unwrap())
                .unwrap();
        assert_eq!(verifier.verify(&hs), Err(TokenError::WrongAlgorithm));
    }

    #[test]
    fn tokens_issued_in_the_future_are_not_valid_yet() {
        let verified = verify_edited(|claims| {
            claims.iat = UnixMicros::now().unsigned_secs() + 3600;
            claims.exp = UnixMicros::now().unsigned_secs() + 7200;
        });
        assert_eq!(verified, Err(TokenError::Invalid("token is not valid yet".into())));
    }

    #[test]
    fn token_without_a_session_id_is_refused() {
        let verified = verify_edited(|claims| claims.sid = String::new());
        let error = verified.unwrap_err();
        assert!(matches!(&error, TokenError::Invalid(reason) if reason.contains("sid")), "{error:?}");
    }

    #[test]
    fn garbage_is_malformed() {
        let verifier = TokenVerifier::new(&policy(), []).unwrap();
        assert!(matches!(verifier.verify("garbage"), Err(TokenError::Malformed(_))));
    }

    #[test]
    fn token_is_found_in_either_header() {
        let mut headers = http::HeaderMap::new();
        assert_eq!(token_from_headers(&headers), Err(MissingToken));
        headers.insert("x-access-tokens", "abc".parse().unwrap());
        assert_eq!(token_from_headers(&headers), Ok("abc"));
        headers.insert("authorization", "bearer xyz".parse().unwrap());
        assert_eq!(token_from_headers(&headers), Ok("xyz"));
        headers.insert("authorization", "Basic Zm9vOmJhcg==".parse().unwrap());
        assert_eq!(token_from_headers(&headers), Ok("abc"));
        headers.insert("x-access-tokens", "Bearer def".parse().unwrap());
        assert_eq!(token_from_headers(&headers), Ok("def"));
        headers.insert("x-access-tokens", "".parse().unwrap());
        assert_eq!(token_from_headers(&headers), Err(MissingToken));
    }
}
