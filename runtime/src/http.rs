//! Serving an axum router (the gateway, the admin ports) over plaintext or TLS.

use std::future::Future;
use std::net::SocketAddr;

use axum::serve::ListenerExt as _;
use bookstore_tls::ServerTls;
use tokio::net::TcpListener;

/// Serves `router` on `listener` until `shutdown` resolves, then lets
/// in-flight requests finish. HTTP/1.1 and HTTP/2 (over TLS chosen by ALPN);
/// handlers can extract the peer's `ConnectInfo<SocketAddr>`. With `tls`,
/// only TLS connections are served.
pub async fn serve_http(
    listener: TcpListener,
    tls: Option<&ServerTls>,
    router: axum::Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = router.into_make_service_with_connect_info::<SocketAddr>();
    match tls {
        None => {
            // No Nagle delay on small answers.
            let listener = listener.tap_io(|tcp| {
                if let Err(error) = tcp.set_nodelay(true) {
                    tracing::warn!(%error, "cannot set TCP_NODELAY");
                }
            });
            axum::serve(listener, app).with_graceful_shutdown(shutdown).await
        }
        Some(tls) => {
            // The TLS listener sets TCP_NODELAY itself; `tap_io` is what
            // gives a listener's address to handlers as `ConnectInfo`.
            let listener = tls.listen(listener)?.tap_io(|_| {});
            axum::serve(listener, app).with_graceful_shutdown(shutdown).await
        }
    }
}
