//! `bookstore probe`: a health check for container healthchecks, with no
//! extra tools in the image.

use std::time::Duration;

use anyhow::Context as _;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

const TIMEOUT: Duration = Duration::from_secs(3);

/// Succeeds when `target` is healthy: `grpc://HOST:PORT[/SERVICE]` answers
/// `grpc.health.v1.Health/Check` (for SERVICE, or the whole server) with
/// SERVING, `http://HOST:PORT/PATH` answers 200.
pub async fn probe(target: &str) -> anyhow::Result<()> {
    tokio::time::timeout(TIMEOUT, async {
        if let Some(authority) = target.strip_prefix("grpc://") {
            probe_grpc(authority).await
        } else if let Some(rest) = target.strip_prefix("http://") {
            probe_http(rest).await
        } else {
            anyhow::bail!("unsupported target {target:?}: expected grpc://HOST:PORT[/SERVICE] or http://HOST:PORT/PATH")
        }
    })
    .await
    .with_context(|| format!("{target} did not answer within {TIMEOUT:?}"))?
}

async fn probe_grpc(target: &str) -> anyhow::Result<()> {
    let (authority, service) = target.split_once('/').unwrap_or((target, ""));
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{authority}"))?.connect().await?;
    let response = HealthClient::new(channel).check(HealthCheckRequest { service: service.to_owned() }).await?;
    match response.into_inner().status() {
        ServingStatus::Serving => Ok(()),
        status => anyhow::bail!("{target} is {status:?}"),
    }
}

async fn probe_http(rest: &str) -> anyhow::Result<()> {
    let (authority, path) =
        rest.split_once('/').map_or((rest, "/".to_owned()), |(host, path)| (host, format!("/{path}")));
    let mut stream = tokio::net::TcpStream::connect(authority).await?;
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
