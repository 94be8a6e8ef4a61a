//! `bookstore probe`: a health check for container healthchecks, with no
//! extra tools in the image.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use bookstore_tls::{ClientFiles, ClientTls};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

const TIMEOUT: Duration = Duration::from_secs(3);

#[derive(clap::Args)]
pub struct Probe {
    /// What to check, e.g. grpc://127.0.0.1:50052/bookstore.books.v1.BooksService
    /// or http://127.0.0.1:5000/readyz (grpcs:// and https:// over TLS).
    target: String,

    /// PEM CA bundle to verify the server's certificate with (grpcs://, https://).
    #[arg(long)]
    cacert: Option<PathBuf>,

    /// PEM client certificate to present, where the server requires one.
    #[arg(long, requires = "key")]
    cert: Option<PathBuf>,

    /// PEM private key of --cert.
    #[arg(long, requires = "cert")]
    key: Option<PathBuf>,
}

impl Probe {
    /// Succeeds when the target is healthy: `grpc://HOST:PORT[/SERVICE]`
    /// answers `grpc.health.v1.Health/Check` (for SERVICE, or the whole
    /// server) with SERVING, `http://HOST:PORT/PATH` answers 200.
    pub async fn run(&self) -> anyhow::Result<()> {
        let target = self.target.as_str();
        tokio::time::timeout(TIMEOUT, async {
            if let Some(rest) = target.strip_prefix("grpc://") {
                probe_grpc(rest, None).await
            } else if let Some(rest) = target.strip_prefix("grpcs://") {
                probe_grpc(rest, Some(self.tls(bookstore_tls::ALPN_H2)?)).await
            } else if let Some(rest) = target.strip_prefix("http://") {
                let (authority, path) = split(rest);
                probe_http(tokio::net::TcpStream::connect(authority).await?, authority, &path).await
            } else if let Some(rest) = target.strip_prefix("https://") {
                let (authority, path) = split(rest);
                let (host, port) = host_port(authority)?;
                let stream =
                    self.tls(&[b"http/1.1"])?.connect(host, port, None).await.map_err(anyhow::Error::from_boxed)?;
                probe_http(stream, authority, &path).await
            } else {
                anyhow::bail!(
                    "unsupported target {target:?}: expected grpc[s]://HOST:PORT[/SERVICE] or http[s]://HOST:PORT/PATH"
                )
            }
        })
        .await
        .with_context(|| format!("{target} did not answer within {TIMEOUT:?}"))?
    }

    fn tls(&self, alpn: &[&[u8]]) -> anyhow::Result<ClientTls> {
        let files = ClientFiles::from_settings(
            ["--cacert", "--cert", "--key"],
            self.cacert.as_ref(),
            self.cert.as_ref(),
            self.key.as_ref(),
        )?
        .context("grpcs:// and https:// need --cacert (the CA bundle to verify the server with)")?;
        ClientTls::load(&files, alpn)
    }
}

fn split(rest: &str) -> (&str, String) {
    rest.split_once('/').map_or((rest, "/".to_owned()), |(host, path)| (host, format!("/{path}")))
}

fn host_port(authority: &str) -> anyhow::Result<(&str, u16)> {
    let (host, port) = authority.rsplit_once(':').with_context(|| format!("{authority:?}: expected HOST:PORT"))?;
    let port = port.parse().with_context(|| format!("{authority:?}: invalid port"))?;
    Ok((host.trim_start_matches('[').trim_end_matches(']'), port))
}

async fn probe_grpc(target: &str, tls: Option<ClientTls>) -> anyhow::Result<()> {
    let (authority, service) = target.split_once('/').unwrap_or((target, ""));
    let channel = match tls {
        None => tonic::transport::Endpoint::from_shared(format!("http://{authority}"))?.connect().await?,
        Some(tls) => {
            tonic::transport::Endpoint::from_shared(format!("https://{authority}"))?
                .connect_with_connector(tls.connector(None)?)
                .await?
        }
    };
    let response = HealthClient::new(channel).check(HealthCheckRequest { service: service.to_owned() }).await?;
    match response.into_inner().status() {
        ServingStatus::Serving => Ok(()),
        status => anyhow::bail!("{target} is {status:?}"),
    }
}

async fn probe_http(
    mut stream: impl AsyncRead + AsyncWrite + Unpin,
    authority: &str,
    path: &str,
) -> anyhow::Result<()> {
    let request = format!("GET {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut head = vec![0; 64];
    let read = stream.read(&mut head).await?;
    let status_line = String::from_utf8_lossy(&head[..read]);
    if status_line.starts_with("HTTP/1.1 200") {
        Ok(())
    } else {
        anyhow::bail!("{authority}{path} answered {:?}", status_line.lines().next().unwrap_or_default())
    }
}
