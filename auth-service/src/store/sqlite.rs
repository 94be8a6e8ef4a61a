//! The embedded SQLite backend.

use anyhow::Context as _;
use async_trait::async_trait;
use sqlx::SqlitePool;

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
        let pool = bookstore_runtime::database::open_sqlite(url).await?;
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
