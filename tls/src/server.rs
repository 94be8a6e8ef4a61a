//! The server side: a listener's certificates and the TLS connections it accepts.

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use anyhow::Context as _;
use rustls::ServerConfig;
use rustls::server::WebPkiClientVerifier;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::server::TlsStream;
use tonic::transport::server::Connected;

use crate::TlsPeer;
use crate::reload::Reloading;
use crate::{Files, parse_certs, parse_key, parse_roots, provider};

/// How long a client may take to complete its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections whose handshake is done and that wait for the server to take them.
const ACCEPTED_BACKLOG: usize = 128;

/// Whether a listener with a client CA asks for client certificates or
/// requires them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ClientAuth {
    /// A client may present a certificate (verified against the client CA)
    /// or none: the public API stays open to apps and grpcurl, and the
    /// service-only calls check that a service certificate was presented.
    #[default]
    Optional,
    /// Every connection must present a certificate from the client CA.
    Required,
}

/// The files of a listener's TLS.
#[derive(Debug, Clone)]
pub struct ServerFiles {
    /// PEM certificate chain, the listener's own certificate first.
    pub cert: PathBuf,
    /// PEM private key of that certificate.
    pub key: PathBuf,
    /// PEM CA bundle that client certificates are verified against; with
    /// none, clients are not asked for certificates.
    pub client_ca: Option<PathBuf>,
    pub client_auth: ClientAuth,
}

impl ServerFiles {
    /// A listener's TLS files from its settings, whose environment
    /// variables start with `prefix` (`AUTH`: `AUTH_TLS_CERT`, ...): none
    /// (plaintext) without a certificate; an error for half a configuration.
    pub fn from_settings(
        prefix: &str,
        cert: Option<&PathBuf>,
        key: Option<&PathBuf>,
        client_ca: Option<&PathBuf>,
        client_auth: ClientAuth,
    ) -> anyhow::Result<Option<Self>> {
        match (cert, key) {
            (Some(cert), Some(key)) => {
                Ok(Some(Self { cert: cert.clone(), key: key.clone(), client_ca: client_ca.cloned(), client_auth }))
            }
            (None, None) => {
                anyhow::ensure!(
                    client_ca.is_none(),
                    "{prefix}_TLS_CLIENT_CA needs {prefix}_TLS_CERT and {prefix}_TLS_KEY"
                );
                anyhow::ensure!(
                    client_auth == ClientAuth::Optional,
                    "{prefix}_TLS_CLIENT_AUTH=required needs {prefix}_TLS_CERT, {prefix}_TLS_KEY and {prefix}_TLS_CLIENT_CA"
                );
                Ok(None)
            }
            (Some(_), None) => anyhow::bail!("{prefix}_TLS_CERT needs {prefix}_TLS_KEY"),
            (None, Some(_)) => anyhow::bail!("{prefix}_TLS_KEY needs {prefix}_TLS_CERT"),
        }
    }
}

/// A listener's TLS configuration, rebuilt when its files change. Clones
/// share it.
#[derive(Clone)]
pub struct ServerTls {
    pub(crate) config: Arc<Reloading<ServerConfig>>,
    verifies_clients: bool,
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerTls").field("verifies_clients", &self.verifies_clients).finish_non_exhaustive()
    }
}

impl ServerTls {
    /// Loads the files (failing if they do not) and watches them. `alpn`:
    /// the protocols offered, in order of preference.
    pub fn load(files: &ServerFiles, alpn: &[&[u8]]) -> anyhow::Result<Self> {
        anyhow::ensure!(
            files.client_auth == ClientAuth::Optional || files.client_ca.is_some(),
            "requiring client certificates needs the CA bundle to verify them with"
        );
        let mut paths = vec![files.cert.clone(), files.key.clone()];
        paths.extend(files.client_ca.clone());
        let alpn: Vec<Vec<u8>> = alpn.iter().map(|protocol| protocol.to_vec()).collect();
        let verifies_clients = files.client_ca.is_some();
        let files = files.clone();
        // `contents`: the certificate, the key, then the client CA if any.
        let config = Reloading::start("server certificate", Files(paths), move |contents| {
            let certs = parse_certs(&files.cert, &contents[0])?;
            let key = parse_key(&files.key, &contents[1])?;
            let builder = ServerConfig::builder_with_provider(provider()).with_safe_default_protocol_versions()?;
            let builder = match (&files.client_ca, contents.get(2)) {
                (Some(path), Some(ca)) => {
                    let verifier = WebPkiClientVerifier::builder_with_provider(parse_roots(path, ca)?, provider());
                    let verifier = match files.client_auth {
                        ClientAuth::Optional => verifier.allow_unauthenticated(),
                        ClientAuth::Required => verifier,
                    };
                    builder.with_client_cert_verifier(verifier.build().context("the client CA bundle")?)
                }
                _ => builder.with_no_client_auth(),
            };
            let mut config = builder
                .with_single_cert(certs, key)
                .with_context(|| format!("{} does not go with {}", files.key.display(), files.cert.display()))?;
            config.alpn_protocols.clone_from(&alpn);
            Ok(config)
        })?;
        Ok(Self { config, verifies_clients })
    }

    /// Whether client certificates are verified (a client CA is configured),
    /// so that a request's peer certificates, if any, are trustworthy.
    pub fn verifies_clients(&self) -> bool {
        self.verifies_clients
    }

    /// TLS connections on `listener`. Handshakes run concurrently, each
    /// bounded by a timeout, so a slow or silent client holds up no one; a
    /// failed handshake (a plaintext client, an untrusted certificate) closes
    /// that connection only.
    pub fn listen(&self, listener: TcpListener) -> io::Result<TlsListener> {
        let local_addr = listener.local_addr()?;
        let (sender, receiver) = mpsc::channel(ACCEPTED_BACKLOG);
        tokio::spawn(accept_loop(listener, self.config.clone(), sender));
        Ok(TlsListener { receiver, local_addr })
    }
}

async fn accept_loop(
    listener: TcpListener,
    config: Arc<Reloading<ServerConfig>>,
    sender: mpsc::Sender<(TlsConnection, SocketAddr)>,
) {
    loop {
        let (tcp, peer) = tokio::select! {
            () = sender.closed() => return,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors and the like: wait for some to close.
                    tracing::warn!(%error, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        // Small unary responses must not wait for Nagle's algorithm.
        let _ = tcp.set_nodelay(true);
        let acceptor = tokio_rustls::TlsAcceptor::from(config.current());
        let sender = sender.clone();
        tokio::spawn(async move {
            let handshake = async {
                if speaks_plaintext(&tcp).await {
                    refuse_plaintext(tcp, peer).await;
                    return Err(io::Error::other("a plaintext client"));
                }
                acceptor.accept(tcp).await
            };
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake).await {
                Ok(Ok(stream)) => {
                    let _ = sender.send((TlsConnection(stream), peer)).await;
                }
                Ok(Err(error)) => tracing::debug!(%peer, %error, "TLS handshake failed"),
                Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
            }
        });
    }
}

/// Whether a new connection's first bytes are not a TLS handshake record
/// (content type 22), i.e. a plaintext client.
async fn speaks_plaintext(tcp: &TcpStream) -> bool {
    let mut first = [0; 1];
    matches!(tcp.peek(&mut first).await, Ok(1) if first[0] != TLS_HANDSHAKE)
}

const TLS_HANDSHAKE: u8 = 22;
/// What a plaintext HTTP/1 client is told, in a 400 (as nginx does).
const PLAINTEXT_HTTP_MESSAGE: &str = r#"{"message":"this port speaks TLS only: use https:// instead of http://"}"#;
/// The start of HTTP/2 with prior knowledge (gRPC over plaintext).
const HTTP2_PREFACE: &[u8] = b"PRI * HTTP/2.0";

/// Tells a plaintext client why it is refused, in its own protocol: HTTP/2
/// (a gRPC client) gets GOAWAY with the reason as its debug data, HTTP/1 a
/// 400 with a JSON message; then the connection is closed.
async fn refuse_plaintext(mut tcp: TcpStream, peer: SocketAddr) {
    use tokio::io::AsyncWriteExt as _;
    let mut start = [0; 14];
    let read = tcp.peek(&mut start).await.unwrap_or(0);
    let answer = if start[..read] == HTTP2_PREFACE[..read.min(HTTP2_PREFACE.len())] {
        let reason = b"this port serves gRPC over TLS only";
        // An empty SETTINGS frame (the server's preface), then GOAWAY:
        // last stream 0, PROTOCOL_ERROR (1), the reason.
        let mut frames = vec![0, 0, 0, 4, 0, 0, 0, 0, 0];
        let length = u8::try_from(8 + reason.len()).unwrap_or(u8::MAX);
        frames.extend([0, 0, length, 7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        frames.extend_from_slice(reason);
        frames
    } else {
        format!(
            "HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{}",
            PLAINTEXT_HTTP_MESSAGE.len(),
            PLAINTEXT_HTTP_MESSAGE
        )
        .into_bytes()
    };
    tracing::debug!(%peer, "a plaintext client on a TLS port: refused");
    let _ = tcp.write_all(&answer).await;
    let _ = tcp.shutdown().await;
    // Read what the client sent until it closes (bounded by the handshake
    // timeout): closing with unread data would reset the connection, and the
    // client might lose the answer.
    let mut sink = [0; 1024];
    while matches!(tokio::io::AsyncReadExt::read(&mut tcp, &mut sink).await, Ok(read) if read > 0) {}
}

/// Accepted TLS connections: a stream for tonic's `serve_with_incoming`
/// and a [`Listener`](axum::serve::Listener) for `axum::serve`. Accepting
/// stops when it is dropped.
#[derive(Debug)]
pub struct TlsListener {
    receiver: mpsc::Receiver<(TlsConnection, SocketAddr)>,
    local_addr: SocketAddr,
}

impl futures::Stream for TlsListener {
    type Item = io::Result<TlsConnection>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.receiver.poll_recv(cx).map(|accepted| accepted.map(|(stream, _)| Ok(stream)))
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsConnection;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.receiver.recv().await {
            Some(accepted) => accepted,
            // The accept loop ends only when this listener is dropped.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Ok(self.local_addr)
    }
}

/// An accepted TLS connection. To tonic's server it gives [`TlsPeer`]
/// (address and client certificates) as each request's connection info.
#[derive(Debug)]
pub struct TlsConnection(TlsStream<TcpStream>);

impl Connected for TlsConnection {
    type ConnectInfo = TlsPeer;

    fn connect_info(&self) -> TlsPeer {
        let (tcp, session) = self.0.get_ref();
        TlsPeer {
            remote_addr: tcp.peer_addr().ok(),
            certificates: session.peer_certificates().map(|chain| Arc::new(chain.to_vec())),
        }
    }
}

impl AsyncRead for TlsConnection {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_read(cx, buf)
    }
}

impl AsyncWrite for TlsConnection {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_shutdown(cx)
    }
}
