//! Extractors whose every rejection is an [`ApiError`], so that malformed
//! requests get the same JSON error body as everything else.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, OptionalFromRequest, Request};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, StatusCode};
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// A JSON request body, like [`axum::Json`] (same checks, same messages,
/// `field: reason` paths), with two differences: rejections are
/// [`ApiError`]s (a wrong field type is 400, not 422), and the body must be a
/// JSON object; serde would otherwise fill a struct from an array such as
/// `["alice", "password"]`.
#[derive(Debug, Clone, Copy, Default)]
pub struct AppJson<T>(pub T);

impl<T, S> FromRequest<S> for AppJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !has_json_content_type(request.headers()) {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "expected a request with `Content-Type: application/json`",
            ));
        }
        let bytes = Bytes::from_request(request, state).await?;
        if bytes.iter().find(|byte| !byte.is_ascii_whitespace()) != Some(&b'{') {
            return Err(ApiError::bad_request("the request body must be a JSON object"));
        }
        let Json(value) = Json::<T>::from_bytes(&bytes)?;
        Ok(Self(value))
    }
}

/// An optional JSON body (`Option<AppJson<T>>`): `None` when the request has
/// no `Content-Type` (as with [`axum::Json`]); otherwise as [`AppJson`].
impl<T, S> OptionalFromRequest<S> for AppJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Option<Self>, Self::Rejection> {
        if !request.headers().contains_key(CONTENT_TYPE) {
            return Ok(None);
        }
        <Self as FromRequest<S>>::from_request(request, state).await.map(Some)
    }
}

/// `application/json`, or any `application/*+json`, with any parameters:
/// what [`axum::Json`] accepts.
fn has_json_content_type(headers: &HeaderMap) -> bool {
    let Some(content_type) = headers.get(CONTENT_TYPE).and_then(|value| value.to_str().ok()) else {
        return false;
    };
    let essence = content_type.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    let Some(subtype) = essence.strip_prefix("application/") else {
        return false;
    };
    subtype == "json" || subtype.ends_with("+json")
}

/// A query string, like [`axum::extract::Query`], rejected as a 400 [`ApiError`].
#[derive(Debug, Clone, Copy, Default, FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct AppQuery<T>(pub T);

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn with_content_type(value: &'static str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(value));
        headers
    }

    #[test]
    fn json_content_types_are_recognised() {
        for accepted in ["application/json", "Application/JSON; charset=utf-8", "application/problem+json"] {
            assert!(has_json_content_type(&with_content_type(accepted)), "{accepted}");
        }
        for refused in ["text/plain", "text/json", "application/jsonx", "application/x-www-form-urlencoded", ""] {
            assert!(!has_json_content_type(&with_content_type(refused)), "{refused}");
        }
        assert!(!has_json_content_type(&HeaderMap::new()));
    }
}
