//! The handlers' extractors: [`Call`] and [`Authenticated`], the metadata
//! of the upstream calls a request makes, and [`AppJson`] and [`AppQuery`],
//! whose every rejection is an [`ApiError`], so that malformed requests get
//! the same JSON error body as everything else.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{
    ConnectInfo, FromRequest, FromRequestParts, OptionalFromRequest, OptionalFromRequestParts, Request,
};
use axum::http::header::CONTENT_TYPE;
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use bookstore_runtime::REQUEST_ID_HEADER;
use serde::de::DeserializeOwned;
use tonic::metadata::AsciiMetadataValue;

use crate::app::AppState;
use crate::error::ApiError;

/// The 415 answer to a body that is not JSON.
pub const NOT_JSON: &str = "expected a request with `Content-Type: application/json`";

/// The metadata key carrying the client's address to auth-service.
const FORWARDED_FOR: &str = "x-forwarded-for";

/// What every upstream call of one HTTP request carries: the request id
/// (so both services log it), the deadline and, on protected routes, the
/// caller's token. Extracting it never fails.
#[derive(Debug, Clone)]
pub struct Call {
    request_id: Option<AsciiMetadataValue>,
    /// The HTTP client's address, sent as `x-forwarded-for` (auth-service
    /// limits Register and Login per client, trusting it from the gateway).
    /// An `X-Forwarded-For` the client sent is not passed on: the gateway
    /// is the edge.
    client: Option<AsciiMetadataValue>,
    /// `traceparent` (and `tracestate`): the callee continues this trace.
    trace_context: Vec<(&'static str, AsciiMetadataValue)>,
    authorization: Option<AsciiMetadataValue>,
    timeout: Duration,
}

impl Call {
    /// A gRPC request for `message` with this call's metadata and deadline.
    pub fn request<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        request.set_timeout(self.timeout);
        let metadata = request.metadata_mut();
        if let Some(request_id) = &self.request_id {
            metadata.insert(REQUEST_ID_HEADER, request_id.clone());
        }
        for (key, value) in &self.trace_context {
            metadata.insert(*key, value.clone());
        }
        if let Some(authorization) = &self.authorization {
            metadata.insert("authorization", authorization.clone());
        }
        if let Some(client) = &self.client {
            metadata.insert(FORWARDED_FOR, client.clone());
        }
        request
    }
}

impl FromRequestParts<AppState> for Call {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        // SetRequestId has put one there if the client did not.
        let request_id = parts
            .headers
            .get(REQUEST_ID_HEADER)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| AsciiMetadataValue::try_from(value).ok());
        let client = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .and_then(|ConnectInfo(peer)| AsciiMetadataValue::try_from(peer.ip().to_string()).ok());
        // Extractors run inside the request's span.
        let trace_context = bookstore_runtime::telemetry::current_trace_headers()
            .into_iter()
            .filter_map(|(key, value)| Some((key, AsciiMetadataValue::try_from(value).ok()?)))
            .collect();
        Ok(Self { request_id, client, trace_context, authorization: None, timeout: state.upstreams.timeout })
    }
}

/// A [`Call`] for a protected route: it forwards the caller's token, taken
/// from `Authorization: Bearer` or the tutorial's `x-access-tokens`, as
/// `authorization: Bearer <token>`. Rejects with 401 "a valid token is
/// missing" when there is none; whether the token is valid is for the
/// upstream to say.
#[derive(Debug, Clone)]
pub struct Authenticated(pub Call);

impl FromRequestParts<AppState> for Authenticated {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let token = bookstore_tokens::token_from_headers(&parts.headers).map_err(|_| ApiError::token_missing())?;
        // `token_from_headers` reads visible ASCII only, so this cannot fail.
        let authorization =
            AsciiMetadataValue::try_from(format!("Bearer {token}")).map_err(|_| ApiError::token_missing())?;
        let Ok(call) = Call::from_request_parts(parts, state).await;
        Ok(Self(Call { authorization: Some(authorization), ..call }))
    }
}

/// `Option<Authenticated>`: `None` when the request carries no token.
impl OptionalFromRequestParts<AppState> for Authenticated {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Option<Self>, Self::Rejection> {
        Ok(<Self as FromRequestParts<AppState>>::from_request_parts(parts, state).await.ok())
    }
}

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
            return Err(ApiError::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, NOT_JSON));
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
