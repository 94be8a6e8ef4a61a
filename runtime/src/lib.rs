//! What every Bookstore gRPC service does around its own API: structured
//! logs with one line per request, metrics, trace propagation, the standard
//! health and reflection services, serving (gRPC and grpc-web) on a bound
//! listener, and shutdown on SIGINT/SIGTERM.

mod access_log;
mod coalesce;
mod http;
mod in_process;
mod limits;
pub mod metrics;
pub mod telemetry;

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context as _;
use futures::TryStreamExt as _;

use bookstore_tls::ServerTls;
use tokio::net::TcpListener;
use tonic::service::Routes;
use tonic::transport::server::TcpIncoming;

pub use access_log::{AccessLog, AccessLogLayer, REQUEST_ID_HEADER};
pub use coalesce::CoalescedWrites;
pub use http::serve_http;
pub use in_process::{BoxError, InProcessCaller, ServiceLayers, Transport};
pub use limits::{RETRY_AFTER, ServerLimits, ShedLoad, ShedLoadFuture, ShedLoadLayer};
pub use metrics::Metrics;
pub use telemetry::{init_tracing, shutdown_tracing};
pub use tonic_health::server::HealthReporter;

/// What each binary's `main` does around its work: logs and traces set up
/// (`default_filter` unless `RUST_LOG` says otherwise), `run`, then the
/// spans still buffered exported.
pub async fn with_tracing(default_filter: &str, run: impl Future<Output = anyhow::Result<()>>) -> anyhow::Result<()> {
    init_tracing(default_filter);
    let outcome = run.await;
    shutdown_tracing();
    outcome
}

/// Resolves on the first SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for ctrl-c");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("received SIGINT, shutting down"),
        () = terminate => tracing::info!("received SIGTERM, shutting down"),
    }
}

/// `grpc.health.v1.Health` plus server reflection in both versions (v1, and
/// v1alpha for grpcurl before 1.8.8, Postman and grpcui), so that
/// `grpcurl -plaintext HOST:PORT list` works without .proto files. The
/// returned reporter sets each service's health status.
/// Reflection lists only `service` (the API this server implements), health
/// and reflection itself.
pub fn standard_routes(service: &str) -> Result<(Routes, HealthReporter), tonic_reflection::server::Error> {
    let (reporter, health) = tonic_health::server::health_reporter();
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(bookstore_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            // The error details (google.rpc.BadRequest, ErrorInfo), so that
            // grpcurl and other reflection clients print them decoded.
            .register_encoded_file_descriptor_set(tonic_types::pb::FILE_DESCRIPTOR_SET)
            .with_service_name(service)
            .with_service_name("grpc.health.v1.Health")
    };
    let reflection_v1 = reflection().build_v1()?;
    let reflection_v1alpha = reflection().build_v1alpha()?;
    let routes = Routes::new(health).add_service(reflection_v1).add_service(reflection_v1alpha);
    Ok((routes, reporter))
}

/// A gRPC service ready to serve: its routes behind its layers, its
/// listener bound (so it accepts connections as soon as it exists) and its
/// metrics listener, if any. auth-service and books-service are one each.
pub struct GrpcServer {
    listener: TcpListener,
    /// None: plaintext.
    tls: Option<ServerTls>,
    routes: Routes,
    /// Around the routes, for the listener and in-process callers alike.
    layers: ServiceLayers,
    metrics: Metrics,
    metrics_listener: Option<TcpListener>,
}

impl GrpcServer {
    /// Binds `listen_addr`, and `metrics_addr` when given, for `routes`
    /// behind `layers`, counted in `metrics`; over TLS with `tls`.
    pub async fn bind(
        listen_addr: SocketAddr,
        metrics_addr: Option<SocketAddr>,
        tls: Option<ServerTls>,
        routes: Routes,
        layers: ServiceLayers,
        metrics: Metrics,
    ) -> anyhow::Result<Self> {
        let listener =
            TcpListener::bind(listen_addr).await.with_context(|| format!("cannot listen on {listen_addr}"))?;
        let metrics_listener = metrics::bind_metrics(metrics_addr).await?;
        Ok(Self { listener, tls, routes, layers, metrics, metrics_listener })
    }

    /// This service as the all-in-one's other parts call it: no socket, the
    /// same layers as a call over the network.
    pub fn in_process(&self) -> Transport {
        self.layers.in_process(self.routes.clone())
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)))
    }

    /// The address `/metrics` is served on, when configured.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_listener.as_ref().and_then(|listener| listener.local_addr().ok())
    }

    /// Serves until `shutdown` resolves, then lets in-flight requests
    /// finish. Each request may run for the limits' `request_timeout`; past
    /// `max_concurrent_requests` in progress (shared with the in-process
    /// callers of the same layers), requests are refused at once. (Message
    /// sizes are set on each API's server, where tonic applies them.) gRPC
    /// over HTTP/2, and grpc-web (`application/grpc-web`,
    /// `application/grpc-web-text`) over HTTP/1.1 or HTTP/2 for browsers;
    /// every request is logged and counted by the layers, and the metrics
    /// listener (the admin port), if any, serves `/metrics` as long as the
    /// service runs. With TLS, only TLS connections are served. `name`: the
    /// service's, for the logs.
    pub async fn serve(self, name: &str, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
        tracing::info!(addr = %self.local_addr(), tls = self.tls.is_some(), "{name} listening");
        let metrics_server = metrics::MetricsServer::spawn(&self.metrics, self.metrics_listener, self.tls.as_ref());
        let router = tonic::transport::Server::builder()
            // Detect dead peers (a load balancer that went away, a killed client).
            .http2_keepalive_interval(Some(Duration::from_secs(30)))
            .http2_keepalive_timeout(Some(Duration::from_secs(10)))
            .timeout(self.layers.limits.request_timeout)
            // Headers carry a token and a request id; see the constant for why
            // the limit is twice hyper's default.
            .http2_max_header_list_size(Some(MAX_HEADER_LIST_BYTES))
            // grpc-web clients (browsers) speak HTTP/1.1.
            .accept_http1(true)
            // Outermost: grpc-web requests are translated to gRPC before the
            // access log sees them.
            .layer(tonic_web::GrpcWebLayer::new())
            .layer(self.layers.access_log.clone())
            .layer(self.layers.shed_load.clone())
            .add_routes(self.routes);
        // Each connection's answers leave in fewer writes than h2 alone
        // makes (see `CoalescedWrites`).
        let served = match &self.tls {
            Some(tls) => {
                let incoming = tls.listen(self.listener)?.map_ok(CoalescedWrites::new);
                router.serve_with_incoming_shutdown(incoming, shutdown).await
            }
            // Small unary responses must not wait for Nagle's algorithm (a
            // 40 ms stall against delayed ACKs); the TLS listener sets it too.
            None => {
                let incoming = TcpIncoming::from(self.listener).with_nodelay(Some(true)).map_ok(CoalescedWrites::new);
                router.serve_with_incoming_shutdown(incoming, shutdown).await
            }
        };
        if let Some(server) = metrics_server {
            server.stop().await;
        }
        Ok(served?)
    }
}

/// Largest header block (metadata) a gRPC request may carry. Past it, h2
/// refuses that one call (HTTP 431, which clients see as `Unknown`); past
/// four times it, h2 closes the whole connection (GOAWAY
/// `header_list_way_too_large`, its fixed abuse limit), failing the
/// client's other calls too. 32 KiB: our tokens are under 1 KiB, and a
/// 100 KiB token is still refused alone (its test is in books-service).
pub const MAX_HEADER_LIST_BYTES: u32 = 32 * 1024;

/// The defaults of a service's `clap` settings with its environment
/// variables applied, as if the binary `bin` had been run without flags: how
/// the all-in-one launcher and the tests configure a service.
pub fn settings_from_env<T: clap::Args + clap::FromArgMatches>(bin: &'static str) -> Result<T, clap::Error> {
    let matches = T::augment_args(clap::Command::new(bin)).try_get_matches_from([bin])?;
    T::from_arg_matches(&matches)
}

/// The `value_parser` of a setting in whole seconds that must be at least one.
#[must_use]
pub fn at_least_one_second() -> clap::builder::RangedU64ValueParser<u64> {
    clap::value_parser!(u64).range(1..)
}
