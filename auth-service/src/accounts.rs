//! Registration, login, token checks and user listing: the service's logic,
//! shared by the gRPC API and the admin commands.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use bookstore_proto::pagination;
use bookstore_tokens::{Claims, IssuedToken, PublicJwk, TokenSigner, TokenVerifier};

use crate::domain::{Password, UserName};
use crate::error::{Error, Result};
use crate::password::PasswordHasher;
use crate::store::{NewUser, UserRecord, UserStore};
use crate::throttle::{LoginAttempt, LoginThrottle, login_must_wait};

/// The one message for every failed login, whatever the reason.
const LOGIN_FAILED: &str = "name or password is wrong";

/// Users and their tokens.
#[derive(Clone)]
pub struct Accounts {
    store: Arc<dyn UserStore>,
    hasher: PasswordHasher,
    signer: TokenSigner,
    verifier: TokenVerifier,
    jwks: Vec<PublicJwk>,
    login_throttle: LoginThrottle,
}

/// One page of users.
#[derive(Debug)]
pub struct UserPage {
    pub users: Vec<UserRecord>,
    pub next_page_token: String,
}

impl Accounts {
    pub fn new(
        store: Arc<dyn UserStore>,
        hasher: PasswordHasher,
        signer: TokenSigner,
        verifier: TokenVerifier,
        jwks: Vec<PublicJwk>,
    ) -> Self {
        Self { store, hasher, signer, verifier, jwks, login_throttle: LoginThrottle::DEFAULT }
    }

    /// Slows down repeated failed logins per user name as `throttle` says.
    #[must_use]
    pub fn with_login_throttle(mut self, throttle: LoginThrottle) -> Self {
        self.login_throttle = throttle;
        self
    }

    /// Creates a user; only the admin commands pass `admin: true`.
    #[tracing::instrument(skip_all, fields(admin))]
    pub async fn register(&self, name: &str, password: String, admin: bool) -> Result<UserRecord> {
        let name = UserName::parse(name)?;
        let password = Password::parse_new(password)?;
        let password_hash = self.hasher.hash(password).await?;
        let user = self
            .store
            .create_user(NewUser {
                public_id: uuid::Uuid::new_v4().to_string(),
                name: name.as_str().to_owned(),
                name_key: name.key(),
                password_hash,
                admin,
                created_at: unix_micros(),
            })
            .await?;
        tracing::info!(public_id = %user.public_id, "user registered");
        Ok(user)
    }

    /// Checks credentials and issues a token. An unknown name, a malformed
    /// name and a wrong password fail alike, at the cost of one hash check.
    /// Before any hashing, the attempt is counted against the name (known
    /// or not): past the free attempts, the name must wait, whatever the
    /// password.
    #[tracing::instrument(skip_all)]
    pub async fn login(&self, name: &str, password: String) -> Result<IssuedToken> {
        let password = Password::parse_attempt(password)?;
        let name_key = UserName::parse(name).ok().map(|name| name.key());
        if let Some(name_key) = &name_key {
            self.count_login_attempt(name_key).await?;
        }
        let user = match &name_key {
            Some(name_key) => self.store.find_user_by_name_key(name_key).await?,
            None => None,
        };
        let stored_hash = user.as_ref().map(|user| user.password_hash.clone());
        let verified = self.hasher.verify(password, stored_hash).await?;
        let Some(user) = user.filter(|_| verified) else {
            return Err(Error::Unauthenticated(LOGIN_FAILED.into()));
        };
        if let Some(name_key) = &name_key {
            self.clear_login_attempts(name_key).await?;
        }
        let issued = self
            .signer
            .issue(&user.public_id, &user.name, user.admin)
            .map_err(|error| Error::Internal(error.into()))?;
        tracing::info!(public_id = %user.public_id, "token issued");
        Ok(issued)
    }

    /// Refuses the attempt while the name must wait; counts it otherwise.
    async fn count_login_attempt(&self, name_key: &str) -> Result<()> {
        if !self.login_throttle.is_enabled() {
            return Ok(());
        }
        match self.store.count_login_attempt(name_key, unix_secs(), self.login_throttle).await? {
            LoginAttempt::Allowed => Ok(()),
            LoginAttempt::Wait { seconds } => {
                tracing::info!(wait_secs = seconds, "login refused: the name must wait");
                Err(login_must_wait(seconds))
            }
        }
    }

    async fn clear_login_attempts(&self, name_key: &str) -> Result<()> {
        if !self.login_throttle.is_enabled() {
            return Ok(());
        }
        let forget_before =
            unix_secs().saturating_sub(i64::try_from(LoginThrottle::FORGET_AFTER.as_secs()).unwrap_or(i64::MAX));
        self.store.clear_login_attempts(name_key, forget_before).await
    }

    /// Verifies a token's signature, issuer, audience and expiry.
    pub fn validate(&self, token: &str) -> Result<Claims> {
        self.verifier.verify(token).map_err(|error| Error::Unauthenticated(error.to_string()))
    }

    /// The public keys that verify this service's tokens.
    pub fn jwks(&self) -> &[PublicJwk] {
        &self.jwks
    }

    /// A page of users, for an admin. Admin rights are checked against the
    /// database, so a demoted admin loses them before the token expires.
    #[tracing::instrument(skip_all)]
    pub async fn list_users(&self, token: &str, page_size: i32, page_token: &str) -> Result<UserPage> {
        let claims = self.validate(token)?;
        let caller = self.store.find_user_by_public_id(&claims.sub).await?;
        if !caller.is_some_and(|caller| caller.admin) {
            return Err(Error::PermissionDenied("listing users needs an admin".into()));
        }
        let limit = pagination::effective_page_size(page_size)
            .ok_or_else(|| Error::invalid("page_size", "must not be negative"))?;
        let after = pagination::parse_page_token(page_token)
            .ok_or_else(|| Error::invalid("page_token", "is not a token this service issued"))?;
        let rows = self.store.list_users(after, limit + 1).await?;
        let (users, next_page_token) = pagination::into_page(rows, limit, |user| user.id);
        Ok(UserPage { users, next_page_token })
    }

    /// Grants or revokes admin rights.
    pub async fn set_admin(&self, name: &str, admin: bool) -> Result<UserRecord> {
        let name = UserName::parse(name)?;
        self.store.set_admin(&name.key(), admin).await
    }

    pub async fn close(&self) {
        self.store.close().await;
    }
}

fn unix_secs() -> i64 {
    unix_micros() / 1_000_000
}

fn unix_micros() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| i64::try_from(elapsed.as_micros()).unwrap_or(i64::MAX))
}
