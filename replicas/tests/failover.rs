//! Real gRPC servers (the standard health service) on loopback, some of them
//! down, called through `Replicas`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers outside #[test] fns, too

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bookstore_replicas::Replicas;
use bookstore_testing::eventually;
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

/// A health server on `listener` that counts the calls it serves.
async fn serve(listener: TcpListener) -> (Arc<AtomicUsize>, tokio::sync::oneshot::Sender<()>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&calls);
    let (_reporter, health) = tonic_health::server::health_reporter();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(
        tonic::transport::Server::builder()
            .layer(tower::util::MapRequestLayer::new(move |request: http::Request<tonic::body::Body>| {
                counter.fetch_add(1, Ordering::SeqCst);
                request
            }))
            .add_service(health)
            .serve_with_incoming_shutdown(TcpListenerStream::new(listener), async {
                let _ = stopped.await;
            }),
    );
    (calls, stop)
}

async fn listener() -> (TcpListener, SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    (listener, addr)
}

/// An address where nothing listens (bound, then released).
async fn dead_addr() -> SocketAddr {
    listener().await.1
}

fn replicas(addrs: &[SocketAddr]) -> Replicas {
    let urls: Vec<String> = addrs.iter().map(|addr| format!("http://{addr}")).collect();
    Replicas::new(&urls.join(","), None, |endpoint| endpoint.connect_timeout(Duration::from_secs(1)), |_| true).unwrap()
}

async fn check(client: &mut HealthClient<Replicas>) -> Result<(), tonic::Status> {
    client.check(HealthCheckRequest { service: String::new() }).await.map(|_| ())
}

#[tokio::test]
async fn calls_are_spread_over_live_replicas() {
    let ((a, a_addr), (b, b_addr)) = (listener().await, listener().await);
    let ((a_calls, _a_stop), (b_calls, _b_stop)) = (serve(a).await, serve(b).await);
    let mut client = HealthClient::new(replicas(&[a_addr, b_addr]));
    for _ in 0..10 {
        check(&mut client).await.unwrap();
    }
    assert_eq!((a_calls.load(Ordering::SeqCst), b_calls.load(Ordering::SeqCst)), (5, 5));
}

#[tokio::test]
async fn a_replica_that_is_down_costs_no_failed_call() {
    let (live, live_addr) = listener().await;
    let (live_calls, _stop) = serve(live).await;
    let mut client = HealthClient::new(replicas(&[dead_addr().await, live_addr]));
    for _ in 0..10 {
        check(&mut client).await.unwrap();
    }
    assert_eq!(live_calls.load(Ordering::SeqCst), 10);
}

#[tokio::test]
async fn a_replica_that_comes_back_gets_calls_again() {
    let (live, live_addr) = listener().await;
    let (_live_calls, _stop) = serve(live).await;
    let revived_addr = dead_addr().await;
    let mut client = HealthClient::new(replicas(&[revived_addr, live_addr]));
    for _ in 0..4 {
        check(&mut client).await.unwrap();
    }

    let (revived_calls, _stop_revived) = serve(TcpListener::bind(revived_addr).await.unwrap()).await;
    eventually(Duration::from_secs(15), || {
        let (mut client, revived_calls) = (client.clone(), &revived_calls);
        async move {
            if revived_calls.load(Ordering::SeqCst) > 0 {
                return Ok(());
            }
            check(&mut client).await.unwrap();
            Err("the revived replica never got a call")
        }
    })
    .await;
}

#[tokio::test]
async fn no_live_replica_is_an_unavailable_status() {
    let mut client = HealthClient::new(replicas(&[dead_addr().await, dead_addr().await]));
    let status = check(&mut client).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
}

#[tokio::test]
async fn a_dns_name_is_spread_over_every_address_it_resolves_to() {
    let (live, live_addr) = listener().await;
    let (live_calls, _stop) = serve(live).await;
    let port = live_addr.port();
    // `localhost` resolves to 127.0.0.1, and on many hosts to ::1 as well
    // (nothing listens there: that replica is skipped).
    let replicas = Replicas::new(
        &format!("dns://localhost:{port}"),
        None,
        |endpoint| endpoint.connect_timeout(Duration::from_secs(1)),
        |_| true,
    )
    .unwrap();
    let resolved = format!("http://127.0.0.1:{port}");
    eventually(Duration::from_secs(10), || async {
        let endpoints = replicas.endpoints();
        if endpoints.contains(&resolved) { Ok(()) } else { Err(format!("never resolved: {endpoints:?}")) }
    })
    .await;
    let mut client = HealthClient::new(replicas);
    for _ in 0..6 {
        check(&mut client).await.unwrap();
    }
    assert_eq!(live_calls.load(Ordering::SeqCst), 6);
}

#[test]
fn malformed_dns_sources_are_refused() {
    for bad in ["dns://no-port", "dns://host:notaport"] {
        assert!(Replicas::new(bad, None, |endpoint| endpoint, |_| true).is_err(), "{bad}");
    }
}
