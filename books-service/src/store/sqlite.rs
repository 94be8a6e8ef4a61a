//! The embedded SQLite backend, on rusqlite, straight against SQLite.
//! (sqlx-sqlite gives every connection its own worker thread and sends rows
//! over a channel; that row handling was most of ListBooks' CPU.) sqlx still
//! applies the migrations, so the schema history stays in `_sqlx_migrations`,
//! where backups read it.
//!
//! Writes run on a blocking thread: they fsync. The reads of a request (one
//! book, a page of at most [`INLINE_ROWS`]) run on the calling thread: under
//! WAL a reader takes no lock a writer holds, and such a read is one index
//! search in the page cache, tens of microseconds, as long as the JWT check
//! that precedes it. Handing it to a blocking thread and back cost more than
//! the read (two thread wake-ups per request; see BENCHMARKS.md). Longer
//! reads (exports, owner sweeps, counts, large pages) keep the blocking pool.

use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::str::FromStr as _;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, TryLockError};
use std::time::Duration;

use anyhow::Context as _;
use async_trait::async_trait;
use bookstore_runtime::metrics::PoolUsage;
use rusqlite::{Connection, OpenFlags, OptionalExtension as _, Params, Row, TransactionBehavior, params};
use sqlx::sqlite::SqliteConnectOptions;
use tokio::sync::{Semaphore, TryAcquireError};

use super::{BookRecord, BookStore, OwnedBook};
use crate::domain::{BookId, BookPatch, NewBook};
use crate::error::{Error, Result};

/// Connections for reads, which run side by side under WAL: at least one
/// per executor thread, as those run the short reads.
fn readers() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from).max(4)
}
/// The largest page read on the calling thread; larger ones go to the
/// blocking pool, so no request holds an executor thread for long.
const INLINE_ROWS: u32 = 128;
/// How long a call waits for a free connection before the store answers
/// Unavailable: sqlx's pool default, which the sqlx-based store had.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(30);
/// As `bookstore_database::open_sqlite`: a write through another
/// connection to the file (another process's, say) is waited for instead of
/// failing with "database is locked".
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// Books in a SQLite file (WAL mode).
#[derive(Debug, Clone)]
pub struct SqliteBookStore {
    /// One connection for every write: SQLite runs one write transaction at
    /// a time anyway, and queueing here is cheaper than `busy_timeout`'s
    /// sleep-and-retry between connections of this process.
    writer: Arc<Connections>,
    readers: Arc<Connections>,
}

impl SqliteBookStore {
    /// Opens the database (creating the file and its directory if missing)
    /// and applies the embedded migrations.
    pub async fn connect(url: &str) -> anyhow::Result<Self> {
        let path = database_path(url)?;
        // sqlx's pool creates the file and its directory and runs the
        // migrations, exactly as before; it is closed before rusqlite opens.
        let pool = bookstore_database::open_sqlite(url).await?;
        let migrated = sqlx::migrate!("./migrations/sqlite").run(&pool).await;
        pool.close().await;
        migrated.context("cannot migrate the book database")?;
        tokio::task::spawn_blocking(move || {
            Ok(Self {
                writer: Arc::new(Connections::open(&path, 1)?),
                readers: Arc::new(Connections::open(&path, readers())?),
            })
        })
        .await
        .context("opening the book database panicked")?
    }
}

/// The file a `sqlite:` URL names, parsed by sqlx as `open_sqlite` parses
/// it (`sqlite://PATH` or `sqlite:PATH`, percent-decoded, `?mode=..` and the
/// other parameters stripped).
fn database_path(url: &str) -> anyhow::Result<PathBuf> {
    let options = SqliteConnectOptions::from_str(url).with_context(|| format!("invalid SQLite URL {url:?}"))?;
    // sqlx keeps an in-memory database alive only while its pool is open,
    // and the pool is closed once the migrations have run. (sqlx names its
    // in-memory databases `file:sqlx-in-memory-N`; `mode=memory` keeps the
    // path but opens none.)
    let query = url.split_once('?').map_or("", |(_, query)| query);
    anyhow::ensure!(
        !options.get_filename().to_string_lossy().starts_with("file:sqlx-in-memory-")
            && !query.split('&').any(|parameter| parameter == "mode=memory"),
        "in-memory SQLite is not supported for books: use sqlite://PATH"
    );
    Ok(options.get_filename().to_owned())
}

/// Opens one connection to the migrated database file.
fn open_connection(path: &Path) -> anyhow::Result<Connection> {
    // No CREATE: the migrations made the file, so a missing file is an
    // error rather than a new empty database. NO_MUTEX: a connection is used
    // by one thread at a time (under its slot's lock).
    let connection =
        Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX)
            .with_context(|| format!("cannot open {}", path.display()))?;
    // First, so that the pragmas below wait for a lock as well.
    connection.busy_timeout(BUSY_TIMEOUT)?;
    // WAL: readers never block the writer. synchronous=FULL: a transaction
    // is on disk before its write is acknowledged, so it survives a crash or
    // a power cut, not only a process kill (as `open_sqlite` configures sqlx).
    let journal_mode: String = connection.pragma_update_and_check(None, "journal_mode", "wal", |row| row.get(0))?;
    anyhow::ensure!(
        journal_mode.eq_ignore_ascii_case("wal"),
        "{} cannot use WAL: journal mode {journal_mode}",
        path.display()
    );
    connection.pragma_update(None, "synchronous", "full")?;
    // sqlx's default, kept for identical behaviour.
    connection.pragma_update(None, "foreign_keys", "on")?;
    Ok(connection)
}

/// A fixed set of connections. A call takes a semaphore permit, then any
/// unlocked slot: there are as many permits as slots, so one is free.
#[derive(Debug)]
struct Connections {
    /// `None` once the store is closed.
    slots: Vec<Mutex<Option<Connection>>>,
    permits: Arc<Semaphore>,
    size: u32,
}

impl Connections {
    fn open(path: &Path, size: usize) -> anyhow::Result<Self> {
        let slots = (0..size)
            .map(|_| open_connection(path).map(|connection| Mutex::new(Some(connection))))
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(Self { slots, permits: Arc::new(Semaphore::new(size)), size: u32::try_from(size)? })
    }

    /// Runs `work` on a connection, on a blocking thread: statements wait
    /// for locks and writes fsync.
    async fn run<T, F>(self: &Arc<Self>, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T> + Send + 'static,
    {
        let permit = match tokio::time::timeout(ACQUIRE_TIMEOUT, Arc::clone(&self.permits).acquire_owned()).await {
            Ok(Ok(permit)) => permit,
            Ok(Err(_closed)) => return Err(Error::database_unavailable(&"the book store is closed")),
            Err(_elapsed) => return Err(Error::database_unavailable(&"no free book database connection in time")),
        };
        let connections = Arc::clone(self);
        let span = tracing::Span::current();
        // The permit moves into the task: a caller that goes away leaves the
        // connection in use until the statement is done.
        let task = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            span.in_scope(|| connections.with_free_slot(work))
        });
        task.await
            .unwrap_or_else(|failed| Err(Error::Internal(anyhow::anyhow!("a book database call failed: {failed}"))))
    }

    /// Runs a short read (see the module's comment) on this thread, on a
    /// connection free now, without waiting for a lock. If no connection is
    /// free, or SQLite reports a lock held (under WAL, only while another
    /// process recovers the WAL after a crash: every open connection holds
    /// the file shared, so none can take it exclusively), the read runs as
    /// [`Self::run`] does instead, waiting on a blocking thread while this
    /// one goes on serving.
    async fn run_here<T, F>(self: &Arc<Self>, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: Fn(&mut Connection) -> Result<T> + Send + 'static,
    {
        let here = match self.permits.try_acquire() {
            Ok(_permit) => self.with_free_slot(|connection| {
                connection.busy_timeout(Duration::ZERO)?;
                let read = work(connection);
                connection.busy_timeout(BUSY_TIMEOUT)?;
                read
            }),
            Err(TryAcquireError::Closed) => return Err(Error::database_unavailable(&"the book store is closed")),
            Err(TryAcquireError::NoPermits) => return self.run(work).await,
        };
        match here {
            Err(Error::Unavailable(_)) => self.run(work).await,
            read => read,
        }
    }

    /// `work` on a free connection, on this thread; the caller holds a
    /// permit. A panic is an error, as on a blocking thread.
    fn with_free_slot<T>(&self, work: impl FnOnce(&mut Connection) -> Result<T>) -> Result<T> {
        let mut slot = self.free_slot()?;
        let connection = slot.as_mut().ok_or_else(|| Error::database_unavailable(&"the book store is closed"))?;
        std::panic::catch_unwind(AssertUnwindSafe(|| work(connection)))
            .unwrap_or_else(|_| Err(Error::Internal(anyhow::anyhow!("a book database call panicked"))))
    }

    /// An unlocked slot; the caller holds a permit.
    fn free_slot(&self) -> Result<MutexGuard<'_, Option<Connection>>> {
        self.slots
            .iter()
            .find_map(|slot| match slot.try_lock() {
                Ok(slot) => Some(slot),
                // A call panicked on this connection: it is still sound, as
                // rusqlite rolls an open transaction back while unwinding.
                Err(TryLockError::Poisoned(poisoned)) => Some(poisoned.into_inner()),
                Err(TryLockError::WouldBlock) => None,
            })
            .context("BUG: a connection permit while every connection is in use")
            .map_err(Error::Internal)
    }

    /// Waits for the calls in flight, then closes every connection; later
    /// calls answer Unavailable.
    async fn close(self: &Arc<Self>) {
        // Closed already (or closing): nothing to wait for.
        let Ok(_every_permit) = self.permits.acquire_many(self.size).await else { return };
        self.permits.close();
        let connections = Arc::clone(self);
        // Closing the last connection checkpoints the WAL: blocking I/O.
        let closed = tokio::task::spawn_blocking(move || {
            for slot in &connections.slots {
                let Some(connection) = slot.lock().unwrap_or_else(PoisonError::into_inner).take() else { continue };
                if let Err((_, error)) = connection.close() {
                    tracing::warn!(%error, "cannot close a book database connection");
                }
            }
        });
        if let Err(error) = closed.await {
            tracing::warn!(%error, "closing the book database failed");
        }
    }

    fn usage(&self) -> PoolUsage {
        let idle = self.permits.available_permits();
        PoolUsage { size: if self.permits.is_closed() { 0 } else { self.size }, idle, max_size: self.size }
    }
}

impl SqliteBookStore {
    /// Every row `sql` answers with `params`, each read by `read`, on a
    /// reader connection.
    async fn read_rows<T: Send + 'static>(
        &self,
        sql: &'static str,
        params: impl Params + Send + 'static,
        read: fn(&Row<'_>) -> rusqlite::Result<T>,
    ) -> Result<Vec<T>> {
        self.readers.run(move |connection| rows(connection, sql, params, read)).await
    }
}

/// Every row `sql` answers with `params`, each read by `read`.
fn rows<T>(
    connection: &Connection,
    sql: &str,
    params: impl Params,
    read: fn(&Row<'_>) -> rusqlite::Result<T>,
) -> Result<Vec<T>> {
    let mut statement = connection.prepare_cached(sql)?;
    let rows = statement.query_map(params, read)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// A row of `columns!()`, in its order.
fn book_record(row: &Row<'_>) -> rusqlite::Result<BookRecord> {
    Ok(BookRecord {
        id: row.get(0)?,
        name: row.get(1)?,
        author: row.get(2)?,
        publisher: row.get(3)?,
        book_prize: row.get(4)?,
        created_at: row.get(5)?,
        updated_at: row.get(6)?,
    })
}

/// A row of `EXPORT_BOOKS`: a book's columns, then its owner.
fn owned_book(row: &Row<'_>) -> rusqlite::Result<OwnedBook> {
    Ok(OwnedBook { book: book_record(row)?, owner_id: row.get(7)? })
}

/// A row count as the trait reports it.
fn count(rows: usize) -> u64 {
    u64::try_from(rows).unwrap_or(u64::MAX)
}

#[async_trait]
impl BookStore for SqliteBookStore {
    async fn create_book(&self, owner_id: &str, book: NewBook, now: i64) -> Result<BookRecord> {
        let owner_id = owner_id.to_owned();
        self.writer
            .run(move |connection| {
                let mut statement = connection.prepare_cached(super::CREATE_BOOK)?;
                let params = params![owner_id, book.name, book.author, book.publisher, book.book_prize, now];
                Ok(statement.query_row(params, book_record)?)
            })
            .await
    }

    async fn get_book(&self, owner_id: &str, id: BookId) -> Result<Option<BookRecord>> {
        let owner_id = owner_id.to_owned();
        self.readers
            .run_here(move |connection| {
                let mut statement = connection.prepare_cached(super::GET_BOOK)?;
                Ok(statement.query_row(params![id.get(), owner_id], book_record).optional()?)
            })
            .await
    }

    async fn list_books(&self, owner_id: &str, after_id: i64, limit: u32) -> Result<Vec<BookRecord>> {
        let owner_id = owner_id.to_owned();
        if limit <= INLINE_ROWS {
            let read = move |connection: &mut Connection| {
                rows(connection, super::LIST_BOOKS, (&owner_id, after_id, limit), book_record)
            };
            self.readers.run_here(read).await
        } else {
            self.read_rows(super::LIST_BOOKS, (owner_id, after_id, limit), book_record).await
        }
    }

    async fn update_book(&self, owner_id: &str, id: BookId, patch: BookPatch, now: i64) -> Result<Option<BookRecord>> {
        let (owner_id, id) = (owner_id.to_owned(), id.get());
        self.writer
            .run(move |connection| {
                let mut statement = connection.prepare_cached(super::UPDATE_BOOK)?;
                let params = params![patch.name, patch.author, patch.publisher, patch.book_prize, now, id, owner_id];
                Ok(statement.query_row(params, book_record).optional()?)
            })
            .await
    }

    async fn delete_book(&self, owner_id: &str, id: BookId) -> Result<bool> {
        let owner_id = owner_id.to_owned();
        self.writer
            .run(move |connection| {
                let mut statement = connection.prepare_cached(super::DELETE_BOOK)?;
                Ok(statement.execute(params![id.get(), owner_id])? > 0)
            })
            .await
    }

    async fn delete_books_of_owner(&self, owner_id: &str) -> Result<u64> {
        let owner_id = owner_id.to_owned();
        self.writer
            .run(move |connection| {
                let mut statement = connection.prepare_cached(super::DELETE_BOOKS_OF_OWNER)?;
                Ok(count(statement.execute(params![owner_id])?))
            })
            .await
    }

    async fn list_owners(&self, after: &str, limit: u32) -> Result<Vec<String>> {
        self.read_rows(super::LIST_OWNERS, (after.to_owned(), limit), |row| row.get(0)).await
    }

    async fn export_books(&self, after_id: i64, limit: u32) -> Result<Vec<OwnedBook>> {
        self.read_rows(super::EXPORT_BOOKS, (after_id, limit), owned_book).await
    }

    async fn import_books(&self, books: &[OwnedBook]) -> Result<u64> {
        let books = books.to_vec();
        self.writer
            .run(move |connection| {
                // IMMEDIATE: the write lock (and busy_timeout's wait for it)
                // comes at BEGIN, never as a failing upgrade mid-transaction.
                let transaction = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
                let mut inserted = 0;
                {
                    let mut statement = transaction.prepare_cached(super::IMPORT_BOOK)?;
                    for OwnedBook { book, owner_id } in &books {
                        inserted += count(statement.execute(params![
                            book.id,
                            book.name,
                            book.author,
                            book.publisher,
                            book.book_prize,
                            book.created_at,
                            book.updated_at,
                            owner_id,
                        ])?);
                    }
                }
                // AUTOINCREMENT moves the id sequence past explicit ids itself.
                transaction.commit()?;
                Ok(inserted)
            })
            .await
    }

    async fn count_books(&self) -> Result<i64> {
        self.readers
            .run(|connection| Ok(connection.prepare_cached(super::COUNT_BOOKS)?.query_row([], |row| row.get(0))?))
            .await
    }

    async fn close(&self) {
        self.writer.close().await;
        self.readers.close().await;
    }

    fn pool_usage(&self) -> PoolUsage {
        let (writer, readers) = (self.writer.usage(), self.readers.usage());
        PoolUsage {
            size: writer.size + readers.size,
            idle: writer.idle + readers.idle,
            max_size: writer.max_size + readers.max_size,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_connection_is_durable_wal_with_foreign_keys() {
        let dir = tempfile::tempdir().unwrap();
        let store =
            SqliteBookStore::connect(&format!("sqlite://{}", dir.path().join("books.db").display())).await.unwrap();
        for connections in [&store.writer, &store.readers] {
            for slot in &connections.slots {
                let slot = slot.lock().unwrap();
                let connection = slot.as_ref().unwrap();
                let journal_mode: String =
                    connection.pragma_query_value(None, "journal_mode", |row| row.get(0)).unwrap();
                assert_eq!(journal_mode, "wal");
                let pragma =
                    |name: &str| connection.pragma_query_value(None, name, |row| row.get::<_, i64>(0)).unwrap();
                assert_eq!(pragma("synchronous"), 2, "FULL");
                assert_eq!(pragma("foreign_keys"), 1);
                assert_eq!(pragma("busy_timeout"), 30_000);
            }
        }
        store.close().await;
    }

    #[test]
    fn the_path_is_parsed_as_sqlx_parses_it() {
        assert_eq!(database_path("sqlite://data/books.db").unwrap(), Path::new("data/books.db"));
        assert_eq!(database_path("sqlite:/tmp/books.db?mode=rwc").unwrap(), Path::new("/tmp/books.db"));
        assert_eq!(database_path("sqlite:///tmp/my%20books.db").unwrap(), Path::new("/tmp/my books.db"));
        assert!(database_path("sqlite::memory:").is_err());
        assert!(database_path("sqlite://books.db?mode=memory").is_err());
    }

    #[tokio::test]
    async fn a_closed_store_answers_unavailable_and_reports_no_connections() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("books.db").display());
        let store = SqliteBookStore::connect(&url).await.unwrap();
        let usage = store.pool_usage();
        assert_eq!((usage.size, usage.idle, usage.max_size), (5, 5, 5));
        store.close().await;
        store.close().await;
        assert!(matches!(store.count_books().await, Err(Error::Unavailable(_))));
        assert_eq!(store.pool_usage().size, 0);
    }

    /// A short read that meets a lock (SQLite answers BUSY at once, as while
    /// another process recovers the WAL after a crash) runs again on a
    /// blocking thread, where it waits for the lock: never on the runtime's.
    #[tokio::test]
    async fn a_short_read_that_meets_a_lock_runs_again_where_it_may_wait() {
        let dir = tempfile::tempdir().unwrap();
        let store =
            SqliteBookStore::connect(&format!("sqlite://{}", dir.path().join("books.db").display())).await.unwrap();
        let attempts = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&attempts);
        store
            .readers
            .run_here(move |connection| {
                let wait: i64 = connection.pragma_query_value(None, "busy_timeout", |row| row.get(0))?;
                let mut seen = seen.lock().unwrap();
                seen.push((std::thread::current().id(), wait));
                if seen.len() == 1 {
                    let busy = rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY);
                    return Err(rusqlite::Error::SqliteFailure(busy, None).into());
                }
                Ok(())
            })
            .await
            .unwrap();
        let runtime_thread = std::thread::current().id();
        let attempts = std::mem::take(&mut *attempts.lock().unwrap());
        assert_eq!(attempts[0], (runtime_thread, 0), "first here, without waiting");
        assert_ne!(attempts[1].0, runtime_thread, "then on a blocking thread");
        assert_eq!(attempts[1].1, 30_000, "waiting for the lock there");
        assert_eq!(attempts.len(), 2);
        store.close().await;
    }

    #[tokio::test]
    async fn a_panicking_call_is_an_error_and_its_connection_stays_usable() {
        let dir = tempfile::tempdir().unwrap();
        let store =
            SqliteBookStore::connect(&format!("sqlite://{}", dir.path().join("books.db").display())).await.unwrap();
        let failed = store.writer.run(|_| -> Result<()> { panic!("a bug") }).await;
        assert!(matches!(failed, Err(Error::Internal(_))));
        store.create_book("alice", crate::store::testing::book("Dune", "Herbert", 1), 1).await.unwrap();
        assert_eq!(store.count_books().await.unwrap(), 1);
        store.close().await;
    }
}
