//! Fresh databases for tests: a SQLite file in a temporary directory, or a
//! new database on a PostgreSQL server, dropped again by [`TestDatabase::cleanup`].
//!
//! PostgreSQL: the server is `BOOKSTORE_TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`, a database to connect to
//! for `create database`). When it cannot be reached, the PostgreSQL tests
//! are skipped with a note on stderr, unless `BOOKSTORE_TEST_POSTGRES_URL`
//! or `BOOKSTORE_REQUIRE_POSTGRES=1` is set: then they fail.

use sqlx::{Connection as _, Executor as _, PgConnection};
use tempfile::TempDir;

const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// Says once per test binary that PostgreSQL tests are skipped. Written to
/// the stderr handle itself: the test harness captures `eprintln!` of
/// passing tests, and this note must be seen.
fn announce_skip(server: &str, error: &sqlx::Error) {
    static ANNOUNCED: std::sync::Once = std::sync::Once::new();
    ANNOUNCED.call_once(|| {
        use std::io::Write as _;
        let _ = writeln!(
            std::io::stderr(),
            "\nNOTE: PostgreSQL tests SKIPPED: cannot reach {server} ({error}).\n      \
             Start PostgreSQL, or set BOOKSTORE_REQUIRE_POSTGRES=1 to make this an error.\n"
        );
    });
}

/// Test databases older than this were left by a failed run.
const LEFTOVER_AGE_SECS: u64 = 3600;

async fn drop_leftovers(admin: &mut PgConnection, now: u64) {
    let names: Vec<String> =
        sqlx::query_scalar("select datname from pg_database where datname like 'bookstore\\_test\\_%'")
            .fetch_all(&mut *admin)
            .await
            .unwrap_or_default();
    for name in names {
        let created = name.split('_').nth(2).and_then(|created| created.parse::<u64>().ok());
        if created.is_some_and(|created| now.saturating_sub(created) > LEFTOVER_AGE_SECS) {
            let _ = admin.execute(format!("drop database if exists {name} with (force)").as_str()).await;
        }
    }
}

/// A database that exists only for one test.
#[derive(Debug)]
pub struct TestDatabase {
    /// The URL to hand to the code under test.
    pub url: String,
    _dir: Option<TempDir>,
    postgres: Option<(String, String)>,
}

/// The server to create PostgreSQL test databases on, and whether its
/// absence is an error rather than a reason to skip.
#[must_use]
pub fn postgres_server() -> (String, bool) {
    let explicit = std::env::var("BOOKSTORE_TEST_POSTGRES_URL").ok();
    let required = explicit.is_some() || std::env::var("BOOKSTORE_REQUIRE_POSTGRES").is_ok_and(|value| value == "1");
    (explicit.unwrap_or_else(|| DEFAULT_POSTGRES_URL.to_owned()), required)
}

impl TestDatabase {
    /// A SQLite database file in a new temporary directory.
    ///
    /// # Panics
    /// When no temporary directory can be made.
    #[must_use]
    pub fn sqlite() -> Self {
        #[allow(clippy::expect_used)]
        let dir = tempfile::tempdir().expect("a temporary directory for the test database");
        let url = format!("sqlite://{}", dir.path().join("test.db").display());
        Self { url, _dir: Some(dir), postgres: None }
    }

    /// A new, empty PostgreSQL database, or `None` (the test should return)
    /// when no server is reachable and none is required.
    ///
    /// # Panics
    /// When PostgreSQL is required but cannot be reached or used.
    pub async fn postgres() -> Option<Self> {
        let (server, required) = postgres_server();
        let mut admin = match PgConnection::connect(&server).await {
            Ok(connection) => connection,
            Err(error) if !required => {
                announce_skip(&server, &error);
                return None;
            }
            Err(error) => panic!("PostgreSQL is required for this run but {server} cannot be reached: {error}"),
        };
        // Creation time in the name: a test that panicked before `cleanup`
        // leaves its database behind, and later runs drop such leftovers.
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |age| age.as_secs());
        drop_leftovers(&mut admin, now).await;
        let name = format!("bookstore_test_{now}_{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
        #[allow(clippy::expect_used)]
        admin.execute(format!("create database {name}").as_str()).await.expect("create the test database");
        let base = server.split_once('?').map_or(server.as_str(), |(base, _)| base);
        let url = match base.rsplit_once('/') {
            Some((prefix, _)) if prefix.contains("//") && prefix.len() > "postgres://".len() => {
                format!("{prefix}/{name}")
            }
            _ => format!("{base}/{name}"),
        };
        Some(Self { url, _dir: None, postgres: Some((server, name)) })
    }

    /// Drops a PostgreSQL test database (a SQLite one goes with its temp dir).
    ///
    /// # Panics
    /// When the database cannot be dropped.
    pub async fn cleanup(self) {
        if let Some((server, name)) = &self.postgres {
            #[allow(clippy::expect_used)]
            let mut admin = PgConnection::connect(server).await.expect("reconnect to drop the test database");
            #[allow(clippy::expect_used)]
            admin
                .execute(format!("drop database if exists {name} with (force)").as_str())
                .await
                .expect("drop the test database");
        }
    }
}
