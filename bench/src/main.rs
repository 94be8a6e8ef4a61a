//! `bookstore-bench`: a closed-loop load generator for a running Bookstore
//! stack and the echo references. Each of `--concurrency` workers has its own
//! connection and sends one request after another for `--warmup` plus
//! `--duration` seconds; requests started after the warm-up are counted.
//! Latencies go into an HdrHistogram; the services' memory is sampled from
//! `/proc` (`--rss-of NAME=PID`). See BENCHMARKS.md and `bench/run-all.sh`.

use bookstore_bench::echo::v1::EchoRequest;
use bookstore_bench::grpc_frame;
use bookstore_proto::auth::v1::ValidateTokenRequest;
use bookstore_proto::books::v1::ListBooksRequest;
use clap::{Parser, Subcommand};
use std::path::PathBuf;

mod coldstart;
mod floor;
mod hashing;
mod load;
mod login_timing;
mod targets;

use load::RunArgs;
use login_timing::LoginTimingArgs;
use targets::{Account, Targets, prepare_account};

#[derive(Debug, Parser)]
#[command(name = "bookstore-bench", about = "Load generator for a running Bookstore stack")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Runs one scenario and reports throughput, latency, errors and memory.
    Run(RunArgs),
    /// Registers the account (if needed), gives it its books and prints
    /// `{"name","password","token","public_id"}` as JSON.
    Setup {
        #[command(flatten)]
        targets: Targets,
        #[command(flatten)]
        account: Account,
    },
    /// Login timing of an unknown user against a wrong password, one call at
    /// a time, alternating: the two distributions should be the same.
    LoginTiming(LoginTimingArgs),
    /// Starts a service and times exec -> health SERVING.
    ColdStart(coldstart::ColdStartArgs),
    /// The argon2id bound: one hash's time at the service's parameters, and
    /// the rate of one thread per core hashing at once.
    HashBound(hashing::HashBoundArgs),
    /// books-service's store alone, in process (no gRPC, no token): the
    /// floor under `ListBooks` on this machine.
    StoreFloor(floor::StoreFloorArgs),
    /// Writes gRPC-framed request bodies for `h2load -d`.
    GrpcBodies {
        /// Directory to write `list-books-20.grpc`, `echo.grpc` and
        /// `validate-token.grpc` (with `--token`) into.
        #[arg(long)]
        dir: PathBuf,
        /// Token for the ValidateToken body.
        #[arg(long, default_value = "")]
        token: String,
    },
}

async fn setup(targets: &Targets, account: &Account) -> anyhow::Result<()> {
    let (token, public_id) = prepare_account(targets, account).await?;
    let out =
        serde_json::json!({"name": account.user, "password": account.password, "token": token, "public_id": public_id});
    println!("{out}");
    Ok(())
}

fn grpc_bodies(dir: &std::path::Path, token: &str) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(
        dir.join("list-books-20.grpc"),
        grpc_frame(&ListBooksRequest { page_size: 20, page_token: String::new() })?,
    )?;
    std::fs::write(dir.join("echo.grpc"), grpc_frame(&EchoRequest { message: "hello".into() })?)?;
    if !token.is_empty() {
        std::fs::write(
            dir.join("validate-token.grpc"),
            grpc_frame(&ValidateTokenRequest { token: token.to_owned() })?,
        )?;
    }
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Run(args) => load::run(args).await,
        Command::Setup { targets, account } => setup(&targets, &account).await,
        Command::LoginTiming(args) => login_timing::login_timing(args).await,
        Command::ColdStart(args) => coldstart::cold_start(args).await,
        Command::HashBound(args) => hashing::hash_bound(&args),
        Command::StoreFloor(args) => floor::store_floor(args).await,
        Command::GrpcBodies { dir, token } => grpc_bodies(&dir, &token),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        use clap::CommandFactory as _;
        Cli::command().debug_assert();
    }
}
