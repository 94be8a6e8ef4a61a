//! The gRPC side: clients of auth-service and books-service (lazily
//! connected channels, or the services themselves when they run in this
//! process) and their readiness. What each call carries (request id,
//! caller's token, deadline) is the handlers' [`Call`](crate::extract::Call).

use std::time::Duration;

use anyhow::Context as _;
use bookstore_proto::auth::v1::auth_service_client::AuthServiceClient;
use bookstore_proto::books::v1::books_service_client::BooksServiceClient;
use bookstore_replicas::Replicas;
use bookstore_runtime::Transport;
use bookstore_tls::ClientTls;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use crate::config::Settings;

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
        let tls = settings.upstream_tls()?;
        let auth = replicas(&settings.auth_url, tls.clone()).context("GATEWAY_AUTH_URL")?;
        let books = replicas(&settings.books_url, tls).context("GATEWAY_BOOKS_URL")?;
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
    /// why; empty when both do. `request` wraps each health check with the
    /// HTTP request's metadata (its id and trace context).
    pub async fn not_ready(
        &self,
        request: impl Fn(HealthCheckRequest) -> tonic::Request<HealthCheckRequest>,
    ) -> Vec<(&'static str, String)> {
        use bookstore_proto::auth::v1::auth_service_server::SERVICE_NAME as AUTH;
        use bookstore_proto::books::v1::books_service_server::SERVICE_NAME as BOOKS;
        let (auth, books) = tokio::join!(
            check_serving(self.auth_health.clone(), request(HealthCheckRequest { service: AUTH.to_owned() })),
            check_serving(self.books_health.clone(), request(HealthCheckRequest { service: BOOKS.to_owned() })),
        );
        [("auth-service", auth), ("books-service", books)]
            .into_iter()
            .filter_map(|(name, outcome)| outcome.err().map(|reason| (name, reason)))
            .collect()
    }
}

fn replicas(urls: &str, tls: Option<ClientTls>) -> anyhow::Result<Replicas> {
    Replicas::new(
        urls,
        tls,
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

async fn check_serving(
    mut client: HealthClient<Transport>,
    mut request: tonic::Request<HealthCheckRequest>,
) -> Result<(), String> {
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
