//! `books-service`: serves the books gRPC API.

use books_service::{App, Settings};
use clap::Parser;

/// As the all-in-one's (`bookstore/src/main.rs`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Bookstore's books service (gRPC).
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(flatten)]
    settings: Settings,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    bookstore_runtime::with_tracing("info", async {
        App::build(&cli.settings).await?.run_until_stopped(bookstore_runtime::shutdown_signal()).await
    })
    .await
}
