//! `run`: one scenario's closed loop. Each of `--concurrency` workers has
//! its own connection and sends one request after another; the measured
//! ones go into a histogram, and the services' memory is sampled meanwhile.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bookstore_bench::echo::v1::EchoRequest;
use bookstore_bench::echo::v1::echo_service_client::EchoServiceClient;
use bookstore_bench::print_report;
use bookstore_bench::rss::{self, Memory, Watched};
use bookstore_bench::stats::{Latency, new_histogram};
use bookstore_proto::auth::v1::auth_service_client::AuthServiceClient;
use bookstore_proto::auth::v1::{LoginRequest, ValidateTokenRequest};
use bookstore_proto::books::v1::ListBooksRequest;
use bookstore_proto::books::v1::books_service_client::BooksServiceClient;
use bookstore_proto::pagination::page_token_after;
use clap::{Args, ValueEnum};
use hdrhistogram::Histogram;
use serde::Serialize;
use tonic::metadata::{AsciiMetadataValue, MetadataValue};
use tonic::transport::Channel;

use crate::targets::{Account, Targets, book, http_client, lazy_channel, prepare_account, status_text};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
enum Scenario {
    /// gRPC ListBooks (a page of `--page-size`) straight to books-service.
    GrpcListBooks,
    /// REST `GET /books?limit=PAGE_SIZE` through the gateway.
    RestListBooks,
    /// gRPC CreateBook.
    GrpcCreateBook,
    /// REST `POST /book`.
    RestCreateBook,
    /// gRPC Login (argon2id verification).
    Login,
    /// gRPC ValidateToken (signature check at auth-service).
    ValidateToken,
    /// 60% REST list, 15% gRPC list, 10% REST create, 13% ValidateToken, 2% Login.
    Mixed,
    /// REST `GET /books` measured while `--storm` workers log in non-stop.
    LoginStorm,
    /// The trivial tonic echo.
    EchoGrpc,
    /// The trivial axum handler.
    EchoHttp,
}

#[derive(Debug, Args)]
pub(crate) struct RunArgs {
    #[arg(long, value_enum)]
    scenario: Scenario,
    /// Workers, each with its own connection and one request in flight.
    #[arg(short, long, default_value_t = 16)]
    concurrency: usize,
    /// Measured seconds.
    #[arg(short, long, default_value_t = 10.0)]
    duration: f64,
    /// Seconds of load before measuring.
    #[arg(short, long, default_value_t = 2.0)]
    warmup: f64,
    /// One JSON object on stdout instead of text.
    #[arg(long)]
    json: bool,
    /// Processes whose memory to sample, `NAME=PID` (repeatable).
    #[arg(long = "rss-of", alias = "pid")]
    rss_of: Vec<Watched>,
    /// Books per list request.
    #[arg(long, default_value_t = 20)]
    page_size: u32,
    /// List from after this book id (a page deep in the list) instead of
    /// the first page.
    #[arg(long)]
    page_after: Option<i64>,
    /// Login workers of the `login-storm` scenario.
    #[arg(long, default_value_t = 8)]
    storm: usize,
    /// Free text stored with the result (e.g. `pinned`).
    #[arg(long, default_value = "")]
    label: String,
    #[command(flatten)]
    targets: Targets,
    #[command(flatten)]
    account: Account,
}

/// One kind of request.
#[derive(Debug, Clone, Copy)]
enum Op {
    GrpcList,
    RestList,
    GrpcCreate,
    RestCreate,
    Login,
    Validate,
    EchoGrpc,
    EchoHttp,
}

impl Scenario {
    /// The `sequence`-th request of a measured worker.
    fn op(self, sequence: u64) -> Op {
        match self {
            Self::GrpcListBooks => Op::GrpcList,
            Self::RestListBooks | Self::LoginStorm => Op::RestList,
            Self::GrpcCreateBook => Op::GrpcCreate,
            Self::RestCreateBook => Op::RestCreate,
            Self::Login => Op::Login,
            Self::ValidateToken => Op::Validate,
            Self::EchoGrpc => Op::EchoGrpc,
            Self::EchoHttp => Op::EchoHttp,
            // A fixed interleaving (a multiplicative hash of the sequence
            // number) so every worker sees the same mix.
            Self::Mixed => match (sequence.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) % 100 {
                0..60 => Op::RestList,
                60..75 => Op::GrpcList,
                75..85 => Op::RestCreate,
                85..98 => Op::Validate,
                _ => Op::Login,
            },
        }
    }

    fn needs_account(self) -> bool {
        !matches!(self, Self::EchoGrpc | Self::EchoHttp)
    }
}

/// What every worker shares.
struct Shared {
    targets: Targets,
    account: Account,
    bearer: AsciiMetadataValue,
    token: String,
    list_query: String,
    page_token: String,
    page_size: u32,
}

/// One worker's connections (each made on first use).
struct Worker {
    shared: Arc<Shared>,
    auth: AuthServiceClient<Channel>,
    books: BooksServiceClient<Channel>,
    echo: EchoServiceClient<Channel>,
    http: reqwest::Client,
}

impl Worker {
    fn new(shared: Arc<Shared>) -> anyhow::Result<Self> {
        Ok(Self {
            auth: AuthServiceClient::new(lazy_channel(&shared.targets.auth_url)?),
            books: BooksServiceClient::new(lazy_channel(&shared.targets.books_url)?),
            echo: EchoServiceClient::new(lazy_channel(&shared.targets.echo_grpc_url)?),
            http: http_client()?,
            shared,
        })
    }

    fn authorized<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        request.metadata_mut().insert("authorization", self.shared.bearer.clone());
        request
    }

    /// Sends one request; `Err` describes a failed one.
    async fn call(&mut self, op: Op, sequence: u64) -> Result<(), String> {
        let shared = Arc::clone(&self.shared);
        match op {
            Op::GrpcList => {
                let request = ListBooksRequest {
                    page_size: i32::try_from(shared.page_size).unwrap_or(i32::MAX),
                    page_token: shared.page_token.clone(),
                };
                let page =
                    self.books.list_books(self.authorized(request)).await.map_err(|status| status_text(&status))?;
                if page.get_ref().books.is_empty() {
                    return Err("ListBooks returned no books".into());
                }
            }
            Op::RestList => {
                let url = format!("{}/books{}", shared.targets.gateway_url, shared.list_query);
                let response = self.http.get(url).header("x-access-tokens", &shared.token).send().await;
                http_outcome(response).await?;
            }
            Op::GrpcCreate => {
                let request = book(sequence);
                self.books.create_book(self.authorized(request)).await.map_err(|status| status_text(&status))?;
            }
            Op::RestCreate => {
                let body = book(sequence);
                let json = serde_json::json!({
                    "name": body.name, "Author": body.author, "Publisher": body.publisher, "book_prize": body.book_prize,
                });
                let url = format!("{}/book", shared.targets.gateway_url);
                let response = self.http.post(url).header("x-access-tokens", &shared.token).json(&json).send().await;
                http_outcome(response).await?;
            }
            Op::Login => {
                let request =
                    LoginRequest { name: shared.account.user.clone(), password: shared.account.password.clone() };
                self.auth.login(request).await.map_err(|status| status_text(&status))?;
            }
            Op::Validate => {
                let request = ValidateTokenRequest { token: shared.token.clone() };
                self.auth.validate_token(request).await.map_err(|status| status_text(&status))?;
            }
            Op::EchoGrpc => {
                self.echo.echo(EchoRequest { message: "hello".into() }).await.map_err(|status| status_text(&status))?;
            }
            Op::EchoHttp => {
                let response = self.http.get(format!("{}/", shared.targets.echo_http_url)).send().await;
                http_outcome(response).await?;
            }
        }
        Ok(())
    }
}

async fn http_outcome(response: reqwest::Result<reqwest::Response>) -> Result<(), String> {
    let response = response.map_err(|error| format!("HTTP error: {error}"))?;
    let status = response.status();
    // Read the whole body: it is part of the request's cost.
    let body = response.bytes().await.map_err(|error| format!("HTTP body error: {error}"))?;
    if status.is_success() {
        Ok(())
    } else {
        Err(format!("HTTP {status}: {}", String::from_utf8_lossy(&body[..body.len().min(200)])))
    }
}

/// What one group of workers measured.
#[derive(Debug, Serialize)]
struct GroupReport {
    concurrency: usize,
    requests: u64,
    errors: u64,
    throughput_per_s: f64,
    latency: Latency,
    error_samples: Vec<String>,
}

#[derive(Debug, Serialize)]
struct RunReport {
    scenario: Scenario,
    label: String,
    duration_s: f64,
    warmup_s: f64,
    page_size: u32,
    page_after: Option<i64>,
    #[serde(flatten)]
    measured: GroupReport,
    /// The login storm's own figures (`login-storm` only).
    storm: Option<GroupReport>,
    memory: Vec<Memory>,
}

struct WorkerOutcome {
    histogram: Histogram<u64>,
    errors: u64,
    error_samples: Vec<String>,
}

/// Sends `scenario`'s requests (or logins, for a storm worker) until `end`,
/// recording those started after `measure_from`.
async fn drive(
    mut worker: Worker,
    scenario: Scenario,
    storm: bool,
    measure_from: Instant,
    end: Instant,
) -> WorkerOutcome {
    let mut outcome = WorkerOutcome { histogram: new_histogram(), errors: 0, error_samples: Vec::new() };
    let mut sequence = 0_u64;
    loop {
        let started = Instant::now();
        if started >= end {
            return outcome;
        }
        let op = if storm { Op::Login } else { scenario.op(sequence) };
        let result = worker.call(op, sequence).await;
        sequence += 1;
        if started < measure_from {
            continue;
        }
        let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        outcome.histogram.saturating_record(micros.max(1));
        if let Err(error) = result {
            outcome.errors += 1;
            if outcome.error_samples.len() < 3 {
                outcome.error_samples.push(error);
            }
        }
    }
}

fn merge(outcomes: Vec<WorkerOutcome>, duration: f64) -> GroupReport {
    let concurrency = outcomes.len();
    let mut histogram = new_histogram();
    let mut errors = 0;
    let mut error_samples = Vec::new();
    for outcome in outcomes {
        histogram.add(&outcome.histogram).ok();
        errors += outcome.errors;
        error_samples.extend(outcome.error_samples.into_iter().take(3_usize.saturating_sub(error_samples.len())));
    }
    let requests = histogram.len();
    GroupReport {
        concurrency,
        requests,
        errors,
        throughput_per_s: requests as f64 / duration,
        latency: Latency::of(&histogram),
        error_samples,
    }
}

pub(crate) async fn run(args: RunArgs) -> anyhow::Result<()> {
    let scenario = args.scenario;
    let token =
        if scenario.needs_account() { prepare_account(&args.targets, &args.account).await?.0 } else { String::new() };
    let page_token = args.page_after.map(page_token_after).unwrap_or_default();
    let list_query = if page_token.is_empty() {
        format!("?limit={}", args.page_size)
    } else {
        format!("?limit={}&page_token={page_token}", args.page_size)
    };
    let shared = Arc::new(Shared {
        bearer: MetadataValue::try_from(format!("Bearer {token}"))?,
        token,
        list_query,
        page_token,
        page_size: args.page_size,
        targets: args.targets.clone(),
        account: args.account.clone(),
    });

    let (stop_sampling, stopped) = tokio::sync::watch::channel(false);
    let sampler = tokio::spawn(rss::sample_until(args.rss_of.clone(), stopped));
    let start = Instant::now();
    let measure_from = start + Duration::from_secs_f64(args.warmup);
    let end = measure_from + Duration::from_secs_f64(args.duration);
    let storm_workers = if scenario == Scenario::LoginStorm { args.storm } else { 0 };
    let mut measured = Vec::new();
    let mut storm = Vec::new();
    for index in 0..args.concurrency + storm_workers {
        let worker = Worker::new(Arc::clone(&shared))?;
        let is_storm = index >= args.concurrency;
        let task = tokio::spawn(drive(worker, scenario, is_storm, measure_from, end));
        if is_storm { storm.push(task) } else { measured.push(task) }
    }
    let mut outcomes = Vec::new();
    for task in measured {
        outcomes.push(task.await?);
    }
    let mut storm_outcomes = Vec::new();
    for task in storm {
        storm_outcomes.push(task.await?);
    }
    stop_sampling.send(true).ok();
    let memory = sampler.await?;

    let report = RunReport {
        scenario,
        label: args.label,
        duration_s: args.duration,
        warmup_s: args.warmup,
        page_size: args.page_size,
        page_after: args.page_after,
        measured: merge(outcomes, args.duration),
        storm: (!storm_outcomes.is_empty()).then(|| merge(storm_outcomes, args.duration)),
        memory,
    };
    print_report(&report, args.json, print_run)
}

fn print_run(report: &RunReport) {
    let scenario = serde_json::to_value(report.scenario).unwrap_or_default();
    let group = &report.measured;
    println!(
        "{} c={}: {:.1} req/s, {} requests, {} errors; {}",
        scenario.as_str().unwrap_or("?"),
        group.concurrency,
        group.throughput_per_s,
        group.requests,
        group.errors,
        group.latency.describe()
    );
    for sample in &group.error_samples {
        println!("  error: {sample}");
    }
    if let Some(storm) = &report.storm {
        println!(
            "  login storm c={}: {:.1} logins/s, {} errors; {}",
            storm.concurrency,
            storm.throughput_per_s,
            storm.errors,
            storm.latency.describe()
        );
    }
    for memory in &report.memory {
        println!(
            "  {} (pid {}): VmRSS peak {:.1} MiB, end {:.1} MiB, VmHWM {:.1} MiB",
            memory.name,
            memory.pid,
            memory.peak_rss_kib as f64 / 1024.0,
            memory.end_rss_kib as f64 / 1024.0,
            memory.hwm_kib as f64 / 1024.0
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mixed_workload_has_its_documented_shares() {
        let mut counts = [0_u32; 5];
        for sequence in 0..100_000 {
            let slot = match Scenario::Mixed.op(sequence) {
                Op::RestList => 0,
                Op::GrpcList => 1,
                Op::RestCreate => 2,
                Op::Validate => 3,
                Op::Login => 4,
                other => panic!("unexpected {other:?}"),
            };
            counts[slot] += 1;
        }
        let expected = [60_000, 15_000, 10_000, 13_000, 2_000];
        for (count, expected) in counts.iter().zip(expected) {
            assert!(count.abs_diff(expected) < expected / 10, "{counts:?}");
        }
    }
}
