//! The `bookstore` binary and its services as child processes, for the
//! tests that kill, outlive or restart them (`crash.rs`, `outage.rs`,
//! `backup.rs`).

// Each test binary includes this module and uses a part of it.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::process::{Child, Command};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

pub const BIN: &str = env!("CARGO_BIN_EXE_bookstore");

pub fn free_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap()
}

/// `bookstore SUBCOMMAND` with `env`, its log in `dir/SUBCOMMAND.log`,
/// killed when dropped.
pub fn spawn(dir: &Path, subcommand: &str, env: &[(&str, String)]) -> Child {
    let log = std::fs::File::create(dir.join(format!("{subcommand}.log"))).unwrap();
    Command::new(BIN)
        .arg(subcommand)
        .envs(env.iter().map(|(key, value)| (*key, value.as_str())))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}

/// Starts the all-in-one on `data` on free ports and waits until the
/// gateway is ready; it and the gateway's base URL.
pub async fn start_all_in_one(data: &Path, http: &reqwest::Client) -> (Child, String) {
    let ports = Ports { metrics: false, ..Ports::free() };
    let child = start_all_in_one_on(data, http, &ports, &[]).await;
    (child, format!("http://{}", ports.gateway))
}

/// The addresses of an all-in-one's listeners.
#[derive(Debug, Clone, Copy)]
pub struct Ports {
    pub gateway: SocketAddr,
    pub auth: SocketAddr,
    pub books: SocketAddr,
    /// Whether the metrics listeners are on the addresses below, or on
    /// ports nobody needs to know (0).
    pub metrics: bool,
    pub auth_metrics: SocketAddr,
    pub books_metrics: SocketAddr,
}

impl Ports {
    pub fn free() -> Self {
        Self {
            gateway: free_addr(),
            auth: free_addr(),
            books: free_addr(),
            metrics: true,
            auth_metrics: free_addr(),
            books_metrics: free_addr(),
        }
    }
}

/// Starts the all-in-one on `data` on `ports`, with `env`, and waits until
/// the gateway is ready.
pub async fn start_all_in_one_on(data: &Path, http: &reqwest::Client, ports: &Ports, env: &[(&str, String)]) -> Child {
    let metrics = |addr: SocketAddr| if ports.metrics { addr.to_string() } else { "127.0.0.1:0".to_owned() };
    let child = Command::new(BIN)
        .arg("--data-dir")
        .arg(data)
        .args(["--gateway-addr", &ports.gateway.to_string(), "--auth-addr", &ports.auth.to_string()])
        .args(["--books-addr", &ports.books.to_string()])
        .args(["--auth-metrics-addr", &metrics(ports.auth_metrics)])
        .args(["--books-metrics-addr", &metrics(ports.books_metrics)])
        .args(["--gateway-metrics-addr", "127.0.0.1:0"])
        .envs(env.iter().map(|(key, value)| (*key, value.as_str())))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let base = format!("http://{}", ports.gateway);
    let started = Instant::now();
    while http.get(format!("{base}/readyz")).send().await.map(|r| r.status().as_u16()).unwrap_or(0) != 200 {
        assert!(started.elapsed() < Duration::from_secs(30), "bookstore never became ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    child
}

/// A lazy channel: each call may take up to `timeout`.
pub fn channel(addr: SocketAddr, timeout: Duration) -> tonic::transport::Channel {
    tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect_timeout(Duration::from_secs(1))
        .timeout(timeout)
        .connect_lazy()
}

/// Polls gRPC health until `service` is SERVING (at most 30 s).
pub async fn wait_serving(addr: SocketAddr, service: &str) {
    let started = Instant::now();
    let mut health = HealthClient::new(channel(addr, Duration::from_secs(10)));
    loop {
        let status = health.check(HealthCheckRequest { service: service.to_owned() }).await;
        if status.is_ok_and(|response| response.into_inner().status() == ServingStatus::Serving) {
            return;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "{addr} never became SERVING");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
