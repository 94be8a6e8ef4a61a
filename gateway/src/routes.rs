//! The tutorial's REST routes, plus health, readiness and JSON answers for
//! unknown routes and methods.

mod accounts;
mod books;
mod health;

use axum::Router;
use axum::http::{Method, StatusCode, Uri};
use axum::routing::{get, post};
use serde::Deserialize;

use crate::error::ApiError;
use crate::upstream::Upstreams;

/// What the handlers share.
#[derive(Debug, Clone)]
pub struct AppState {
    pub upstreams: Upstreams,
    /// Page size when a list request has no `limit`.
    pub default_page_size: u32,
}

/// Every route, without middleware.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/register", post(accounts::register))
        .route("/login", post(accounts::login))
        .route("/users", get(accounts::list_users))
        .route("/book", post(books::create_book))
        .route("/books", get(books::list_books))
        .route(
            "/books/{book_id}",
            get(books::get_book).put(books::replace_book).patch(books::update_book).delete(books::delete_book),
        )
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .fallback(route_not_found)
        // After the routes: it applies to the routes registered before it.
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
}

async fn route_not_found(uri: Uri) -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, format!("no route for {}", uri.path()))
}

/// axum still adds the `Allow` header to this answer.
async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::new(StatusCode::METHOD_NOT_ALLOWED, format!("method {method} is not allowed on {}", uri.path()))
}

/// `?limit=&page_token=` of the list routes.
#[derive(Debug, Default, Deserialize)]
struct PageQuery {
    limit: Option<u32>,
    page_token: Option<String>,
}

impl PageQuery {
    /// The `page_size` to ask for: `limit`, else the configured default.
    fn page_size(&self, default_page_size: u32) -> Result<i32, ApiError> {
        use bookstore_proto::pagination::MAX_PAGE_SIZE;
        let size = self.limit.unwrap_or(default_page_size);
        if !(1..=MAX_PAGE_SIZE).contains(&size) {
            return Err(ApiError::bad_request(format!("limit: must be between 1 and {MAX_PAGE_SIZE}, got {size}")));
        }
        i32::try_from(size).map_err(|_| ApiError::bad_request("limit: too large"))
    }

    fn page_token(&mut self) -> String {
        self.page_token.take().unwrap_or_default()
    }
}

/// The `next_page_token` to show: none on the last page.
fn next_page(token: String) -> Option<String> {
    Some(token).filter(|token| !token.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limit_defaults_and_is_bounded() {
        let query = |limit| PageQuery { limit, page_token: None };
        assert_eq!(query(None).page_size(100), Ok(100));
        assert_eq!(query(Some(1)).page_size(100), Ok(1));
        assert_eq!(query(Some(1000)).page_size(100), Ok(1000));
        assert_eq!(query(Some(0)).page_size(100).unwrap_err().status, StatusCode::BAD_REQUEST);
        assert_eq!(query(Some(1001)).page_size(100).unwrap_err().status, StatusCode::BAD_REQUEST);
    }

    #[test]
    fn an_empty_next_page_token_is_left_out() {
        assert_eq!(next_page(String::new()), None);
        assert_eq!(next_page("abc".into()), Some("abc".into()));
    }
}
