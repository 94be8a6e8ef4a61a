//! The PostgreSQL backend, for several stateless replicas on one database.
//! Plain SQL only (no advisory locks, no listen/notify), so that
//! PostgreSQL-compatible engines such as CockroachDB can serve it too.

use anyhow::Context as _;
use async_trait::async_trait;
use sqlx::PgPool;

use super::{NewUser, UserRecord, UserStore};
use crate::error::{Error, Result};
use crate::throttle::{LoginAttempt, LoginThrottle};

const TAKEN: &str = "a user with this name already exists";

/// Users in a PostgreSQL database.
#[derive(Debug, Clone)]
pub struct PostgresUserStore {
    pool: PgPool,
}

impl PostgresUserStore {
    /// Connects and applies the embedded migrations (sqlx serialises
    /// concurrent migrators with a lock, taken only at start-up).
    pub async fn connect(url: &str) -> anyhow::Result<Self> {
        let pool = bookstore_runtime::database::open_postgres(url).await?;
        sqlx::migrate!("./migrations/postgres").run(&pool).await.context("cannot migrate the user database")?;
        Ok(Self { pool })
    }
}

#[async_trait]
impl UserStore for PostgresUserStore {
    async fn create_user(&self, user: NewUser) -> Result<UserRecord> {
        sqlx::query_as(
            "insert into users (public_id, name, name_key, password_hash, admin, created_at)
             values ($1, $2, $3, $4, $5, $6)
             returning id, public_id, name, password_hash, admin, created_at",
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
            "select id, public_id, name, password_hash, admin, created_at from users where name_key = $1",
        )
        .bind(name_key)
        .fetch_optional(&self.pool)
        .await?)
    }

    async fn find_user_by_public_id(&self, public_id: &str) -> Result<Option<UserRecord>> {
        Ok(sqlx::query_as(
            "select id, public_id, name, password_hash, admin, created_at from users where public_id = $1",
        )
        .bind(public_id)
        .fetch_optional(&self.pool)
        .await?)
    }

    async fn list_users(&self, after_id: i64, limit: u32) -> Result<Vec<UserRecord>> {
        Ok(sqlx::query_as(
            "select id, public_id, name, password_hash, admin, created_at from users
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
             returning id, public_id, name, password_hash, admin, created_at",
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
            .bind(user.name.to_lowercase())
            .bind(&user.password_hash)
            .bind(user.admin)
            .bind(user.created_at)
            .execute(&mut *transaction)
            .await
            .map_err(|error| Error::from_db(error, TAKEN))?;
            inserted += result.rows_affected();
        }
        // Explicit ids do not advance the identity: move it past them.
        sqlx::query("select setval(pg_get_serial_sequence('users', 'id'), greatest((select max(id) from users), 1))")
            .execute(&mut *transaction)
            .await?;
        transaction.commit().await?;
        Ok(inserted)
    }

    async fn count_users(&self) -> Result<i64> {
        Ok(sqlx::query_scalar("select count(*) from users").fetch_one(&self.pool).await?)
    }

    async fn count_login_attempt(&self, name_key: &str, now: i64, throttle: LoginThrottle) -> Result<LoginAttempt> {
        let forget_before = now.saturating_sub(secs(LoginThrottle::FORGET_AFTER));
        let counted: Option<i64> = sqlx::query_scalar(
            "insert into login_failures (name_key, failures, locked_until, last_attempt)
             values ($1, 1, case when 1 >= $2 then $3 + $4 else 0 end, $3)
             on conflict (name_key) do update set
                 failures = case when login_failures.last_attempt < $6 then 1 else login_failures.failures + 1 end,
                 locked_until = case when case when login_failures.last_attempt < $6 then 1 else login_failures.failures + 1 end >= $2
                     then $3 + least($5, $4 << least(case when login_failures.last_attempt < $6 then 1 else login_failures.failures + 1 end - $2, 30)::int)
                     else 0 end,
                 last_attempt = $3
             where login_failures.locked_until <= $3
             returning failures",
        )
        .bind(name_key)
        .bind(i64::from(throttle.free_attempts))
        .bind(now)
        .bind(secs(throttle.delay))
        .bind(secs(throttle.max_delay))
        .bind(forget_before)
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

    async fn clear_login_attempts(&self, name_key: &str, forget_before: i64) -> Result<()> {
        sqlx::query("delete from login_failures where name_key = $1 or last_attempt < $2")
            .bind(name_key)
            .bind(forget_before)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn close(&self) {
        self.pool.close().await;
    }
}

fn secs(duration: std::time::Duration) -> i64 {
    i64::try_from(duration.as_secs()).unwrap_or(i64::MAX)
}
