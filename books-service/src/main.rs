//! `books-service`: serves the books gRPC API.

use books_service::{App, Settings};
use clap::Parser;

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
    bookstore_runtime::init_tracing("info");
    let outcome = run(&cli.settings).await;
    bookstore_runtime::shutdown_tracing();
    outcome
}

async fn run(settings: &Settings) -> anyhow::Result<()> {
    let app = App::build(settings).await?;
    app.run_until_stopped(bookstore_runtime::shutdown_signal()).await
}
