//! Opening a service's database the same way in every service (each then
//! applies its own embedded migrations), and database URLs fit for logs.

use std::path::Path;
use std::str::FromStr as _;
use std::time::Duration;

use anyhow::Context as _;
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};

/// Opens a SQLite database, creating the file and its directory if missing.
pub async fn open_sqlite(url: &str) -> anyhow::Result<SqlitePool> {
    let options = SqliteConnectOptions::from_str(url)
        .with_context(|| format!("invalid SQLite URL {url:?}"))?
        .create_if_missing(true)
        // WAL: readers never block the writer. synchronous=FULL: a
        // transaction is on disk before its write is acknowledged, so it
        // survives a crash or a power cut, not only a process kill.
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        // Concurrent writers wait for the lock instead of failing with
        // "database is locked". Every transaction starts with its write, so
        // the wait applies (no read-then-write upgrade deadlocks).
        .busy_timeout(Duration::from_secs(30));
    if let Some(dir) = Path::new(options.get_filename()).parent().filter(|dir| !dir.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    SqlitePoolOptions::new()
        .max_connections(8)
        // A local file cannot silently drop a connection: skip the ping that
        // would otherwise precede every query.
        .test_before_acquire(false)
        .connect_with(options)
        .await
        .with_context(|| format!("cannot open {url}"))
}

/// Connects to a PostgreSQL database (which must exist).
pub async fn open_postgres(url: &str) -> anyhow::Result<PgPool> {
    PgPoolOptions::new()
        .max_connections(16)
        .acquire_timeout(Duration::from_secs(5))
        .connect(url)
        .await
        .with_context(|| format!("cannot connect to {}", redact_password(url)))
}

/// A database URL fit for logs: `postgres://user:secret@host/db` becomes
/// `postgres://user:***@host/db`.
#[must_use]
pub fn redact_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_owned() };
    match rest.rsplit_once('@') {
        Some((credentials, host)) if credentials.contains(':') => {
            let user = credentials.split(':').next().unwrap_or_default();
            format!("{scheme}://{user}:***@{host}")
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn database_passwords_are_redacted() {
        assert_eq!(super::redact_password("postgres://u:p@ss@h:5432/db"), "postgres://u:***@h:5432/db");
        assert_eq!(super::redact_password("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(super::redact_password("sqlite://data/auth.db"), "sqlite://data/auth.db");
    }
}
