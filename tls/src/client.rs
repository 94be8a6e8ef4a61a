//! The client side: verifying servers, presenting our certificate.

use std::path::PathBuf;
use std::sync::Arc;
use std::task::{Context, Poll};

use anyhow::Context as _;
use futures::future::BoxFuture;
use http::Uri;
use hyper_util::rt::TokioIo;
use rustls::ClientConfig;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

#[cfg(doc)]
use crate::ALPN_H2;
use crate::reload::Reloading;
use crate::{Files, parse_certs, parse_key, parse_roots, provider};

/// The files of a client's TLS.
#[derive(Debug, Clone)]
pub struct ClientFiles {
    /// PEM CA bundle the servers' certificates must chain to.
    pub ca: PathBuf,
    /// The certificate (chain) and key presented to servers, if any.
    pub identity: Option<(PathBuf, PathBuf)>,
}

impl ClientFiles {
    /// A client's TLS files from its settings (`ca_name`, `cert_name`,
    /// `key_name`: their environment variables, for errors): none
    /// (plaintext) without a CA bundle.
    pub fn from_settings(
        [ca_name, cert_name, key_name]: [&str; 3],
        ca: Option<&PathBuf>,
        cert: Option<&PathBuf>,
        key: Option<&PathBuf>,
    ) -> anyhow::Result<Option<Self>> {
        let identity = match (cert, key) {
            (Some(cert), Some(key)) => Some((cert.clone(), key.clone())),
            (None, None) => None,
            (Some(_), None) => anyhow::bail!("{cert_name} needs {key_name}"),
            (None, Some(_)) => anyhow::bail!("{key_name} needs {cert_name}"),
        };
        match ca {
            Some(ca) => Ok(Some(Self { ca: ca.clone(), identity })),
            None => {
                anyhow::ensure!(identity.is_none(), "a client certificate ({cert_name}) needs {ca_name}");
                Ok(None)
            }
        }
    }
}

/// A client's TLS configuration, rebuilt when its files change. Clones
/// share it.
#[derive(Clone)]
pub struct ClientTls {
    config: Arc<Reloading<ClientConfig>>,
}

impl std::fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientTls").finish_non_exhaustive()
    }
}

impl ClientTls {
    /// Loads the files (failing if they do not) and watches them. `alpn`:
    /// the protocols offered ([`ALPN_H2`] for gRPC).
    pub fn load(files: &ClientFiles, alpn: &[&[u8]]) -> anyhow::Result<Self> {
        let alpn: Vec<Vec<u8>> = alpn.iter().map(|protocol| protocol.to_vec()).collect();
        let mut paths = vec![files.ca.clone()];
        if let Some((cert, key)) = &files.identity {
            paths.extend([cert.clone(), key.clone()]);
        }
        let files = files.clone();
        // `contents`: the CA bundle, then the certificate and key if any.
        let config = Reloading::start("client certificate", Files(paths), move |contents| {
            let builder = ClientConfig::builder_with_provider(provider())
                .with_safe_default_protocol_versions()?
                .with_root_certificates(parse_roots(&files.ca, &contents[0])?);
            let mut config = match (&files.identity, contents.get(1..3)) {
                (Some((cert_path, key_path)), Some([cert, key])) => builder
                    .with_client_auth_cert(parse_certs(cert_path, cert)?, parse_key(key_path, key)?)
                    .with_context(|| format!("{} does not go with {}", key_path.display(), cert_path.display()))?,
                _ => builder.with_no_client_auth(),
            };
            config.alpn_protocols.clone_from(&alpn);
            Ok(config)
        })?;
        Ok(Self { config })
    }

    /// A connector for tonic (`Endpoint::connect_with_connector_lazy`):
    /// TCP to the URI's host and port, then TLS verifying the server's
    /// certificate for `server_name`, by default that host name (or IP
    /// address).
    /// A TLS connection to `host` (verified for `server_name`, by default
    /// `host`).
    pub async fn connect(
        &self,
        host: &str,
        port: u16,
        server_name: Option<&str>,
    ) -> Result<TlsStream<TcpStream>, BoxError> {
        let server_name = ServerName::try_from(server_name.unwrap_or(host).to_owned())?;
        connect(self.config.current(), host, port, server_name).await
    }

    pub fn connector(&self, server_name: Option<&str>) -> anyhow::Result<TlsConnector> {
        let server_name = server_name
            .map(|name| ServerName::try_from(name.to_owned()).with_context(|| format!("{name:?}: not a server name")))
            .transpose()?;
        Ok(TlsConnector { tls: self.clone(), server_name })
    }
}

/// See [`ClientTls::connector`].
#[derive(Debug, Clone)]
pub struct TlsConnector {
    tls: ClientTls,
    server_name: Option<ServerName<'static>>,
}

/// The error of a connection attempt.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl tower::Service<Uri> for TlsConnector {
    type Response = TokioIo<TlsStream<TcpStream>>;
    type Error = BoxError;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let config = self.tls.config.current();
        let server_name = self.server_name.clone();
        Box::pin(async move {
            let host = uri.host().ok_or_else(|| format!("{uri}: no host"))?;
            let port = uri.port_u16().unwrap_or(443);
            let host = host.trim_start_matches('[').trim_end_matches(']').to_owned();
            let server_name = match server_name {
                Some(name) => name,
                None => ServerName::try_from(host.clone()).map_err(|error| format!("{host:?}: {error}"))?,
            };
            Ok(TokioIo::new(connect(config, &host, port, server_name).await?))
        })
    }
}

async fn connect(
    config: Arc<ClientConfig>,
    host: &str,
    port: u16,
    server_name: ServerName<'static>,
) -> Result<TlsStream<TcpStream>, BoxError> {
    let tcp = TcpStream::connect((host, port)).await?;
    tcp.set_nodelay(true)?;
    Ok(tokio_rustls::TlsConnector::from(config).connect(server_name, tcp).await?)
}
