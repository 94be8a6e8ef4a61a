//! `auth-service`: serves the auth gRPC API, or runs an admin command.

use auth_service::admin::AdminCommand;
use auth_service::{App, Settings};
use clap::Parser;

/// Bookstore's auth service (gRPC).
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(flatten)]
    settings: Settings,
    #[command(subcommand)]
    command: Option<AdminCommand>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    bookstore_runtime::init_tracing("info");
    if let Some(command) = cli.command {
        return command.run(&cli.settings).await;
    }
    let app = App::build(&cli.settings).await?;
    app.run_until_stopped(bookstore_runtime::shutdown_signal()).await
}
