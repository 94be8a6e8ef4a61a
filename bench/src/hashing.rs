//! The argon2id bound of `Login`: at most `cores / one hash's time` logins
//! per second, whatever the service does.

use std::time::Instant;

use argon2::{Algorithm, Argon2, Block, Params, Version};
use bookstore_bench::print_report;
use clap::Args;
use serde::Serialize;

#[derive(Debug, Args)]
pub struct HashBoundArgs {
    /// Hashes timed on one thread (after two untimed ones).
    #[arg(long, default_value_t = 20)]
    iterations: u32,
    /// Threads hashing at once for the parallel figure (default: the cores
    /// this process may run on).
    #[arg(long)]
    threads: Option<usize>,
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Serialize)]
struct HashBound {
    /// auth-service's parameters.
    m_kib: u32,
    t: u32,
    p: u32,
    single_hash_ms: f64,
    cores: usize,
    /// cores / single_hash_ms, per second.
    bound_per_s: f64,
    parallel_threads: usize,
    /// Measured with `parallel_threads` threads, each reusing its buffer.
    parallel_hashes_per_s: f64,
}

/// Hashes `count` times with one reused work area; returns the seconds taken.
fn hash_repeatedly(count: u32) -> anyhow::Result<f64> {
    let params = Params::new(19_456, 2, 1, Some(32)).map_err(|error| anyhow::anyhow!("argon2 params: {error}"))?;
    let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
    let mut memory = vec![Block::new(); argon2.params().block_count()];
    let mut output = [0_u8; 32];
    let started = Instant::now();
    for round in 0..count {
        argon2
            .hash_password_into_with_memory(
                format!("password-{round}").as_bytes(),
                b"bench-salt-16byt",
                &mut output,
                &mut memory,
            )
            .map_err(|error| anyhow::anyhow!("argon2: {error}"))?;
    }
    Ok(started.elapsed().as_secs_f64())
}

pub fn hash_bound(args: &HashBoundArgs) -> anyhow::Result<()> {
    hash_repeatedly(2)?;
    let single_hash_ms = hash_repeatedly(args.iterations)? * 1000.0 / f64::from(args.iterations);
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    let threads = args.threads.unwrap_or(cores);
    let iterations = args.iterations;
    let started = Instant::now();
    let handles: Vec<_> = (0..threads).map(|_| std::thread::spawn(move || hash_repeatedly(iterations))).collect();
    for handle in handles {
        handle.join().map_err(|_| anyhow::anyhow!("a hashing thread panicked"))??;
    }
    let total = f64::from(iterations) * threads as f64;
    let report = HashBound {
        m_kib: 19_456,
        t: 2,
        p: 1,
        single_hash_ms,
        cores,
        bound_per_s: cores as f64 * 1000.0 / single_hash_ms,
        parallel_threads: threads,
        parallel_hashes_per_s: total / started.elapsed().as_secs_f64(),
    };
    print_report(&report, args.json, |report| {
        println!(
            "argon2id m=19456 t=2 p=1: {:.2} ms per hash; bound {:.1}/s on {} cores; {} threads measured {:.1}/s",
            report.single_hash_ms,
            report.bound_per_s,
            report.cores,
            report.parallel_threads,
            report.parallel_hashes_per_s
        );
    })
}
