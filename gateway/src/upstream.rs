//! The gRPC side: clients of auth-service and books-service (lazily
//! connected channels, or the services themselves when they run in this
//! process), and the per-request metadata every upstream call carries
//! (request id, caller's token, deadline).

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context as _;
use axum::extract::{ConnectInfo, FromRequestParts, OptionalFromRequestParts};
use axum::http::request::Parts;
use bookstore_proto::auth::v1::auth_service_client::AuthServiceClient;
use bookstore_proto::books::v1::books_service_client::BooksServiceClient;
use bookstore_replicas::Replicas;
use bookstore_runtime::{REQUEST_ID_HEADER, Transport};
use tonic::metadata::AsciiMetadataValue;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use crate::config::Settings;
use crate::error::ApiError;
use crate::routes::AppState;

/// The metadata key carrying the client's address to auth-service.
const FORWARDED_FOR: &str = "x-forwarded-for";
/// How long connecting to an upstream may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long `/readyz` waits for an upstream's health check.
const HEALTH_CHECK_TIMEOUT: Duration = Duration::from_secs(1);

/// Typed clients of both upstreams. Over the network each goes to all of
/// its replicas (a comma-separated URL list): channels connect on first use
/// and reconnect by themselves, so the gateway starts while an upstream is
/// down and recovers when it comes back; calls skip a replica that refuses
/// connections, and reads (never writes) that fail mid-call are repeated on
/// another replica. Clones share the connections.
#[derive(Debug, Clone)]
pub struct Upstreams {
    pub auth: AuthServiceClient<Transport>,
    pub books: BooksServiceClient<Transport>,
    auth_health: HealthClient<Transport>,
    books_health: HealthClient<Transport>,
    /// Deadline of each call.
    pub timeout: Duration,
}

impl Upstreams {
    /// Creates the channels without connecting: fails only on a bad URL.
    pub fn connect_lazy(settings: &Settings) -> anyhow::Result<Self> {
        let auth = replicas(&settings.auth_url).context("GATEWAY_AUTH_URL")?;
        let books = replicas(&settings.books_url).context("GATEWAY_BOOKS_URL")?;
        Ok(Self::over(Transport::new(auth), Transport::new(books), settings))
    }

    /// Clients over the given transports: in the all-in-one, the services'
    /// own layered routes in this process (no socket, no HTTP/2 framing).
    pub fn over(auth: Transport, books: Transport, settings: &Settings) -> Self {
        Self {
            auth: AuthServiceClient::new(auth.clone()),
            books: BooksServiceClient::new(books.clone()),
            auth_health: HealthClient::new(auth),
            books_health: HealthClient::new(books),
            timeout: settings.upstream_timeout(),
        }
    }

    /// The upstreams that do not report SERVING within a second, each with
    /// why; empty when both do.
    pub async fn not_ready(&self, call: &Call) -> Vec<(&'static str, String)> {
        use bookstore_proto::auth::v1::auth_service_server::SERVICE_NAME as AUTH;
        use bookstore_proto::books::v1::books_service_server::SERVICE_NAME as BOOKS;
        let (auth, books) = tokio::join!(
            check_serving(self.auth_health.clone(), call, AUTH),
            check_serving(self.books_health.clone(), call, BOOKS),
        );
        [("auth-service", auth), ("books-service", books)]
            .into_iter()
            .filter_map(|(name, outcome)| outcome.err().map(|reason| (name, reason)))
            .collect()
    }
}

fn replicas(urls: &str) -> anyhow::Result<Replicas> {
    Replicas::new(
        urls,
        |endpoint| {
            endpoint
                .connect_timeout(CONNECT_TIMEOUT)
                .tcp_nodelay(true)
                // Notice a dead upstream (a killed process, a lost network)
                // before the next request pays for it.
                .http2_keep_alive_interval(Duration::from_secs(30))
                .keep_alive_timeout(Duration::from_secs(10))
        },
        bookstore_proto::idempotency::is_side_effect_free,
    )
}

async fn check_serving(mut client: HealthClient<Transport>, call: &Call, service: &str) -> Result<(), String> {
    let mut request = call.request(HealthCheckRequest { service: service.to_owned() });
    request.set_timeout(HEALTH_CHECK_TIMEOUT);
    // The deadline starts once a connection is ready; bound the connecting too.
    let response = tokio::time::timeout(HEALTH_CHECK_TIMEOUT, client.check(request))
        .await
        .map_err(|_| "no answer within a second".to_owned())?
        .map_err(|status| format!("health check failed ({:?}: {})", status.code(), status.message()))?;
    match response.into_inner().status() {
        ServingStatus::Serving => Ok(()),
        other => Err(format!("status {}", other.as_str_name())),
    }
}

/// What every upstream call of one HTTP request carries: the request id
/// (so both services log it), the deadline and, on protected routes, the
/// caller's token. Extracting it never fails.
#[derive(Debug, Clone)]
pub struct Call {
    request_id: Option<AsciiMetadataValue>,
    /// The HTTP client's address, sent as `x-forwarded-for` (auth-service
    /// limits Register and Login per client, trusting it from the gateway).
    /// An `X-Forwarded-For` the client sent is not passed on: the gateway
    /// is the edge.
    client: Option<AsciiMetadataValue>,
    /// `traceparent` (and `tracestate`): the callee continues this trace.
    trace_context: Vec<(&'static str, AsciiMetadataValue)>,
    authorization: Option<AsciiMetadataValue>,
    timeout: Duration,
}

impl Call {
    /// A gRPC request for `message` with this call's metadata and deadline.
    pub fn request<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        request.set_timeout(self.timeout);
        let metadata = request.metadata_mut();
        if let Some(request_id) = &self.request_id {
            metadata.insert(REQUEST_ID_HEADER, request_id.clone());
        }
        for (key, value) in &self.trace_context {
            metadata.insert(*key, value.clone());
        }
        if let Some(authorization) = &self.authorization {
            metadata.insert("authorization", authorization.clone());
        }
        if let Some(client) = &self.client {
            metadata.insert(FORWARDED_FOR, client.clone());
        }
        request
    }
}

impl FromRequestParts<AppState> for Call {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        // SetRequestId has put one there if the client did not.
        let request_id = parts
            .headers
            .get(REQUEST_ID_HEADER)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| AsciiMetadataValue::try_from(value).ok());
        let client = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .and_then(|ConnectInfo(peer)| AsciiMetadataValue::try_from(peer.ip().to_string()).ok());
        // Extractors run inside the request's span.
        let trace_context = bookstore_runtime::telemetry::current_trace_headers()
            .into_iter()
            .filter_map(|(key, value)| Some((key, AsciiMetadataValue::try_from(value).ok()?)))
            .collect();
        Ok(Self { request_id, client, trace_context, authorization: None, timeout: state.upstreams.timeout })
    }
}

/// A [`Call`] for a protected route: it forwards the caller's token, taken
/// from `Authorization: Bearer` or the tutorial's `x-access-tokens`, as
/// `authorization: Bearer <token>`. Rejects with 401 "a valid token is
/// missing" when there is none; whether the token is valid is for the
/// upstream to say.
#[derive(Debug, Clone)]
pub struct Authenticated(pub Call);

impl FromRequestParts<AppState> for Authenticated {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let token = bookstore_tokens::token_from_headers(&parts.headers).map_err(|_| ApiError::token_missing())?;
        // `token_from_headers` reads visible ASCII only, so this cannot fail.
        let authorization =
            AsciiMetadataValue::try_from(format!("Bearer {token}")).map_err(|_| ApiError::token_missing())?;
        let Ok(call) = Call::from_request_parts(parts, state).await;
        Ok(Self(Call { authorization: Some(authorization), ..call }))
    }
}

/// `Option<Authenticated>`: `None` when the request carries no token.
impl OptionalFromRequestParts<AppState> for Authenticated {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Option<Self>, Self::Rejection> {
        Ok(<Self as FromRequestParts<AppState>>::from_request_parts(parts, state).await.ok())
    }
}
