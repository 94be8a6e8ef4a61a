//! gateway settings, from flags or environment variables.

use std::net::SocketAddr;
use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::time::Duration;

use bookstore_proto::pagination::MAX_PAGE_SIZE;

/// The page sizes `default_page_size` may take: a tutorial client knows
/// nothing of pages, so a page must hold at least the services' default.
pub const DEFAULT_PAGE_SIZE_RANGE: RangeInclusive<u32> = 100..=MAX_PAGE_SIZE;

/// How to run the gateway. Every flag has a `GATEWAY_*` environment variable.
#[derive(Debug, Clone, clap::Args)]
pub struct Settings {
    /// Address to serve HTTP on (port 0 picks a free port).
    #[arg(long, env = "GATEWAY_LISTEN_ADDR", default_value = "127.0.0.1:5000")]
    pub listen_addr: SocketAddr,

    /// Address of the HTTP admin listener serving Prometheus metrics on
    /// `/metrics` (e.g. `0.0.0.0:9103`); none when unset. Never the public
    /// address: the metrics tell about traffic and failures.
    #[arg(long, env = "GATEWAY_METRICS_ADDR")]
    pub metrics_addr: Option<SocketAddr>,

    /// PEM certificate chain to serve HTTPS with (with `GATEWAY_TLS_KEY`;
    /// HTTP/2 or HTTP/1.1 by ALPN), metrics too; plain HTTP when unset. Read
    /// again when the file changes or on SIGHUP.
    #[arg(long, env = "GATEWAY_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,

    /// PEM private key of `GATEWAY_TLS_CERT`.
    #[arg(long, env = "GATEWAY_TLS_KEY")]
    pub tls_key: Option<PathBuf>,

    /// PEM CA bundle the services' certificates are verified against: calls
    /// to auth-service and books-service use TLS (their URLs are `https://`
    /// or `dns://`).
    #[arg(long, env = "GATEWAY_UPSTREAM_TLS_CA")]
    pub upstream_tls_ca: Option<PathBuf>,

    /// PEM certificate chain the gateway presents to the services (with
    /// `GATEWAY_UPSTREAM_TLS_KEY`): needed where they require client
    /// certificates.
    #[arg(long, env = "GATEWAY_UPSTREAM_TLS_CERT")]
    pub upstream_tls_cert: Option<PathBuf>,

    /// PEM private key of `GATEWAY_UPSTREAM_TLS_CERT`.
    #[arg(long, env = "GATEWAY_UPSTREAM_TLS_KEY")]
    pub upstream_tls_key: Option<PathBuf>,

    /// auth-service's gRPC endpoint, or several replicas' endpoints separated
    /// by commas, or `dns://NAME:PORT` for every address NAME resolves to
    /// (calls are spread over them).
    #[arg(long, env = "GATEWAY_AUTH_URL", default_value = "http://127.0.0.1:50051")]
    pub auth_url: String,

    /// books-service's gRPC endpoint, or several replicas' endpoints separated
    /// by commas, or `dns://NAME:PORT`.
    #[arg(long, env = "GATEWAY_BOOKS_URL", default_value = "http://127.0.0.1:50052")]
    pub books_url: String,

    /// Page size of `GET /books` and `GET /users` when the request has no
    /// `limit` (100 to 1000).
    #[arg(
        long,
        env = "GATEWAY_DEFAULT_PAGE_SIZE",
        default_value_t = 100,
        value_parser = clap::value_parser!(u32).range(100..=i64::from(MAX_PAGE_SIZE)),
    )]
    pub default_page_size: u32,

    /// Largest request body accepted, in bytes; larger ones get 413.
    #[arg(long, env = "GATEWAY_MAX_BODY_BYTES", default_value_t = 64 * 1024)]
    pub max_body_bytes: usize,

    /// Deadline of each call to auth-service or books-service, in seconds: a
    /// dead or stuck upstream yields 503 or 504, never a hung request.
    #[arg(
        long,
        env = "GATEWAY_REQUEST_TIMEOUT_SECS",
        default_value_t = 10,
        value_parser = clap::value_parser!(u64).range(1..=3600),
    )]
    pub request_timeout_secs: u64,

    /// Requests in progress at once; more are answered 503 at once (with
    /// `Retry-After: 1`) instead of queueing.
    #[arg(long, env = "GATEWAY_MAX_CONCURRENT_REQUESTS", default_value_t = 1024)]
    pub max_concurrent_requests: usize,

    /// Largest total size of a request's headers (names and values), in
    /// bytes; larger ones get 431.
    #[arg(long, env = "GATEWAY_MAX_HEADER_BYTES", default_value_t = 16 * 1024)]
    pub max_header_bytes: usize,

    /// Browser origins allowed to call the API cross-origin (CORS), separated
    /// by commas, e.g. `https://app.example.com,http://localhost:3000`; `*`
    /// allows any. Empty (the default) sends no CORS headers, so browsers
    /// allow same-origin calls only.
    #[arg(long, env = "GATEWAY_CORS_ALLOWED_ORIGINS", value_delimiter = ',')]
    pub cors_allowed_origins: Vec<String>,
}

impl Settings {
    /// The defaults, with any `GATEWAY_*` environment variables applied.
    pub fn from_env() -> Result<Self, clap::Error> {
        bookstore_runtime::settings_from_env("gateway")
    }

    /// Checks what clap checks, for settings built in code (the fields are
    /// public), so that bad values stop the gateway at start-up.
    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            DEFAULT_PAGE_SIZE_RANGE.contains(&self.default_page_size),
            "default_page_size must be between {} and {}, got {}",
            DEFAULT_PAGE_SIZE_RANGE.start(),
            DEFAULT_PAGE_SIZE_RANGE.end(),
            self.default_page_size
        );
        anyhow::ensure!(self.max_body_bytes > 0, "max_body_bytes must be positive");
        anyhow::ensure!(self.request_timeout_secs > 0, "request_timeout_secs must be positive");
        anyhow::ensure!(self.max_concurrent_requests > 0, "max_concurrent_requests must be positive");
        anyhow::ensure!(self.max_header_bytes > 0, "max_header_bytes must be positive");
        self.cors_origins()?;
        Ok(())
    }

    /// The allowed CORS origins: `None` when CORS is off, `Some(vec![])`
    /// never (an empty list is off). An origin is `scheme://host[:port]`,
    /// exactly as browsers send it in `Origin`, or `*` for any.
    pub fn cors_origins(&self) -> anyhow::Result<Option<CorsOrigins>> {
        let origins: Vec<&str> =
            self.cors_allowed_origins.iter().map(|origin| origin.trim()).filter(|origin| !origin.is_empty()).collect();
        if origins.is_empty() {
            return Ok(None);
        }
        if origins.contains(&"*") {
            anyhow::ensure!(origins.len() == 1, "cors_allowed_origins: `*` cannot be combined with other origins");
            return Ok(Some(CorsOrigins::Any));
        }
        let mut parsed = Vec::with_capacity(origins.len());
        for origin in origins {
            let (scheme, host) = origin.split_once("://").unwrap_or(("", origin));
            anyhow::ensure!(
                matches!(scheme, "http" | "https") && !host.is_empty() && !host.contains(['/', '?', '#']),
                "cors_allowed_origins: {origin:?} is not an origin: expected scheme://host[:port], no path or \
                 trailing slash, e.g. https://app.example.com"
            );
            let value = axum::http::HeaderValue::from_str(origin)
                .map_err(|_| anyhow::anyhow!("cors_allowed_origins: {origin:?} is not a valid header value"))?;
            parsed.push(value);
        }
        Ok(Some(CorsOrigins::List(parsed)))
    }

    /// The HTTPS listener's TLS, if configured (loaded and watched).
    pub fn tls(&self) -> anyhow::Result<Option<bookstore_tls::ServerTls>> {
        let files = bookstore_tls::ServerFiles::from_settings(
            "GATEWAY",
            self.tls_cert.as_ref(),
            self.tls_key.as_ref(),
            None,
            bookstore_tls::ClientAuth::Optional,
        )?;
        files.map(|files| bookstore_tls::ServerTls::load(&files, bookstore_tls::ALPN_HTTP)).transpose()
    }

    /// The TLS of the calls to the services, if configured.
    pub fn upstream_tls(&self) -> anyhow::Result<Option<bookstore_tls::ClientTls>> {
        let files = bookstore_tls::ClientFiles::from_settings(
            ["GATEWAY_UPSTREAM_TLS_CA", "GATEWAY_UPSTREAM_TLS_CERT", "GATEWAY_UPSTREAM_TLS_KEY"],
            self.upstream_tls_ca.as_ref(),
            self.upstream_tls_cert.as_ref(),
            self.upstream_tls_key.as_ref(),
        )?;
        files.map(|files| bookstore_tls::ClientTls::load(&files, bookstore_tls::ALPN_H2)).transpose()
    }

    /// The deadline of each upstream call.
    #[must_use]
    pub fn upstream_timeout(&self) -> Duration {
        Duration::from_secs(self.request_timeout_secs)
    }
}

/// Which origins may call the gateway from a browser.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CorsOrigins {
    Any,
    List(Vec<axum::http::HeaderValue>),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        let settings = Settings::from_env().unwrap();
        assert_eq!(settings.default_page_size, 100);
        assert_eq!(settings.max_body_bytes, 64 * 1024);
        settings.validate().unwrap();
        assert_eq!(settings.cors_origins().unwrap(), None, "CORS is off by default");
    }

    #[test]
    fn cors_origins_are_exact_origins_or_a_lone_star() {
        let mut settings = Settings::from_env().unwrap();
        let origins = |settings: &mut Settings, list: &[&str]| {
            settings.cors_allowed_origins = list.iter().map(|origin| (*origin).to_owned()).collect();
            settings.cors_origins()
        };
        assert_eq!(origins(&mut settings, &["", " "]).unwrap(), None);
        assert_eq!(origins(&mut settings, &["*"]).unwrap(), Some(CorsOrigins::Any));
        assert_eq!(
            origins(&mut settings, &["https://app.example.com", " http://localhost:3000"]).unwrap(),
            Some(CorsOrigins::List(vec![
                axum::http::HeaderValue::from_static("https://app.example.com"),
                axum::http::HeaderValue::from_static("http://localhost:3000"),
            ]))
        );
        for bad in [
            &["app.example.com"][..],
            &["https://app.example.com/"],
            &["ftp://x"],
            &["https://"],
            &["*", "https://a.b"],
        ] {
            let error = origins(&mut settings, bad).unwrap_err().to_string();
            assert!(error.starts_with("cors_allowed_origins: "), "{error}");
            assert!(settings.validate().is_err());
        }
    }

    #[test]
    fn page_sizes_below_the_services_default_are_refused() {
        let mut settings = Settings::from_env().unwrap();
        settings.default_page_size = 99;
        assert!(settings.validate().is_err());
        settings.default_page_size = MAX_PAGE_SIZE + 1;
        assert!(settings.validate().is_err());
        settings.default_page_size = MAX_PAGE_SIZE;
        assert!(settings.validate().is_ok());
    }
}
