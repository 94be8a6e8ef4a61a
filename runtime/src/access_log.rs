//! One log line and one metrics sample per gRPC request, inside a span
//! that carries the request id and continues the caller's trace.

use std::task::{Context, Poll};
use std::time::Instant;

use futures::future::BoxFuture;
use tower::{Layer, Service};
use tracing::Instrument as _;

use crate::metrics::GrpcMetrics;

/// The metadata key that carries a request id from the gateway (or any
/// client) into a service's logs.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// Wraps a service in [`AccessLog`].
#[derive(Debug, Clone)]
pub struct AccessLogLayer {
    metrics: GrpcMetrics,
}

impl AccessLogLayer {
    #[must_use]
    pub fn new(metrics: GrpcMetrics) -> Self {
        Self { metrics }
    }
}

impl<S> Layer<S> for AccessLogLayer {
    type Service = AccessLog<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AccessLog { inner, metrics: self.metrics.clone() }
    }
}

/// Runs each request in a `grpc` span (method, request id, trace id; a
/// child of the caller's `traceparent`), logs its gRPC status and latency
/// when the response headers are ready, and counts it in [`GrpcMetrics`].
#[derive(Debug, Clone)]
pub struct AccessLog<S> {
    inner: S,
    metrics: GrpcMetrics,
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
        let path = request.uri().path().to_owned();
        let span = tracing::info_span!(
            "grpc",
            method = %path,
            request_id = %request_id,
            trace_id = tracing::field::Empty,
        );
        crate::telemetry::continue_trace(&span, request.headers());
        let started = Instant::now();
        let response = span.in_scope(|| self.inner.call(request));
        let metrics = self.metrics.clone();
        Box::pin(
            async move {
                let result = response.await;
                let latency = started.elapsed();
                let latency_ms = latency.as_secs_f64() * 1000.0;
                match &result {
                    Ok(response) => {
                        // Errors are sent trailers-only, so their grpc-status is
                        // in the headers; a status in the trailers is OK here.
                        let code = response
                            .headers()
                            .get("grpc-status")
                            .map_or(tonic::Code::Ok, |value| tonic::Code::from_bytes(value.as_bytes()));
                        metrics.record(&path, code, latency);
                        tracing::info!(status = ?code, latency_ms, "request finished");
                    }
                    Err(error) => {
                        metrics.record(&path, tonic::Code::Internal, latency);
                        tracing::error!(%error, latency_ms, "request failed");
                    }
                }
                result
            }
            .instrument(span),
        )
    }
}
