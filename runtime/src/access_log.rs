//! One log line per gRPC request, inside a span that carries the request id.

use std::task::{Context, Poll};
use std::time::Instant;

use futures::future::BoxFuture;
use tower::{Layer, Service};
use tracing::Instrument as _;

/// The metadata key that carries a request id from the gateway (or any
/// client) into a service's logs.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// Wraps a service in [`AccessLog`].
#[derive(Debug, Clone, Copy, Default)]
pub struct AccessLogLayer;

impl<S> Layer<S> for AccessLogLayer {
    type Service = AccessLog<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AccessLog { inner }
    }
}

/// Runs each request in a `grpc` span (method, request id) and logs its
/// gRPC status and latency when the response headers are ready.
#[derive(Debug, Clone)]
pub struct AccessLog<S> {
    inner: S,
}

impl<S, RequestBody, ResponseBody> Service<http::Request<RequestBody>> for AccessLog<S>
where
    S: Service<http::Request<RequestBody>, Response = http::Response<ResponseBody>>,
    S::Future: Send + 'static,
    S::Error: std::fmt::Display,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<RequestBody>) -> Self::Future {
        let request_id = request
            .headers()
            .get(REQUEST_ID_HEADER)
            .and_then(|value| value.to_str().ok())
            .map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_owned);
        let span = tracing::info_span!("grpc", method = %request.uri().path(), request_id = %request_id);
        let started = Instant::now();
        let response = span.in_scope(|| self.inner.call(request));
        Box::pin(
            async move {
                let result = response.await;
                let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
                match &result {
                    Ok(response) => {
                        // Errors are sent trailers-only, so their grpc-status is
                        // in the headers; a status in the trailers is OK here.
                        let code = response
                            .headers()
                            .get("grpc-status")
                            .map_or(tonic::Code::Ok, |value| tonic::Code::from_bytes(value.as_bytes()));
                        tracing::info!(status = ?code, latency_ms, "request finished");
                    }
                    Err(error) => tracing::error!(%error, latency_ms, "request failed"),
                }
                result
            }
            .instrument(span),
        )
    }
}
