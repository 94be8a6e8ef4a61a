//! Cold start: from exec to the service's health answering SERVING.

use std::process::Stdio;
use std::time::{Duration, Instant};

use bookstore_bench::print_report;
use clap::Args;
use serde::Serialize;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

/// Give up on a start after this long.
const START_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Args)]
pub struct ColdStartArgs {
    /// Name stored with the result.
    #[arg(long)]
    name: String,
    /// `grpc://HOST:PORT[/SERVICE]` (gRPC health SERVING) or
    /// `http://HOST:PORT/PATH` (HTTP 200).
    #[arg(long)]
    health: String,
    /// Starts to time; each is stopped (SIGTERM) before the next.
    #[arg(long, default_value_t = 5)]
    runs: u32,
    #[arg(long)]
    json: bool,
    /// The command (and arguments) that starts the service; the environment
    /// is passed on.
    #[arg(last = true, required = true)]
    command: Vec<String>,
}

#[derive(Debug, Serialize)]
struct ColdStart {
    name: String,
    /// Each start's exec -> ready time; the first is on a fresh database
    /// when the caller gave one.
    ready_ms: Vec<f64>,
    min_ms: f64,
    median_ms: f64,
    max_ms: f64,
}

async fn is_ready(health: &str, http: &reqwest::Client) -> bool {
    if let Some(target) = health.strip_prefix("grpc://") {
        let (authority, service) = target.split_once('/').unwrap_or((target, ""));
        let Ok(endpoint) = tonic::transport::Endpoint::from_shared(format!("http://{authority}")) else {
            return false;
        };
        let Ok(channel) = endpoint.connect().await else { return false };
        let answer = HealthClient::new(channel).check(HealthCheckRequest { service: service.to_owned() }).await;
        return answer.is_ok_and(|response| response.into_inner().status() == ServingStatus::Serving);
    }
    http.get(health).send().await.is_ok_and(|response| response.status().is_success())
}

pub async fn cold_start(args: ColdStartArgs) -> anyhow::Result<()> {
    let http = reqwest::Client::builder().pool_max_idle_per_host(0).build()?;
    let (program, rest) = args.command.split_first().ok_or_else(|| anyhow::anyhow!("no command given"))?;
    let mut ready_ms = Vec::new();
    for _ in 0..args.runs {
        let started = Instant::now();
        let mut child = tokio::process::Command::new(program)
            .args(rest)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()?;
        let mut ready = false;
        while started.elapsed() < START_TIMEOUT {
            if is_ready(&args.health, &http).await {
                ready = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let elapsed = started.elapsed().as_secs_f64() * 1000.0;
        if let Some(pid) = child.id() {
            std::process::Command::new("kill").args(["-TERM", &pid.to_string()]).status()?;
        }
        if tokio::time::timeout(Duration::from_secs(5), child.wait()).await.is_err() {
            child.kill().await?;
        }
        anyhow::ensure!(ready, "{} was not ready within {START_TIMEOUT:?}", args.name);
        ready_ms.push(elapsed);
    }
    let mut sorted = ready_ms.clone();
    sorted.sort_by(f64::total_cmp);
    let report = ColdStart {
        name: args.name,
        min_ms: sorted.first().copied().unwrap_or_default(),
        median_ms: sorted.get(sorted.len() / 2).copied().unwrap_or_default(),
        max_ms: sorted.last().copied().unwrap_or_default(),
        ready_ms,
    };
    print_report(&report, args.json, |report| {
        let runs: Vec<String> = report.ready_ms.iter().map(|ms| format!("{ms:.1}")).collect();
        println!("{}: ready in {} ms (median {:.1} ms)", report.name, runs.join(", "), report.median_ms);
    })
}
