//! `auth-service`: serves the auth gRPC API, or runs an admin command.

use auth_service::admin::AdminCommand;
use auth_service::{App, Settings};
use clap::Parser;

/// As the all-in-one's (`bookstore/src/main.rs`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Bookstore's auth service (gRPC), or one of its admin commands.
///
/// With no command, serves `bookstore.auth.v1.AuthService` (plus health and
/// reflection): registers users, logs them in with EdDSA-signed JWTs and
/// publishes the public keys (JWKS) books-service verifies them with. With a
/// command, runs it against the same database and key files and exits. Every
/// option has an `AUTH_*` environment variable; `auth-service COMMAND --help`
/// tells more about each command.
#[derive(Parser)]
#[command(
    version,
    about,
    long_about,
    after_help = "Examples:
  auth-service --database-url postgres://bookstore@db/bookstore_auth \\
      --signing-key-file /run/secrets/auth-signing-key.pem --generate-signing-key false
  AUTH_DATABASE_URL=postgres://bookstore@db/bookstore_auth auth-service list-users"
)]
struct Cli {
    #[command(flatten)]
    settings: Settings,
    #[command(subcommand)]
    command: Option<AdminCommand>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // A command prints its result; its logs only on trouble.
    bookstore_runtime::with_tracing(if cli.command.is_some() { "warn" } else { "info" }, run(cli)).await
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    if let Some(command) = cli.command {
        return command.run(&cli.settings).await;
    }
    let app = App::build(&cli.settings).await?;
    app.run_until_stopped(bookstore_runtime::shutdown_signal()).await
}
