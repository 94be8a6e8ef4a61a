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
    /// Counts a login attempt for `name_key` at unix second `now`, in one
    /// atomic statement, unless the name must still wait: parallel attempts
    /// can never pass more than the throttle allows. Past the free attempts,
    /// each counted attempt makes the next one wait, twice as long each time.
    async fn count_login_attempt(&self, name_key: &str, now: i64, throttle: LoginThrottle) -> Result<LoginAttempt>;
    /// Forgets `name_key`'s attempts (after a success), and every name's
    /// attempts older than `forget_before`.
    async fn clear_login_attempts(&self, name_key: &str, forget_before: i64) -> Result<()>;
    /// Closes the connections, waiting for those in use.
    async fn close(&self);
}

/// Opens (and migrates) the store a database URL names.
pub async fn connect(database_url: &str) -> anyhow::Result<Arc<dyn UserStore>> {
    match database_url.split_once(':').map(|(scheme, _)| scheme) {
        Some("sqlite") => Ok(Arc::new(SqliteUserStore::connect(database_url).await?)),
        Some("postgres" | "postgresql") => Ok(Arc::new(PostgresUserStore::connect(database_url).await?)),
        _ => anyhow::bail!("unsupported database URL: expected sqlite://PATH or postgres://..."),
    }
}
