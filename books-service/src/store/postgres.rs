//! The PostgreSQL backend, for several stateless replicas on one database.
//! Plain SQL only (no advisory locks, no listen/notify), so that
//! PostgreSQL-compatible engines such as CockroachDB can serve it too.

use anyhow::Context as _;
use async_trait::async_trait;
use bookstore_runtime::metrics::PoolUsage;
use sqlx::PgPool;

use super::{BookRecord, BookStore, OwnedBook};
use crate::domain::{BookId, BookPatch, NewBook};
use crate::error::Result;

/// Books in a PostgreSQL database.
#[derive(Debug, Clone)]
pub struct PostgresBookStore {
    pool: PgPool,
}

impl PostgresBookStore {
    /// Connects and applies the embedded migrations (sqlx serialises
    /// concurrent migrators with a lock, taken only at start-up).
    pub async fn connect(url: &str) -> anyhow::Result<Self> {
        let pool = bookstore_database::open_postgres(url).await?;
        sqlx::migrate!("./migrations/postgres").run(&pool).await.context("cannot migrate the book database")?;
        Ok(Self { pool })
    }
}

#[async_trait]
impl BookStore for PostgresBookStore {
    async fn create_book(&self, owner_id: &str, book: NewBook, now: i64) -> Result<BookRecord> {
        Ok(sqlx::query_as(super::CREATE_BOOK)
            .bind(owner_id)
            .bind(book.name)
            .bind(book.author)
            .bind(book.publisher)
            .bind(book.book_prize)
            .bind(now)
            .fetch_one(&self.pool)
            .await?)
    }

    async fn get_book(&self, owner_id: &str, id: BookId) -> Result<Option<BookRecord>> {
        Ok(sqlx::query_as(super::GET_BOOK).bind(id.get()).bind(owner_id).fetch_optional(&self.pool).await?)
    }

    async fn list_books(&self, owner_id: &str, after_id: i64, limit: u32) -> Result<Vec<BookRecord>> {
        Ok(sqlx::query_as(super::LIST_BOOKS)
            .bind(owner_id)
            .bind(after_id)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?)
    }

    async fn update_book(&self, owner_id: &str, id: BookId, patch: BookPatch, now: i64) -> Result<Option<BookRecord>> {
        Ok(sqlx::query_as(super::UPDATE_BOOK)
            .bind(patch.name)
            .bind(patch.author)
            .bind(patch.publisher)
            .bind(patch.book_prize)
            .bind(now)
            .bind(id.get())
            .bind(owner_id)
            .fetch_optional(&self.pool)
            .await?)
    }

    async fn delete_book(&self, owner_id: &str, id: BookId) -> Result<bool> {
        let result = sqlx::query(super::DELETE_BOOK).bind(id.get()).bind(owner_id).execute(&self.pool).await?;
        Ok(result.rows_affected() > 0)
    }

    async fn delete_books_of_owner(&self, owner_id: &str) -> Result<u64> {
        let result = sqlx::query(super::DELETE_BOOKS_OF_OWNER).bind(owner_id).execute(&self.pool).await?;
        Ok(result.rows_affected())
    }

    async fn list_owners(&self, after: &str, limit: u32) -> Result<Vec<String>> {
        Ok(sqlx::query_scalar(super::LIST_OWNERS).bind(after).bind(i64::from(limit)).fetch_all(&self.pool).await?)
    }

    async fn export_books(&self, after_id: i64, limit: u32) -> Result<Vec<OwnedBook>> {
        Ok(sqlx::query_as(super::EXPORT_BOOKS).bind(after_id).bind(i64::from(limit)).fetch_all(&self.pool).await?)
    }

    async fn import_books(&self, books: &[OwnedBook]) -> Result<u64> {
        let mut transaction = self.pool.begin().await?;
        let mut inserted = 0;
        for OwnedBook { book, owner_id } in books {
            let result = sqlx::query(super::IMPORT_BOOK)
                .bind(book.id)
                .bind(&book.name)
                .bind(&book.author)
                .bind(&book.publisher)
                .bind(book.book_prize)
                .bind(book.created_at)
                .bind(book.updated_at)
                .bind(owner_id)
                .execute(&mut *transaction)
                .await?;
            inserted += result.rows_affected();
        }
        // Explicit ids do not advance the identity: move it past them.
        sqlx::query("select setval(pg_get_serial_sequence('books', 'id'), greatest((select max(id) from books), 1))")
            .execute(&mut *transaction)
            .await?;
        transaction.commit().await?;
        Ok(inserted)
    }

    async fn count_books(&self) -> Result<i64> {
        Ok(sqlx::query_scalar(super::COUNT_BOOKS).fetch_one(&self.pool).await?)
    }

    async fn close(&self) {
        self.pool.close().await;
    }

    fn pool_usage(&self) -> PoolUsage {
        PoolUsage::of(&self.pool)
    }
}
