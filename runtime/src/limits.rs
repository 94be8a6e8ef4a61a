//! What a gRPC server accepts at most: message size, time per request and
//! requests in progress. Past the concurrency limit a request is refused at
//! once (`ResourceExhausted`, `retry-after: 1`) instead of queueing without
//! bound, so an overloaded service answers fast and stays responsive.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tonic::body::Body;
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
    S: Service<http::Request<RequestBody>, Response = http::Response<Body>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = ShedLoadFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<RequestBody>) -> Self::Future {
        if request.uri().path().starts_with(HEALTH_PATH_PREFIX) {
            return ShedLoadFuture::Admitted { response: self.inner.call(request), permit: None };
        }
        let Ok(permit) = Arc::clone(&self.permits).try_acquire_owned() else {
            tracing::warn!(limit = self.limit, "overloaded: request shed");
            let mut status = tonic::Status::resource_exhausted(format!(
                "server is overloaded ({} requests in progress), retry later",
                self.limit
            ));
            status.metadata_mut().insert(RETRY_AFTER, tonic::metadata::MetadataValue::from(1u64));
            return ShedLoadFuture::Refused { refusal: Some(status.into_http()) };
        };
        ShedLoadFuture::Admitted { response: self.inner.call(request), permit: Some(permit) }
    }
}

pin_project_lite::pin_project! {
    /// What [`ShedLoad`] answers: the inner service's response, the request
    /// holding its permit until the response is ready; or a refusal, at
    /// once. A future of its own rather than a boxed one: no allocation per
    /// request.
    #[project = ShedLoadFutureProjection]
    pub enum ShedLoadFuture<F> {
        Admitted { #[pin] response: F, permit: Option<OwnedSemaphorePermit> },
        Refused { refusal: Option<http::Response<Body>> },
    }
}

impl<F, E> Future for ShedLoadFuture<F>
where
    F: Future<Output = Result<http::Response<Body>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            ShedLoadFutureProjection::Admitted { response, permit } => {
                let response = std::task::ready!(response.poll(cx));
                // The request stops counting once its response is ready.
                drop(permit.take());
                Poll::Ready(response)
            }
            ShedLoadFutureProjection::Refused { refusal } => match refusal.take() {
                Some(refusal) => Poll::Ready(Ok(refusal)),
                None => panic!("BUG: ShedLoadFuture polled after it completed"),
            },
        }
    }
}

/// The metadata key of a `ResourceExhausted` answer that says, in whole
/// seconds, when to try again; the gateway turns it into `Retry-After`.
pub const RETRY_AFTER: &str = "retry-after";
