//! Where books live. The database URL's scheme picks the backend.

mod postgres;
mod sqlite;

use std::sync::Arc;

use async_trait::async_trait;

use crate::domain::{BookId, BookPatch, NewBook};
use crate::error::Result;

pub use postgres::PostgresBookStore;
pub use sqlite::SqliteBookStore;

/// A stored book, as its owner reads it: every query that returns one is
/// scoped to the owner already, so the owner is not read back.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct BookRecord {
    pub id: i64,
    pub name: String,
    pub author: String,
    pub publisher: String,
    pub book_prize: i64,
    /// Unix time in microseconds.
    pub created_at: i64,
    pub updated_at: i64,
}

/// A book with its owner, as an export reads it and an import writes it.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct OwnedBook {
    #[sqlx(flatten)]
    pub book: BookRecord,
    pub owner_id: String,
}

/// The book table, behind one interface for every backend. Every method is
/// scoped to one owner: another owner's book is simply not there.
#[async_trait]
pub trait BookStore: Send + Sync + 'static {
    async fn create_book(&self, owner_id: &str, book: NewBook, now: i64) -> Result<BookRecord>;
    async fn get_book(&self, owner_id: &str, id: BookId) -> Result<Option<BookRecord>>;
    /// The owner's books with `id > after_id`, ascending, at most `limit`.
    async fn list_books(&self, owner_id: &str, after_id: i64, limit: u32) -> Result<Vec<BookRecord>>;
    async fn update_book(&self, owner_id: &str, id: BookId, patch: BookPatch, now: i64) -> Result<Option<BookRecord>>;
    /// Whether a book was deleted.
    async fn delete_book(&self, owner_id: &str, id: BookId) -> Result<bool>;
    /// Deletes every book of an owner (a deleted account); how many.
    /// Idempotent: the revocation feed may report a deletion more than once.
    async fn delete_books_of_owner(&self, owner_id: &str) -> Result<u64>;
    /// The distinct owners of books with `owner_id > after`, ascending, at
    /// most `limit`: for finding the books of users deleted long ago.
    async fn list_owners(&self, after: &str, limit: u32) -> Result<Vec<String>>;
    /// Every owner's books with `id > after_id`, ascending, at most `limit`:
    /// for copying a deployment to another backend.
    async fn export_books(&self, after_id: i64, limit: u32) -> Result<Vec<OwnedBook>>;
    /// Inserts books with their ids, skipping ids already present, and moves
    /// the id sequence past them; how many were new.
    async fn import_books(&self, books: &[OwnedBook]) -> Result<u64>;
    async fn count_books(&self) -> Result<i64>;
    /// Closes the connections, waiting for those in use.
    async fn close(&self);
    /// How the connection pool is used right now, for metrics.
    fn pool_usage(&self) -> bookstore_runtime::metrics::PoolUsage;
}

/// The statements both backends run, one text per query: SQLite reads `$N`
/// as a parameter too. It numbers parameters in order of first appearance,
/// not by N, so each text must mention `$1`, `$2`, ... in that order.
macro_rules! columns {
    () => {
        "id, name, author, publisher, book_prize, created_at, updated_at"
    };
}

const CREATE_BOOK: &str = concat!(
    "insert into books (owner_id, name, author, publisher, book_prize, created_at, updated_at)
             values ($1, $2, $3, $4, $5, $6, $6) returning ",
    columns!()
);
const GET_BOOK: &str = concat!("select ", columns!(), " from books where id = $1 and owner_id = $2");
const LIST_BOOKS: &str =
    concat!("select ", columns!(), " from books where owner_id = $1 and id > $2 order by id limit $3");
/// `coalesce`: an unset field keeps its value.
const UPDATE_BOOK: &str = concat!(
    "update books set
                name = coalesce($1, name),
                author = coalesce($2, author),
                publisher = coalesce($3, publisher),
                book_prize = coalesce($4, book_prize),
                updated_at = $5
             where id = $6 and owner_id = $7
             returning ",
    columns!()
);
const DELETE_BOOK: &str = "delete from books where id = $1 and owner_id = $2";
const DELETE_BOOKS_OF_OWNER: &str = "delete from books where owner_id = $1";
/// The `(owner_id, id)` index serves it.
const LIST_OWNERS: &str = "select distinct owner_id from books where owner_id > $1 order by owner_id limit $2";
/// The owner last: a row is a `BookRecord`'s columns, then the owner.
const EXPORT_BOOKS: &str = concat!("select ", columns!(), ", owner_id from books where id > $1 order by id limit $2");
/// One imported book; an id already present is skipped.
const IMPORT_BOOK: &str = concat!(
    "insert into books (",
    columns!(),
    ", owner_id) values ($1, $2, $3, $4, $5, $6, $7, $8) on conflict (id) do nothing"
);
const COUNT_BOOKS: &str = "select count(*) from books";

/// Opens (and migrates) the store a database URL names.
pub async fn connect(database_url: &str) -> anyhow::Result<Arc<dyn BookStore>> {
    match database_url.split_once(':').map(|(scheme, _)| scheme) {
        Some("sqlite") => Ok(Arc::new(SqliteBookStore::connect(database_url).await?)),
        Some("postgres" | "postgresql") => Ok(Arc::new(PostgresBookStore::connect(database_url).await?)),
        _ => anyhow::bail!("unsupported database URL: expected sqlite://PATH or postgres://..."),
    }
}

/// Builders for the store contract tests (valid values without parsing).
#[doc(hidden)]
pub mod testing {
    use crate::domain::{BookId, BookPatch, NewBook};

    pub fn book(name: &str, author: &str, book_prize: i64) -> NewBook {
        NewBook { name: name.into(), author: author.into(), publisher: "Penguin".into(), book_prize }
    }

    /// # Panics
    /// When `id` is not positive.
    pub fn id(id: i64) -> BookId {
        #[allow(clippy::expect_used)]
        BookId::parse(id).expect("a positive id")
    }

    pub fn patch(name: Option<&str>, book_prize: Option<i64>) -> BookPatch {
        BookPatch { name: name.map(str::to_owned), book_prize, ..BookPatch::default() }
    }
}
