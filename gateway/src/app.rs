//! Building and running the gateway; `main` and the tests do it alike.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context as _;
use axum::Router;
use axum::error_handling::HandleErrorLayer;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE, LOCATION, WWW_AUTHENTICATE};
use axum::http::{HeaderName, Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use bookstore_runtime::metrics::{MetricsServer, RequestMetrics};
use bookstore_runtime::{Metrics, REQUEST_ID_HEADER};
use bookstore_tls::ServerTls;
use prometheus_client::encoding::EncodeLabelSet;
use tokio::net::TcpListener;
use tower::ServiceBuilder;
use tower::limit::GlobalConcurrencyLimitLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;
use tracing::Span;

use crate::config::{CorsOrigins, Settings};
use crate::error::ApiError;
use crate::openapi::ACCESS_TOKENS_HEADER;
use crate::routes;
use crate::upstream::Upstreams;

/// How much longer than one upstream deadline a whole request may take: a
/// backstop, since every handler makes a single upstream call whose own
/// deadline fires first.
const REQUEST_TIMEOUT_SLACK: Duration = Duration::from_secs(2);

/// How long a browser may cache a preflight's answer.
const CORS_MAX_AGE: Duration = Duration::from_secs(600);

/// What the handlers share.
#[derive(Debug, Clone)]
pub struct AppState {
    pub upstreams: Upstreams,
    /// Page size when a list request has no `limit`.
    pub default_page_size: u32,
}

/// A ready gateway: routes built, upstream channels created (they connect
/// on first use), listener bound, so it accepts connections as soon as
/// `build` returns, whether or not the upstreams are up.
pub struct App {
    listener: TcpListener,
    /// None: plain HTTP.
    tls: Option<ServerTls>,
    router: Router,
    metrics: Metrics,
    /// `/metrics` is served here, apart from the public routes.
    metrics_listener: Option<TcpListener>,
}

impl App {
    pub async fn build(settings: &Settings) -> anyhow::Result<Self> {
        Self::with_upstreams(settings, Upstreams::connect_lazy(settings)?).await
    }

    /// A gateway calling the given upstreams, whatever `settings` says of
    /// their URLs: the all-in-one passes the services it runs.
    pub async fn with_upstreams(settings: &Settings, upstreams: Upstreams) -> anyhow::Result<Self> {
        settings.validate()?;
        let tls = settings.tls()?;
        let state = AppState { upstreams, default_page_size: settings.default_page_size };
        let cors = settings.cors_origins()?.map(cors_layer);
        let metrics = Metrics::new();
        let router =
            with_middleware(routes::router(state), settings, cors, HttpMetrics::new(&metrics, "http_server", "HTTP"));
        let listener = TcpListener::bind(settings.listen_addr)
            .await
            .with_context(|| format!("cannot listen on {}", settings.listen_addr))?;
        let metrics_listener = bookstore_runtime::metrics::bind_metrics(settings.metrics_addr).await?;
        Ok(Self { listener, tls, router, metrics, metrics_listener })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)))
    }

    /// The address `/metrics` is served on, when configured.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_listener.as_ref().and_then(|listener| listener.local_addr().ok())
    }

    /// Serves until `shutdown` resolves, then lets in-flight requests finish.
    pub async fn run_until_stopped(self, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
        tracing::info!(addr = %self.local_addr(), tls = self.tls.is_some(), "gateway listening");
        let metrics_server = MetricsServer::spawn(&self.metrics, self.metrics_listener, self.tls.as_ref());
        // The peer address reaches the handlers (`ConnectInfo`), which
        // forward it to auth-service for its per-client limits.
        let served = bookstore_runtime::serve_http(self.listener, self.tls.as_ref(), self.router, shutdown)
            .await
            .context("the gateway's HTTP server failed");
        if let Some(server) = metrics_server {
            server.stop().await;
        }
        served?;
        tracing::info!("gateway stopped");
        Ok(())
    }
}

/// Request ids, one log line and one metrics sample per request, CORS (when
/// configured), the whole-request timeout, load shedding, and the header and
/// body limits, around every route and the fallbacks.
fn with_middleware(router: Router, settings: &Settings, cors: Option<CorsLayer>, metrics: HttpMetrics) -> Router {
    let request_id = HeaderName::from_static(REQUEST_ID_HEADER);
    let request_timeout = settings.upstream_timeout() + REQUEST_TIMEOUT_SLACK;
    router.layer(
        ServiceBuilder::new()
            // Outermost first: the id exists before the log span is made.
            .layer(SetRequestIdLayer::new(request_id.clone(), MakeRequestUuid))
            .layer(
                TraceLayer::new_for_http()
                    .make_span_with(request_span)
                    .on_request(())
                    .on_response(log_response)
                    .on_failure(()),
            )
            .layer(axum::middleware::from_fn_with_state(metrics, record_metrics))
            .layer(PropagateRequestIdLayer::new(request_id))
            // Answers preflights itself, before the timeout and the routes.
            .option_layer(cors)
            .layer(HandleErrorLayer::new(middleware_error))
            .timeout(request_timeout)
            // Past the limit, answer 503 at once rather than queue: one
            // semaphore for all routes (a plain ConcurrencyLimit would make
            // one per route).
            .load_shed()
            .layer(GlobalConcurrencyLimitLayer::new(settings.max_concurrent_requests))
            .layer(axum::middleware::from_fn_with_state(settings.max_header_bytes, limit_header_size))
            // Json and Bytes extractors read at most this much, else 413.
            .layer(DefaultBodyLimit::max(settings.max_body_bytes)),
    )
}

/// CORS for the configured origins: the API's methods and the headers its
/// clients send (both token headers), and the ones they may read.
fn cors_layer(origins: CorsOrigins) -> CorsLayer {
    let allow_origin = match origins {
        CorsOrigins::Any => AllowOrigin::any(),
        CorsOrigins::List(origins) => AllowOrigin::list(origins),
    };
    CorsLayer::new()
        .allow_origin(allow_origin)
        .allow_methods([Method::GET, Method::POST, Method::PUT, Method::PATCH, Method::DELETE])
        .allow_headers([
            AUTHORIZATION,
            CONTENT_TYPE,
            HeaderName::from_static(ACCESS_TOKENS_HEADER),
            HeaderName::from_static(REQUEST_ID_HEADER),
        ])
        .expose_headers([HeaderName::from_static(REQUEST_ID_HEADER), LOCATION, WWW_AUTHENTICATE])
        .max_age(CORS_MAX_AGE)
}

/// The span of one request, continuing the caller's `traceparent` if there
/// is one. Headers other than the request id stay out of it: they carry
/// tokens and passwords.
fn request_span(request: &Request) -> Span {
    let request_id = request.headers().get(REQUEST_ID_HEADER).and_then(|value| value.to_str().ok()).unwrap_or("-");
    let span = tracing::info_span!(
        "http",
        method = %request.method(),
        path = %request.uri().path(),
        request_id = %request_id,
        trace_id = tracing::field::Empty,
    );
    bookstore_runtime::telemetry::continue_trace(&span, request.headers());
    span
}

/// `http_server_requests_total` and `http_server_request_duration_seconds`
/// by method, route template (`/books/{book_id}`, never the raw path) and
/// HTTP status.
type HttpMetrics = RequestMetrics<HttpLabels>;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabels {
    method: String,
    route: String,
    status: u16,
}

/// Counts a request by method, route template and status.
async fn record_metrics(State(metrics): State<HttpMetrics>, request: Request, next: Next) -> Response {
    let started = std::time::Instant::now();
    let method = request.method().clone();
    // The template (`/books/{book_id}`), so ids do not make new series.
    let route = request.extensions().get::<MatchedPath>().map_or("unmatched", MatchedPath::as_str).to_owned();
    let response = next.run(request).await;
    let labels = HttpLabels { method: method.as_str().to_owned(), route, status: response.status().as_u16() };
    metrics.record(&labels, started.elapsed());
    response
}

fn log_response(response: &Response, latency: Duration, _span: &Span) {
    let latency_ms = latency.as_secs_f64() * 1000.0;
    tracing::info!(status = response.status().as_u16(), latency_ms, "request finished");
}

/// 431 for a request whose headers add up to more than `max_header_bytes`
/// (hyper itself refuses, without a JSON body, a header block beyond its
/// ~400 KiB read buffer).
async fn limit_header_size(
    State(max_header_bytes): State<usize>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let size: usize = request.headers().iter().map(|(name, value)| name.as_str().len() + value.len()).sum();
    if size > max_header_bytes {
        return Err(ApiError::new(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            format!("request headers are {size} bytes, more than the limit of {max_header_bytes}"),
        ));
    }
    Ok(next.run(request).await)
}

/// The middleware stack's errors: the timeout's and load shedding's.
async fn middleware_error(error: tower::BoxError) -> ApiError {
    if error.is::<tower::timeout::error::Elapsed>() {
        return ApiError::new(StatusCode::GATEWAY_TIMEOUT, "request timed out");
    }
    if error.is::<tower::load_shed::error::Overloaded>() {
        tracing::warn!("overloaded: request shed");
        return ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "the gateway is overloaded, retry later")
            .with_retry_after(1);
    }
    tracing::error!(%error, "middleware failed");
    ApiError::internal()
}
