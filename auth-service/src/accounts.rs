//! Registration, login, password changes, account deletion and user
//! listing: the service's logic, shared by the gRPC API and the admin
//! commands. Sessions and their tokens are in `sessions`.

mod sessions;

use std::sync::Arc;

use bookstore_proto::{UnixMicros, pagination};
use bookstore_runtime::Metrics;
use bookstore_tokens::{PublicJwk, TokenFailures, TokenSigner, TokenVerifier};

use crate::domain::{Password, UserName};
use crate::error::{Error, Result};
use crate::password::PasswordHasher;
use crate::store::{MAX_PUBLIC_IDS_PER_QUERY, NewUser, UserRecord, UserStore};
use crate::throttle::{LoginAttempt, LoginThrottle, login_must_wait};

pub use sessions::{Authenticated, RevocationPage, SessionPolicy, TokenPair};

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
    sessions: SessionPolicy,
    token_failures: TokenFailures,
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
        sessions: SessionPolicy,
    ) -> Self {
        Self {
            store,
            hasher,
            signer,
            verifier,
            jwks,
            login_throttle: LoginThrottle::DEFAULT,
            sessions,
            token_failures: TokenFailures::default(),
        }
    }

    /// Slows down repeated failed logins per user name as `throttle` says.
    #[must_use]
    pub fn with_login_throttle(mut self, throttle: LoginThrottle) -> Self {
        self.login_throttle = throttle;
        self
    }

    /// Exposes the password hashing queue, the refused tokens and the
    /// database pool in `metrics`.
    pub fn register_metrics(&self, metrics: &Metrics) {
        self.hasher.register_metrics(metrics);
        metrics.register(TokenFailures::NAME, TokenFailures::HELP, self.token_failures.clone());
        let store = Arc::clone(&self.store);
        metrics.register_pool(move || store.pool_usage());
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
                created_at: UnixMicros::now().get(),
            })
            .await?;
        tracing::info!(public_id = %user.public_id, "user registered");
        Ok(user)
    }

    /// Checks credentials, starts a session and issues its tokens. An
    /// unknown name, a malformed name and a wrong password fail alike, at
    /// the cost of one hash check. Before any hashing, the attempt is
    /// counted against the name (known or not): past the free attempts, the
    /// name must wait, whatever the password. A hash made with other
    /// parameters than today's is replaced by one made with them.
    #[tracing::instrument(skip_all)]
    pub async fn login(&self, name: &str, password: String) -> Result<TokenPair> {
        let password = Password::parse_attempt(password)?;
        // A name the profile refuses can only belong to a user registered
        // before names were checked: look for their old key.
        let name_key = UserName::parse(name).map(|name| name.key()).ok().or_else(|| UserName::legacy_key(name));
        if let Some(name_key) = &name_key {
            self.count_login_attempt(name_key).await?;
        }
        let user = match &name_key {
            Some(name_key) => self.store.find_user_by_name_key(name_key).await?,
            None => None,
        };
        let stored_hash = user.as_ref().map(|user| user.password_hash.clone());
        let verified = self.hasher.verify(password.clone(), stored_hash).await?;
        let Some(user) = user.filter(|_| verified) else {
            return Err(Error::Unauthenticated(LOGIN_FAILED.into()));
        };
        if let Some(name_key) = &name_key {
            self.clear_login_attempts(name_key).await?;
        }
        if self.hasher.needs_rehash(&user.password_hash) {
            self.rehash(&user, password).await;
        }
        self.start_session(&user).await
    }

    /// Checks the password of a signed-in user (a stolen access token must
    /// not allow unlimited guesses): the check counts in the user name's
    /// login throttle, with the same waits as Login, and a success clears it.
    async fn check_password_of(&self, user: &UserRecord, password: Password, field: &'static str) -> Result<()> {
        self.count_login_attempt(&user.name_key).await?;
        if !self.hasher.verify(password, Some(user.password_hash.clone())).await? {
            return Err(Error::wrong_credential(field, "is wrong"));
        }
        self.clear_login_attempts(&user.name_key).await
    }

    /// Recomputes every user's name key with today's rule (the PRECIS
    /// profile), once per database. A user whose name the profile refuses,
    /// or whose new key an older user already has (look-alike names
    /// registered before the rule), keeps the old key: the first can still
    /// log in with the exact name, the second is reported for an admin to
    /// sort out. Several replicas may run it at once: each update only
    /// applies to the key it read.
    pub async fn migrate_name_keys(&self) -> Result<()> {
        const MIGRATION: &str = "precis_name_keys";
        const PAGE: u32 = 1000;
        if self.store.is_data_migration_done(MIGRATION).await? {
            return Ok(());
        }
        let (mut after, mut rekeyed, mut kept) = (0, 0_u64, Vec::new());
        loop {
            let users = self.store.list_users(after, PAGE).await?;
            let Some(last) = users.last() else { break };
            after = last.id;
            for user in &users {
                let Ok(key) = UserName::parse(&user.name).map(|name| name.key()) else {
                    kept.push(user.public_id.clone());
                    continue;
                };
                if key == user.name_key {
                    continue;
                }
                match self.store.update_name_key(user.id, &user.name_key, &key).await {
                    Ok(updated) => rekeyed += u64::from(updated),
                    Err(Error::AlreadyExists(_)) => kept.push(user.public_id.clone()),
                    Err(other) => return Err(other),
                }
            }
        }
        self.store.mark_data_migration_done(MIGRATION, UnixMicros::now().secs()).await?;
        if kept.is_empty() {
            tracing::info!(rekeyed, "user name keys recomputed");
        } else {
            tracing::warn!(
                rekeyed,
                kept_old_key = ?kept,
                "user name keys recomputed; these users' names are refused or taken under the new rule and \
                 kept their old key: rename or delete them"
            );
        }
        Ok(())
    }

    /// Refuses the attempt while the name must wait; counts it otherwise.
    async fn count_login_attempt(&self, name_key: &str) -> Result<()> {
        if !self.login_throttle.is_enabled() {
            return Ok(());
        }
        match self.store.count_login_attempt(name_key, UnixMicros::now().secs(), self.login_throttle).await? {
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
        self.store.clear_login_attempts(name_key).await
    }

    /// Replaces an outdated password hash; a failure only costs a retry at
    /// the next login.
    async fn rehash(&self, user: &UserRecord, password: Password) {
        let rehashed = match self.hasher.hash(password).await {
            Ok(new_hash) => self.store.update_password_hash(user.id, &user.password_hash, &new_hash).await,
            Err(error) => Err(error),
        };
        match rehashed {
            Ok(true) => tracing::info!(public_id = %user.public_id, "password rehashed with current parameters"),
            Ok(false) => {}
            Err(error) => tracing::warn!(public_id = %user.public_id, %error, "cannot rehash the password"),
        }
    }

    /// Changes the caller's password, ends all their sessions and starts a
    /// new one.
    #[tracing::instrument(skip_all)]
    pub async fn change_password(&self, token: &str, current: String, new: String) -> Result<TokenPair> {
        let Authenticated { user, .. } = self.authenticate(token).await?;
        let new = Password::parse_new(new).map_err(|error| match error {
            Error::InvalidArgument { reason, .. } => Error::invalid("new_password", reason),
            other => other,
        })?;
        let current = Password::parse_attempt(current)?;
        self.check_password_of(&user, current, "current_password").await?;
        let new_hash = self.hasher.hash(new).await?;
        let now = UnixMicros::now().get();
        let ended = self.store.change_password(user.id, &new_hash, now, self.relevant_until(now)).await?;
        tracing::info!(public_id = %user.public_id, ended_sessions = ended, "password changed");
        self.start_session(&user).await
    }

    /// Deletes the caller's account. Their books go when books-service reads
    /// the deletion from the revocation feed.
    #[tracing::instrument(skip_all)]
    pub async fn delete_account(&self, token: &str, password: String) -> Result<()> {
        let Authenticated { user, .. } = self.authenticate(token).await?;
        let password = Password::parse_attempt(password)?;
        self.check_password_of(&user, password, "password").await?;
        let now = UnixMicros::now().get();
        if self.store.delete_user(user.id, now, self.relevant_until(now)).await? {
            tracing::info!(public_id = %user.public_id, "account deleted");
        }
        Ok(())
    }

    /// Those of `public_ids` that belong to an existing user (for our
    /// services' orphan checks); InvalidArgument past
    /// [`MAX_PUBLIC_IDS_PER_QUERY`] ids.
    pub async fn find_existing_users(&self, public_ids: &[String]) -> Result<Vec<String>> {
        if public_ids.len() > MAX_PUBLIC_IDS_PER_QUERY {
            return Err(Error::invalid("public_ids", format!("must hold at most {MAX_PUBLIC_IDS_PER_QUERY} ids")));
        }
        self.store.find_existing_public_ids(public_ids).await
    }

    /// A page of users, for an admin. Admin rights are checked against the
    /// database, so a demoted admin loses them before the token expires.
    #[tracing::instrument(skip_all)]
    pub async fn list_users(&self, token: &str, page_size: i32, page_token: &str) -> Result<UserPage> {
        let Authenticated { user: caller, .. } = self.authenticate(token).await?;
        if !caller.admin {
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
