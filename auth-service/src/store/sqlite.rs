//! The embedded SQLite backend.

use std::sync::LazyLock;

use anyhow::Context as _;
use sqlx::Sqlite;
use sqlx::sqlite::SqliteQueryResult;

use super::sql::{Backend, RowsAffected, SqlUserStore, count_login_attempt_sql};

/// Users in a SQLite file (WAL mode).
pub type SqliteUserStore = SqlUserStore<Sqlite>;

impl SqliteUserStore {
    /// Opens the database (creating the file and its directory if missing)
    /// and applies the embedded migrations.
    pub async fn connect(url: &str) -> anyhow::Result<Self> {
        let pool = bookstore_runtime::database::open_sqlite(url).await?;
        sqlx::migrate!("./migrations/sqlite").run(&pool).await.context("cannot migrate the user database")?;
        Ok(Self { pool })
    }
}

impl Backend for Sqlite {
    fn count_login_attempt_sql() -> &'static str {
        static SQL: LazyLock<String> = LazyLock::new(|| count_login_attempt_sql("min"));
        &SQL
    }

    /// None: autoincrement keeps `sqlite_sequence` past explicit ids by itself.
    const AFTER_IMPORT: Option<&'static str> = None;

    /// None: SQLite has one writer at a time and no such clause.
    const SKIP_LOCKED: Option<&'static str> = None;
}

impl RowsAffected for SqliteQueryResult {
    fn rows_affected(&self) -> u64 {
        self.rows_affected()
    }
}
