//! Prometheus metrics: one [`Metrics`] registry per service (so the
//! all-in-one launcher and the tests keep each service's series apart),
//! served as OpenMetrics text on `GET /metrics`.
//!
//! Components own their metric handles (cheap clones sharing one value) and
//! register them with the service's registry when the service is built.

use std::future::Future;
use std::hash::Hash;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::Context as _;
use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use bookstore_tls::ServerTls;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
pub use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Metric, Registry, Unit};
use tokio::net::TcpListener;

/// The content type of the OpenMetrics text format.
const OPENMETRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// A service's metrics. Clones share the registry.
#[derive(Clone, Default)]
pub struct Metrics {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    registry: Mutex<Registry>,
    /// Run before each scrape: gauges of values that are read, not counted
    /// (connection pool usage).
    samplers: Mutex<Vec<Box<dyn Fn() + Send + Sync>>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a metric under `name` (counters get `_total` appended).
    pub fn register(&self, name: &str, help: &str, metric: impl Metric) {
        self.inner.registry.lock().unwrap_or_else(PoisonError::into_inner).register(name, help, metric);
    }

    /// Adds a metric measured in seconds (`_seconds` is appended to `name`).
    pub fn register_seconds(&self, name: &str, help: &str, metric: impl Metric) {
        self.inner.registry.lock().unwrap_or_else(PoisonError::into_inner).register_with_unit(
            name,
            help,
            Unit::Seconds,
            metric,
        );
    }

    /// Connection pool gauges of a database, read at each scrape:
    /// `db_pool_connections{state="idle"|"in_use"}` and `db_pool_max_connections`.
    pub fn register_pool(&self, usage: impl Fn() -> PoolUsage + Send + Sync + 'static) {
        let connections = Family::<StateLabel, Gauge>::default();
        let max = Gauge::<i64>::default();
        self.register("db_pool_connections", "Open database connections, by state", connections.clone());
        self.register("db_pool_max_connections", "Most database connections the pool opens", max.clone());
        let sampler = move || {
            let PoolUsage { size, idle, max_size } = usage();
            let idle = i64::try_from(idle).unwrap_or(i64::MAX);
            connections.get_or_create(&StateLabel { state: "idle" }).set(idle);
            connections.get_or_create(&StateLabel { state: "in_use" }).set(i64::from(size).saturating_sub(idle));
            max.set(i64::from(max_size));
        };
        self.inner.samplers.lock().unwrap_or_else(PoisonError::into_inner).push(Box::new(sampler));
    }

    /// Every metric in the OpenMetrics text format, as Prometheus scrapes it.
    #[must_use]
    pub fn encode(&self) -> String {
        for sample in self.inner.samplers.lock().unwrap_or_else(PoisonError::into_inner).iter() {
            sample();
        }
        let mut text = String::new();
        let registry = self.inner.registry.lock().unwrap_or_else(PoisonError::into_inner);
        if let Err(error) = prometheus_client::encoding::text::encode(&mut text, &registry) {
            tracing::error!(%error, "cannot encode the metrics");
        }
        text
    }

    /// `GET /metrics`, to merge into an HTTP router or to serve alone.
    pub fn router<S: Clone + Send + Sync + 'static>(&self) -> Router<S> {
        let metrics = self.clone();
        Router::new().route(
            "/metrics",
            get(move || {
                let metrics = metrics.clone();
                async move {
                    (StatusCode::OK, [(header::CONTENT_TYPE, OPENMETRICS_CONTENT_TYPE)], metrics.encode())
                        .into_response()
                }
            }),
        )
    }

    /// Serves `GET /metrics` on `listener` (a service's admin port), over
    /// TLS with `tls`, until `shutdown` resolves.
    pub async fn serve(
        self,
        listener: TcpListener,
        tls: Option<ServerTls>,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let addr = listener.local_addr().context("the metrics listener has no address")?;
        tracing::info!(%addr, tls = tls.is_some(), "metrics listening");
        crate::http::serve_http(listener, tls.as_ref(), self.router::<()>(), shutdown)
            .await
            .context("the metrics HTTP server failed")
    }
}

/// `/metrics` served in the background on an admin listener, for as long
/// as the service it belongs to runs: [`MetricsServer::stop`] ends it.
pub struct MetricsServer {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl MetricsServer {
    /// Starts serving `metrics` on `listener`, if there is one, over TLS
    /// with `tls` (the service's own certificate).
    pub fn spawn(metrics: &Metrics, listener: Option<TcpListener>, tls: Option<&ServerTls>) -> Option<Self> {
        let listener = listener?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let stopped = async {
            let _ = stopped.await;
        };
        Some(Self { stop, task: tokio::spawn(metrics.clone().serve(listener, tls.cloned(), stopped)) })
    }

    /// Stops serving; a failure is logged (the service's own outcome is
    /// what counts).
    pub async fn stop(self) {
        drop(self.stop);
        match self.task.await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::error!(error = format!("{error:#}"), "metrics server failed"),
            Err(error) => tracing::error!(%error, "metrics server panicked"),
        }
    }
}

/// Binds the metrics listener of a service when an address is configured.
pub async fn bind_metrics(addr: Option<std::net::SocketAddr>) -> anyhow::Result<Option<TcpListener>> {
    let Some(addr) = addr else { return Ok(None) };
    let listener = TcpListener::bind(addr).await.with_context(|| format!("cannot listen for metrics on {addr}"))?;
    Ok(Some(listener))
}

/// How a connection pool is used right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolUsage {
    /// Open connections, idle or in use.
    pub size: u32,
    pub idle: usize,
    pub max_size: u32,
}

impl PoolUsage {
    /// The usage of an sqlx pool.
    #[must_use]
    pub fn of<DB: sqlx::Database>(pool: &sqlx::Pool<DB>) -> Self {
        Self { size: pool.size(), idle: pool.num_idle(), max_size: pool.options().get_max_connections() }
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabel {
    state: &'static str,
}

/// Latency buckets from 0.5 ms to about 33 s, doubling.
fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.000_5, 2.0, 17))
}

/// A request counter and a latency histogram by the same labels `L`:
/// `{name}_requests_total` and `{name}_request_duration_seconds`. The
/// services' [`GrpcMetrics`], and the gateway's HTTP requests.
#[derive(Debug, Clone)]
pub struct RequestMetrics<L> {
    requests: Family<L, Counter>,
    durations: Family<L, Histogram, fn() -> Histogram>,
}

impl<L: EncodeLabelSet + Clone + Hash + Eq + std::fmt::Debug + Send + Sync + 'static> RequestMetrics<L> {
    /// Creates the series and registers them with `metrics`; `what` names
    /// the requests in the help texts.
    #[must_use]
    pub fn new(metrics: &Metrics, name: &str, what: &str) -> Self {
        let this = Self {
            requests: Family::default(),
            durations: Family::new_with_constructor(latency_histogram as fn() -> Histogram),
        };
        metrics.register(&format!("{name}_requests"), &format!("{what} requests answered"), this.requests.clone());
        metrics.register_seconds(
            &format!("{name}_request_duration"),
            &format!("{what} request latency"),
            this.durations.clone(),
        );
        this
    }

    /// Records one answered request.
    pub fn record(&self, labels: &L, latency: Duration) {
        self.requests.get_or_create(labels).inc();
        self.durations.get_or_create(labels).observe(latency.as_secs_f64());
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct GrpcLabels {
    service: String,
    method: String,
    code: String,
}

/// `grpc_server_requests_total` and `grpc_server_request_duration_seconds`
/// by service, method and gRPC status code; recorded by the access log layer.
#[derive(Debug, Clone)]
pub struct GrpcMetrics(RequestMetrics<GrpcLabels>);

impl GrpcMetrics {
    /// Creates the series and registers them with `metrics`.
    #[must_use]
    pub fn new(metrics: &Metrics) -> Self {
        Self(RequestMetrics::new(metrics, "grpc_server", "gRPC"))
    }

    /// Records one answered request; `path` is `/package.Service/Method`.
    pub fn record(&self, path: &str, code: tonic::Code, latency: Duration) {
        let (service, method) = path.trim_start_matches('/').split_once('/').unwrap_or(("", path));
        let labels = GrpcLabels { service: service.to_owned(), method: method.to_owned(), code: format!("{code:?}") };
        self.0.record(&labels, latency);
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TableLabel {
    table: &'static str,
}

/// `db_rows_swept_total` by table: rows a background sweep deleted because
/// nothing will use them again (auth-service's expired sessions and
/// tokens, books-service's books of deleted users).
#[derive(Debug, Clone, Default)]
pub struct SweptRows {
    rows: Family<TableLabel, Counter>,
}

impl SweptRows {
    pub fn register(&self, metrics: &Metrics) {
        metrics.register("db_rows_swept", "Rows deleted by background sweeps, by table", self.rows.clone());
    }

    pub fn record(&self, table: &'static str, rows: u64) {
        self.rows.get_or_create(&TableLabel { table }).inc_by(rows);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_requests_are_counted_by_service_method_and_code() {
        let metrics = Metrics::new();
        let grpc = GrpcMetrics::new(&metrics);
        grpc.record("/bookstore.books.v1.BooksService/GetBook", tonic::Code::NotFound, Duration::from_millis(3));
        let text = metrics.encode();
        assert!(
            text.contains(
                r#"grpc_server_requests_total{service="bookstore.books.v1.BooksService",method="GetBook",code="NotFound"} 1"#
            ),
            "{text}"
        );
        assert!(text.contains("# TYPE grpc_server_request_duration_seconds histogram"), "{text}");
    }

    #[test]
    fn swept_rows_are_counted_by_table() {
        let metrics = Metrics::new();
        let swept = SweptRows::default();
        swept.register(&metrics);
        swept.record("sessions", 3);
        swept.record("sessions", 2);
        assert!(metrics.encode().contains(r#"db_rows_swept_total{table="sessions"} 5"#), "{}", metrics.encode());
    }

    #[test]
    fn pool_gauges_are_sampled_at_each_scrape() {
        let metrics = Metrics::new();
        metrics.register_pool(|| PoolUsage { size: 5, idle: 2, max_size: 8 });
        let text = metrics.encode();
        assert!(text.contains(r#"db_pool_connections{state="idle"} 2"#), "{text}");
        assert!(text.contains(r#"db_pool_connections{state="in_use"} 3"#), "{text}");
        assert!(text.contains("db_pool_max_connections 8"), "{text}");
    }
}
