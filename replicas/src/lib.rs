//! Client-side load balancing over the replicas of one gRPC service.
//!
//! [`Replicas`] is a tower service that tonic's generated clients accept in
//! place of a `Channel` (`AuthServiceClient::new(replicas)`). Each call goes
//! to the next replica in turn (round robin), skipping replicas that refused
//! a connection recently; a skipped replica is tried again after a back-off,
//! so it rejoins by itself once it is back.
//!
//! Retries never repeat a write that may have happened:
//! - a call whose connection could not be made (refused, unreachable, connect
//!   timeout) never reached the replica, so any call is retried on the next
//!   one;
//! - a call that failed at the transport level after it was sent (the
//!   replica died mid-call) is retried only when its method is idempotent,
//!   as told by the predicate given to [`Replicas::new`].
//!
//! Statuses a replica answered (even `Unavailable`) are returned as they
//! are: the replica decided. Request bodies are buffered for the retries,
//! which suits unary calls (all of Bookstore's).

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use bytes::Bytes;
use futures::future::BoxFuture;
use http_body_util::{BodyExt as _, Full};
use tonic::body::Body;
use tonic::transport::{Channel, Endpoint};
use tower::{Service, ServiceExt as _};

/// The error of a call that no replica completed.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// How long a replica that refused a connection is skipped, at first; each
/// further refusal doubles it, up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_millis(250);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// The replicas of one service, as a load-balancing gRPC transport.
#[derive(Clone)]
pub struct Replicas {
    inner: Arc<Inner>,
}

struct Inner {
    replicas: Vec<Replica>,
    next: AtomicUsize,
    idempotent: fn(&str) -> bool,
}

struct Replica {
    url: String,
    channel: Channel,
    health: Mutex<Health>,
}

#[derive(Default)]
struct Health {
    /// Skip until then; `None` while the replica answers.
    down_until: Option<Instant>,
    backoff: Option<Duration>,
}

impl std::fmt::Debug for Replicas {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let urls: Vec<&str> = self.inner.replicas.iter().map(|replica| replica.url.as_str()).collect();
        f.debug_struct("Replicas").field("urls", &urls).finish_non_exhaustive()
    }
}

impl Replicas {
    /// Lazily connected replicas from a comma-separated list of URLs
    /// (`http://a:50051,http://b:50051`). `configure` sets up each endpoint
    /// (timeouts, keep-alive); `idempotent` tells from a method path
    /// (`/package.Service/Method`) whether a call may be repeated.
    pub fn new(
        urls: &str,
        configure: impl Fn(Endpoint) -> Endpoint,
        idempotent: fn(&str) -> bool,
    ) -> anyhow::Result<Self> {
        let replicas = urls
            .split(',')
            .map(str::trim)
            .filter(|url| !url.is_empty())
            .map(|url| {
                let endpoint =
                    Endpoint::from_shared(url.to_owned()).with_context(|| format!("invalid gRPC URL {url:?}"))?;
                Ok(Replica {
                    url: url.to_owned(),
                    channel: configure(endpoint).connect_lazy(),
                    health: Mutex::new(Health::default()),
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        anyhow::ensure!(!replicas.is_empty(), "no gRPC URL given");
        Ok(Self { inner: Arc::new(Inner { replicas, next: AtomicUsize::new(0), idempotent }) })
    }

    /// How many replicas there are.
    #[must_use]
    pub fn len(&self) -> usize {
        self.inner.replicas.len()
    }

    /// Never: there is at least one replica.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.inner.replicas.is_empty()
    }

    /// The replicas in the order to try for one call: round robin from the
    /// next one, replicas that are up first, skipped ones last (as a last
    /// resort rather than failing outright).
    fn attempt_order(&self) -> Vec<usize> {
        let count = self.inner.replicas.len();
        let start = self.inner.next.fetch_add(1, Ordering::Relaxed);
        let now = Instant::now();
        let (mut up, mut down): (Vec<usize>, Vec<usize>) =
            (0..count).map(|offset| (start + offset) % count).partition(|&index| self.inner.replicas[index].is_up(now));
        up.append(&mut down);
        up
    }
}

impl Replica {
    fn is_up(&self, now: Instant) -> bool {
        self.health.lock().map_or(true, |health| health.down_until.is_none_or(|until| until <= now))
    }

    fn mark_up(&self) {
        if let Ok(mut health) = self.health.lock() {
            if health.down_until.take().is_some() {
                tracing::info!(replica = %self.url, "replica is back");
            }
            health.backoff = None;
        }
    }

    fn mark_down(&self) {
        if let Ok(mut health) = self.health.lock() {
            let backoff = health.backoff.map_or(MIN_BACKOFF, |backoff| (backoff * 2).min(MAX_BACKOFF));
            health.backoff = Some(backoff);
            health.down_until = Some(Instant::now() + backoff);
            tracing::warn!(replica = %self.url, ?backoff, "cannot connect to the replica; skipping it");
        }
    }
}

/// Whether the call surely never reached the replica: tonic failed to
/// establish the connection (refused, unreachable, connect timeout). An I/O
/// error on a connection that was already open does not count: the replica
/// may have received, even committed, the call.
fn never_reached(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(error) = source {
        if error.is::<tonic::ConnectError>() {
            return true;
        }
        source = error.source();
    }
    false
}

impl Service<http::Request<Body>> for Replicas {
    type Response = http::Response<Body>;
    type Error = BoxError;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // Each replica's channel is made ready in `call`.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let replicas = self.clone();
        Box::pin(async move {
            let (parts, body) = request.into_parts();
            let body: Bytes = body.collect().await?.to_bytes();
            let idempotent = (replicas.inner.idempotent)(parts.uri.path());
            let mut last_error: Option<BoxError> = None;
            for index in replicas.attempt_order() {
                let replica = &replicas.inner.replicas[index];
                let mut attempt = http::Request::builder()
                    .method(parts.method.clone())
                    .uri(parts.uri.clone())
                    .version(parts.version)
                    .body(Body::new(Full::new(body.clone())))?;
                *attempt.headers_mut() = parts.headers.clone();
                let outcome = match replica.channel.clone().ready_oneshot().await {
                    Ok(channel) => channel.oneshot(attempt).await,
                    Err(error) => Err(error),
                };
                match outcome {
                    Ok(response) => {
                        replica.mark_up();
                        return Ok(response);
                    }
                    Err(error) => {
                        let refused = never_reached(&error);
                        if refused {
                            replica.mark_down();
                        }
                        tracing::debug!(replica = %replica.url, %error, refused, idempotent, "replica call failed");
                        if !(refused || idempotent) {
                            return Err(error.into());
                        }
                        last_error = Some(error.into());
                    }
                }
            }
            Err(last_error.unwrap_or_else(|| "no replica to call".into()))
        })
    }
}
