//! The embedded SQLite backend.

use std::path::Path;
use std::str::FromStr as _;
use std::time::Duration;

use anyhow::Context as _;
use async_trait::async_trait;
use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use super::{NewUser, UserRecord, UserStore};
use crate::error::{Error, Result};

const TAKEN: &str = "a user with this name already exists";

/// Users in a SQLite file (WAL mode).
#[derive(Debug, Clone)]
pub struct SqliteUserStore {
    pool: SqlitePool,
}

impl SqliteUserStore {
    /// Opens the database (creating the file and its directory if missing)
    /// and applies the embedded migrations.
    pub async fn connect(url: &str) -> anyhow::Result<Self> {
        let options = SqliteConnectOptions::from_str(url)
            .with_context(|| format!("invalid SQLite URL {url:?}"))?
            .create_if_missing(true)
            // WAL: readers never block the writer. synchronous=FULL: a
            // transaction is on disk before its write is acknowledged, so it
            // survives a crash or a power cut, not only a process kill.
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            // Concurrent writers wait for the lock instead of failing with
            // "database is locked".
            .busy_timeout(Duration::from_secs(30));
        if let Some(dir) = Path::new(options.get_filename()).parent().filter(|dir| !dir.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        }
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            // A local file cannot silently drop a connection: skip the ping
            // that would otherwise precede every query.
            .test_before_acquire(false)
            .connect_with(options)
            .await
            .with_context(|| format!("cannot open {url}"))?;
        sqlx::migrate!("./migrations/sqlite").run(&pool).await.context("cannot migrate the user database")?;
        Ok(Self { pool })
    }
}

#[async_trait]
impl UserStore for SqliteUserStore {
    async fn create_user(&self, user: NewUser) -> Result<UserRecord> {
        sqlx::query_as(
            "insert into users (public_id, name, name_key, password_hash, admin, created_at)
             values (?, ?, ?, ?, ?, ?)
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
        Ok(sqlx::query_as("select id, public_id, name, password_hash, admin, created_at from users where name_key = ?")
            .bind(name_key)
            .fetch_optional(&self.pool)
            .await?)
    }

    async fn find_user_by_public_id(&self, public_id: &str) -> Result<Option<UserRecord>> {
        Ok(sqlx::query_as(
            "select id, public_id, name, password_hash, admin, created_at from users where public_id = ?",
        )
        .bind(public_id)
        .fetch_optional(&self.pool)
        .await?)
    }

    async fn list_users(&self, after_id: i64, limit: u32) -> Result<Vec<UserRecord>> {
        Ok(sqlx::query_as(
            "select id, public_id, name, password_hash, admin, created_at from users
             where id > ? order by id limit ?",
        )
        .bind(after_id)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?)
    }

    async fn set_admin(&self, name_key: &str, admin: bool) -> Result<UserRecord> {
        sqlx::query_as(
            "update users set admin = ? where name_key = ?
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
                 values (?, ?, ?, ?, ?, ?, ?) on conflict (id) do nothing",
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
        // autoincrement keeps sqlite_sequence past explicit ids by itself.
        transaction.commit().await?;
        Ok(inserted)
    }

    async fn count_users(&self) -> Result<i64> {
        Ok(sqlx::query_scalar("select count(*) from users").fetch_one(&self.pool).await?)
    }

    async fn close(&self) {
        self.pool.close().await;
    }
}
