//! The PostgreSQL backend, for several stateless replicas on one database.
//! Plain SQL only (no advisory locks, no listen/notify), so that
//! PostgreSQL-compatible engines such as CockroachDB can serve it too.

use std::sync::LazyLock;

use anyhow::Context as _;
use sqlx::Postgres;
use sqlx::postgres::PgQueryResult;

use super::sql::{Backend, RowsAffected, SqlUserStore, count_login_attempt_sql};

/// Users in a PostgreSQL database.
pub type PostgresUserStore = SqlUserStore<Postgres>;

impl PostgresUserStore {
    /// Connects and applies the embedded migrations (sqlx serialises
    /// concurrent migrators with a lock, taken only at start-up).
    pub async fn connect(url: &str) -> anyhow::Result<Self> {
        let pool = bookstore_runtime::database::open_postgres(url).await?;
        sqlx::migrate!("./migrations/postgres").run(&pool).await.context("cannot migrate the user database")?;
        Ok(Self { pool })
    }
}

impl Backend for Postgres {
    fn count_login_attempt_sql() -> &'static str {
        static SQL: LazyLock<String> = LazyLock::new(|| count_login_attempt_sql("least"));
        &SQL
    }

    /// Explicit ids do not advance the identity: move it past them.
    const AFTER_IMPORT: Option<&'static str> =
        Some("select setval(pg_get_serial_sequence('users', 'id'), greatest((select max(id) from users), 1))");

    const SKIP_LOCKED: Option<&'static str> = Some("for update skip locked");
}

impl RowsAffected for PgQueryResult {
    fn rows_affected(&self) -> u64 {
        self.rows_affected()
    }
}
