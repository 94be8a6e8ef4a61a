//! auth-service settings, from flags or environment variables.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use bookstore_runtime::{ServerLimits, at_least_one_second};

use crate::throttle::TrustedProxy;

use clap::ArgAction;

/// How to run auth-service. Every flag has an `AUTH_*` environment variable.
#[derive(Clone, clap::Args)]
pub struct Settings {
    /// Address to serve gRPC on (port 0 picks a free port).
    #[arg(long, env = "AUTH_LISTEN_ADDR", default_value = "127.0.0.1:50051")]
    pub listen_addr: SocketAddr,

    /// Address of the HTTP admin listener serving Prometheus metrics on
    /// `/metrics` (e.g. `0.0.0.0:9101`); none when unset.
    #[arg(long, env = "AUTH_METRICS_ADDR")]
    pub metrics_addr: Option<SocketAddr>,

    /// PEM certificate chain to serve gRPC (and metrics) over TLS with (with
    /// `AUTH_TLS_KEY`); plaintext when unset. Read again when the file
    /// changes or on SIGHUP.
    #[arg(long, env = "AUTH_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,

    /// PEM private key of `AUTH_TLS_CERT`.
    #[arg(long, env = "AUTH_TLS_KEY")]
    pub tls_key: Option<PathBuf>,

    /// PEM CA bundle that client certificates are verified against (mutual
    /// TLS). The service-only RPCs then require a certificate issued
    /// for one of our services (URI name `spiffe://bookstore/SERVICE`).
    #[arg(long, env = "AUTH_TLS_CLIENT_CA")]
    pub tls_client_ca: Option<PathBuf>,

    /// With `AUTH_TLS_CLIENT_CA`: `optional` (clients without a certificate
    /// are served too) or `required` (every connection presents one).
    #[arg(long, env = "AUTH_TLS_CLIENT_AUTH", value_enum, default_value_t = bookstore_tls::ClientAuth::Optional)]
    pub tls_client_auth: bookstore_tls::ClientAuth,

    /// Database URL: `sqlite://PATH` (the file and its directory are created)
    /// or `postgres://USER@HOST/DB` (the database must exist).
    #[arg(long, env = "AUTH_DATABASE_URL", default_value = "sqlite://data/auth.db", hide_env_values = true)]
    pub database_url: String,

    /// PKCS#8 PEM file holding the Ed25519 token signing key.
    #[arg(long, env = "AUTH_SIGNING_KEY_FILE", default_value = "data/auth-signing-key.pem")]
    pub signing_key_file: PathBuf,

    /// The signing key itself, as PKCS#8 PEM; overrides the key file.
    #[arg(long, env = "AUTH_SIGNING_KEY", hide_env_values = true)]
    pub signing_key: Option<String>,

    /// More key files (public-key PEM, or PKCS#8 PEM of which only the public
    /// half is used) published in the JWKS and accepted, never signed with:
    /// the next key before a rotation, the previous one until its last token
    /// has expired. Comma-separated.
    #[arg(long, env = "AUTH_VERIFICATION_KEY_FILES", value_delimiter = ',')]
    pub verification_key_files: Vec<PathBuf>,

    /// Generate the key file on first start if it is missing. Turn off when
    /// several replicas must share one key.
    #[arg(long, env = "AUTH_GENERATE_SIGNING_KEY", default_value_t = true, action = ArgAction::Set)]
    pub generate_signing_key: bool,

    /// File holding the service token: the shared secret books-service (and
    /// any other of our services) presents for the calls only services may
    /// make (`ListRevocations`, `FindExistingUsers`). Generated on first start if missing (see
    /// `AUTH_GENERATE_SERVICE_TOKEN`).
    #[arg(long, env = "AUTH_SERVICE_TOKEN_FILE", default_value = "data/service-token")]
    pub service_token_file: PathBuf,

    /// The service token itself; overrides the file.
    #[arg(long, env = "AUTH_SERVICE_TOKEN", hide_env_values = true)]
    pub service_token: Option<String>,

    /// Generate the service token file on first start if it is missing.
    /// Turn off when several replicas must share one token.
    #[arg(long, env = "AUTH_GENERATE_SERVICE_TOKEN", default_value_t = true, action = ArgAction::Set)]
    pub generate_service_token: bool,

    /// The `iss` claim of issued tokens.
    #[arg(long, env = "AUTH_ISSUER", default_value = "bookstore-auth")]
    pub issuer: String,

    /// The `aud` claim of issued tokens.
    #[arg(long, env = "AUTH_AUDIENCE", default_value = "bookstore")]
    pub audience: String,

    /// Lifetime of access tokens, in seconds (the tutorial's 45 minutes).
    #[arg(long, env = "AUTH_TOKEN_TTL_SECS", default_value_t = 2700)]
    pub token_ttl_secs: u64,

    /// Lifetime of refresh tokens, in seconds (30 days); each refresh
    /// issues a new one.
    #[arg(long, env = "AUTH_REFRESH_TOKEN_TTL_SECS", default_value_t = 2_592_000)]
    pub refresh_token_ttl_secs: u64,

    /// Seconds after a refresh during which the spent refresh token, presented
    /// again, is only refused (concurrent refreshes of one client); later it
    /// ends the whole session (a stolen copy).
    #[arg(long, env = "AUTH_REFRESH_REUSE_GRACE_SECS", default_value_t = 10)]
    pub refresh_reuse_grace_secs: u64,

    /// Password hashes computed at once (each holds ~19 MiB); more requests wait.
    #[arg(long, env = "AUTH_MAX_CONCURRENT_HASHES", default_value_t = default_hash_concurrency())]
    pub max_concurrent_hashes: usize,

    /// Largest gRPC request message accepted, in bytes (OutOfRange beyond).
    #[arg(long, env = "AUTH_MAX_MESSAGE_BYTES", default_value_t = ServerLimits::DEFAULT.max_message_bytes)]
    pub max_message_bytes: usize,

    /// Longest a request may run, in seconds; then it is cancelled.
    #[arg(
        long,
        env = "AUTH_REQUEST_TIMEOUT_SECS",
        default_value_t = ServerLimits::DEFAULT.request_timeout.as_secs(),
        value_parser = at_least_one_second(),
    )]
    pub request_timeout_secs: u64,

    /// Requests in progress at once; more are refused at once with
    /// ResourceExhausted (health checks excepted).
    #[arg(long, env = "AUTH_MAX_CONCURRENT_REQUESTS", default_value_t = ServerLimits::DEFAULT.max_concurrent_requests)]
    pub max_concurrent_requests: usize,

    /// Registrations and failed logins one client address may make per
    /// minute, on average (a token bucket per address; a successful login
    /// gives its token back); 0 turns the limit off.
    #[arg(long, env = "AUTH_CLIENT_RATE_PER_MINUTE", default_value_t = 60)]
    pub client_rate_per_minute: u32,

    /// How many registrations and failed logins a client address may make
    /// in a burst before the per-minute rate applies.
    #[arg(long, env = "AUTH_CLIENT_BURST", default_value_t = 30)]
    pub client_burst: u32,

    /// Peers (addresses or CIDR blocks) whose `x-forwarded-for` metadata
    /// names the real client address: the gateways. Calls from other peers
    /// are limited by their own address, whatever they claim. `none`: no proxy is trusted.
    #[arg(long, env = "AUTH_TRUSTED_PROXIES", value_delimiter = ',', default_value = "127.0.0.1,::1")]
    pub trusted_proxies: Vec<TrustedProxy>,

    /// Failed logins for one user name before each further attempt must
    /// wait (a growing delay); 0 turns the per-name throttle off.
    #[arg(long, env = "AUTH_LOGIN_FREE_ATTEMPTS", default_value_t = 5)]
    pub login_free_attempts: u32,

    /// The first wait after the free attempts, in seconds; it doubles with
    /// each further failure.
    #[arg(long, env = "AUTH_LOGIN_DELAY_SECS", default_value_t = 1, value_parser = at_least_one_second())]
    pub login_delay_secs: u64,

    /// The longest wait between attempts for one user name, in seconds
    /// (never a permanent lockout).
    #[arg(long, env = "AUTH_LOGIN_MAX_DELAY_SECS", default_value_t = 900, value_parser = at_least_one_second())]
    pub login_max_delay_secs: u64,

    /// Seconds between sweeps that delete expired refresh tokens, finished
    /// sessions, revocations past their use and forgotten login counts (the
    /// first after a random part of it); 0 turns the sweep off.
    #[arg(long, env = "AUTH_SWEEP_INTERVAL_SECS", default_value_t = 300)]
    pub sweep_interval_secs: u64,
}

fn default_hash_concurrency() -> usize {
    std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get)
}

impl Settings {
    /// The gRPC listener's TLS, if configured (loaded and watched).
    pub fn tls(&self) -> anyhow::Result<Option<bookstore_tls::ServerTls>> {
        let files = bookstore_tls::ServerFiles::from_settings(
            "AUTH",
            self.tls_cert.as_ref(),
            self.tls_key.as_ref(),
            self.tls_client_ca.as_ref(),
            self.tls_client_auth,
        )?;
        files.map(|files| bookstore_tls::ServerTls::load(&files, bookstore_tls::ALPN_GRPC)).transpose()
    }

    /// The defaults, with any `AUTH_*` environment variables applied.
    pub fn from_env() -> Result<Self, clap::Error> {
        bookstore_runtime::settings_from_env("auth-service")
    }

    /// The per-name login throttle.
    #[must_use]
    pub fn login_throttle(&self) -> crate::throttle::LoginThrottle {
        crate::throttle::LoginThrottle {
            free_attempts: self.login_free_attempts,
            delay: Duration::from_secs(self.login_delay_secs.max(1)),
            max_delay: Duration::from_secs(self.login_max_delay_secs.max(1)),
        }
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

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settings")
            .field("listen_addr", &self.listen_addr)
            .field("metrics_addr", &self.metrics_addr)
            .field("tls_cert", &self.tls_cert)
            .field("tls_key", &self.tls_key)
            .field("tls_client_ca", &self.tls_client_ca)
            .field("tls_client_auth", &self.tls_client_auth)
            .field("database_url", &bookstore_database::redact_password(&self.database_url))
            .field("signing_key_file", &self.signing_key_file)
            .field("signing_key", &self.signing_key.as_ref().map(|_| "<redacted>"))
            .field("verification_key_files", &self.verification_key_files)
            .field("generate_signing_key", &self.generate_signing_key)
            .field("service_token_file", &self.service_token_file)
            .field("service_token", &self.service_token.as_ref().map(|_| "<redacted>"))
            .field("generate_service_token", &self.generate_service_token)
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("token_ttl_secs", &self.token_ttl_secs)
            .field("refresh_token_ttl_secs", &self.refresh_token_ttl_secs)
            .field("refresh_reuse_grace_secs", &self.refresh_reuse_grace_secs)
            .field("max_concurrent_hashes", &self.max_concurrent_hashes)
            .field("max_message_bytes", &self.max_message_bytes)
            .field("request_timeout_secs", &self.request_timeout_secs)
            .field("max_concurrent_requests", &self.max_concurrent_requests)
            .field("client_rate_per_minute", &self.client_rate_per_minute)
            .field("client_burst", &self.client_burst)
            .field("trusted_proxies", &self.trusted_proxies)
            .field("login_free_attempts", &self.login_free_attempts)
            .field("login_delay_secs", &self.login_delay_secs)
            .field("login_max_delay_secs", &self.login_max_delay_secs)
            .field("sweep_interval_secs", &self.sweep_interval_secs)
            .finish()
    }
}
