//! The embedded SQLite backend.

use anyhow::Context as _;
use async_trait::async_trait;
use bookstore_runtime::metrics::PoolUsage;
use sqlx::SqlitePool;

use super::{BookRecord, BookStore};
use crate::domain::{BookId, BookPatch, NewBook};
use crate::error::Result;

const COLUMNS: &str = "id, owner_id, name, author, publisher, book_prize, created_at, updated_at";

/// Books in a SQLite file (WAL mode).
#[derive(Debug, Clone)]
pub struct SqliteBookStore {
    pool: SqlitePool,
}

impl SqliteBookStore {
    /// Opens the database (creating the file and its directory if missing)
    /// and applies the embedded migrations.
    pub async fn connect(url: &str) -> anyhow::Result<Self> {
        let pool = bookstore_runtime::database::open_sqlite(url).await?;
        sqlx::migrate!("./migrations/sqlite").run(&pool).await.context("cannot migrate the book database")?;
        Ok(Self { pool })
    }
}

#[async_trait]
impl BookStore for SqliteBookStore {
    async fn create_book(&self, owner_id: &str, book: NewBook, now: i64) -> Result<BookRecord> {
        Ok(sqlx::query_as(&format!(
            "insert into books (owner_id, name, author, publisher, book_prize, created_at, updated_at)
             values (?, ?, ?, ?, ?, ?, ?) returning {COLUMNS}"
        ))
        .bind(owner_id)
        .bind(book.name)
        .bind(book.author)
        .bind(book.publisher)
        .bind(book.book_prize)
        .bind(now)
        .bind(now)
        .fetch_one(&self.pool)
        .await?)
    }

    async fn get_book(&self, owner_id: &str, id: BookId) -> Result<Option<BookRecord>> {
        Ok(sqlx::query_as(&format!("select {COLUMNS} from books where id = ? and owner_id = ?"))
            .bind(id.get())
            .bind(owner_id)
            .fetch_optional(&self.pool)
            .await?)
    }

    async fn list_books(&self, owner_id: &str, after_id: i64, limit: u32) -> Result<Vec<BookRecord>> {
        Ok(sqlx::query_as(&format!("select {COLUMNS} from books where owner_id = ? and id > ? order by id limit ?"))
            .bind(owner_id)
            .bind(after_id)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?)
    }

    async fn update_book(&self, owner_id: &str, id: BookId, patch: BookPatch, now: i64) -> Result<Option<BookRecord>> {
        Ok(sqlx::query_as(&format!(
            "update books set
                name = coalesce(?, name),
                author = coalesce(?, author),
                publisher = coalesce(?, publisher),
                book_prize = coalesce(?, book_prize),
                updated_at = ?
             where id = ? and owner_id = ?
             returning {COLUMNS}"
        ))
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
        let result = sqlx::query("delete from books where id = ? and owner_id = ?")
            .bind(id.get())
            .bind(owner_id)
            .execute(&self.pool)
            .await?;
        Ok(result.rows_affected() > 0)
    }

    async fn delete_books_of_owner(&self, owner_id: &str) -> Result<u64> {
        let result = sqlx::query("delete from books where owner_id = ?").bind(owner_id).execute(&self.pool).await?;
        Ok(result.rows_affected())
    }

    async fn list_owners(&self, after: &str, limit: u32) -> Result<Vec<String>> {
        Ok(sqlx::query_scalar(super::LIST_OWNERS).bind(after).bind(i64::from(limit)).fetch_all(&self.pool).await?)
    }

    async fn export_books(&self, after_id: i64, limit: u32) -> Result<Vec<BookRecord>> {
        Ok(sqlx::query_as(&format!("select {COLUMNS} from books where id > ? order by id limit ?"))
            .bind(after_id)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?)
    }

    async fn import_books(&self, books: &[BookRecord]) -> Result<u64> {
        let mut transaction = self.pool.begin().await?;
        let mut inserted = 0;
        for book in books {
            let result = sqlx::query(&format!(
                "insert into books ({COLUMNS}) values (?, ?, ?, ?, ?, ?, ?, ?) on conflict (id) do nothing"
            ))
            .bind(book.id)
            .bind(&book.owner_id)
            .bind(&book.name)
            .bind(&book.author)
            .bind(&book.publisher)
            .bind(book.book_prize)
            .bind(book.created_at)
            .bind(book.updated_at)
            .execute(&mut *transaction)
            .await?;
            inserted += result.rows_affected();
        }
        transaction.commit().await?;
        Ok(inserted)
    }

    async fn count_books(&self) -> Result<i64> {
        Ok(sqlx::query_scalar("select count(*) from books").fetch_one(&self.pool).await?)
    }

    async fn close(&self) {
        self.pool.close().await;
    }

    fn pool_usage(&self) -> PoolUsage {
        PoolUsage::of(&self.pool)
    }
}
