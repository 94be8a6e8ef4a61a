//! The embedded SQLite backend.

use sqlx::migrate::Migrator;
use sqlx::sqlite::SqliteQueryResult;
use sqlx::{Pool, Sqlite};

use super::sql::{Backend, RowsAffected, SqlUserStore};

/// Users in a SQLite file (WAL mode).
pub type SqliteUserStore = SqlUserStore<Sqlite>;

impl Backend for Sqlite {
    const MIGRATOR: Migrator = sqlx::migrate!("./migrations/sqlite");
    const LEAST: &'static str = "min";
    /// None: autoincrement keeps `sqlite_sequence` past explicit ids by itself.
    const AFTER_IMPORT: Option<&'static str> = None;
    /// None: SQLite has one writer at a time and no such clause.
    const SKIP_LOCKED: Option<&'static str> = None;

    /// Creates the file and its directory if missing.
    async fn open(url: &str) -> anyhow::Result<Pool<Self>> {
        bookstore_database::open_sqlite(url).await
    }
}

impl RowsAffected for SqliteQueryResult {
    fn rows_affected(&self) -> u64 {
        self.rows_affected()
    }
}
