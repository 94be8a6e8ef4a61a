//! Where users live. The database URL's scheme picks the backend.

mod postgres;
mod sqlite;

use std::sync::Arc;

use async_trait::async_trait;

use crate::error::Result;
use crate::throttle::{LoginAttempt, LoginThrottle};

pub use postgres::PostgresUserStore;
pub use sqlite::SqliteUserStore;

/// A stored user, password hash included: never leaves the service (and
/// its `Debug` leaves the hash out).
#[derive(Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct UserRecord {
    pub id: i64,
    pub public_id: String,
    pub name: String,
    /// The unique key of the name (see `UserName::key`): what logins and
    /// the login throttle look the user up by.
    pub name_key: String,
    pub password_hash: String,
    pub admin: bool,
    /// Unix time in microseconds.
    pub created_at: i64,
}

impl std::fmt::Debug for UserRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserRecord")
            .field("id", &self.id)
            .field("public_id", &self.public_id)
            .field("name", &self.name)
            .field("name_key", &self.name_key)
            .field("admin", &self.admin)
            .field("created_at", &self.created_at)
            .finish_non_exhaustive()
    }
}

/// A user to insert.
#[derive(Clone)]
pub struct NewUser {
    pub public_id: String,
    pub name: String,
    /// Unicode-lowercase name: the unique key.
    pub name_key: String,
    pub password_hash: String,
    pub admin: bool,
    pub created_at: i64,
}

/// A session to start, with its first refresh token.
#[derive(Clone)]
pub struct NewSession {
    /// A UUID: the `sid` of its access tokens.
    pub id: String,
    pub user_id: i64,
    /// SHA-256 (hex) of the first refresh token.
    pub refresh_token_hash: String,
    /// Unix time in microseconds.
    pub created_at: i64,
    pub refresh_expires_at: i64,
}

/// The refresh token that replaces a spent one.
#[derive(Clone)]
pub struct NextRefreshToken {
    /// SHA-256 (hex).
    pub hash: String,
    /// Unix time in microseconds: when the presented token is spent.
    pub now: i64,
    pub expires_at: i64,
}

/// What presenting a refresh token did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rotation {
    /// It was live: it is spent now and the next one is stored.
    Rotated { session_id: String, user: UserRecord },
    /// It was spent before, at `rotated_at` (unix micros), and its session
    /// is still open.
    AlreadySpent { session_id: String, rotated_at: i64 },
    /// Unknown, expired, or its session has ended.
    Invalid,
}

/// One entry of the revocation feed.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct RevocationRecord {
    pub id: i64,
    /// `session` or `user`.
    pub kind: String,
    /// A session id, or a deleted user's public id.
    pub subject: String,
    /// Unix time in microseconds.
    pub revoked_at: i64,
    pub relevant_until: i64,
}

/// Revocation kinds, as stored.
pub const REVOKED_SESSION: &str = "session";
pub const DELETED_USER: &str = "user";

/// The user table, behind one interface for every backend.
#[async_trait]
pub trait UserStore: Send + Sync + 'static {
    /// Inserts a user; `AlreadyExists` when the name key is taken.
    async fn create_user(&self, user: NewUser) -> Result<UserRecord>;
    async fn find_user_by_name_key(&self, name_key: &str) -> Result<Option<UserRecord>>;
    async fn find_user_by_public_id(&self, public_id: &str) -> Result<Option<UserRecord>>;
    /// Users with `id > after_id`, ascending, at most `limit`.
    async fn list_users(&self, after_id: i64, limit: u32) -> Result<Vec<UserRecord>>;
    /// Sets the admin flag; `NotFound` when no user has the name key.
    async fn set_admin(&self, name_key: &str, admin: bool) -> Result<UserRecord>;
    /// Inserts users with their ids, skipping ids already present, and
    /// moves the id sequence past them; how many were new. For copying a
    /// deployment to another backend.
    async fn import_users(&self, users: &[UserRecord]) -> Result<u64>;
    async fn count_users(&self) -> Result<i64>;
    /// Replaces a user's name key if it still is `old_key`; whether it did.
    /// `AlreadyExists` when another user has `new_key`.
    async fn update_name_key(&self, user_id: i64, old_key: &str, new_key: &str) -> Result<bool>;
    /// Whether the data migration `name` has run (see `data_migrations`).
    async fn is_data_migration_done(&self, name: &str) -> Result<bool>;
    /// Records that the data migration `name` has run (once; again is a no-op).
    async fn mark_data_migration_done(&self, name: &str, now: i64) -> Result<()>;
    /// Counts a login attempt for `name_key` at unix second `now`, in one
    /// atomic statement, unless the name must still wait: parallel attempts
    /// can never pass more than the throttle allows. Past the free attempts,
    /// each counted attempt makes the next one wait, twice as long each time.
    async fn count_login_attempt(&self, name_key: &str, now: i64, throttle: LoginThrottle) -> Result<LoginAttempt>;
    /// Forgets `name_key`'s attempts (after a success), and every name's
    /// attempts older than `forget_before`.
    async fn clear_login_attempts(&self, name_key: &str, forget_before: i64) -> Result<()>;
    /// Replaces a password hash if it still is `old_hash` (a rehash at login
    /// must not undo a concurrent password change); whether it did.
    async fn update_password_hash(&self, user_id: i64, old_hash: &str, new_hash: &str) -> Result<bool>;

    /// Starts a session with its first refresh token (one transaction).
    async fn create_session(&self, session: NewSession) -> Result<()>;
    /// The user of a session that has not ended.
    async fn find_active_session_user(&self, session_id: &str) -> Result<Option<UserRecord>>;
    /// Spends a live refresh token and stores `next` in its place (one
    /// transaction; of two concurrent calls with one token, one rotates).
    async fn rotate_refresh_token(&self, token_hash: &str, next: NextRefreshToken) -> Result<Rotation>;
    /// The session a refresh token (live or spent) belongs to.
    async fn session_of_refresh_token(&self, token_hash: &str) -> Result<Option<String>>;
    /// Ends a session and records its revocation (one transaction); whether
    /// it was open. Purges revocations past their `relevant_until`.
    async fn revoke_session(&self, session_id: &str, now: i64, relevant_until: i64) -> Result<bool>;
    /// Ends every open session of a user, recording each revocation (one
    /// transaction); how many.
    async fn revoke_user_sessions(&self, user_id: i64, now: i64, relevant_until: i64) -> Result<u64>;
    /// Sets a new password hash and ends every session of the user, in one
    /// transaction; how many sessions ended.
    async fn change_password(&self, user_id: i64, password_hash: &str, now: i64, relevant_until: i64) -> Result<u64>;
    /// Deletes a user with its sessions and refresh tokens and records the
    /// deletion in the revocation feed, in one transaction (the outbox
    /// books-service learns it from); whether the user existed.
    async fn delete_user(&self, user_id: i64, now: i64, relevant_until: i64) -> Result<bool>;
    /// Revocations recorded at or after `since` with `id > after_id`, by
    /// id, at most `limit`.
    async fn list_revocations(&self, since: i64, after_id: i64, limit: u32) -> Result<Vec<RevocationRecord>>;

    /// Closes the connections, waiting for those in use.
    async fn close(&self);
    /// How the connection pool is used right now, for metrics.
    fn pool_usage(&self) -> bookstore_runtime::metrics::PoolUsage;
}

/// Opens (and migrates) the store a database URL names.
pub async fn connect(database_url: &str) -> anyhow::Result<Arc<dyn UserStore>> {
    match database_url.split_once(':').map(|(scheme, _)| scheme) {
        Some("sqlite") => Ok(Arc::new(SqliteUserStore::connect(database_url).await?)),
        Some("postgres" | "postgresql") => Ok(Arc::new(PostgresUserStore::connect(database_url).await?)),
        _ => anyhow::bail!("unsupported database URL: expected sqlite://PATH or postgres://..."),
    }
}
