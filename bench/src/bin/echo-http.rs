//! The ceiling for an HTTP request on this machine: one axum handler with no
//! work, served like the gateway (axum::serve, TCP_NODELAY, same profile).
//!   echo-http [ADDR=127.0.0.1:15060]

use axum::Router;
use axum::routing::get;
use axum::serve::ListenerExt as _;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:15060".into());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    eprintln!("echo-http listening on {}", listener.local_addr()?);
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    let router = Router::new().route("/", get(|| async { "hello" }));
    axum::serve(listener, router).await?;
    Ok(())
}
