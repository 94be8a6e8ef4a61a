//! Where users live. The database URL's scheme picks the backend.

mod postgres;
mod sql;
mod sqlite;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::error::Result;
use crate::throttle::{LoginAttempt, LoginThrottle};

pub use postgres::PostgresUserStore;
pub use sql::SqlUserStore;
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
    #[sqlx(try_from = "String")]
    pub kind: RevocationKind,
    /// A session id, or a deleted user's public id.
    pub subject: String,
    /// Unix time in microseconds.
    pub revoked_at: i64,
    pub relevant_until: i64,
}

/// What a revocation revokes. Stored as text in `revocations.kind` (the
/// sweep's statements name the stored forms too).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RevocationKind {
    /// `session`: every token of one session; the subject is its id.
    Session,
    /// `user`: every token of a deleted user; the subject is their public id.
    DeletedUser,
}

impl RevocationKind {
    /// The stored form.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Session => "session",
            Self::DeletedUser => "user",
        }
    }
}

impl TryFrom<String> for RevocationKind {
    type Error = String;

    fn try_from(stored: String) -> std::result::Result<Self, Self::Error> {
        match stored.as_str() {
            "session" => Ok(Self::Session),
            "user" => Ok(Self::DeletedUser),
            _ => Err(format!("unknown revocation kind {stored:?}")),
        }
    }
}

/// The most ids one `find_existing_public_ids` call may ask about (one
/// bind parameter each; both backends allow far more).
pub const MAX_PUBLIC_IDS_PER_QUERY: usize = 1000;

/// `select public_id from users where public_id in ($1, .., $n)`: the same
/// on both backends.
fn existing_public_ids_query(count: usize) -> String {
    let placeholders: Vec<String> = (1..=count).map(|n| format!("${n}")).collect();
    format!("select public_id from users where public_id in ({})", placeholders.join(", "))
}

/// The instants before which rows are stale, for [`UserStore::sweep`].
/// The caller computes them from its clock and settings; the store only
/// compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SweepCutoffs {
    /// Unix micros: now less the longest an access token lives (its
    /// lifetime plus the clock skew leeway). A refresh token that expired
    /// before it, a session ended before it, and an open session created
    /// before it with no refresh token left are swept (see [`sweep_sql`]
    /// for why that is safe).
    pub tokens_expired_before: i64,
    /// Unix micros: now. Session revocations relevant until before it are
    /// swept (every token they cover has expired).
    pub revocations_irrelevant_before: i64,
    /// Unix micros: now less the deleted-user retention. Deleted-user
    /// revocations relevant until before it are swept.
    pub deleted_users_before: i64,
    /// Unix seconds: now less [`LoginThrottle::FORGET_AFTER`]. Login
    /// throttle rows whose last attempt is older, and that no longer lock
    /// their name (`locked_until` at or before `now_secs`), are swept.
    pub login_failures_before: i64,
    /// Unix seconds: now.
    pub now_secs: i64,
}

impl SweepCutoffs {
    /// The cutoffs of a sweep at `now` (unix micros), for access tokens that
    /// live at most `longest_access_token` (lifetime plus clock skew leeway)
    /// and deleted-user revocations kept `deleted_user_retention` past their
    /// `relevant_until`.
    #[must_use]
    pub fn at(now: i64, longest_access_token: Duration, deleted_user_retention: Duration) -> Self {
        let micros = |duration: Duration| i64::try_from(duration.as_micros()).unwrap_or(i64::MAX);
        let now_secs = now / 1_000_000;
        let forget_after = i64::try_from(LoginThrottle::FORGET_AFTER.as_secs()).unwrap_or(i64::MAX);
        Self {
            tokens_expired_before: now.saturating_sub(micros(longest_access_token)),
            revocations_irrelevant_before: now,
            deleted_users_before: now.saturating_sub(micros(deleted_user_retention)),
            login_failures_before: now_secs.saturating_sub(forget_after),
            now_secs,
        }
    }
}

/// Rows deleted by one [`UserStore::sweep`], by table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// Expired refresh tokens (those of ended sessions go with their
    /// session, uncounted).
    pub refresh_tokens: u64,
    pub sessions: u64,
    /// Revocation feed rows of ended sessions.
    pub session_revocations: u64,
    /// Revocation feed rows of deleted users.
    pub deleted_users: u64,
    pub login_failures: u64,
}

/// Statements both backends run as written (sqlx binds `$N` on SQLite
/// too): the name-key data migration's.
pub(crate) mod data_migration_sql {
    /// `$1` new key, `$2` user id, `$3` the key it must still have.
    pub const UPDATE_NAME_KEY: &str = "update users set name_key = $1 where id = $2 and name_key = $3";
    /// `$1` the migration's name.
    pub const IS_DONE: &str = "select done_at from data_migrations where name = $1";
    /// `$1` the migration's name, `$2` unix seconds.
    pub const MARK_DONE: &str =
        "insert into data_migrations (name, done_at) values ($1, $2) on conflict (name) do nothing";
}

/// The sweep's statements, the same on both backends (sqlx binds `$N` on
/// SQLite too). Each deletes at most `BATCH` rows chosen by an indexed
/// subquery (SQLite has no `delete ... limit` by default) and runs on its
/// own, in its own implicit transaction: a request never waits on the sweep
/// for longer than one batch. Every statement is a conditional delete of
/// rows no request will use again, so replicas sweeping at once only find
/// less to do: a row already gone is not deleted twice.
///
/// The rules, with `L` the longest an access token lives (lifetime plus
/// clock skew leeway):
/// - A refresh token expired `L` ago or more goes. It is refused like an
///   unknown one already (rotation requires `expires_at > now`); it is kept
///   that much past its expiry only so that the session rule below can tell
///   the last access token its session issued has expired too.
/// - A session ended `L` ago or more goes, with its refresh tokens (they
///   are unusable since it ended; `on delete cascade`): every access token
///   it issued has expired, and so has its revocation.
/// - An open session created `L` ago or more with no refresh token left
///   goes: its last refresh token expired `L` ago or more, so it can never
///   issue another token, and the last access token it issued (with that
///   refresh token) has expired. Until then a session keeps at least one
///   token (`create_session` writes both in one transaction).
/// - Either way auth-service refuses the session's tokens exactly as before
///   (a missing session is no more active than an ended one). Only a logout
///   presenting such a long-dead refresh token changes: Unauthenticated
///   (`refresh_token: is not valid`) instead of a no-op.
/// - A session revocation goes once past `relevant_until`: every token it
///   covers has expired. A deleted-user revocation is kept longer (the
///   deleted-user retention), so that a books replica that was away for a
///   while still learns of the deletion from the feed; one away longer is
///   put right by its orphan reconciliation (`FindExistingUsers`).
/// - A login throttle row goes once its last attempt is older than
///   `LoginThrottle::FORGET_AFTER` and it locks nothing any more. Its count
///   is forgotten at that age anyway (the next attempt starts again at 1),
///   so deleting it changes no outcome. Deleting it sooner, once idle past
///   the longest wait, would: the count decides the next wait, so a name
///   past its free attempts would get its free attempts back every
///   `AUTH_LOGIN_MAX_DELAY_SECS` instead of one guess per longest wait.
///
/// Every statement returns one integer column per deleted row; the open
/// sessions' statement walks `created_at` with a cursor (the largest it
/// deleted), so that each sweep reads the old, still live sessions once,
/// not once per batch.
pub mod sweep_sql {
    /// Rows deleted per statement.
    pub const BATCH: i64 = 1000;

    /// Where PostgreSQL's statements say `for update skip locked`: a sweep
    /// takes only rows no other transaction has locked, so it never waits on
    /// a request or on another replica's sweep, and two sweeps never
    /// deadlock over rows they would lock in different orders. (SQLite has
    /// one writer at a time and no such clause; there it stays a comment.)
    pub const SKIP_LOCKED: &str = "/*skip locked*/";

    /// `$1`: tokens expired before, `$2`: limit.
    pub const REFRESH_TOKENS: &str = "delete from refresh_tokens where token_hash in (
             select token_hash from refresh_tokens where expires_at < $1 limit $2 /*skip locked*/)
         returning expires_at";

    /// `$1`: ended before, `$2`: limit. Their refresh tokens go by cascade,
    /// session row first, as in `delete_user`: the same lock order.
    pub const ENDED_SESSIONS: &str = "delete from sessions where id in (
             select id from sessions where revoked_at < $1 limit $2 /*skip locked*/)
         returning revoked_at";

    /// `$1`: created before, `$2`: cursor (created at or after), `$3`: limit.
    pub const FINISHED_OPEN_SESSIONS: &str = "delete from sessions where id in (
             select s.id from sessions s
             where s.revoked_at is null and s.created_at < $1 and s.created_at >= $2
               and not exists (select 1 from refresh_tokens r where r.session_id = s.id)
             order by s.created_at
             limit $3 /*skip locked*/)
         returning created_at";

    /// `$1`: irrelevant before, `$2`: limit.
    pub const SESSION_REVOCATIONS: &str = "delete from revocations where id in (
             select id from revocations where relevant_until < $1 and kind = 'session' limit $2 /*skip locked*/)
         returning relevant_until";

    /// `$1`: deleted users before, `$2`: limit.
    pub const DELETED_USERS: &str = "delete from revocations where id in (
             select id from revocations where relevant_until < $1 and kind = 'user' limit $2 /*skip locked*/)
         returning relevant_until";

    /// `$1`: last attempt before, `$2`: now (seconds), `$3`: limit.
    pub const LOGIN_FAILURES: &str = "delete from login_failures where name_key in (
             select name_key from login_failures where last_attempt < $1 and locked_until <= $2 limit $3 /*skip locked*/)
         returning last_attempt";

    /// One statement run with its binds: the integer column of each row it
    /// deleted.
    pub(crate) type Batch<'a> = std::pin::Pin<Box<dyn Future<Output = crate::Result<Vec<i64>>> + Send + 'a>>;

    /// Runs every statement in batches of [`BATCH`] until one deletes
    /// nothing. (Not until one deletes fewer than a batch: a sweep on
    /// another replica may have taken part of it, and more may be left.)
    pub(crate) async fn run<'a>(
        cutoffs: super::SweepCutoffs,
        execute: &(dyn Fn(&'static str, Vec<i64>) -> Batch<'a> + Sync),
    ) -> crate::Result<super::SweepReport> {
        let until_done = async |sql: &'static str, binds: Vec<i64>| -> crate::Result<u64> {
            let mut deleted = 0;
            loop {
                let batch = execute(sql, binds.clone()).await?;
                if batch.is_empty() {
                    return Ok(deleted);
                }
                deleted += batch.len() as u64;
                // Lets the requests waiting for the database go first.
                tokio::task::yield_now().await;
            }
        };
        let tokens = cutoffs.tokens_expired_before;
        let refresh_tokens = until_done(REFRESH_TOKENS, vec![tokens, BATCH]).await?;
        let mut sessions = until_done(ENDED_SESSIONS, vec![tokens, BATCH]).await?;
        let mut cursor = i64::MIN;
        loop {
            let batch = execute(FINISHED_OPEN_SESSIONS, vec![tokens, cursor, BATCH]).await?;
            let Some(newest) = batch.iter().copied().max() else { break };
            sessions += batch.len() as u64;
            cursor = newest;
            tokio::task::yield_now().await;
        }
        Ok(super::SweepReport {
            refresh_tokens,
            sessions,
            session_revocations: until_done(SESSION_REVOCATIONS, vec![cutoffs.revocations_irrelevant_before, BATCH])
                .await?,
            deleted_users: until_done(DELETED_USERS, vec![cutoffs.deleted_users_before, BATCH]).await?,
            login_failures: until_done(LOGIN_FAILURES, vec![cutoffs.login_failures_before, cutoffs.now_secs, BATCH])
                .await?,
        })
    }
}

/// The user table, behind one interface for every backend.
#[async_trait]
pub trait UserStore: Send + Sync + 'static {
    /// Inserts a user; `AlreadyExists` when the name key is taken.
    async fn create_user(&self, user: NewUser) -> Result<UserRecord>;
    async fn find_user_by_name_key(&self, name_key: &str) -> Result<Option<UserRecord>>;
    async fn find_user_by_public_id(&self, public_id: &str) -> Result<Option<UserRecord>>;
    /// Those of `public_ids` that belong to a user, each once, in no
    /// particular order. At most [`MAX_PUBLIC_IDS_PER_QUERY`] ids.
    async fn find_existing_public_ids(&self, public_ids: &[String]) -> Result<Vec<String>>;
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
    /// Forgets `name_key`'s attempts (after a success). Other names' old
    /// attempts are left to the sweep, off the request path.
    async fn clear_login_attempts(&self, name_key: &str) -> Result<()>;
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
    /// it was open.
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

    /// Deletes the rows no request will use again (expired refresh tokens,
    /// finished sessions, revocations past their use, forgotten login
    /// throttle counts), in short batches; safe to run on several replicas
    /// at once. The rules: [`sweep_sql`].
    async fn sweep(&self, cutoffs: SweepCutoffs) -> Result<SweepReport>;

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
