//! Registration, login, token checks and user listing: the service's logic,
//! shared by the gRPC API and the admin commands.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bookstore_proto::pagination;
use bookstore_runtime::Metrics;
use bookstore_runtime::metrics::TokenFailures;
use bookstore_tokens::{CLOCK_SKEW_LEEWAY, Claims, IssuedToken, PublicJwk, TokenSigner, TokenVerifier};
use sha2::{Digest as _, Sha256};

use crate::domain::{Password, UserName};
use crate::error::{Error, Result};
use crate::password::PasswordHasher;
use crate::store::{
    MAX_PUBLIC_IDS_PER_QUERY, NewSession, NewUser, NextRefreshToken, RevocationRecord, Rotation, SweepCutoffs,
    SweepReport, UserRecord, UserStore,
};
use crate::throttle::{LoginAttempt, LoginThrottle, login_must_wait};

/// The one message for every failed login, whatever the reason.
const LOGIN_FAILED: &str = "name or password is wrong";
/// Random bytes in a refresh token.
const REFRESH_TOKEN_BYTES: usize = 32;
/// Longer input is not a refresh token; refused before hashing.
const MAX_REFRESH_TOKEN_CHARS: usize = 128;

/// How long refresh tokens live and how a spent one presented again is
/// treated.
#[derive(Debug, Clone, Copy)]
pub struct SessionPolicy {
    /// Lifetime of a refresh token (each rotation starts a new one).
    pub refresh_ttl: Duration,
    /// A spent refresh token presented again within this time of its
    /// rotation is refused without ending the session (two tabs refreshing
    /// at once); later, it ends the session (a stolen copy).
    pub reuse_grace: Duration,
}

/// An access token and the refresh token of the same session.
#[derive(Debug, Clone)]
pub struct TokenPair {
    pub access: IssuedToken,
    pub refresh_token: String,
}

impl TokenPair {
    /// Seconds until the access token expires.
    pub fn expires_in(&self) -> i64 {
        i64::try_from(self.access.claims.exp.saturating_sub(self.access.claims.iat)).unwrap_or(i64::MAX)
    }
}

/// One page of the revocation feed.
#[derive(Debug)]
pub struct RevocationPage {
    pub revocations: Vec<RevocationRecord>,
    pub next_page_token: String,
}

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
        self.token_failures.register(metrics);
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
                created_at: unix_micros(),
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
        self.store.mark_data_migration_done(MIGRATION, unix_secs()).await?;
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

    /// Starts a session for `user`: an access token carrying its id and its
    /// first refresh token.
    async fn start_session(&self, user: &UserRecord) -> Result<TokenPair> {
        let (refresh_token, refresh_token_hash) = new_refresh_token();
        let now = unix_micros();
        let session_id = uuid::Uuid::new_v4().to_string();
        self.store
            .create_session(NewSession {
                id: session_id.clone(),
                user_id: user.id,
                refresh_token_hash,
                created_at: now,
                refresh_expires_at: now.saturating_add(micros(self.sessions.refresh_ttl)),
            })
            .await?;
        let access = self.issue(user, &session_id)?;
        tracing::info!(public_id = %user.public_id, session_id, "session started");
        Ok(TokenPair { access, refresh_token })
    }

    fn issue(&self, user: &UserRecord, session_id: &str) -> Result<IssuedToken> {
        self.signer
            .issue(&user.public_id, &user.name, user.admin, session_id)
            .map_err(|error| Error::Internal(error.into()))
    }

    /// Spends a refresh token for a new pair. A spent token presented again
    /// after the grace window ends its session.
    #[tracing::instrument(skip_all)]
    pub async fn refresh(&self, refresh_token: &str) -> Result<TokenPair> {
        let token_hash = refresh_token_hash(refresh_token)?;
        let (next_token, next_hash) = new_refresh_token();
        let now = unix_micros();
        let next = NextRefreshToken {
            hash: next_hash,
            now,
            expires_at: now.saturating_add(micros(self.sessions.refresh_ttl)),
        };
        match self.store.rotate_refresh_token(&token_hash, next).await? {
            Rotation::Rotated { session_id, user } => {
                let access = self.issue(&user, &session_id)?;
                tracing::info!(public_id = %user.public_id, session_id, "session refreshed");
                Ok(TokenPair { access, refresh_token: next_token })
            }
            Rotation::AlreadySpent { session_id, rotated_at } => {
                if now.saturating_sub(rotated_at) <= micros(self.sessions.reuse_grace) {
                    return Err(Error::wrong_credential(
                        "refresh_token",
                        "was already used; use the one its refresh returned",
                    ));
                }
                self.store.revoke_session(&session_id, now, self.relevant_until(now)).await?;
                tracing::warn!(session_id, "spent refresh token presented again: session revoked");
                Err(Error::wrong_credential("refresh_token", "was already used; the session is revoked, log in again"))
            }
            Rotation::Invalid => Err(Error::wrong_credential("refresh_token", "is not valid")),
        }
    }

    /// Ends the session of an access token (its signature is enough: ending
    /// an ended session is fine) and/or that of a refresh token.
    #[tracing::instrument(skip_all)]
    pub async fn logout(&self, access_token: Option<&str>, refresh_token: Option<&str>) -> Result<()> {
        let mut sessions = Vec::new();
        if let Some(token) = access_token {
            sessions.push(self.validate_signature(token)?.sid);
        }
        if let Some(token) = refresh_token {
            let session = self.store.session_of_refresh_token(&refresh_token_hash(token)?).await?;
            sessions.push(session.ok_or_else(|| Error::wrong_credential("refresh_token", "is not valid"))?);
        }
        if sessions.is_empty() {
            return Err(Error::Unauthenticated(bookstore_tokens::MissingToken.to_string()));
        }
        let now = unix_micros();
        for session_id in sessions {
            if self.store.revoke_session(&session_id, now, self.relevant_until(now)).await? {
                tracing::info!(session_id, "session ended");
            }
        }
        Ok(())
    }

    /// Changes the caller's password, ends all their sessions and starts a
    /// new one.
    #[tracing::instrument(skip_all)]
    pub async fn change_password(&self, token: &str, current: String, new: String) -> Result<TokenPair> {
        let (_, user) = self.authenticate(token).await?;
        let new = Password::parse_new(new).map_err(|error| match error {
            Error::InvalidArgument { reason, .. } => Error::invalid("new_password", reason),
            other => other,
        })?;
        let current = Password::parse_attempt(current)?;
        self.check_password_of(&user, current, "current_password").await?;
        let new_hash = self.hasher.hash(new).await?;
        let now = unix_micros();
        let ended = self.store.change_password(user.id, &new_hash, now, self.relevant_until(now)).await?;
        tracing::info!(public_id = %user.public_id, ended_sessions = ended, "password changed");
        self.start_session(&user).await
    }

    /// Deletes the caller's account. Their books go when books-service reads
    /// the deletion from the revocation feed.
    #[tracing::instrument(skip_all)]
    pub async fn delete_account(&self, token: &str, password: String) -> Result<()> {
        let (_, user) = self.authenticate(token).await?;
        let password = Password::parse_attempt(password)?;
        self.check_password_of(&user, password, "password").await?;
        let now = unix_micros();
        if self.store.delete_user(user.id, now, self.relevant_until(now)).await? {
            tracing::info!(public_id = %user.public_id, "account deleted");
        }
        Ok(())
    }

    /// Ends every session of a user (the admin command); how many.
    pub async fn revoke_sessions(&self, name: &str) -> Result<u64> {
        let name = UserName::parse(name)?;
        let user = self
            .store
            .find_user_by_name_key(&name.key())
            .await?
            .ok_or_else(|| Error::NotFound("no user with this name".into()))?;
        let now = unix_micros();
        self.store.revoke_user_sessions(user.id, now, self.relevant_until(now)).await
    }

    /// A page of the revocation feed, from `since` (unix micros).
    pub async fn list_revocations(&self, since: i64, page_size: i32, page_token: &str) -> Result<RevocationPage> {
        let limit = pagination::effective_page_size(page_size)
            .ok_or_else(|| Error::invalid("page_size", "must not be negative"))?;
        let after = pagination::parse_page_token(page_token)
            .ok_or_else(|| Error::invalid("page_token", "is not a token this service issued"))?;
        let rows = self.store.list_revocations(since, after, limit + 1).await?;
        let (revocations, next_page_token) = pagination::into_page(rows, limit, |row| row.id);
        Ok(RevocationPage { revocations, next_page_token })
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

    /// Until when a revocation made `now` matters: the longest an access
    /// token issued before it stays valid, clock skew allowance included.
    fn relevant_until(&self, now: i64) -> i64 {
        now.saturating_add(micros(self.longest_access_token()))
    }

    /// The longest an access token is accepted: its lifetime plus the
    /// clock skew leeway of verifiers.
    fn longest_access_token(&self) -> Duration {
        self.signer.lifetime() + CLOCK_SKEW_LEEWAY
    }

    /// Deletes the rows no request will use again, as of now (see
    /// `store::sweep_sql`); deleted users' revocations are kept
    /// `deleted_user_retention` past their `relevant_until`.
    pub async fn sweep_stale_rows(&self, deleted_user_retention: Duration) -> Result<SweepReport> {
        let cutoffs = SweepCutoffs::at(unix_micros(), self.longest_access_token(), deleted_user_retention);
        self.store.sweep(cutoffs).await
    }

    /// Verifies a token's signature, issuer, audience and expiry, and that
    /// its session is open and its user exists.
    pub async fn authenticate(&self, token: &str) -> Result<(Claims, UserRecord)> {
        let claims = self.validate_signature(token)?;
        let user = self
            .store
            .find_active_session_user(&claims.sid)
            .await?
            .filter(|user| user.public_id == claims.sub)
            .ok_or_else(|| Error::Unauthenticated("token's session has ended: log in again".into()))?;
        Ok((claims, user))
    }

    /// Verifies a token's signature, issuer, audience and expiry only.
    fn validate_signature(&self, token: &str) -> Result<Claims> {
        self.verifier.verify(token).map_err(|error| {
            self.token_failures.record(error.reason());
            Error::Unauthenticated(error.to_string())
        })
    }

    /// The public keys that verify this service's tokens.
    pub fn jwks(&self) -> &[PublicJwk] {
        &self.jwks
    }

    /// A page of users, for an admin. Admin rights are checked against the
    /// database, so a demoted admin loses them before the token expires.
    #[tracing::instrument(skip_all)]
    pub async fn list_users(&self, token: &str, page_size: i32, page_token: &str) -> Result<UserPage> {
        let (_, caller) = self.authenticate(token).await?;
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

fn unix_secs() -> i64 {
    unix_micros() / 1_000_000
}

/// A new refresh token (256 random bits, base64url) and its SHA-256 (hex),
/// which is all the database keeps.
fn new_refresh_token() -> (String, String) {
    let mut bytes = [0; REFRESH_TOKEN_BYTES];
    bookstore_tokens::os_random(&mut bytes);
    let token = URL_SAFE_NO_PAD.encode(bytes);
    let hash = sha256_hex(&token);
    (token, hash)
}

/// The stored form of a presented refresh token.
fn refresh_token_hash(token: &str) -> Result<String> {
    let token = token.trim();
    if token.is_empty() {
        return Err(Error::invalid("refresh_token", "must not be empty"));
    }
    if token.len() > MAX_REFRESH_TOKEN_CHARS {
        return Err(Error::wrong_credential("refresh_token", "is not valid"));
    }
    Ok(sha256_hex(token))
}

fn sha256_hex(text: &str) -> String {
    Sha256::digest(text.as_bytes()).iter().map(|byte| format!("{byte:02x}")).collect()
}

fn micros(duration: Duration) -> i64 {
    i64::try_from(duration.as_micros()).unwrap_or(i64::MAX)
}

fn unix_micros() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| i64::try_from(elapsed.as_micros()).unwrap_or(i64::MAX))
}
