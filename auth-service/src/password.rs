//! argon2id password hashing on the blocking pool, with a bound on how many
//! hashes run at once (each holds ~19 MiB for its duration).

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier as _, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use tokio::sync::Semaphore;

use crate::domain::Password;
use crate::error::{Error, Result};

/// How long a request may wait for a hashing slot before it is refused with
/// `ResourceExhausted` rather than queueing without bound.
const QUEUE_TIMEOUT: Duration = Duration::from_secs(10);

/// Hashes and verifies passwords with argon2id at OWASP's parameters
/// (m = 19456 KiB, t = 2, p = 1).
#[derive(Clone)]
pub struct PasswordHasher {
    argon2: Argon2<'static>,
    slots: Arc<Semaphore>,
    /// A hash of a random password: verified against when the user does not
    /// exist, so an unknown name costs what a wrong password costs.
    dummy_hash: Arc<str>,
}

impl PasswordHasher {
    pub async fn new(max_concurrent: usize) -> anyhow::Result<Self> {
        let params = Params::new(19_456, 2, 1, None).map_err(|error| anyhow::anyhow!("argon2 params: {error}"))?;
        let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
        let dummy_password = uuid::Uuid::new_v4().to_string();
        let hashing = argon2.clone();
        let dummy_hash = tokio::task::spawn_blocking(move || hash_blocking(&hashing, dummy_password.as_bytes()))
            .await
            .context("dummy hash task")??;
        Ok(Self { argon2, slots: Arc::new(Semaphore::new(max_concurrent.max(1))), dummy_hash: dummy_hash.into() })
    }

    /// The PHC string (`$argon2id$v=19$m=19456,t=2,p=1$...`) of a new password.
    pub async fn hash(&self, password: Password) -> Result<String> {
        let argon2 = self.argon2.clone();
        self.run_blocking(move || hash_blocking(&argon2, password.expose())).await?.map_err(Error::Internal)
    }

    /// Whether `password` matches `stored`; `None` (no such user) does the
    /// same work against a dummy hash and answers `false`.
    pub async fn verify(&self, password: Password, stored: Option<String>) -> Result<bool> {
        let argon2 = self.argon2.clone();
        let user_exists = stored.is_some();
        let phc = stored.unwrap_or_else(|| self.dummy_hash.to_string());
        let matches = self
            .run_blocking(move || {
                PasswordHash::new(&phc).is_ok_and(|hash| argon2.verify_password(password.expose(), &hash).is_ok())
            })
            .await?;
        Ok(matches && user_exists)
    }

    async fn run_blocking<T: Send + 'static>(&self, work: impl FnOnce() -> T + Send + 'static) -> Result<T> {
        let permit = tokio::time::timeout(QUEUE_TIMEOUT, Arc::clone(&self.slots).acquire_owned())
            .await
            .map_err(|_| Error::ResourceExhausted("too many password checks in progress, retry later".into()))?
            .map_err(|error| Error::Internal(error.into()))?;
        let span = tracing::Span::current();
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            span.in_scope(work)
        })
        .await
        .map_err(|error| Error::Internal(error.into()))
    }
}

fn hash_blocking(argon2: &Argon2<'_>, password: &[u8]) -> anyhow::Result<String> {
    let salt = SaltString::generate(&mut OsRng);
    argon2
        .hash_password(password, &salt)
        .map(|hash| hash.to_string())
        .map_err(|error| anyhow::anyhow!("argon2 hash: {error}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn password(text: &str) -> Password {
        Password::parse_attempt(text.to_owned()).unwrap()
    }

    #[tokio::test]
    async fn hashes_are_argon2id_phc_strings_that_verify() {
        let hasher = PasswordHasher::new(2).await.unwrap();
        let phc = hasher.hash(password("correct horse")).await.unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        assert!(hasher.verify(password("correct horse"), Some(phc.clone())).await.unwrap());
        assert!(!hasher.verify(password("wrong horse"), Some(phc)).await.unwrap());
    }

    #[tokio::test]
    async fn unknown_user_never_verifies() {
        let hasher = PasswordHasher::new(1).await.unwrap();
        assert!(!hasher.verify(password("anything"), None).await.unwrap());
    }
}
