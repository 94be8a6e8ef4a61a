//! `bookstore`: the whole stack (auth-service, books-service and the REST
//! gateway) in one process, on SQLite files in a data directory. Zero setup:
//! `cargo run --release`.

use std::net::SocketAddr;
use std::path::PathBuf;

mod copy;
mod probe;

use auth_service::admin::AdminCommand;
use clap::Parser;
use tokio_util::sync::CancellationToken;

/// Runs Bookstore (auth-service, books-service and the REST gateway) in one
/// process on SQLite. Each service's own `AUTH_*`, `BOOKS_*` and `GATEWAY_*`
/// variables apply too, except the addresses, databases and key file set here.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// Directory for the SQLite databases and the token signing key.
    #[arg(long, env = "BOOKSTORE_DATA_DIR", default_value = "data", global = true)]
    data_dir: PathBuf,

    /// Address of the REST gateway (the tutorial's clients expect port 5000).
    #[arg(long, env = "BOOKSTORE_GATEWAY_ADDR", default_value = "127.0.0.1:5000")]
    gateway_addr: SocketAddr,

    /// Address of auth-service (gRPC).
    #[arg(long, env = "BOOKSTORE_AUTH_ADDR", default_value = "127.0.0.1:50051")]
    auth_addr: SocketAddr,

    /// Address of books-service (gRPC).
    #[arg(long, env = "BOOKSTORE_BOOKS_ADDR", default_value = "127.0.0.1:50052")]
    books_addr: SocketAddr,

    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(clap::Subcommand)]
enum Command {
    #[command(flatten)]
    Admin(AdminCommand),
    /// Runs auth-service alone: the same flags and `AUTH_*` variables as the
    /// `auth-service` binary.
    AuthService(auth_service::Settings),
    /// Runs books-service alone (flags and `BOOKS_*` variables).
    BooksService(books_service::Settings),
    /// Runs the REST gateway alone (flags and `GATEWAY_*` variables).
    Gateway(gateway::Settings),
    /// Copies every user and book from the data directory's SQLite files (or
    /// other databases) into PostgreSQL, keeping ids; safe to run again.
    CopyData(copy::CopyData),
    /// Checks a service's health and exits non-zero when it is not healthy:
    /// `grpc://HOST:PORT[/SERVICE]` (gRPC health) or `http://HOST:PORT/PATH` (HTTP 200).
    Probe {
        /// What to check, e.g. grpc://127.0.0.1:50052/bookstore.books.v1.BooksService
        /// or http://127.0.0.1:5000/readyz.
        target: String,
    },
}

impl Cli {
    fn auth_settings(&self) -> anyhow::Result<auth_service::Settings> {
        let mut settings = auth_service::Settings::from_env()?;
        settings.listen_addr = self.auth_addr;
        settings.database_url = format!("sqlite://{}", self.data_dir.join("auth.db").display());
        settings.signing_key_file = self.data_dir.join("auth-signing-key.pem");
        Ok(settings)
    }

    fn books_database_url(&self) -> String {
        format!("sqlite://{}", self.data_dir.join("books.db").display())
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    bookstore_runtime::init_tracing("info");
    let auth_settings = cli.auth_settings()?;
    match &cli.command {
        Some(Command::Admin(command)) => return command.run(&auth_settings).await,
        Some(Command::Probe { target }) => return probe::probe(target).await,
        Some(Command::CopyData(copy)) => {
            return copy.run(&auth_settings.database_url, &cli.books_database_url()).await;
        }
        Some(Command::AuthService(settings)) => {
            let app = auth_service::App::build(settings).await?;
            return app.run_until_stopped(bookstore_runtime::shutdown_signal()).await;
        }
        Some(Command::BooksService(settings)) => {
            let app = books_service::App::build(settings).await?;
            return app.run_until_stopped(bookstore_runtime::shutdown_signal()).await;
        }
        Some(Command::Gateway(settings)) => {
            let app = gateway::App::build(settings).await?;
            return app.run_until_stopped(bookstore_runtime::shutdown_signal()).await;
        }
        None => {}
    }

    let auth = auth_service::App::build(&auth_settings).await?;
    let mut books_settings = books_service::Settings::from_env()?;
    books_settings.listen_addr = cli.books_addr;
    books_settings.database_url = cli.books_database_url();
    books_settings.auth_url = format!("http://{}", auth.local_addr());
    books_settings.issuer.clone_from(&auth_settings.issuer);
    books_settings.audience.clone_from(&auth_settings.audience);
    let books = books_service::App::build(&books_settings).await?;
    let mut gateway_settings = gateway::Settings::from_env()?;
    gateway_settings.listen_addr = cli.gateway_addr;
    gateway_settings.auth_url = format!("http://{}", auth.local_addr());
    gateway_settings.books_url = format!("http://{}", books.local_addr());
    let gateway = gateway::App::build(&gateway_settings).await?;

    println!("Bookstore is running, data in {}", cli.data_dir.display());
    println!("  REST gateway   http://{}", gateway.local_addr());
    println!("  auth-service   {} (gRPC)", auth.local_addr());
    println!("  books-service  {} (gRPC)", books.local_addr());
    println!("Stop with Ctrl-C.");

    // A signal stops the gateway first, so requests it is serving can still
    // reach the services; then the services stop. If any of the three
    // fails, all stop.
    let (stop_gateway, stop_services) = (CancellationToken::new(), CancellationToken::new());
    let on_signal = stop_gateway.clone();
    tokio::spawn(async move {
        bookstore_runtime::shutdown_signal().await;
        on_signal.cancel();
    });
    let stop_all = |outcome: &anyhow::Result<()>| {
        if outcome.is_err() {
            stop_gateway.cancel();
            stop_services.cancel();
        }
    };
    let (auth, books, gateway) = tokio::join!(
        async {
            let outcome = auth.run_until_stopped(stop_services.clone().cancelled_owned()).await;
            stop_all(&outcome);
            outcome
        },
        async {
            let outcome = books.run_until_stopped(stop_services.clone().cancelled_owned()).await;
            stop_all(&outcome);
            outcome
        },
        async {
            let outcome = gateway.run_until_stopped(stop_gateway.clone().cancelled_owned()).await;
            stop_all(&outcome);
            stop_services.cancel();
            outcome
        },
    );
    auth.and(books).and(gateway)
}
