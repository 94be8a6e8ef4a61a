//! `bookstore copy-data`: copies every user and book from one deployment's
//! databases into another's (typically the embedded SQLite files into
//! PostgreSQL), keeping ids, so tokens, book ids and passwords keep working.
//! Idempotent: rows already copied are skipped; every source row is then
//! checked to be present in the destination.

use anyhow::Context as _;
use auth_service::store::{UserRecord, UserStore};
use books_service::store::{BookStore, OwnedBook};

const PAGE: u32 = 500;

/// Where to copy from and to.
#[derive(Debug, Clone, clap::Args)]
pub struct CopyData {
    /// Source user database (default: auth.db in the data directory).
    #[arg(long)]
    pub from_auth_database_url: Option<String>,
    /// Source book database (default: books.db in the data directory).
    #[arg(long)]
    pub from_books_database_url: Option<String>,
    /// Destination user database, e.g. postgres://bookstore@db/bookstore_auth.
    #[arg(long)]
    pub to_auth_database_url: String,
    /// Destination book database, e.g. postgres://bookstore@db/bookstore_books.
    #[arg(long)]
    pub to_books_database_url: String,
}

/// How many rows a copy saw and inserted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Copied {
    pub rows: u64,
    pub new: u64,
}

impl CopyData {
    pub async fn run(&self, default_auth: &str, default_books: &str) -> anyhow::Result<()> {
        let from_auth = self.from_auth_database_url.as_deref().unwrap_or(default_auth);
        let from_books = self.from_books_database_url.as_deref().unwrap_or(default_books);
        for url in [from_auth, from_books] {
            // Opening a SQLite URL creates the file: an empty copy would look fine.
            if let Some(path) = url.strip_prefix("sqlite://") {
                anyhow::ensure!(
                    std::path::Path::new(path).exists(),
                    "source database {path} does not exist: point --data-dir at the directory the stack \
                     ran in, or pass --from-auth-database-url and --from-books-database-url"
                );
            }
        }
        let (source, destination) = (
            auth_service::store::connect(from_auth).await.context("source user database")?,
            auth_service::store::connect(&self.to_auth_database_url).await.context("destination user database")?,
        );
        let users = copy_users(&*source, &*destination).await?;
        println!("users: {} in the source, {} newly copied, all present in the destination", users.rows, users.new);
        let (source, destination) = (
            books_service::store::connect(from_books).await.context("source book database")?,
            books_service::store::connect(&self.to_books_database_url).await.context("destination book database")?,
        );
        let books = copy_books(&*source, &*destination).await?;
        println!("books: {} in the source, {} newly copied, all present in the destination", books.rows, books.new);
        Ok(())
    }
}

/// Copies users page by page, then checks each one arrived.
pub async fn copy_users(source: &dyn UserStore, destination: &dyn UserStore) -> anyhow::Result<Copied> {
    let mut copied = Copied { rows: 0, new: 0 };
    let mut pages = Pages::new(|after| source.list_users(after, PAGE), |user: &UserRecord| user.id);
    while let Some(page) = pages.next().await? {
        copied.new += destination.import_users(&page).await?;
        for user in &page {
            let arrived = destination.find_user_by_public_id(&user.public_id).await?;
            anyhow::ensure!(
                arrived.is_some_and(|arrived| arrived.id == user.id),
                "user {} ({:?}) is not in the destination: it holds another user with that id or name",
                user.id,
                user.name
            );
        }
        copied.rows += page.len() as u64;
    }
    let (in_source, in_destination) = (source.count_users().await?, destination.count_users().await?);
    anyhow::ensure!(in_destination >= in_source, "destination has {in_destination} users, source {in_source}");
    Ok(copied)
}

/// Copies books page by page, then checks each one arrived.
pub async fn copy_books(source: &dyn BookStore, destination: &dyn BookStore) -> anyhow::Result<Copied> {
    let mut copied = Copied { rows: 0, new: 0 };
    let mut pages = Pages::new(|after| source.export_books(after, PAGE), |owned: &OwnedBook| owned.book.id);
    while let Some(page) = pages.next().await? {
        copied.new += destination.import_books(&page).await?;
        let arrived = destination.export_books(page[0].book.id - 1, PAGE).await?;
        for owned in &page {
            anyhow::ensure!(
                arrived.iter().any(|other| other.book.id == owned.book.id && other.owner_id == owned.owner_id),
                "book {} is not in the destination: it holds another book with that id",
                owned.book.id
            );
        }
        copied.rows += page.len() as u64;
    }
    let (in_source, in_destination) = (source.count_books().await?, destination.count_books().await?);
    anyhow::ensure!(in_destination >= in_source, "destination has {in_destination} books, source {in_source}");
    Ok(copied)
}

/// A table read a page at a time, in id order: `fetch(after)` answers the
/// rows after the id `after`; the next page starts after the last row's id.
struct Pages<F, I> {
    fetch: F,
    id_of: I,
    after: i64,
}

impl<F, I> Pages<F, I> {
    fn new(fetch: F, id_of: I) -> Self {
        Self { fetch, id_of, after: 0 }
    }

    /// The next page, or `None` once a page comes back empty.
    async fn next<T, E, Fut>(&mut self) -> anyhow::Result<Option<Vec<T>>>
    where
        F: FnMut(i64) -> Fut,
        Fut: Future<Output = Result<Vec<T>, E>>,
        E: std::error::Error + Send + Sync + 'static,
        I: Fn(&T) -> i64,
    {
        let page = (self.fetch)(self.after).await?;
        let Some(last) = page.last() else { return Ok(None) };
        self.after = (self.id_of)(last);
        Ok(Some(page))
    }
}
