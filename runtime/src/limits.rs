//! What a gRPC server accepts at most: message size, time per request and
//! requests in progress. Past the concurrency limit a request is refused at
//! once (`ResourceExhausted`, `retry-after: 1`) instead of queueing without
//! bound, so an overloaded service answers fast and stays responsive.

use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::sync::Semaphore;
use tower::{Layer, Service};

/// The health service's path prefix: never shed, so that probes tell a busy
/// service from a dead one.
const HEALTH_PATH_PREFIX: &str = "/grpc.health.v1.Health/";

/// Limits of one gRPC server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerLimits {
    /// Largest request message decoded, in bytes; larger ones are refused
    /// with `OutOfRange` by tonic.
    pub max_message_bytes: usize,
    /// Longest a request may run; then it is cancelled (`Cancelled`,
    /// "Timeout expired"). A shorter `grpc-timeout` from the client wins.
    pub request_timeout: Duration,
    /// Requests in progress at once, over all connections; more are refused
    /// with `ResourceExhausted` without waiting.
    pub max_concurrent_requests: usize,
}

impl ServerLimits {
    /// Defaults: 64 KiB messages (a book or a login is under 2 KiB), 30 s
    /// per request, 512 requests in progress.
    pub const DEFAULT: Self =
        Self { max_message_bytes: 64 * 1024, request_timeout: Duration::from_secs(30), max_concurrent_requests: 512 };
}

impl Default for ServerLimits {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Wraps a service in [`ShedLoad`].
#[derive(Debug, Clone)]
pub struct ShedLoadLayer {
    permits: Arc<Semaphore>,
    limit: usize,
}

impl ShedLoadLayer {
    pub fn new(max_concurrent_requests: usize) -> Self {
        let limit = max_concurrent_requests.max(1);
        Self { permits: Arc::new(Semaphore::new(limit)), limit }
    }
}

impl<S> Layer<S> for ShedLoadLayer {
    type Service = ShedLoad<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ShedLoad { inner, permits: Arc::clone(&self.permits), limit: self.limit }
    }
}

/// Lets at most `limit` requests (health checks aside) run at once and
/// answers the others `ResourceExhausted` immediately.
#[derive(Debug, Clone)]
pub struct ShedLoad<S> {
    inner: S,
    permits: Arc<Semaphore>,
    limit: usize,
}

impl<S, RequestBody> Service<http::Request<RequestBody>> for ShedLoad<S>
where
    S: Service<http::Request<RequestBody>, Response = http::Response<tonic::body::Body>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<RequestBody>) -> Self::Future {
        if request.uri().path().starts_with(HEALTH_PATH_PREFIX) {
            return Box::pin(self.inner.call(request));
        }
        let Ok(permit) = Arc::clone(&self.permits).try_acquire_owned() else {
            tracing::warn!(limit = self.limit, "overloaded: request shed");
            let mut status = tonic::Status::resource_exhausted(format!(
                "server is overloaded ({} requests in progress), retry later",
                self.limit
            ));
            status.metadata_mut().insert(RETRY_AFTER, tonic::metadata::MetadataValue::from(1u64));
            return Box::pin(std::future::ready(Ok(status.into_http())));
        };
        let response = self.inner.call(request);
        Box::pin(async move {
            let response = response.await;
            drop(permit);
            response
        })
    }
}

/// The metadata key of a `ResourceExhausted` answer that says, in whole
/// seconds, when to try again; the gateway turns it into `Retry-After`.
pub const RETRY_AFTER: &str = "retry-after";
