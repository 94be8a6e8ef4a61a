//! auth-service settings, from flags or environment variables.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;

use clap::ArgAction;

/// How to run auth-service. Every flag has an `AUTH_*` environment variable.
#[derive(Clone, clap::Args)]
pub struct Settings {
    /// Address to serve gRPC on (port 0 picks a free port).
    #[arg(long, env = "AUTH_LISTEN_ADDR", default_value = "127.0.0.1:50051")]
    pub listen_addr: SocketAddr,

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

    /// The `iss` claim of issued tokens.
    #[arg(long, env = "AUTH_ISSUER", default_value = "bookstore-auth")]
    pub issuer: String,

    /// The `aud` claim of issued tokens.
    #[arg(long, env = "AUTH_AUDIENCE", default_value = "bookstore")]
    pub audience: String,

    /// Lifetime of access tokens, in seconds (the tutorial's 45 minutes).
    #[arg(long, env = "AUTH_TOKEN_TTL_SECS", default_value_t = 2700)]
    pub token_ttl_secs: u64,

    /// Password hashes computed at once (each holds ~19 MiB); more requests wait.
    #[arg(long, env = "AUTH_MAX_CONCURRENT_HASHES", default_value_t = default_hash_concurrency())]
    pub max_concurrent_hashes: usize,
}

fn default_hash_concurrency() -> usize {
    std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get)
}

impl Settings {
    /// The defaults, with any `AUTH_*` environment variables applied.
    pub fn from_env() -> Result<Self, clap::Error> {
        bookstore_runtime::settings_from_env("auth-service")
    }
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settings")
            .field("listen_addr", &self.listen_addr)
            .field("database_url", &bookstore_runtime::redact_password(&self.database_url))
            .field("signing_key_file", &self.signing_key_file)
            .field("signing_key", &self.signing_key.as_ref().map(|_| "<redacted>"))
            .field("verification_key_files", &self.verification_key_files)
            .field("generate_signing_key", &self.generate_signing_key)
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("token_ttl_secs", &self.token_ttl_secs)
            .field("max_concurrent_hashes", &self.max_concurrent_hashes)
            .finish()
    }
}
