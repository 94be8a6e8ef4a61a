//! The `bookstore` binary's services as child processes, for the tests that
//! kill or outlive them (`crash.rs`, `outage.rs`).

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
