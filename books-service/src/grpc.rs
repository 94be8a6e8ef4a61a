//! `bookstore.books.v1.BooksService` over a [`BookStore`]: decode, call,
//! encode. The interceptor has already checked the token.

use std::sync::Arc;

use bookstore_proto::books::v1::books_service_server::BooksService;
use bookstore_proto::books::v1::{
    Book, CreateBookRequest, CreateBookResponse, DeleteBookRequest, DeleteBookResponse, GetBookRequest,
    GetBookResponse, ListBooksRequest, ListBooksResponse, UpdateBookRequest, UpdateBookResponse,
};
use bookstore_proto::prost_types::Timestamp;
use bookstore_proto::{UnixMicros, pagination};
use tonic::{Request, Response, Status};

use crate::domain::{BookId, BookPatch, NewBook};
use crate::error::Error;
use crate::interceptor::caller;
use crate::store::{BookRecord, BookStore};

/// The gRPC face of the book store.
pub struct BooksGrpc {
    store: Arc<dyn BookStore>,
}

impl BooksGrpc {
    pub fn new(store: Arc<dyn BookStore>) -> Self {
        Self { store }
    }
}

#[tonic::async_trait]
impl BooksService for BooksGrpc {
    async fn create_book(&self, request: Request<CreateBookRequest>) -> Result<Response<CreateBookResponse>, Status> {
        let owner = &caller(&request)?.public_id;
        let CreateBookRequest { name, author, publisher, book_prize } = request.get_ref();
        let book = NewBook::parse(name, author, publisher, *book_prize)?;
        let book = self.store.create_book(owner, book, UnixMicros::now().get()).await?;
        tracing::info!(book_id = book.id, "book created");
        Ok(Response::new(CreateBookResponse { book: Some(to_proto(book)) }))
    }

    async fn get_book(&self, request: Request<GetBookRequest>) -> Result<Response<GetBookResponse>, Status> {
        let owner = &caller(&request)?.public_id;
        let id = BookId::parse(request.get_ref().id)?;
        let book = self.store.get_book(owner, id).await?.ok_or_else(|| Error::book_not_found(id.get()))?;
        Ok(Response::new(GetBookResponse { book: Some(to_proto(book)) }))
    }

    async fn list_books(&self, request: Request<ListBooksRequest>) -> Result<Response<ListBooksResponse>, Status> {
        let owner = &caller(&request)?.public_id;
        let ListBooksRequest { page_size, page_token } = request.get_ref();
        let limit = pagination::effective_page_size(*page_size)
            .ok_or_else(|| Error::invalid("page_size", "must not be negative"))?;
        let after = pagination::parse_page_token(page_token)
            .ok_or_else(|| Error::invalid("page_token", "is not a token this service issued"))?;
        let rows = self.store.list_books(owner, after, limit + 1).await?;
        let (books, next_page_token) = pagination::into_page(rows, limit, |book| book.id);
        Ok(Response::new(ListBooksResponse { books: books.into_iter().map(to_proto).collect(), next_page_token }))
    }

    async fn update_book(&self, request: Request<UpdateBookRequest>) -> Result<Response<UpdateBookResponse>, Status> {
        let owner = &caller(&request)?.public_id;
        let UpdateBookRequest { id, name, author, publisher, book_prize } = request.get_ref();
        let id = BookId::parse(*id)?;
        let patch = BookPatch::parse(name.as_deref(), author.as_deref(), publisher.as_deref(), *book_prize)?;
        let book = self
            .store
            .update_book(owner, id, patch, UnixMicros::now().get())
            .await?
            .ok_or_else(|| Error::book_not_found(id.get()))?;
        tracing::info!(book_id = book.id, "book updated");
        Ok(Response::new(UpdateBookResponse { book: Some(to_proto(book)) }))
    }

    async fn delete_book(&self, request: Request<DeleteBookRequest>) -> Result<Response<DeleteBookResponse>, Status> {
        let owner = &caller(&request)?.public_id;
        let id = BookId::parse(request.get_ref().id)?;
        if !self.store.delete_book(owner, id).await? {
            return Err(Error::book_not_found(id.get()).into());
        }
        tracing::info!(book_id = id.get(), "book deleted");
        Ok(Response::new(DeleteBookResponse {}))
    }
}

fn to_proto(book: BookRecord) -> Book {
    Book {
        id: book.id,
        name: book.name,
        author: book.author,
        publisher: book.publisher,
        book_prize: book.book_prize,
        created_at: Some(Timestamp::from(UnixMicros(book.created_at))),
        updated_at: Some(Timestamp::from(UnixMicros(book.updated_at))),
    }
}
