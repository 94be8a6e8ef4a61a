//! `bookstore`: the whole stack (auth-service, books-service and the REST
//! gateway) in one process, on SQLite files in a data directory. Zero setup:
//! `cargo run --release`.

use std::net::SocketAddr;
use std::path::PathBuf;

mod backup;
mod copy;
mod migrate;
mod probe;

use auth_service::admin::AdminCommand;
use clap::Parser;
use tokio_util::sync::CancellationToken;

/// mimalloc rather than the system allocator: a `GET /books` makes a few
/// hundred small allocations (rows, protobuf messages, JSON), and glibc's
/// malloc and free took a fifth of its instructions (BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Bookstore: the whole stack, its admin commands, or one service alone.
///
/// With no command, runs auth-service, books-service and the REST gateway in
/// one process on SQLite files in the data directory (created on first start,
/// with a token signing key): the tutorial's REST API on port 5000, gRPC on
/// 50051 (auth) and 50052 (books). Ctrl-C or SIGTERM stops it gracefully.
///
/// Each service's own `AUTH_*`, `BOOKS_*` and `GATEWAY_*` variables apply too,
/// except the addresses, databases and key file, which come from the options
/// below. The admin commands work on the same data directory, and can run
/// while the stack is up; where `AUTH_DATABASE_URL` or `AUTH_SIGNING_KEY_FILE`
/// is set (as in an auth-service container), they use that instead. `migrate`
/// and `copy-data` take database URLs. `bookstore COMMAND --help` tells more.
#[derive(Parser)]
#[command(
    version,
    about,
    long_about,
    after_help = "Examples:
  bookstore                                   # the whole stack on ./data
  bookstore --data-dir /var/lib/bookstore     # ... elsewhere
  BOOKSTORE_ADMIN_PASSWORD='a long password' bookstore create-admin --name root
  bookstore list-users
  bookstore migrate --auth-database-url postgres://bookstore@db/bookstore_auth
  bookstore books-service --database-url postgres://bookstore@db/bookstore_books"
)]
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

    /// Address of auth-service's Prometheus `/metrics` (HTTP); port 0 picks a free port.
    #[arg(long, env = "BOOKSTORE_AUTH_METRICS_ADDR", default_value = "127.0.0.1:9101")]
    auth_metrics_addr: SocketAddr,

    /// Address of books-service's Prometheus `/metrics` (HTTP); port 0 picks a free port.
    #[arg(long, env = "BOOKSTORE_BOOKS_METRICS_ADDR", default_value = "127.0.0.1:9102")]
    books_metrics_addr: SocketAddr,

    /// Address of the REST gateway's Prometheus `/metrics` (HTTP), apart
    /// from its public address; port 0 picks a free port.
    #[arg(long, env = "BOOKSTORE_GATEWAY_METRICS_ADDR", default_value = "127.0.0.1:9103")]
    gateway_metrics_addr: SocketAddr,

    /// Serve TLS on every listener (HTTPS, gRPC over TLS, metrics) with the
    /// certificates in this directory, as `bookstore generate-dev-certs`
    /// writes them: `ca.pem`, then `gateway.pem`, `auth-service.pem`,
    /// `books-service.pem` and their `-key.pem`. Client certificates from
    /// that CA are verified, and the service-only RPCs require a service's.
    /// Files are read again when they change or on SIGHUP.
    #[arg(long, env = "BOOKSTORE_TLS_DIR")]
    tls_dir: Option<PathBuf>,

    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(clap::Subcommand)]
enum Command {
    #[command(flatten)]
    Admin(AdminCommand),
    /// Applies the database migrations, then exits.
    ///
    /// Services migrate their database at start too; run this first to roll
    /// out a new version's schema once, before its replicas start (say, as a
    /// Kubernetes Job or an init step), or to check that a database URL works.
    /// Migrations only ever add; running it again changes nothing.
    #[command(after_help = "Examples:
  bookstore migrate --auth-database-url postgres://bookstore@db/bookstore_auth \\
                    --books-database-url postgres://bookstore@db/bookstore_books
  AUTH_DATABASE_URL=postgres://bookstore@db/bookstore_auth bookstore migrate
  bookstore migrate --data-dir data         # the all-in-one's SQLite files")]
    Migrate(migrate::Migrate),
    /// Runs auth-service alone: the same flags and `AUTH_*` variables as the
    /// `auth-service` binary.
    #[command(after_help = "Example:
  bookstore auth-service --database-url postgres://bookstore@db/bookstore_auth \\
      --signing-key-file /run/secrets/auth-signing-key.pem --generate-signing-key false")]
    AuthService(auth_service::Settings),
    /// Runs books-service alone (flags and `BOOKS_*` variables).
    #[command(after_help = "Example:
  bookstore books-service --database-url postgres://bookstore@db/bookstore_books \\
      --auth-url http://auth-1:50051,http://auth-2:50051")]
    BooksService(books_service::Settings),
    /// Runs the REST gateway alone (flags and `GATEWAY_*` variables).
    #[command(after_help = "Example:
  bookstore gateway --listen-addr 0.0.0.0:5000 --auth-url dns://auth-service:50051 \\
      --books-url dns://books-service:50052")]
    Gateway(gateway::Settings),
    /// Copies every user and book from one deployment's databases into
    /// another's, keeping ids: SQLite into PostgreSQL (scaling out), or
    /// PostgreSQL into SQLite (production data to debug locally).
    ///
    /// From: the data directory's auth.db and books.db (or the --from-* URLs).
    /// To: the --to-* URLs (migrated on the way). Ids, password hashes and
    /// owners are kept, so book ids and passwords keep working, and so do
    /// issued tokens if the new deployment signs with the same key file.
    ///
    /// Nothing is deleted or overwritten on either side: rows already in the
    /// destination (by id) are skipped, so running it again copies only what is
    /// missing (writes made since the last run, say) and is otherwise a no-op.
    /// Each run then checks that every source row is in the destination, and
    /// fails if the destination holds a different row with a copied row's id or
    /// name. Stop the stack (or its writers) for the last run.
    #[command(after_help = "Examples:
  bookstore copy-data --to-auth-database-url postgres://bookstore@db/bookstore_auth \\
                      --to-books-database-url postgres://bookstore@db/bookstore_books
  bookstore copy-data --from-auth-database-url postgres://bookstore@db/bookstore_auth \\
                      --from-books-database-url postgres://bookstore@db/bookstore_books \\
                      --to-auth-database-url sqlite://local/auth.db --to-books-database-url sqlite://local/books.db")]
    CopyData(copy::CopyData),
    /// Backs up the embedded deployment while it serves: both SQLite
    /// databases (a consistent copy each, by SQLite's `VACUUM INTO`: writers
    /// are not blocked), the signing and verification keys and the service
    /// token, with a manifest of checksums. Never a file copy.
    ///
    /// PostgreSQL deployments use pg_dump (docs/operations.md, "Backup and restore").
    #[command(after_help = "Examples:
  bookstore backup --to /var/backups/bookstore/$(date +%F)
  bookstore --data-dir /var/lib/bookstore backup --to backup")]
    Backup(backup::Backup),
    /// Makes a data directory from a backup: checks the manifest and every
    /// checksum, refuses a non-empty --data-dir unless --force, writes the
    /// files, and opens both databases once. The stack then starts on it, and
    /// every token issued before the backup still verifies (same keys).
    #[command(after_help = "Example:
  bookstore --data-dir /var/lib/bookstore-restored restore --from /var/backups/bookstore/2026-11-29")]
    Restore(backup::Restore),
    /// Checks a service's health; exits non-zero when it is not healthy.
    ///
    /// `grpc://HOST:PORT[/SERVICE]` asks the gRPC health service (for SERVICE,
    /// or the whole server); `http://HOST:PORT/PATH` expects HTTP 200. Gives up
    /// after 3 s. For container healthchecks: the image needs no other tool.
    /// Over TLS: `grpcs://` and `https://`, with `--cacert`.
    #[command(after_help = "Examples:
  bookstore probe grpc://127.0.0.1:50052/bookstore.books.v1.BooksService
  bookstore probe http://127.0.0.1:5000/readyz
  bookstore probe --cacert certs/ca.pem https://localhost:5000/readyz")]
    Probe(probe::Probe),
    /// Writes development certificates for TLS: a CA (`ca.pem`, `ca-key.pem`),
    /// a certificate and key for each service (`gateway.pem`,
    /// `auth-service.pem`, `books-service.pem`, each with its `-key.pem`),
    /// valid for localhost, 127.0.0.1, ::1 and the compose service names,
    /// and `client.pem`/`client-key.pem` for tools such as grpcurl and curl.
    ///
    /// Run it again to rotate: the CA in --out is kept and the other
    /// certificates are issued anew (running services pick them up). Not
    /// for production: use your own CA there, with the same names.
    #[command(after_help = "Examples:
  bookstore generate-dev-certs --out certs
  bookstore --tls-dir certs")]
    GenerateDevCerts {
        /// Directory to write the certificates in (created if missing).
        #[arg(long)]
        out: PathBuf,
    },
}

impl Cli {
    /// auth-service's settings in the data directory. The admin commands
    /// honour `AUTH_DATABASE_URL` and `AUTH_SIGNING_KEY_FILE` when set, so that
    /// run inside an auth-service container they work on its database.
    fn auth_settings(&self) -> anyhow::Result<auth_service::Settings> {
        let mut settings = auth_service::Settings::from_env()?;
        let admin = matches!(self.command, Some(Command::Admin(_)));
        settings.listen_addr = self.auth_addr;
        if !(admin && std::env::var_os("AUTH_DATABASE_URL").is_some()) {
            settings.database_url = format!("sqlite://{}", self.data_dir.join("auth.db").display());
        }
        if !(admin && std::env::var_os("AUTH_SIGNING_KEY_FILE").is_some()) {
            settings.signing_key_file = self.data_dir.join("auth-signing-key.pem");
        }
        settings.service_token_file = self.service_token_file();
        // A key rotation's files in the data directory are published by
        // themselves: `rotate-signing-key`, then a restart, is all it takes.
        for path in auth_service::admin::rotation_verification_files(&settings.signing_key_file) {
            if !settings.verification_key_files.contains(&path) {
                settings.verification_key_files.push(path);
            }
        }
        settings.metrics_addr = Some(self.auth_metrics_addr);
        Ok(settings)
    }

    /// Generated by auth-service on first start, read by books-service.
    fn service_token_file(&self) -> PathBuf {
        self.data_dir.join("service-token")
    }

    fn books_database_url(&self) -> String {
        format!("sqlite://{}", self.data_dir.join("books.db").display())
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // One-shot commands print their result; their logs only on trouble.
    let one_shot = matches!(
        &cli.command,
        Some(
            Command::Admin(_)
                | Command::Migrate(_)
                | Command::CopyData(_)
                | Command::Backup(_)
                | Command::Restore(_)
                | Command::GenerateDevCerts { .. }
        )
    );
    bookstore_runtime::with_tracing(if one_shot { "warn" } else { "info" }, run(&cli)).await
}

async fn run(cli: &Cli) -> anyhow::Result<()> {
    let mut auth_settings = cli.auth_settings()?;
    match &cli.command {
        Some(Command::Admin(command)) => return command.run(&auth_settings).await,
        Some(Command::Migrate(migrate)) => {
            return migrate.run(&auth_settings.database_url, &cli.books_database_url()).await;
        }
        Some(Command::Probe(probe)) => return probe.run().await,
        Some(Command::GenerateDevCerts { out }) => {
            for file in bookstore_tls::dev::write_dev_certs(out)? {
                println!("{}", file.display());
            }
            return Ok(());
        }
        Some(Command::Backup(backup)) => {
            let sources = backup::Sources {
                auth_database_url: auth_settings.database_url.clone(),
                books_database_url: cli.books_database_url(),
                signing_key_file: auth_settings.signing_key_file.clone(),
                verification_key_files: auth_settings.verification_key_files.clone(),
                service_token_file: auth_settings.service_token_file.clone(),
            };
            return backup.run(&sources).await;
        }
        Some(Command::Restore(restore)) => return restore.run(&cli.data_dir).await,
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

    let mut books_settings = books_service::Settings::from_env()?;
    let mut gateway_settings = gateway::Settings::from_env()?;
    if let Some(dir) = &cli.tls_dir {
        let files = |name: &str| Some((dir.join(format!("{name}.pem")), dir.join(format!("{name}-key.pem"))));
        (auth_settings.tls_cert, auth_settings.tls_key) = files("auth-service").unzip();
        auth_settings.tls_client_ca = Some(dir.join("ca.pem"));
        (books_settings.tls_cert, books_settings.tls_key) = files("books-service").unzip();
        books_settings.tls_client_ca = Some(dir.join("ca.pem"));
        (gateway_settings.tls_cert, gateway_settings.tls_key) = files("gateway").unzip();
    }
    let auth = auth_service::App::build(&auth_settings).await?;
    books_settings.listen_addr = cli.books_addr;
    books_settings.metrics_addr = Some(cli.books_metrics_addr);
    books_settings.database_url = cli.books_database_url();
    books_settings.service_token_file = cli.service_token_file();
    books_settings.service_token.clone_from(&auth_settings.service_token);
    books_settings.issuer.clone_from(&auth_settings.issuer);
    books_settings.audience.clone_from(&auth_settings.audience);
    // The parts call each other in this process, through the same layers
    // (token check, limits, logs, metrics) as calls over the network, but
    // without sockets or HTTP/2 framing; the gRPC ports serve other clients.
    let books = books_service::App::calling_auth(&books_settings, auth.server().in_process()).await?;
    gateway_settings.listen_addr = cli.gateway_addr;
    gateway_settings.metrics_addr = Some(cli.gateway_metrics_addr);
    let upstreams =
        gateway::Upstreams::over(auth.server().in_process(), books.server().in_process(), &gateway_settings);
    let gateway = gateway::App::with_upstreams(&gateway_settings, upstreams).await?;

    let (http, grpc) = if cli.tls_dir.is_some() { ("https", "gRPC over TLS") } else { ("http", "gRPC") };
    println!("Bookstore is running, data in {}", cli.data_dir.display());
    println!("  REST gateway   {http}://{}", gateway.local_addr());
    println!("  auth-service   {} ({grpc})", auth.server().local_addr());
    println!("  books-service  {} ({grpc})", books.server().local_addr());
    let metrics =
        |addr: Option<SocketAddr>| addr.map_or_else(|| "-".to_owned(), |addr| format!("{http}://{addr}/metrics"));
    println!(
        "  metrics        {}, {}, {}",
        metrics(gateway.metrics_addr()),
        metrics(auth.server().metrics_addr()),
        metrics(books.server().metrics_addr())
    );
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
