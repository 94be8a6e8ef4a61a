//! `store-floor`: books-service's store alone, in process, with no gRPC and
//! no token: `list_books` (a page of 20) from `--concurrency` tasks at once
//! for `--duration` seconds. Its throughput bounds what `ListBooks` can reach
//! through the same store on this machine, whatever the layers above it do.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use books_service::store::{self, BookStore};
use clap::Args;
use serde::Serialize;

use bookstore_bench::print_report;
use bookstore_bench::stats::{Latency, new_histogram};

#[derive(Debug, Args)]
pub struct StoreFloorArgs {
    /// The books database (`sqlite://PATH` or `postgres://...`); by default
    /// a fresh SQLite file in a temporary directory.
    #[arg(long)]
    database_url: Option<String>,
    /// Tasks calling `list_books` at once.
    #[arg(short, long, default_value_t = 128)]
    concurrency: usize,
    /// Seconds measured, after one second of warm-up.
    #[arg(long, default_value_t = 5.0)]
    duration: f64,
    /// One JSON object instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Serialize)]
struct Report {
    scenario: &'static str,
    backend: String,
    concurrency: usize,
    throughput_per_s: f64,
    latency: Latency,
}

/// Owner of the 20 books listed.
const OWNER: &str = "store-floor-owner";
const PAGE: u32 = 20;

pub async fn store_floor(args: StoreFloorArgs) -> anyhow::Result<()> {
    let scratch = tempfile::tempdir()?;
    let url =
        args.database_url.clone().unwrap_or_else(|| format!("sqlite://{}", scratch.path().join("books.db").display()));
    let store = store::connect(&url).await?;
    store.delete_books_of_owner(OWNER).await?;
    for n in 1..=PAGE {
        let book = books_service::store::testing::book(&format!("Book {n}"), "Store floor", i64::from(n));
        store.create_book(OWNER, book, 0).await?;
    }
    let warm_until = Instant::now() + Duration::from_secs(1);
    let stop_at = warm_until + Duration::from_secs_f64(args.duration);
    let workers: Vec<_> = (0..args.concurrency.max(1))
        .map(|_| tokio::spawn(list_until(Arc::clone(&store), warm_until, stop_at)))
        .collect();
    let mut histogram = new_histogram();
    for worker in workers {
        histogram.add(worker.await??).context("merging latencies")?;
    }
    store.delete_books_of_owner(OWNER).await?;
    store.close().await;
    let latency = Latency::of(&histogram);
    let report = Report {
        scenario: "store-floor",
        backend: url.split(':').next().unwrap_or_default().to_owned(),
        concurrency: args.concurrency,
        throughput_per_s: latency.count as f64 / args.duration,
        latency,
    };
    print_report(&report, args.json, |report| {
        println!(
            "store-floor ({}): {:.0} list_books/s with {} tasks; {}",
            report.backend,
            report.throughput_per_s,
            report.concurrency,
            report.latency.describe()
        );
    })
}

async fn list_until(
    store: Arc<dyn BookStore>,
    warm_until: Instant,
    stop_at: Instant,
) -> anyhow::Result<hdrhistogram::Histogram<u64>> {
    let mut histogram = new_histogram();
    loop {
        let started = Instant::now();
        if started >= stop_at {
            return Ok(histogram);
        }
        let books = store.list_books(OWNER, 0, PAGE + 1).await?;
        anyhow::ensure!(books.len() == PAGE as usize, "expected {PAGE} books, got {}", books.len());
        if started >= warm_until {
            let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
            histogram.record(micros.max(1))?;
        }
    }
}
