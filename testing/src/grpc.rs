//! gRPC clients for the services under test.

use std::net::SocketAddr;
use std::time::Duration;

use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

/// A request carrying `authorization: Bearer <token>`.
///
/// # Panics
/// When `token` is not a valid header value.
pub fn with_token<T>(token: &str, message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    #[allow(clippy::expect_used)]
    let bearer = format!("Bearer {token}").parse().expect("a token is a valid header value");
    request.metadata_mut().insert("authorization", bearer);
    request
}

/// A lazy channel to `addr`: connecting may take 1 s, each call `timeout`.
///
/// # Panics
/// Never for a socket address.
#[must_use]
pub fn channel(addr: SocketAddr, timeout: Duration) -> Channel {
    #[allow(clippy::expect_used)]
    let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{addr}")).expect("BUG: an http URL");
    endpoint.connect_timeout(Duration::from_secs(1)).timeout(timeout).connect_lazy()
}

/// Waits (at most 30 s) until gRPC health at `addr` says `service` is SERVING.
///
/// # Panics
/// When it never does.
pub async fn wait_serving(addr: SocketAddr, service: &str) {
    wait_serving_or(addr, service, String::new).await;
}

/// [`wait_serving`]; on failure the panic message ends with `context()`
/// (the servers' logs, say).
///
/// # Panics
/// When `service` never becomes SERVING.
pub async fn wait_serving_or(addr: SocketAddr, service: &str, context: impl Fn() -> String) {
    let health = HealthClient::new(channel(addr, Duration::from_secs(10)));
    crate::eventually(Duration::from_secs(30), || {
        let mut health = health.clone();
        let context = &context;
        async move {
            let status = health.check(HealthCheckRequest { service: service.to_owned() }).await;
            if status.is_ok_and(|response| response.into_inner().status() == ServingStatus::Serving) {
                return Ok(());
            }
            Err(format!("{addr} never became SERVING\n{}", context()))
        }
    })
    .await;
}
