//! A server's layered routes as a transport a tonic client calls without a
//! socket: the all-in-one's gateway reaches the services it runs beside
//! through this instead of loopback TCP and HTTP/2 framing.
//!
//! The calls go through the same [`ServiceLayers`] the network server puts
//! around the routes (access log and metrics, load shedding, the API's own
//! layers such as the token check), so they behave and are counted alike.
//! What the network server adds and a call in one process lacks is made
//! here: the peer address (loopback: the caller is this process) and the
//! deadline (`grpc-timeout`, at most the server's request timeout).

use std::net::{Ipv4Addr, SocketAddr};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::future::BoxFuture;
use tonic::body::Body;
use tonic::service::Routes;
use tonic::transport::server::TcpConnectInfo;
use tower::util::BoxCloneSyncService;
use tower::{Layer, Service, ServiceBuilder, ServiceExt as _};

use crate::access_log::AccessLogLayer;
use crate::limits::{ServerLimits, ShedLoadLayer};
use crate::metrics::{GrpcMetrics, Metrics};

/// The error of a call a transport could not complete.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Any transport a gateway or service client calls a service through: a
/// network channel (to replicas) or [`ServiceLayers::in_process`]. Clones
/// share the underlying connections or service.
#[derive(Clone)]
pub struct Transport(BoxCloneSyncService<http::Request<Body>, http::Response<Body>, BoxError>);

impl Transport {
    pub fn new<S>(service: S) -> Self
    where
        S: Service<http::Request<Body>, Response = http::Response<Body>> + Clone + Send + Sync + 'static,
        S::Error: Into<BoxError>,
        S::Future: Send + 'static,
    {
        Self(BoxCloneSyncService::new(service.map_err(Into::into)))
    }
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("Transport")
    }
}

impl Service<http::Request<Body>> for Transport {
    type Response = http::Response<Body>;
    type Error = BoxError;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        self.0.call(request)
    }
}

/// The layers around a server's routes, made once per server so the network
/// listener and in-process callers share one concurrency limit and one set
/// of metrics.
#[derive(Debug, Clone)]
pub struct ServiceLayers {
    pub(crate) access_log: AccessLogLayer,
    pub(crate) shed_load: ShedLoadLayer,
    pub(crate) limits: ServerLimits,
}

impl ServiceLayers {
    #[must_use]
    pub fn new(limits: ServerLimits, metrics: &Metrics) -> Self {
        Self {
            access_log: AccessLogLayer::new(GrpcMetrics::new(metrics)),
            shed_load: ShedLoadLayer::new(limits.max_concurrent_requests),
            limits,
        }
    }

    /// `routes` behind these layers, callable in this process.
    #[must_use]
    pub fn in_process(&self, routes: Routes) -> Transport {
        let service = ServiceBuilder::new()
            .layer(InProcessLayer { max_timeout: self.limits.request_timeout })
            .layer(self.access_log.clone())
            .layer(self.shed_load.clone())
            .service(routes);
        Transport::new(service.map_err(|never| -> BoxError { match never {} }))
    }
}

/// What the network server gives every request and a call in one process
/// must get too.
#[derive(Debug, Clone, Copy)]
struct InProcessLayer {
    max_timeout: Duration,
}

impl<S> Layer<S> for InProcessLayer {
    type Service = InProcess<S>;

    fn layer(&self, inner: S) -> Self::Service {
        InProcess { inner, max_timeout: self.max_timeout }
    }
}

#[derive(Debug, Clone)]
struct InProcess<S> {
    inner: S,
    max_timeout: Duration,
}

/// In the extensions of every request that came through an in-process
/// [`Transport`]: its caller is one of our services in this very process,
/// so it holds the identity a service certificate proves over the network.
#[derive(Debug, Clone, Copy)]
pub struct InProcessCaller;

/// The caller's address as the services see it: this host.
const LOOPBACK: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST), 0);

impl<S> Service<http::Request<Body>> for InProcess<S>
where
    S: Service<http::Request<Body>, Response = http::Response<Body>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<Body>) -> Self::Future {
        request.extensions_mut().insert(TcpConnectInfo { local_addr: None, remote_addr: Some(LOOPBACK) });
        request.extensions_mut().insert(InProcessCaller);
        let timeout = request
            .headers()
            .get("grpc-timeout")
            .and_then(|value| parse_grpc_timeout(value.as_bytes()))
            .map_or(self.max_timeout, |asked| asked.min(self.max_timeout));
        let response = self.inner.call(request);
        Box::pin(async move {
            match tokio::time::timeout(timeout, response).await {
                Ok(response) => response,
                // As tonic's server answers a request past its deadline.
                Err(_) => Ok(tonic::Status::cancelled("Timeout expired").into_http()),
            }
        })
    }
}

/// A `grpc-timeout` header value: at most 8 digits and a unit (`H`, `M`,
/// `S`, `m`, `u`, `n`), per the gRPC over HTTP/2 protocol; `None` when
/// malformed, and the server's own limit applies.
fn parse_grpc_timeout(value: &[u8]) -> Option<Duration> {
    let (&unit, digits) = value.split_last()?;
    if digits.is_empty() || digits.len() > 8 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let amount: u64 = std::str::from_utf8(digits).ok()?.parse().ok()?;
    Some(match unit {
        b'H' => Duration::from_secs(amount * 3600),
        b'M' => Duration::from_secs(amount * 60),
        b'S' => Duration::from_secs(amount),
        b'm' => Duration::from_millis(amount),
        b'u' => Duration::from_micros(amount),
        b'n' => Duration::from_nanos(amount),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::parse_grpc_timeout;

    #[test]
    fn grpc_timeouts_are_read_as_the_protocol_writes_them() {
        assert_eq!(parse_grpc_timeout(b"5S"), Some(Duration::from_secs(5)));
        assert_eq!(parse_grpc_timeout(b"2H"), Some(Duration::from_secs(7200)));
        assert_eq!(parse_grpc_timeout(b"1500m"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_grpc_timeout(b"99999999n"), Some(Duration::from_nanos(99_999_999)));
        for malformed in [&b""[..], b"S", b"5", b"123456789S", b"-5S", b"5s", b"5 S"] {
            assert_eq!(parse_grpc_timeout(malformed), None, "{malformed:?}");
        }
    }
}
