//! The ceiling for an HTTP request on this machine: one axum handler with no
//! work, served like the gateway (axum::serve, TCP_NODELAY, same profile).
//! Given the `echo-grpc` reference's URL, it also serves `/proxy`: a handler
//! that makes one gRPC call to it through a tonic channel, as the gateway
//! does for every route: the ceiling for an HTTP request translated to gRPC.
//!   echo-http [ADDR=127.0.0.1:15060] [ECHO_GRPC_URL]

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::serve::ListenerExt as _;
use bookstore_bench::echo::v1::EchoRequest;
use bookstore_bench::echo::v1::echo_service_client::EchoServiceClient;
use tonic::transport::{Channel, Endpoint};

async fn proxy(State(client): State<EchoServiceClient<Channel>>) -> Result<String, (StatusCode, String)> {
    let mut client = client;
    match client.echo(EchoRequest { message: "hello".into() }).await {
        Ok(response) => Ok(response.into_inner().message),
        Err(status) => Err((StatusCode::BAD_GATEWAY, status.message().to_owned())),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:15060".into());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    eprintln!("echo-http listening on {}", listener.local_addr()?);
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    let mut router = Router::new().route("/", get(|| async { "hello" }));
    if let Some(url) = args.next() {
        let client = EchoServiceClient::new(Endpoint::from_shared(url)?.tcp_nodelay(true).connect_lazy());
        router = router.merge(Router::new().route("/proxy", get(proxy)).with_state(client));
    }
    axum::serve(listener, router).await?;
    Ok(())
}
