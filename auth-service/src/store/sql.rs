//! The one implementation of [`UserStore`], on sqlx, for every backend:
//! each statement is written once (sqlx binds `$N` on SQLite too), and a
//! [`Backend`] supplies the little that truly differs.

use std::borrow::Cow;

use anyhow::Context as _;
use async_trait::async_trait;
use bookstore_runtime::metrics::PoolUsage;
use sqlx::migrate::{Migrate, Migrator};
use sqlx::{Database, Encode, Executor, FromRow, IntoArguments, Pool, Transaction, Type};

use super::{
    MAX_PUBLIC_IDS_PER_QUERY, NewSession, NewUser, NextRefreshToken, RevocationKind, RevocationRecord, Rotation,
    SweepCutoffs, SweepReport, UserRecord, UserStore, data_migration_sql, existing_public_ids_query, sweep_sql,
};
use crate::error::{Error, Result};
use crate::throttle::{LoginAttempt, LoginThrottle};

const TAKEN: &str = "a user with this name already exists";

/// What a backend's SQL truly differs in; everything else is shared.
pub trait Backend: Database<QueryResult: RowsAffected> {
    /// The backend's own migrations (`migrations/<backend>/`).
    const MIGRATOR: Migrator;
    /// The dialect's two-argument minimum, for [`count_login_attempt_sql`]:
    /// SQLite's scalar `min`, PostgreSQL's `least`.
    const LEAST: &'static str;
    /// Run after [`UserStore::import_users`] inserted explicit ids, to move
    /// the id sequence past them, where the backend does not do it by itself.
    const AFTER_IMPORT: Option<&'static str>;
    /// What [`sweep_sql::SKIP_LOCKED`] becomes, if anything.
    const SKIP_LOCKED: Option<&'static str>;

    /// Opens a connection pool on `url`.
    fn open(url: &str) -> impl Future<Output = anyhow::Result<Pool<Self>>> + Send;
}

/// How many rows a statement changed: every backend's query result has the
/// method, but sqlx has no trait for it.
pub trait RowsAffected {
    fn rows_affected(&self) -> u64;
}

/// The login throttle's upsert, with `least` the dialect's two-argument
/// minimum ([`Backend::LEAST`]). `$1` name key, `$2` free attempts, `$3`
/// now, `$4` delay, `$5` forget before, `$6` max delay (seconds); returns a
/// row only when the attempt counted. The doubling stops at 2^30 times the
/// delay, so that no number of attempts can overflow the shift.
fn count_login_attempt_sql(least: &str) -> String {
    const COUNTED: &str = "case when login_failures.last_attempt < $5 then 1 else login_failures.failures + 1 end";
    format!(
        "insert into login_failures (name_key, failures, locked_until, last_attempt)
         values ($1, 1, case when 1 >= $2 then $3 + $4 else 0 end, $3)
         on conflict (name_key) do update set
             failures = {COUNTED},
             locked_until = case when {COUNTED} >= $2
                 then $3 + {least}($6, $4 << cast({least}({COUNTED} - $2, 30) as integer))
                 else 0 end,
             last_attempt = $3
         where login_failures.locked_until <= $3
         returning failures"
    )
}

/// Users in an sqlx pool of backend `DB`.
#[derive(Debug, Clone)]
pub struct SqlUserStore<DB: Database> {
    pool: Pool<DB>,
    /// [`count_login_attempt_sql`] in the backend's dialect.
    count_login_attempt_sql: String,
}

impl<DB: Backend> SqlUserStore<DB>
where
    DB::Connection: Migrate,
{
    /// Opens the database and applies the backend's embedded migrations.
    pub async fn connect(url: &str) -> anyhow::Result<Self> {
        let pool = DB::open(url).await?;
        DB::MIGRATOR.run(&pool).await.context("cannot migrate the user database")?;
        Ok(Self { pool, count_login_attempt_sql: count_login_attempt_sql(DB::LEAST) })
    }
}

// The bounds: what sqlx needs of a backend to run these statements with
// these binds and rows (SQLite and PostgreSQL both meet them).
#[async_trait]
impl<DB: Backend> UserStore for SqlUserStore<DB>
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'q> bool: Encode<'q, DB> + Type<DB>,
    for<'q> String: Encode<'q, DB> + Type<DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'r> UserRecord: FromRow<'r, DB::Row>,
    for<'r> RevocationRecord: FromRow<'r, DB::Row>,
    for<'r> (i64,): FromRow<'r, DB::Row>,
    for<'r> (Option<i64>,): FromRow<'r, DB::Row>,
    for<'r> (String,): FromRow<'r, DB::Row>,
    for<'r> (String, Option<i64>): FromRow<'r, DB::Row>,
{
    async fn create_user(&self, user: NewUser) -> Result<UserRecord> {
        sqlx::query_as(
            "insert into users (public_id, name, name_key, password_hash, admin, created_at)
             values ($1, $2, $3, $4, $5, $6)
             returning id, public_id, name, name_key, password_hash, admin, created_at",
        )
        .bind(user.public_id)
        .bind(user.name)
        .bind(user.name_key)
        .bind(user.password_hash)
        .bind(user.admin)
        .bind(user.created_at)
        .fetch_one(&self.pool)
        .await
        .map_err(|error| Error::from_db(error, TAKEN))
    }

    async fn find_user_by_name_key(&self, name_key: &str) -> Result<Option<UserRecord>> {
        Ok(sqlx::query_as(
            "select id, public_id, name, name_key, password_hash, admin, created_at from users where name_key = $1",
        )
        .bind(name_key)
        .fetch_optional(&self.pool)
        .await?)
    }

    async fn find_user_by_public_id(&self, public_id: &str) -> Result<Option<UserRecord>> {
        Ok(sqlx::query_as(
            "select id, public_id, name, name_key, password_hash, admin, created_at from users where public_id = $1",
        )
        .bind(public_id)
        .fetch_optional(&self.pool)
        .await?)
    }

    async fn find_existing_public_ids(&self, public_ids: &[String]) -> Result<Vec<String>> {
        if public_ids.is_empty() {
            return Ok(Vec::new());
        }
        if public_ids.len() > MAX_PUBLIC_IDS_PER_QUERY {
            return Err(Error::invalid("public_ids", format!("must hold at most {MAX_PUBLIC_IDS_PER_QUERY} ids")));
        }
        let sql = existing_public_ids_query(public_ids.len());
        let mut query = sqlx::query_scalar(&sql);
        for public_id in public_ids {
            query = query.bind(public_id);
        }
        Ok(query.fetch_all(&self.pool).await?)
    }

    async fn list_users(&self, after_id: i64, limit: u32) -> Result<Vec<UserRecord>> {
        Ok(sqlx::query_as(
            "select id, public_id, name, name_key, password_hash, admin, created_at from users
             where id > $1 order by id limit $2",
        )
        .bind(after_id)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?)
    }

    async fn set_admin(&self, name_key: &str, admin: bool) -> Result<UserRecord> {
        sqlx::query_as(
            "update users set admin = $1 where name_key = $2
             returning id, public_id, name, name_key, password_hash, admin, created_at",
        )
        .bind(admin)
        .bind(name_key)
        .fetch_optional(&self.pool)
        .await?
        .ok_or_else(|| Error::NotFound("no user with this name".into()))
    }

    async fn import_users(&self, users: &[UserRecord]) -> Result<u64> {
        let mut transaction = self.pool.begin().await?;
        let mut inserted = 0;
        for user in users {
            let result = sqlx::query(
                "insert into users (id, public_id, name, name_key, password_hash, admin, created_at)
                 values ($1, $2, $3, $4, $5, $6, $7) on conflict (id) do nothing",
            )
            .bind(user.id)
            .bind(&user.public_id)
            .bind(&user.name)
            .bind(&user.name_key)
            .bind(&user.password_hash)
            .bind(user.admin)
            .bind(user.created_at)
            .execute(&mut *transaction)
            .await
            .map_err(|error| Error::from_db(error, TAKEN))?;
            inserted += result.rows_affected();
        }
        if let Some(after_import) = DB::AFTER_IMPORT {
            sqlx::query(after_import).execute(&mut *transaction).await?;
        }
        transaction.commit().await?;
        Ok(inserted)
    }

    async fn update_name_key(&self, user_id: i64, old_key: &str, new_key: &str) -> Result<bool> {
        let result = sqlx::query(data_migration_sql::UPDATE_NAME_KEY)
            .bind(new_key)
            .bind(user_id)
            .bind(old_key)
            .execute(&self.pool)
            .await
            .map_err(|error| Error::from_db(error, TAKEN))?;
        Ok(result.rows_affected() == 1)
    }

    async fn is_data_migration_done(&self, name: &str) -> Result<bool> {
        let done: Option<i64> =
            sqlx::query_scalar(data_migration_sql::IS_DONE).bind(name).fetch_optional(&self.pool).await?;
        Ok(done.is_some())
    }

    async fn mark_data_migration_done(&self, name: &str, now: i64) -> Result<()> {
        sqlx::query(data_migration_sql::MARK_DONE).bind(name).bind(now).execute(&self.pool).await?;
        Ok(())
    }

    async fn count_users(&self) -> Result<i64> {
        Ok(sqlx::query_scalar("select count(*) from users").fetch_one(&self.pool).await?)
    }

    async fn count_login_attempt(&self, name_key: &str, now: i64, throttle: LoginThrottle) -> Result<LoginAttempt> {
        let forget_before = now.saturating_sub(secs(LoginThrottle::FORGET_AFTER));
        let counted: Option<i64> = sqlx::query_scalar(&self.count_login_attempt_sql)
            .bind(name_key)
            .bind(i64::from(throttle.free_attempts))
            .bind(now)
            .bind(secs(throttle.delay))
            .bind(forget_before)
            .bind(secs(throttle.max_delay))
            .fetch_optional(&self.pool)
            .await?;
        if counted.is_some() {
            return Ok(LoginAttempt::Allowed);
        }
        let locked_until: Option<i64> =
            sqlx::query_scalar("select locked_until from login_failures where name_key = $1")
                .bind(name_key)
                .fetch_optional(&self.pool)
                .await?;
        Ok(LoginAttempt::Wait { seconds: locked_until.map_or(1, |until| until - now) })
    }

    async fn clear_login_attempts(&self, name_key: &str) -> Result<()> {
        sqlx::query("delete from login_failures where name_key = $1").bind(name_key).execute(&self.pool).await?;
        Ok(())
    }

    async fn update_password_hash(&self, user_id: i64, old_hash: &str, new_hash: &str) -> Result<bool> {
        let result = sqlx::query("update users set password_hash = $1 where id = $2 and password_hash = $3")
            .bind(new_hash)
            .bind(user_id)
            .bind(old_hash)
            .execute(&self.pool)
            .await?;
        Ok(result.rows_affected() == 1)
    }

    async fn create_session(&self, session: NewSession) -> Result<()> {
        let mut transaction = self.pool.begin().await?;
        sqlx::query("insert into sessions (id, user_id, created_at) values ($1, $2, $3)")
            .bind(&session.id)
            .bind(session.user_id)
            .bind(session.created_at)
            .execute(&mut *transaction)
            .await?;
        sqlx::query(
            "insert into refresh_tokens (token_hash, session_id, created_at, expires_at) values ($1, $2, $3, $4)",
        )
        .bind(&session.refresh_token_hash)
        .bind(&session.id)
        .bind(session.created_at)
        .bind(session.refresh_expires_at)
        .execute(&mut *transaction)
        .await?;
        transaction.commit().await?;
        Ok(())
    }

    async fn find_active_session_user(&self, session_id: &str) -> Result<Option<UserRecord>> {
        Ok(sqlx::query_as(
            "select u.id, u.public_id, u.name, u.name_key, u.password_hash, u.admin, u.created_at
             from sessions s join users u on u.id = s.user_id
             where s.id = $1 and s.revoked_at is null",
        )
        .bind(session_id)
        .fetch_optional(&self.pool)
        .await?)
    }

    async fn rotate_refresh_token(&self, token_hash: &str, next: NextRefreshToken) -> Result<Rotation> {
        // The write comes first: on PostgreSQL it locks the row (a concurrent
        // rotation of the same token waits, then finds it spent); on SQLite
        // the transaction takes the write lock at once (waiting for it)
        // instead of upgrading a read later.
        let mut transaction = self.pool.begin().await?;
        let spent: Option<String> = sqlx::query_scalar(
            "update refresh_tokens set rotated_at = $1
             where token_hash = $2 and rotated_at is null and expires_at > $3
               and session_id in (select id from sessions where revoked_at is null)
             returning session_id",
        )
        .bind(next.now)
        .bind(token_hash)
        .bind(next.now)
        .fetch_optional(&mut *transaction)
        .await?;
        let Some(session_id) = spent else {
            transaction.rollback().await?;
            let previous: Option<(String, Option<i64>)> = sqlx::query_as(
                "select r.session_id, r.rotated_at from refresh_tokens r join sessions s on s.id = r.session_id
                 where r.token_hash = $1 and s.revoked_at is null and r.expires_at > $2",
            )
            .bind(token_hash)
            .bind(next.now)
            .fetch_optional(&self.pool)
            .await?;
            return Ok(match previous {
                Some((session_id, Some(rotated_at))) => Rotation::AlreadySpent { session_id, rotated_at },
                _ => Rotation::Invalid,
            });
        };
        sqlx::query(
            "insert into refresh_tokens (token_hash, session_id, created_at, expires_at) values ($1, $2, $3, $4)",
        )
        .bind(&next.hash)
        .bind(&session_id)
        .bind(next.now)
        .bind(next.expires_at)
        .execute(&mut *transaction)
        .await?;
        let user: UserRecord = sqlx::query_as(
            "select u.id, u.public_id, u.name, u.name_key, u.password_hash, u.admin, u.created_at
             from sessions s join users u on u.id = s.user_id where s.id = $1",
        )
        .bind(&session_id)
        .fetch_one(&mut *transaction)
        .await?;
        transaction.commit().await?;
        Ok(Rotation::Rotated { session_id, user })
    }

    async fn session_of_refresh_token(&self, token_hash: &str) -> Result<Option<String>> {
        Ok(sqlx::query_scalar("select session_id from refresh_tokens where token_hash = $1")
            .bind(token_hash)
            .fetch_optional(&self.pool)
            .await?)
    }

    async fn revoke_session(&self, session_id: &str, now: i64, relevant_until: i64) -> Result<bool> {
        let mut transaction = self.pool.begin().await?;
        let ended = sqlx::query("update sessions set revoked_at = $1 where id = $2 and revoked_at is null")
            .bind(now)
            .bind(session_id)
            .execute(&mut *transaction)
            .await?
            .rows_affected();
        if ended == 0 {
            transaction.rollback().await?;
            return Ok(false);
        }
        sqlx::query("insert into revocations (kind, subject, revoked_at, relevant_until) values ($1, $2, $3, $4)")
            .bind(RevocationKind::Session.as_str())
            .bind(session_id)
            .bind(now)
            .bind(relevant_until)
            .execute(&mut *transaction)
            .await?;
        transaction.commit().await?;
        Ok(true)
    }

    async fn revoke_user_sessions(&self, user_id: i64, now: i64, relevant_until: i64) -> Result<u64> {
        let mut transaction = self.pool.begin().await?;
        let ended = end_sessions_of(&mut transaction, user_id, now, relevant_until).await?;
        transaction.commit().await?;
        Ok(ended)
    }

    async fn change_password(&self, user_id: i64, password_hash: &str, now: i64, relevant_until: i64) -> Result<u64> {
        let mut transaction = self.pool.begin().await?;
        let changed = sqlx::query("update users set password_hash = $1 where id = $2")
            .bind(password_hash)
            .bind(user_id)
            .execute(&mut *transaction)
            .await?
            .rows_affected();
        if changed == 0 {
            return Err(Error::NotFound("no such user".into()));
        }
        let ended = end_sessions_of(&mut transaction, user_id, now, relevant_until).await?;
        transaction.commit().await?;
        Ok(ended)
    }

    async fn delete_user(&self, user_id: i64, now: i64, relevant_until: i64) -> Result<bool> {
        let mut transaction = self.pool.begin().await?;
        let recorded = sqlx::query(
            "insert into revocations (kind, subject, revoked_at, relevant_until)
             select $1, public_id, $2, $3 from users where id = $4",
        )
        .bind(RevocationKind::DeletedUser.as_str())
        .bind(now)
        .bind(relevant_until)
        .bind(user_id)
        .execute(&mut *transaction)
        .await?
        .rows_affected();
        if recorded == 0 {
            transaction.rollback().await?;
            return Ok(false);
        }
        // Refresh tokens go with their session (`on delete cascade`): session
        // first, then its tokens, the order the sweep locks them in too.
        sqlx::query("delete from sessions where user_id = $1").bind(user_id).execute(&mut *transaction).await?;
        sqlx::query("delete from users where id = $1").bind(user_id).execute(&mut *transaction).await?;
        transaction.commit().await?;
        Ok(true)
    }

    async fn list_revocations(&self, since: i64, after_id: i64, limit: u32) -> Result<Vec<RevocationRecord>> {
        Ok(sqlx::query_as(
            "select id, kind, subject, revoked_at, relevant_until from revocations
             where revoked_at >= $1 and id > $2 order by id limit $3",
        )
        .bind(since)
        .bind(after_id)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?)
    }

    async fn sweep(&self, cutoffs: SweepCutoffs) -> Result<SweepReport> {
        let pool = &self.pool;
        sweep_sql::run(cutoffs, &|sql, binds| {
            Box::pin(async move {
                let sql = match DB::SKIP_LOCKED {
                    Some(skip_locked) => Cow::Owned(sql.replace(sweep_sql::SKIP_LOCKED, skip_locked)),
                    None => Cow::Borrowed(sql),
                };
                let mut query = sqlx::query_scalar(&sql);
                for bind in binds {
                    query = query.bind(bind);
                }
                Ok(query.fetch_all(pool).await?)
            })
        })
        .await
    }

    async fn close(&self) {
        self.pool.close().await;
    }

    fn pool_usage(&self) -> PoolUsage {
        PoolUsage::of(&self.pool)
    }
}

fn secs(duration: std::time::Duration) -> i64 {
    i64::try_from(duration.as_secs()).unwrap_or(i64::MAX)
}

/// Records a revocation for each open session of a user, then ends them.
async fn end_sessions_of<DB: Backend>(
    transaction: &mut Transaction<'_, DB>,
    user_id: i64,
    now: i64,
    relevant_until: i64,
) -> Result<u64>
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
{
    sqlx::query(
        "insert into revocations (kind, subject, revoked_at, relevant_until)
         select $1, id, $2, $3 from sessions where user_id = $4 and revoked_at is null",
    )
    .bind(RevocationKind::Session.as_str())
    .bind(now)
    .bind(relevant_until)
    .bind(user_id)
    .execute(&mut **transaction)
    .await?;
    let ended = sqlx::query("update sessions set revoked_at = $1 where user_id = $2 and revoked_at is null")
        .bind(now)
        .bind(user_id)
        .execute(&mut **transaction)
        .await?
        .rows_affected();
    Ok(ended)
}
