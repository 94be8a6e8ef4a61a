//! The tutorial's REST routes, plus health, readiness and JSON answers for
//! unknown routes and methods.

pub(crate) mod accounts;
pub(crate) mod books;
mod health;
mod sessions;

use axum::Router;
use axum::http::{Method, StatusCode, Uri};
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;
use crate::error::ApiError;
use crate::openapi;

/// Every route, without middleware, plus `/openapi.json` and `/docs`.
///
/// Routes are registered only through `routes!`, which takes each path and
/// method from the handler's `#[utoipa::path]`, so whatever is served is
/// documented (a test checks there is no other way in).
pub fn router(state: AppState) -> Router {
    let (router, api) = OpenApiRouter::with_openapi(openapi::base())
        .routes(routes!(accounts::register))
        .routes(routes!(accounts::login))
        .routes(routes!(accounts::list_users))
        .routes(routes!(sessions::refresh))
        .routes(routes!(sessions::logout))
        .routes(routes!(sessions::change_password))
        .routes(routes!(sessions::delete_account))
        .routes(routes!(books::create_book))
        .routes(routes!(books::list_books))
        .routes(routes!(books::get_book, books::replace_book, books::update_book, books::delete_book))
        .routes(routes!(health::healthz))
        .routes(routes!(health::readyz))
        .split_for_parts();
    router
        .merge(openapi::docs_router(openapi::complete(api)))
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

/// A success answered with a message only.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(examples(json!({"message": "registered successfully"})))]
pub struct MessageBody {
    pub message: &'static str,
}

/// `?limit=&page_token=` of the list routes.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct PageQuery {
    /// How many items to return at most (default: the gateway's
    /// `GATEWAY_DEFAULT_PAGE_SIZE`, 100 unless configured).
    #[param(value_type = u32, required = false, minimum = 1, maximum = 1000)]
    limit: Option<u32>,
    /// The `next_page_token` of the previous page, to get the next one.
    #[param(value_type = String, required = false)]
    page_token: Option<String>,
}

impl PageQuery {
    /// The `page_size` to ask for: `limit`, else the configured default.
    pub(crate) fn page_size(&self, default_page_size: u32) -> Result<i32, ApiError> {
        use bookstore_proto::pagination::MAX_PAGE_SIZE;
        let size = self.limit.unwrap_or(default_page_size);
        if !(1..=MAX_PAGE_SIZE).contains(&size) {
            return Err(ApiError::bad_request(format!("limit: must be between 1 and {MAX_PAGE_SIZE}, got {size}")));
        }
        i32::try_from(size).map_err(|_| ApiError::bad_request("limit: too large"))
    }

    pub(crate) fn page_token(&mut self) -> String {
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
