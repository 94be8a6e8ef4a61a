//! `bookstore migrate`: applies the services' embedded migrations to their
//! databases and exits, so a new schema is in place before replicas start.

use anyhow::Context as _;

/// Which databases to migrate.
#[derive(Debug, Clone, clap::Args)]
pub struct Migrate {
    /// The user database (auth-service's), e.g. postgres://bookstore@db/bookstore_auth.
    #[arg(long, env = "AUTH_DATABASE_URL", hide_env_values = true)]
    pub auth_database_url: Option<String>,
    /// The book database (books-service's), e.g. postgres://bookstore@db/bookstore_books.
    #[arg(long, env = "BOOKS_DATABASE_URL", hide_env_values = true)]
    pub books_database_url: Option<String>,
}

impl Migrate {
    /// Migrates the databases given, or else both of the data directory's.
    pub async fn run(&self, default_auth: &str, default_books: &str) -> anyhow::Result<()> {
        let (auth, books) = match (&self.auth_database_url, &self.books_database_url) {
            (None, None) => (Some(default_auth), Some(default_books)),
            (auth, books) => (auth.as_deref(), books.as_deref()),
        };
        if let Some(url) = auth {
            migrate_user_database(url)
                .await
                .with_context(|| format!("cannot migrate the user database {}", redact(url)))?;
            println!("user database {}: migrated", redact(url));
        }
        if let Some(url) = books {
            migrate_book_database(url)
                .await
                .with_context(|| format!("cannot migrate the book database {}", redact(url)))?;
            println!("book database {}: migrated", redact(url));
        }
        Ok(())
    }
}

/// Applies auth-service's migrations (opening its store does) and closes it.
pub async fn migrate_user_database(url: &str) -> anyhow::Result<()> {
    auth_service::store::connect(url).await?.close().await;
    Ok(())
}

/// Applies books-service's migrations (opening its store does) and closes it.
pub async fn migrate_book_database(url: &str) -> anyhow::Result<()> {
    books_service::store::connect(url).await?.close().await;
    Ok(())
}

fn redact(url: &str) -> String {
    bookstore_database::redact_password(url)
}
