//! The gateway's one error answer, and its one mapping from gRPC codes to
//! HTTP statuses.

use axum::Json;
use axum::extract::rejection::{BytesRejection, JsonRejection, PathRejection, QueryRejection};
use axum::http::header::RETRY_AFTER;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use tonic::Code;

/// The tutorial's message for a token that is missing.
pub const TOKEN_MISSING: &str = "a valid token is missing";
/// The tutorial's message for a token that is not valid (bad signature,
/// expired, unknown key, ...); the reason goes in `detail`.
pub const TOKEN_INVALID: &str = "token is invalid";

/// An error answer: `status` with the JSON body `{"message": .., "detail": ..}`
/// (`detail` only when there is one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    /// What is wrong, for the caller; never internals.
    pub message: String,
    /// More about it, when there is something safe to add.
    pub detail: Option<String>,
    /// Seconds to wait before trying again, sent as `Retry-After` (429, 503).
    pub retry_after: Option<u64>,
}

/// Every error answer's JSON body.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct ErrorBody<'a> {
    /// What is wrong.
    message: &'a str,
    /// More about it, when there is something safe to add.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = String)]
    detail: Option<&'a str>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self { status, message: message.into(), detail: None, retry_after: None }
    }

    #[must_use]
    pub fn with_retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    #[must_use]
    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    /// 401: no token in `Authorization: Bearer` or `x-access-tokens`.
    pub fn token_missing() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, TOKEN_MISSING)
    }

    /// 500 with nothing but "internal error"; log the cause before.
    pub fn internal() -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody { message: &self.message, detail: self.detail.as_deref() };
        let mut response = (self.status, Json(body)).into_response();
        if let Some(seconds) = self.retry_after {
            response.headers_mut().insert(RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

/// The HTTP status for a gRPC status code: the gateway's only such table
/// (after grpc-gateway's `runtime/errors.go`).
#[must_use]
pub fn http_status(code: Code) -> StatusCode {
    match code {
        Code::Ok => StatusCode::OK,
        Code::InvalidArgument | Code::FailedPrecondition | Code::OutOfRange => StatusCode::BAD_REQUEST,
        Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        Code::PermissionDenied => StatusCode::FORBIDDEN,
        Code::NotFound => StatusCode::NOT_FOUND,
        Code::AlreadyExists | Code::Aborted => StatusCode::CONFLICT,
        Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        // tonic reports its own client-side deadline as `Cancelled`
        // ("Timeout expired"), so both mean the upstream took too long.
        Code::DeadlineExceeded | Code::Cancelled => StatusCode::GATEWAY_TIMEOUT,
        Code::Unknown | Code::Unimplemented | Code::Internal | Code::DataLoss => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// The code a call ended with, as the table above sees it: the upstream's,
/// except that a call whose connection broke before the answer (the replica
/// was killed, its connection reset) is `Unavailable`, like a replica that
/// could not be reached. tonic reports such a break as `Unknown` or
/// `Internal` (an HTTP/2 or I/O error, no gRPC status); it makes that status
/// on this side from the transport error, which it keeps as the status's
/// `source`, whereas a status an upstream answered never has one.
fn upstream_code(status: &tonic::Status) -> Code {
    use std::error::Error as _;
    match status.code() {
        Code::Unknown | Code::Internal if status.source().is_some() => Code::Unavailable,
        code => code,
    }
}

impl From<tonic::Status> for ApiError {
    /// Client errors keep the upstream's message (the services write them
    /// for the caller); server errors get a fixed one and are logged.
    fn from(status: tonic::Status) -> Self {
        let code = upstream_code(&status);
        let http = http_status(code);
        let upstream_message = status.message();
        match code {
            Code::Unauthenticated => Self::new(http, TOKEN_INVALID).with_detail(upstream_message),
            Code::Unavailable => {
                tracing::warn!(upstream_message, "upstream unavailable");
                Self::new(http, "service unavailable, retry later").with_retry_after(1)
            }
            // A limit was hit: keep the upstream's message and its wait.
            Code::ResourceExhausted => {
                let retry_after = status
                    .metadata()
                    .get(bookstore_runtime::RETRY_AFTER)
                    .and_then(|value| value.to_str().ok())
                    .and_then(|value| value.parse::<u64>().ok())
                    .unwrap_or(1);
                Self::new(http, upstream_message).with_retry_after(retry_after)
            }
            Code::DeadlineExceeded | Code::Cancelled => {
                tracing::warn!(code = ?status.code(), upstream_message, "upstream timed out");
                Self::new(http, "upstream service timed out, retry later")
            }
            _ if http.is_server_error() => {
                tracing::error!(code = ?status.code(), upstream_message, "upstream failed");
                Self::internal()
            }
            code if upstream_message.is_empty() => Self::new(http, code.description()),
            _ => Self::new(http, upstream_message),
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        let status = match &rejection {
            // axum answers 422 for well-formed JSON of the wrong shape; the
            // tutorial's contract (and most clients) expect 400.
            JsonRejection::JsonDataError(_) => StatusCode::BAD_REQUEST,
            other => other.status(),
        };
        Self::new(status, rejection.body_text())
    }
}

impl From<BytesRejection> for ApiError {
    fn from(rejection: BytesRejection) -> Self {
        Self::new(rejection.status(), rejection.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        Self::bad_request(rejection.body_text())
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        Self::new(rejection.status(), rejection.body_text())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_errors_keep_the_upstream_message() {
        let error = ApiError::from(tonic::Status::invalid_argument("name: must not be empty"));
        assert_eq!(error, ApiError::bad_request("name: must not be empty"));
        let error = ApiError::from(tonic::Status::already_exists("name is taken"));
        assert_eq!(error.status, StatusCode::CONFLICT);
        assert_eq!(error.message, "name is taken");
    }

    #[test]
    fn resource_exhausted_is_429_with_the_upstreams_retry_after() {
        let mut status = tonic::Status::resource_exhausted("too many failed logins for this name, retry in 8 s");
        status.metadata_mut().insert("retry-after", tonic::metadata::MetadataValue::from(8u64));
        let response = ApiError::from(status).into_response();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()[RETRY_AFTER], "8");
        let without = ApiError::from(tonic::Status::resource_exhausted("busy"));
        assert_eq!(without.retry_after, Some(1));
    }

    #[test]
    fn unauthenticated_is_the_tutorials_invalid_token() {
        let error = ApiError::from(tonic::Status::unauthenticated("token has expired"));
        assert_eq!(error.status, StatusCode::UNAUTHORIZED);
        assert_eq!(error.message, TOKEN_INVALID);
        assert_eq!(error.detail.as_deref(), Some("token has expired"));
    }

    #[test]
    fn server_errors_never_leak_the_upstream_message() {
        for status in [
            tonic::Status::internal("db at /var/lib/x exploded"),
            tonic::Status::unknown("panic at grpc.rs:12"),
            tonic::Status::data_loss("disk"),
            tonic::Status::unimplemented("bookstore.books.v1.BooksService/Nope"),
        ] {
            let error = ApiError::from(status);
            assert_eq!(error, ApiError::internal());
        }
        let error = ApiError::from(tonic::Status::unavailable("tcp connect error: 127.0.0.1:50052"));
        assert_eq!(error.status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(!error.message.contains("127.0.0.1"));
    }

    #[test]
    fn a_connection_that_broke_mid_call_is_503_but_an_answered_unknown_is_500() {
        // As tonic's client reports a reset connection: made from the I/O
        // error, which it keeps as the source.
        let reset = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
        let broken = tonic::Status::from_error(Box::new(reset));
        assert_eq!(broken.code(), Code::Unknown);
        let error = ApiError::from(broken);
        assert_eq!(error.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(error.retry_after, Some(1));

        let answered = tonic::Status::unknown("panic at grpc.rs:12");
        assert_eq!(ApiError::from(answered), ApiError::internal());
    }

    #[test]
    fn every_code_has_a_status() {
        let expected = [
            (Code::InvalidArgument, 400),
            (Code::FailedPrecondition, 400),
            (Code::OutOfRange, 400),
            (Code::Unauthenticated, 401),
            (Code::PermissionDenied, 403),
            (Code::NotFound, 404),
            (Code::AlreadyExists, 409),
            (Code::Aborted, 409),
            (Code::ResourceExhausted, 429),
            (Code::Unavailable, 503),
            (Code::DeadlineExceeded, 504),
            (Code::Cancelled, 504),
            (Code::Internal, 500),
            (Code::Unknown, 500),
            (Code::Unimplemented, 500),
            (Code::DataLoss, 500),
        ];
        for (code, status) in expected {
            assert_eq!(http_status(code).as_u16(), status, "{code:?}");
        }
    }

    #[tokio::test]
    async fn the_body_is_json_with_a_message() {
        let response = ApiError::bad_request("limit: must be between 1 and 1000").into_response();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        assert_eq!(response.headers()["content-type"], "application/json");
        let bytes = axum::body::to_bytes(response.into_body(), 1024).await.unwrap();
        assert_eq!(&bytes[..], br#"{"message":"limit: must be between 1 and 1000"}"#);
    }
}
