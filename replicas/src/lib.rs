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
//!   timeout), or that was still queued when its connection closed, or whose
//!   stream the replica's GOAWAY refused (a replica shutting down), never
//!   reached the replica, so any call is retried on the next one;
//! - a call that failed at the transport level after it was sent (the
//!   replica died mid-call) is retried only when its method is idempotent,
//!   as told by the predicate given to [`Replicas::new`].
//!
//! Statuses a replica answered (even `Unavailable`) are returned as they
//! are: the replica decided.
//!
//! Replicas are URLs (`http://10.0.0.5:50052`, or `https://` with TLS), or `dns://NAME:PORT`: every
//! address NAME resolves to, resolved again every 10 s, so that a
//! Kubernetes headless Service (or any DNS name with several records) is
//! balanced per call, replicas joining and leaving as the records change.
//! With TLS ([`ClientTls`]) every replica is called over TLS, its
//! certificate verified for the URL's host, or for NAME of a `dns://` source
//! (not for the addresses NAME resolves to). Request bodies are buffered for the retries,
//! which suits unary calls (all of Bookstore's).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use bookstore_tls::ClientTls;
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
/// How often `dns://` names are resolved again.
const DNS_REFRESH: Duration = Duration::from_secs(10);

/// The replicas of one service, as a load-balancing gRPC transport.
#[derive(Clone)]
pub struct Replicas {
    inner: Arc<Inner>,
}

type Configure = dyn Fn(Endpoint) -> Endpoint + Send + Sync;

struct Inner {
    /// The current replicas; replaced whole when `dns://` names resolve
    /// differently, keeping the `Replica` (connection, health) of every URL
    /// that stays.
    replicas: RwLock<Arc<Vec<Arc<Replica>>>>,
    sources: Vec<Source>,
    configure: Box<Configure>,
    tls: Option<ClientTls>,
    next: AtomicUsize,
    idempotent: fn(&str) -> bool,
}

/// Where replicas come from.
#[derive(Debug, Clone)]
enum Source {
    Url(String),
    /// `dns://host:port`: every address `host` resolves to.
    Dns {
        host: String,
        port: u16,
    },
}

impl Source {
    fn parse(text: &str, tls: bool) -> anyhow::Result<Self> {
        let Some(authority) = text.strip_prefix("dns://") else {
            let https = text.starts_with("https://");
            anyhow::ensure!(
                https == tls,
                "{text:?}: {}",
                if tls {
                    "TLS is configured for this upstream (a CA bundle), so its URLs are https:// or dns://"
                } else {
                    "an https:// URL needs the CA bundle to verify the server's certificate with"
                }
            );
            return Ok(Self::Url(text.to_owned()));
        };
        let (host, port) = authority
            .trim_end_matches('/')
            .rsplit_once(':')
            .with_context(|| format!("{text:?}: expected dns://NAME:PORT"))?;
        let port = port.parse().with_context(|| format!("{text:?}: invalid port"))?;
        Ok(Self::Dns { host: host.trim_start_matches('[').trim_end_matches(']').to_owned(), port })
    }

    /// The URL to use until the name has been resolved (or when it cannot
    /// be): the name itself, resolved by the connector.
    fn initial_url(&self, tls: bool) -> String {
        match self {
            Self::Url(url) => url.clone(),
            Self::Dns { host, port } => address_url(host, *port, tls),
        }
    }

    /// The name a replica's certificate must be valid for: the URL's host
    /// (by default), or the `dns://` name whatever address it resolved to.
    fn server_name(&self) -> Option<&str> {
        match self {
            Self::Url(_) => None,
            Self::Dns { host, .. } => Some(host),
        }
    }
}

fn address_url(host: impl std::fmt::Display, port: u16, tls: bool) -> String {
    let scheme = if tls { "https" } else { "http" };
    format!("{scheme}://{host}:{port}")
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
        f.debug_struct("Replicas").field("sources", &self.inner.sources).finish_non_exhaustive()
    }
}

impl Replicas {
    /// Lazily connected replicas from a comma-separated list of URLs
    /// (`http://a:50051,http://b:50051`) and `dns://NAME:PORT` names.
    /// `configure` sets up each endpoint (timeouts, keep-alive);
    /// `idempotent` tells from a method path (`/package.Service/Method`)
    /// whether a call may be repeated. Names are resolved in the background
    /// when a tokio runtime is running. With `tls`, URLs are `https://` (or
    /// `dns://`); without, `http://` (or `dns://`).
    pub fn new(
        urls: &str,
        tls: Option<ClientTls>,
        configure: impl Fn(Endpoint) -> Endpoint + Send + Sync + 'static,
        idempotent: fn(&str) -> bool,
    ) -> anyhow::Result<Self> {
        let sources = urls
            .split(',')
            .map(str::trim)
            .filter(|url| !url.is_empty())
            .map(|url| Source::parse(url, tls.is_some()))
            .collect::<anyhow::Result<Vec<_>>>()?;
        anyhow::ensure!(!sources.is_empty(), "no gRPC URL given");
        let configure: Box<Configure> = Box::new(configure);
        let replicas = sources
            .iter()
            .map(|source| {
                Replica::new(source.initial_url(tls.is_some()), source.server_name(), &*configure, tls.as_ref())
                    .map(Arc::new)
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let inner = Arc::new(Inner {
            replicas: RwLock::new(Arc::new(replicas)),
            sources,
            configure,
            tls,
            next: AtomicUsize::new(0),
            idempotent,
        });
        let resolves = inner.sources.iter().any(|source| matches!(source, Source::Dns { .. }));
        if let (true, Ok(runtime)) = (resolves, tokio::runtime::Handle::try_current()) {
            runtime.spawn(resolve_periodically(Arc::downgrade(&inner)));
        }
        Ok(Self { inner })
    }

    /// The URLs calls currently go to.
    #[must_use]
    pub fn endpoints(&self) -> Vec<String> {
        self.snapshot().iter().map(|replica| replica.url.clone()).collect()
    }

    fn snapshot(&self) -> Arc<Vec<Arc<Replica>>> {
        self.inner
            .replicas
            .read()
            .map_or_else(|poisoned| Arc::clone(&poisoned.into_inner()), |replicas| Arc::clone(&replicas))
    }

    /// The replicas in the order to try for one call: round robin from the
    /// next one, replicas that are up first, skipped ones last (as a last
    /// resort rather than failing outright).
    fn attempt_order(&self, replicas: &[Arc<Replica>]) -> Vec<usize> {
        let count = replicas.len();
        let start = self.inner.next.fetch_add(1, Ordering::Relaxed);
        let now = Instant::now();
        let (mut up, mut down): (Vec<usize>, Vec<usize>) =
            (0..count).map(|offset| (start + offset) % count).partition(|&index| replicas[index].is_up(now));
        up.append(&mut down);
        up
    }
}

/// Resolves the `dns://` sources now and every [`DNS_REFRESH`], until the
/// replicas are dropped. A name that fails to resolve keeps its replicas.
async fn resolve_periodically(inner: Weak<Inner>) {
    loop {
        let Some(inner) = inner.upgrade() else { return };
        let current = inner.replicas.read().map(|replicas| Arc::clone(&replicas)).ok();
        let tls = inner.tls.is_some();
        // Each URL with the source it came from (for its server name).
        let mut urls: Vec<(String, &Source)> = Vec::new();
        for source in &inner.sources {
            match source {
                Source::Url(url) => urls.push((url.clone(), source)),
                Source::Dns { host, port } => match tokio::net::lookup_host((host.as_str(), *port)).await {
                    Ok(addrs) => {
                        let before = urls.len();
                        urls.extend(addrs.map(|addr| (address_url(addr, addr.port(), tls), source)));
                        if urls.len() == before {
                            urls.push((source.initial_url(tls), source));
                        }
                    }
                    Err(error) => {
                        tracing::warn!(%host, %error, "cannot resolve replicas; keeping the previous ones");
                        urls.push((source.initial_url(tls), source));
                    }
                },
            }
        }
        urls.sort_by(|(a, _), (b, _)| a.cmp(b));
        urls.dedup_by(|(a, _), (b, _)| a == b);
        if let Some(current) = current {
            let known: Vec<String> = current.iter().map(|replica| replica.url.clone()).collect();
            if known.iter().collect::<std::collections::BTreeSet<_>>() != urls.iter().map(|(url, _)| url).collect() {
                let replicas: Vec<Arc<Replica>> = urls
                    .iter()
                    .filter_map(|(url, source)| match current.iter().find(|replica| &replica.url == url) {
                        Some(replica) => Some(Arc::clone(replica)),
                        None => Replica::new(url.clone(), source.server_name(), &*inner.configure, inner.tls.as_ref())
                            .map(Arc::new)
                            .ok(),
                    })
                    .collect();
                if !replicas.is_empty() {
                    let urls: Vec<&String> = urls.iter().map(|(url, _)| url).collect();
                    tracing::info!(replicas = ?urls, "replica set changed");
                    if let Ok(mut slot) = inner.replicas.write() {
                        *slot = Arc::new(replicas);
                    }
                }
            }
        }
        drop(inner);
        tokio::time::sleep(DNS_REFRESH).await;
    }
}

impl Replica {
    fn new(
        url: String,
        server_name: Option<&str>,
        configure: &Configure,
        tls: Option<&ClientTls>,
    ) -> anyhow::Result<Self> {
        let endpoint =
            configure(Endpoint::from_shared(url.clone()).with_context(|| format!("invalid gRPC URL {url:?}"))?);
        let channel = match tls {
            Some(tls) => endpoint.connect_with_connector_lazy(tls.connector(server_name)?),
            None => endpoint.connect_lazy(),
        };
        Ok(Self { channel, url, health: Mutex::new(Health::default()) })
    }

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
/// establish the connection (refused, unreachable, connect timeout); or the
/// call was still queued for a connection that closed before sending it
/// (hyper's "canceled"); or the replica's GOAWAY refused its stream (h2
/// fails with the GOAWAY only the streams above its last processed id, and
/// those opened after it: RFC 9113 6.8 says these were not processed). A
/// replica shutting down gracefully does the last two. An I/O error on a
/// connection the call was sent on does not count: the replica may have
/// received, even committed, the call.
fn never_reached(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(error) = source {
        if error.is::<tonic::ConnectError>() {
            return true;
        }
        if error.downcast_ref::<hyper::Error>().is_some_and(hyper::Error::is_canceled) {
            return true;
        }
        if error.downcast_ref::<h2::Error>().is_some_and(|error| error.is_go_away() && error.is_remote()) {
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
            let snapshot = replicas.snapshot();
            for index in replicas.attempt_order(&snapshot) {
                let replica = &snapshot[index];
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
