//! `POST /book`, `GET /books` and `GET|PUT|PATCH|DELETE /books/{id}`:
//! books-service's CRUD, with the tutorial's JSON names (`Author`,
//! `Publisher`, `book_prize`).

use axum::Json;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::header::{CONTENT_TYPE, LOCATION};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bookstore_proto::books::v1::{
    Book, CreateBookRequest, DeleteBookRequest, GetBookRequest, ListBooksRequest, UpdateBookRequest,
};
use serde::{Deserialize, Deserializer, Serialize};
use tonic::Code;

use super::{MessageBody, PageQuery, next_page};
use crate::app::AppState;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{AppJson, AppQuery, Authenticated, Call};

/// The tutorial's answer for a book that is missing or someone else's.
const BOOK_DOES_NOT_EXIST: &str = "book does not exist";

/// A book as the tutorial lists it: exactly these five keys.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(examples(json!({"id": 1, "name": "Dune", "Author": "Frank Herbert", "Publisher": "Chilton", "book_prize": 250})))]
pub struct BookJson {
    id: i64,
    name: String,
    #[serde(rename = "Author")]
    author: String,
    #[serde(rename = "Publisher")]
    publisher: String,
    book_prize: i64,
}

impl BookJson {
    /// About the length of its JSON: the keys, two numbers and the strings.
    fn json_len_hint(&self) -> usize {
        96 + self.name.len() + self.author.len() + self.publisher.len()
    }
}

impl From<Book> for BookJson {
    fn from(book: Book) -> Self {
        Self {
            id: book.id,
            name: book.name,
            author: book.author,
            publisher: book.publisher,
            book_prize: book.book_prize,
        }
    }
}

/// A whole book, as `POST /book` and `PUT /books/{id}` take it. Types are
/// checked here (`book_prize` is a JSON integer); lengths and signs are
/// books-service's to check. Unknown fields are ignored, as the tutorial did.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[schema(examples(json!({"name": "Dune", "Author": "Frank Herbert", "Publisher": "Chilton", "book_prize": 250})))]
pub struct BookBody {
    /// 1 to 50 characters after trimming.
    #[schema(min_length = 1, max_length = 50)]
    name: String,
    /// 1 to 50 characters after trimming.
    #[serde(rename = "Author")]
    #[schema(min_length = 1, max_length = 50)]
    author: String,
    /// 1 to 50 characters after trimming.
    #[serde(rename = "Publisher")]
    #[schema(min_length = 1, max_length = 50)]
    publisher: String,
    /// An integer >= 0.
    #[schema(minimum = 0)]
    book_prize: i64,
}

/// Some fields of a book, for `PATCH /books/{id}`. A field may be left out
/// but not set to `null`; at least one must be there.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[schema(examples(json!({"book_prize": 300})))]
pub struct BookPatch {
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = String, min_length = 1, max_length = 50)]
    name: Option<String>,
    #[serde(default, rename = "Author", deserialize_with = "present")]
    #[schema(value_type = String, min_length = 1, max_length = 50)]
    author: Option<String>,
    #[serde(default, rename = "Publisher", deserialize_with = "present")]
    #[schema(value_type = String, min_length = 1, max_length = 50)]
    publisher: Option<String>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = i64, minimum = 0)]
    book_prize: Option<i64>,
}

impl BookPatch {
    /// The UpdateBook request of book `id`: 400 unless some field is set.
    fn into_request(self, id: i64) -> Result<UpdateBookRequest, ApiError> {
        let Self { name, author, publisher, book_prize } = self;
        if name.is_none() && author.is_none() && publisher.is_none() && book_prize.is_none() {
            return Err(ApiError::bad_request(
                "no fields to update: send at least one of name, Author, Publisher, book_prize",
            ));
        }
        Ok(UpdateBookRequest { id, name, author, publisher, book_prize })
    }
}

/// `PUT` is a `PATCH` of all four fields.
impl From<BookBody> for BookPatch {
    fn from(book: BookBody) -> Self {
        Self {
            name: Some(book.name),
            author: Some(book.author),
            publisher: Some(book.publisher),
            book_prize: Some(book.book_prize),
        }
    }
}

/// A field that is there must hold a value: `null` is refused like any
/// other wrong type instead of meaning "left out".
fn present<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(deserializer).map(Some)
}

/// The `{book_id}` of a path: a positive integer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BookId(i64);

impl BookId {
    pub(crate) fn parse(raw: &str) -> Result<Self, ApiError> {
        raw.parse::<i64>()
            .ok()
            .filter(|id| *id > 0 && raw.bytes().all(|byte| byte.is_ascii_digit()))
            .map(Self)
            .ok_or_else(|| ApiError::bad_request(format!("book id must be a positive integer, got {raw:?}")))
    }
}

impl<S: Send + Sync> FromRequestParts<S> for BookId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Path(raw) = Path::<String>::from_request_parts(parts, state).await?;
        Self::parse(&raw)
    }
}

/// Errors of calls about one book: NotFound is the tutorial's message.
fn book_error(status: tonic::Status) -> ApiError {
    if status.code() == Code::NotFound {
        return ApiError::new(StatusCode::NOT_FOUND, BOOK_DOES_NOT_EXIST);
    }
    ApiError::from(status)
}

/// The book of an answer; books-service always sends one.
fn expect_book(book: Option<Book>) -> Result<BookJson, ApiError> {
    book.map(BookJson::from).ok_or_else(|| {
        tracing::error!("books-service answered without a book");
        ApiError::internal()
    })
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(examples(json!({"message": "new books created", "id": 1})))]
pub struct CreatedBody {
    message: &'static str,
    /// The new book's id.
    id: i64,
}

/// Adds a book to the caller's list.
#[utoipa::path(
    post,
    path = "/book",
    tag = "books",
    request_body = BookBody,
    security(("bearer" = []), ("x-access-tokens" = [])),
    responses(
        (status = CREATED, description = "Created", body = CreatedBody,
            headers(("location" = String, description = "`/books/{id}` of the new book"))),
        (status = BAD_REQUEST, description = "Malformed JSON, a missing field, a wrong type, or a value books-service \
            refuses", body = ErrorBody, example = json!({"message": "book_prize: must be an integer >= 0"})),
    ),
)]
pub async fn create_book(
    State(state): State<AppState>,
    Authenticated(call): Authenticated,
    AppJson(body): AppJson<BookBody>,
) -> Result<impl IntoResponse, ApiError> {
    let request = CreateBookRequest {
        name: body.name,
        author: body.author,
        publisher: body.publisher,
        book_prize: body.book_prize,
    };
    let response = state.upstreams.books.clone().create_book(call.request(request)).await?.into_inner();
    let book = expect_book(response.book)?;
    let location = HeaderValue::from_str(&format!("/books/{}", book.id)).map_err(|_| ApiError::internal())?;
    Ok((StatusCode::CREATED, [(LOCATION, location)], Json(CreatedBody { message: "new books created", id: book.id })))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BookListBody {
    list_of_books: Vec<BookJson>,
    /// Present when there are more books: pass it as `page_token`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = String)]
    next_page_token: Option<String>,
}

/// Serialized as `Json` would, into a buffer of about the page's length:
/// `Json` starts at 128 bytes and, for a page of 20 books, grows and copies
/// its buffer five times.
impl IntoResponse for BookListBody {
    fn into_response(self) -> Response {
        let token_len = self.next_page_token.as_ref().map_or(0, String::len);
        let len_hint = 64 + token_len + self.list_of_books.iter().map(BookJson::json_len_hint).sum::<usize>();
        let mut body = Vec::with_capacity(len_hint);
        match serde_json::to_writer(&mut body, &self) {
            Ok(()) => ([(CONTENT_TYPE, HeaderValue::from_static("application/json"))], body).into_response(),
            Err(error) => {
                tracing::error!(%error, "a page of books did not serialize");
                ApiError::internal().into_response()
            }
        }
    }
}

/// Lists the caller's books, oldest first, a page at a time.
#[utoipa::path(
    get,
    path = "/books",
    tag = "books",
    params(PageQuery),
    security(("bearer" = []), ("x-access-tokens" = [])),
    responses(
        (status = OK, description = "A page of the caller's books", body = BookListBody),
        (status = BAD_REQUEST, description = "A bad `limit` or `page_token`", body = ErrorBody),
    ),
)]
pub async fn list_books(
    State(state): State<AppState>,
    Authenticated(call): Authenticated,
    AppQuery(mut query): AppQuery<PageQuery>,
) -> Result<BookListBody, ApiError> {
    let request =
        ListBooksRequest { page_size: query.page_size(state.default_page_size)?, page_token: query.page_token() };
    let page = state.upstreams.books.clone().list_books(call.request(request)).await?.into_inner();
    Ok(BookListBody {
        list_of_books: page.books.into_iter().map(BookJson::from).collect(),
        next_page_token: next_page(page.next_page_token),
    })
}

/// One of the caller's books.
#[utoipa::path(
    get,
    path = "/books/{book_id}",
    tag = "books",
    params(("book_id" = i64, Path, minimum = 1, description = "The book's id")),
    security(("bearer" = []), ("x-access-tokens" = [])),
    responses(
        (status = OK, description = "The book", body = BookJson),
        (status = BAD_REQUEST, description = "The id is not a positive integer", body = ErrorBody),
        (status = NOT_FOUND, description = "No such book, or another user's", body = ErrorBody,
            example = json!({"message": "book does not exist"})),
    ),
)]
pub async fn get_book(
    State(state): State<AppState>,
    Authenticated(call): Authenticated,
    BookId(id): BookId,
) -> Result<Json<BookJson>, ApiError> {
    let response = state.upstreams.books.clone().get_book(call.request(GetBookRequest { id })).await;
    Ok(Json(expect_book(response.map_err(book_error)?.into_inner().book)?))
}

/// What `PUT` and `PATCH /books/{book_id}` answer (for the OpenAPI document).
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
enum BookUpdated<'a> {
    #[response(status = 200, description = "The updated book")]
    Updated(BookJson),
    #[response(
        status = 400,
        description = "Malformed JSON, a missing field, a wrong type, or a value books-service refuses",
        example = json!({"message": "book_prize: must be an integer >= 0"})
    )]
    Refused(ErrorBody<'a>),
    #[response(status = 404, description = "No such book, or another user's", example = json!({"message": "book does not exist"}))]
    NotFound(ErrorBody<'a>),
}

/// Replaces one of the caller's books: `PUT` takes all four fields.
#[utoipa::path(
    put,
    path = "/books/{book_id}",
    tag = "books",
    params(("book_id" = i64, Path, minimum = 1, description = "The book's id")),
    request_body = BookBody,
    security(("bearer" = []), ("x-access-tokens" = [])),
    responses(BookUpdated),
)]
pub async fn replace_book(
    State(state): State<AppState>,
    Authenticated(call): Authenticated,
    BookId(id): BookId,
    AppJson(body): AppJson<BookBody>,
) -> Result<Json<BookJson>, ApiError> {
    update(&state, &call, BookPatch::from(body).into_request(id)?).await
}

/// Updates one of the caller's books: `PATCH` takes any of the four fields, at least one.
#[utoipa::path(
    patch,
    path = "/books/{book_id}",
    tag = "books",
    params(("book_id" = i64, Path, minimum = 1, description = "The book's id")),
    request_body = BookPatch,
    security(("bearer" = []), ("x-access-tokens" = [])),
    responses(BookUpdated),
)]
pub async fn update_book(
    State(state): State<AppState>,
    Authenticated(call): Authenticated,
    BookId(id): BookId,
    AppJson(patch): AppJson<BookPatch>,
) -> Result<Json<BookJson>, ApiError> {
    update(&state, &call, patch.into_request(id)?).await
}

/// `PUT` and `PATCH` alike: UpdateBook with the fields to change.
async fn update(state: &AppState, call: &Call, request: UpdateBookRequest) -> Result<Json<BookJson>, ApiError> {
    let response = state.upstreams.books.clone().update_book(call.request(request)).await;
    Ok(Json(expect_book(response.map_err(book_error)?.into_inner().book)?))
}

/// Deletes one of the caller's books; its id is never reused.
#[utoipa::path(
    delete,
    path = "/books/{book_id}",
    tag = "books",
    params(("book_id" = i64, Path, minimum = 1, description = "The book's id")),
    security(("bearer" = []), ("x-access-tokens" = [])),
    responses(
        (status = OK, description = "Deleted", body = MessageBody, example = json!({"message": "Book deleted"})),
        (status = BAD_REQUEST, description = "The id is not a positive integer", body = ErrorBody),
        (status = NOT_FOUND, description = "No such book, or another user's", body = ErrorBody,
            example = json!({"message": "book does not exist"})),
    ),
)]
pub async fn delete_book(
    State(state): State<AppState>,
    Authenticated(call): Authenticated,
    BookId(id): BookId,
) -> Result<Json<MessageBody>, ApiError> {
    state.upstreams.books.clone().delete_book(call.request(DeleteBookRequest { id })).await.map_err(book_error)?;
    Ok(Json(MessageBody { message: "Book deleted" }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn book_ids_are_positive_decimal_integers() {
        assert_eq!(BookId::parse("1"), Ok(BookId(1)));
        assert_eq!(BookId::parse("9223372036854775807"), Ok(BookId(i64::MAX)));
        for bad in ["0", "-1", "+1", "abc", "1.0", "", " 1", "9223372036854775808", "1e3"] {
            assert_eq!(BookId::parse(bad).unwrap_err().status, StatusCode::BAD_REQUEST, "{bad:?}");
        }
    }

    #[test]
    fn book_prize_must_be_a_json_integer() {
        let body = |prize: &str| {
            serde_json::from_str::<BookBody>(&format!(
                r#"{{"name":"n","Author":"a","Publisher":"p","book_prize":{prize}}}"#
            ))
        };
        assert_eq!(body("250").unwrap().book_prize, 250);
        assert_eq!(body("-5").unwrap().book_prize, -5, "the sign is books-service's to check");
        for bad in [r#""abc""#, "12.5", "true", "null", "1e20", "18446744073709551616"] {
            assert!(body(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_patch_may_leave_fields_out_but_not_null_them() {
        let patch: BookPatch = serde_json::from_str(r#"{"book_prize":3,"extra":1}"#).unwrap();
        assert_eq!((patch.name, patch.book_prize), (None, Some(3)));
        assert!(serde_json::from_str::<BookPatch>(r#"{"name":null}"#).is_err());
        assert!(serde_json::from_str::<BookPatch>(r#"{"book_prize":null}"#).is_err());
    }

    #[test]
    fn a_patch_needs_a_field_and_a_put_sets_all_four() {
        let empty: BookPatch = serde_json::from_str("{}").unwrap();
        assert_eq!(empty.into_request(1).unwrap_err().status, StatusCode::BAD_REQUEST);

        let body: BookBody =
            serde_json::from_str(r#"{"name":"n","Author":"a","Publisher":"p","book_prize":250}"#).unwrap();
        let request = BookPatch::from(body).into_request(7).unwrap();

        let expected = UpdateBookRequest {
            id: 7,
            name: Some("n".into()),
            author: Some("a".into()),
            publisher: Some("p".into()),
            book_prize: Some(250),
        };
        assert_eq!(request, expected);
    }

    #[test]
    fn a_book_has_exactly_the_tutorials_keys() {
        let book = Book {
            id: 7,
            name: "n".into(),
            author: "a".into(),
            publisher: "p".into(),
            book_prize: 250,
            ..Book::default()
        };
        let json = serde_json::to_value(BookJson::from(book)).unwrap();
        assert_eq!(json, serde_json::json!({"id":7,"name":"n","Author":"a","Publisher":"p","book_prize":250}));
    }
}
