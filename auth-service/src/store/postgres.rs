//! The PostgreSQL backend, for several stateless replicas on one database.
//! Plain SQL only (no advisory locks, no listen/notify), so that
//! PostgreSQL-compatible engines such as CockroachDB can serve it too.

use sqlx::migrate::Migrator;
use sqlx::postgres::PgQueryResult;
use sqlx::{Pool, Postgres};

use super::sql::{Backend, RowsAffected, SqlUserStore};

/// Users in a PostgreSQL database.
pub type PostgresUserStore = SqlUserStore<Postgres>;

impl Backend for Postgres {
    /// sqlx serialises concurrent migrators with a lock, taken only at
    /// start-up.
    const MIGRATOR: Migrator = sqlx::migrate!("./migrations/postgres");
    const LEAST: &'static str = "least";
    /// Explicit ids do not advance the identity: move it past them.
    const AFTER_IMPORT: Option<&'static str> =
        Some("select setval(pg_get_serial_sequence('users', 'id'), greatest((select max(id) from users), 1))");
    const SKIP_LOCKED: Option<&'static str> = Some("for update skip locked");

    async fn open(url: &str) -> anyhow::Result<Pool<Self>> {
        bookstore_database::open_postgres(url).await
    }
}

impl RowsAffected for PgQueryResult {
    fn rows_affected(&self) -> u64 {
        self.rows_affected()
    }
}
