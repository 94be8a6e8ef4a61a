//! gateway: the Flask tutorial's REST API (`/register`, `/login`, `/book`,
//! `/books`, `/users`) as HTTP-JSON, answered by calling auth-service and
//! books-service over gRPC.

mod app;
pub mod config;
mod error;
mod extract;
mod openapi;
mod routes;
mod upstream;

pub use app::App;
pub use config::Settings;
pub use error::ApiError;
pub use upstream::Upstreams;

/// The gateway's request decoding as plain functions, for the fuzz targets
/// in `fuzz/`: each runs the same code a request to a route runs, without
/// a server or upstream. Every input must give `Ok` or a 4xx [`ApiError`].
#[doc(hidden)]
pub mod fuzzing {
    use axum::extract::{FromRequest as _, FromRequestParts as _};
    use axum::http::{HeaderMap, HeaderValue, Request, header};

    use crate::ApiError;
    use crate::extract::{AppJson, AppQuery};
    use crate::routes::PageQuery;
    use crate::routes::accounts::{RegisterBody, basic_credentials};
    use crate::routes::books::{BookBody, BookId, BookPatch};

    /// Decodes `body` sent with `content_type` as the body of `POST
    /// /register` (`route` 0), `POST /book` (1) or `PATCH /books/{id}` (2).
    pub async fn decode_body(route: u8, content_type: &[u8], body: Vec<u8>) -> Result<(), ApiError> {
        let mut request = Request::new(axum::body::Body::from(body));
        if let Ok(value) = HeaderValue::from_bytes(content_type) {
            request.headers_mut().insert(header::CONTENT_TYPE, value);
        }
        match route % 3 {
            0 => AppJson::<RegisterBody>::from_request(request, &()).await.map(drop),
            1 => AppJson::<BookBody>::from_request(request, &()).await.map(drop),
            _ => AppJson::<BookPatch>::from_request(request, &()).await.map(drop),
        }
    }

    /// Decodes an `Authorization: Basic` value as `POST /login` does.
    #[must_use]
    pub fn decode_basic(value: &[u8]) -> Option<(String, String)> {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, HeaderValue::from_bytes(value).ok()?);
        basic_credentials(&headers)
    }

    /// Parses a `{book_id}` path segment and a list route's query string.
    pub async fn decode_path_and_query(book_id: &str, query: &str) -> Result<(), ApiError> {
        BookId::parse(book_id)?;
        let uri = format!("/books?{query}");
        let Ok(request) = Request::builder().uri(uri).body(()) else { return Ok(()) };
        let (mut parts, ()) = request.into_parts();
        let AppQuery(mut page) = AppQuery::<PageQuery>::from_request_parts(&mut parts, &()).await?;
        page.page_size(100)?;
        let _ = page.page_token();
        Ok(())
    }
}
