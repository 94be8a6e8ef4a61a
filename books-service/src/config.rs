//! books-service settings, from flags or environment variables.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bookstore_runtime::{ServerLimits, at_least_one_second};

/// How to run books-service. Every flag has a `BOOKS_*` environment variable.
#[derive(Clone, clap::Args)]
pub struct Settings {
    /// Address to serve gRPC on (port 0 picks a free port).
    #[arg(long, env = "BOOKS_LISTEN_ADDR", default_value = "127.0.0.1:50052")]
    pub listen_addr: SocketAddr,

    /// Address of the HTTP admin listener serving Prometheus metrics on
    /// `/metrics` (e.g. `0.0.0.0:9102`); none when unset.
    #[arg(long, env = "BOOKS_METRICS_ADDR")]
    pub metrics_addr: Option<SocketAddr>,

    /// PEM certificate chain to serve gRPC (and metrics) over TLS with (with
    /// `BOOKS_TLS_KEY`); plaintext when unset. Read again when the file
    /// changes or on SIGHUP.
    #[arg(long, env = "BOOKS_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,

    /// PEM private key of `BOOKS_TLS_CERT`.
    #[arg(long, env = "BOOKS_TLS_KEY")]
    pub tls_key: Option<PathBuf>,

    /// PEM CA bundle that client certificates are verified against (mutual
    /// TLS).
    #[arg(long, env = "BOOKS_TLS_CLIENT_CA")]
    pub tls_client_ca: Option<PathBuf>,

    /// With `BOOKS_TLS_CLIENT_CA`: `optional` (clients without a certificate
    /// are served too) or `required` (every connection presents one).
    #[arg(long, env = "BOOKS_TLS_CLIENT_AUTH", value_enum, default_value_t = bookstore_tls::ClientAuth::Optional)]
    pub tls_client_auth: bookstore_tls::ClientAuth,

    /// PEM CA bundle auth-service's certificate is verified against: calls
    /// to auth-service use TLS (`BOOKS_AUTH_URL` is `https://` or `dns://`),
    /// presenting `BOOKS_TLS_CERT` as this service's client certificate.
    #[arg(long, env = "BOOKS_AUTH_TLS_CA")]
    pub auth_tls_ca: Option<PathBuf>,

    /// Database URL: `sqlite://PATH` (the file and its directory are created)
    /// or `postgres://USER@HOST/DB` (the database must exist).
    #[arg(long, env = "BOOKS_DATABASE_URL", default_value = "sqlite://data/books.db", hide_env_values = true)]
    pub database_url: String,

    /// auth-service's gRPC endpoint, where the token signing keys come from;
    /// several replicas' endpoints may be given, separated by commas, or
    /// `dns://NAME:PORT` for every address NAME resolves to.
    #[arg(long, env = "BOOKS_AUTH_URL", default_value = "http://127.0.0.1:50051")]
    pub auth_url: String,

    /// File holding the service token auth-service accepts for the calls
    /// only services make (its revocation feed, its user check): the file auth-service's
    /// `AUTH_SERVICE_TOKEN_FILE` names, or a copy.
    #[arg(long, env = "BOOKS_SERVICE_TOKEN_FILE", default_value = "data/service-token")]
    pub service_token_file: PathBuf,

    /// The service token itself; overrides the file.
    #[arg(long, env = "BOOKS_SERVICE_TOKEN", hide_env_values = true)]
    pub service_token: Option<String>,

    /// The `iss` tokens must carry (auth-service's `AUTH_ISSUER`).
    #[arg(long, env = "BOOKS_TOKEN_ISSUER", default_value = "bookstore-auth")]
    pub issuer: String,

    /// The `aud` tokens must carry (auth-service's `AUTH_AUDIENCE`).
    #[arg(long, env = "BOOKS_TOKEN_AUDIENCE", default_value = "bookstore")]
    pub audience: String,

    /// Seconds between routine refreshes of the signing keys.
    #[arg(long, env = "BOOKS_JWKS_REFRESH_SECS", default_value_t = 300)]
    pub jwks_refresh_secs: u64,

    /// Least seconds between refetches caused by tokens with an unknown key id.
    #[arg(long, env = "BOOKS_JWKS_MIN_REFETCH_SECS", default_value_t = 10)]
    pub jwks_min_refetch_secs: u64,

    /// Largest gRPC request message accepted, in bytes (OutOfRange beyond).
    #[arg(long, env = "BOOKS_MAX_MESSAGE_BYTES", default_value_t = ServerLimits::DEFAULT.max_message_bytes)]
    pub max_message_bytes: usize,

    /// Longest a request may run, in seconds; then it is cancelled.
    #[arg(
        long,
        env = "BOOKS_REQUEST_TIMEOUT_SECS",
        default_value_t = ServerLimits::DEFAULT.request_timeout.as_secs(),
        value_parser = at_least_one_second(),
    )]
    pub request_timeout_secs: u64,

    /// Requests in progress at once; more are refused at once with
    /// ResourceExhausted (health checks excepted).
    #[arg(long, env = "BOOKS_MAX_CONCURRENT_REQUESTS", default_value_t = ServerLimits::DEFAULT.max_concurrent_requests)]
    pub max_concurrent_requests: usize,

    /// Seconds between polls of auth-service's revocation feed: the longest a
    /// logged-out session's or deleted user's token is still accepted here.
    #[arg(long, env = "BOOKS_REVOCATION_REFRESH_SECS", default_value_t = 5)]
    pub revocation_refresh_secs: u64,

    /// Seconds between passes that ask auth-service which book owners still
    /// exist and delete the books of those that do not (users deleted while
    /// this replica was away longer than the revocation feed keeps
    /// deletions); the first pass runs at start. 0 turns it off.
    #[arg(long, env = "BOOKS_ORPHAN_SWEEP_INTERVAL_SECS", default_value_t = 3600)]
    pub orphan_sweep_interval_secs: u64,

    /// Verified tokens remembered (each until it expires), so that a
    /// client's next call skips the signature check; 0 disables the cache.
    #[arg(long, env = "BOOKS_TOKEN_CACHE_CAPACITY", default_value_t = 10_000)]
    pub token_cache_capacity: usize,
}

impl Settings {
    /// The gRPC listener's TLS, if configured (loaded and watched).
    pub fn tls(&self) -> anyhow::Result<Option<bookstore_tls::ServerTls>> {
        let files = bookstore_tls::ServerFiles::from_settings(
            "BOOKS",
            self.tls_cert.as_ref(),
            self.tls_key.as_ref(),
            self.tls_client_ca.as_ref(),
            self.tls_client_auth,
        )?;
        files.map(|files| bookstore_tls::ServerTls::load(&files, bookstore_tls::ALPN_GRPC)).transpose()
    }

    /// The TLS of the calls to auth-service, if configured: this service's
    /// own certificate is its client certificate.
    pub fn auth_tls(&self) -> anyhow::Result<Option<bookstore_tls::ClientTls>> {
        let files = bookstore_tls::ClientFiles::from_settings(
            ["BOOKS_AUTH_TLS_CA", "BOOKS_TLS_CERT", "BOOKS_TLS_KEY"],
            self.auth_tls_ca.as_ref(),
            self.tls_cert.as_ref().filter(|_| self.auth_tls_ca.is_some()),
            self.tls_key.as_ref().filter(|_| self.auth_tls_ca.is_some()),
        )?;
        files.map(|files| bookstore_tls::ClientTls::load(&files, bookstore_tls::ALPN_H2)).transpose()
    }

    /// The defaults, with any `BOOKS_*` environment variables applied.
    pub fn from_env() -> Result<Self, clap::Error> {
        bookstore_runtime::settings_from_env("books-service")
    }

    /// How the tests start a books-service: the defaults (with any `BOOKS_*`
    /// variables), a free port on 127.0.0.1, the SQLite database `books.db`
    /// in `dir`, and auth-service at `auth_url`, called with `service_token`.
    #[doc(hidden)]
    pub fn for_tests(dir: &Path, auth_url: String, service_token: &str) -> Result<Self, clap::Error> {
        let mut settings = Self::from_env()?;
        settings.listen_addr = SocketAddr::from(([127, 0, 0, 1], 0));
        settings.database_url = format!("sqlite://{}", dir.join("books.db").display());
        settings.auth_url = auth_url;
        settings.service_token = Some(service_token.to_owned());
        Ok(settings)
    }

    /// The gRPC server's limits.
    #[must_use]
    pub fn server_limits(&self) -> ServerLimits {
        ServerLimits {
            max_message_bytes: self.max_message_bytes,
            request_timeout: Duration::from_secs(self.request_timeout_secs.max(1)),
            max_concurrent_requests: self.max_concurrent_requests,
        }
    }
}

impl Settings {
    /// The service token: `BOOKS_SERVICE_TOKEN`, else the file's.
    pub fn load_service_token(&self) -> anyhow::Result<bookstore_tokens::ServiceToken> {
        use anyhow::Context as _;
        match &self.service_token {
            Some(text) => bookstore_tokens::ServiceToken::parse(text).context("BOOKS_SERVICE_TOKEN"),
            None => bookstore_tokens::ServiceToken::read(&self.service_token_file).context(
                "books-service needs the service token auth-service accepts (auth-service writes it on first \
                 start): set BOOKS_SERVICE_TOKEN_FILE to that file, or BOOKS_SERVICE_TOKEN",
            ),
        }
    }
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("listen_addr", &self.listen_addr)
            .field("metrics_addr", &self.metrics_addr)
            .field("tls_cert", &self.tls_cert)
            .field("tls_key", &self.tls_key)
            .field("tls_client_ca", &self.tls_client_ca)
            .field("tls_client_auth", &self.tls_client_auth)
            .field("auth_tls_ca", &self.auth_tls_ca)
            .field("database_url", &bookstore_database::redact_password(&self.database_url))
            .field("auth_url", &self.auth_url)
            .field("service_token_file", &self.service_token_file)
            .field("service_token", &self.service_token.as_ref().map(|_| "<redacted>"))
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("jwks_refresh_secs", &self.jwks_refresh_secs)
            .field("jwks_min_refetch_secs", &self.jwks_min_refetch_secs)
            .field("max_message_bytes", &self.max_message_bytes)
            .field("request_timeout_secs", &self.request_timeout_secs)
            .field("max_concurrent_requests", &self.max_concurrent_requests)
            .field("revocation_refresh_secs", &self.revocation_refresh_secs)
            .field("orphan_sweep_interval_secs", &self.orphan_sweep_interval_secs)
            .field("token_cache_capacity", &self.token_cache_capacity)
            .finish()
    }
}
