//! The `bookstore` binary and its services as child processes, for the
//! tests that kill, outlive or restart them. `CARGO_BIN_EXE_bookstore` is
//! known only to the bookstore crate's tests: they pass it in as `bin`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};

use crate::net::free_addr;

/// One child process with its log (stderr) in a file; killed when dropped.
#[derive(Debug)]
pub struct Process {
    /// What the logs call it.
    pub name: String,
    /// The process itself.
    pub child: Child,
    /// Its stderr.
    pub log: PathBuf,
}

impl Process {
    /// `bin ARGS` with `RUST_LOG=warn` and then `env` (which may override
    /// it), its stderr in `dir/NAME.log`. An error it exits with is logged
    /// without a backtrace (`RUST_LIB_BACKTRACE=0`), even where the tests
    /// run with `RUST_BACKTRACE=1`: a backtrace would push the message out
    /// of [`Process::log_tail`].
    ///
    /// # Panics
    /// When the log file cannot be made or the process cannot be started.
    pub fn start(bin: &str, dir: &Path, name: &str, args: &[String], env: &[(&str, String)]) -> Self {
        let log = dir.join(format!("{name}.log"));
        #[allow(clippy::expect_used)]
        let file = std::fs::File::create(&log).expect("create the process's log file");
        #[allow(clippy::expect_used)]
        let child = Command::new(bin)
            .args(args)
            .env("RUST_LOG", "warn")
            .env("RUST_LIB_BACKTRACE", "0")
            .envs(env.iter().map(|(key, value)| (*key, value.as_str())))
            .stdout(Stdio::null())
            .stderr(file)
            .kill_on_drop(true)
            .spawn()
            .expect("start the process");
        Self { name: name.to_owned(), child, log }
    }

    /// Its log so far.
    #[must_use]
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The last 15 lines of its log, under its name.
    #[must_use]
    pub fn log_tail(&self) -> String {
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        format!("--- {} ---\n{}", self.name, lines[lines.len().saturating_sub(15)..].join("\n"))
    }

    /// SIGKILL (no graceful shutdown), and waits until it is gone.
    ///
    /// # Panics
    /// When the process cannot be killed.
    pub async fn kill(&mut self) {
        #[allow(clippy::expect_used)]
        self.child.start_kill().expect("SIGKILL the process");
        #[allow(clippy::expect_used)]
        self.child.wait().await.expect("wait for the killed process");
    }
}

/// `bin SUBCOMMAND` with `env`, its log in `dir/SUBCOMMAND.log`, killed
/// when dropped.
#[must_use]
pub fn spawn(bin: &str, dir: &Path, subcommand: &str, env: &[(&str, String)]) -> Child {
    Process::start(bin, dir, subcommand, &[subcommand.to_owned()], env).child
}

/// The addresses of an all-in-one's listeners.
#[derive(Debug, Clone, Copy)]
pub struct Ports {
    pub gateway: SocketAddr,
    pub auth: SocketAddr,
    pub books: SocketAddr,
    /// Whether the metrics listeners are on the addresses below, or on
    /// ports nobody needs to know (0).
    pub metrics: bool,
    pub auth_metrics: SocketAddr,
    pub books_metrics: SocketAddr,
}

impl Ports {
    /// Free addresses for every listener.
    #[must_use]
    pub fn free() -> Self {
        Self {
            gateway: free_addr(),
            auth: free_addr(),
            books: free_addr(),
            metrics: true,
            auth_metrics: free_addr(),
            books_metrics: free_addr(),
        }
    }
}

/// Starts the all-in-one `bin` on `data` on free ports and waits until the
/// gateway is ready; it and the gateway's base URL.
pub async fn start_all_in_one(bin: &str, data: &Path, http: &reqwest::Client) -> (Child, String) {
    let ports = Ports { metrics: false, ..Ports::free() };
    let child = start_all_in_one_on(bin, data, http, &ports, &[]).await;
    (child, format!("http://{}", ports.gateway))
}

/// Starts the all-in-one `bin` on `data` on `ports`, with `env`, and waits
/// until the gateway is ready.
///
/// # Panics
/// When it cannot be started or is not ready within 30 s.
pub async fn start_all_in_one_on(
    bin: &str,
    data: &Path,
    http: &reqwest::Client,
    ports: &Ports,
    env: &[(&str, String)],
) -> Child {
    let metrics = |addr: SocketAddr| if ports.metrics { addr.to_string() } else { "127.0.0.1:0".to_owned() };
    #[allow(clippy::expect_used)]
    let child = Command::new(bin)
        .arg("--data-dir")
        .arg(data)
        .args(["--gateway-addr", &ports.gateway.to_string(), "--auth-addr", &ports.auth.to_string()])
        .args(["--books-addr", &ports.books.to_string()])
        .args(["--auth-metrics-addr", &metrics(ports.auth_metrics)])
        .args(["--books-metrics-addr", &metrics(ports.books_metrics)])
        .args(["--gateway-metrics-addr", "127.0.0.1:0"])
        .envs(env.iter().map(|(key, value)| (*key, value.as_str())))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start the all-in-one");
    wait_ready(http, &format!("http://{}", ports.gateway), Duration::from_secs(30), || "bookstore".to_owned()).await;
    child
}

/// Waits until the gateway at `base` answers `GET /readyz` with 200.
///
/// # Panics
/// When it does not within `timeout`; the message ends with `context()`.
pub async fn wait_ready(http: &reqwest::Client, base: &str, timeout: Duration, context: impl Fn() -> String) {
    crate::eventually(timeout, || async {
        let response = http.get(format!("{base}/readyz")).send().await;
        if response.is_ok_and(|response| response.status() == 200) {
            return Ok(());
        }
        Err(format!("{base} never became ready\n{}", context()))
    })
    .await;
}

/// The environment of `bookstore auth-service` listening on `listen`, on
/// `database`, signing with the key in `signing_key_file`, with the tests'
/// service token.
#[must_use]
pub fn auth_service_env(listen: SocketAddr, database: &str, signing_key_file: &Path) -> Vec<(&'static str, String)> {
    let mut env = service_env(["AUTH_LISTEN_ADDR", "AUTH_SERVICE_TOKEN", "AUTH_DATABASE_URL"], listen, database);
    env.push(("AUTH_SIGNING_KEY_FILE", signing_key_file.display().to_string()));
    env
}

/// The environment of `bookstore books-service` listening on `listen`, on
/// `database`, asking auth-service at `auth_url` (one URL or several,
/// comma-separated), with the tests' service token.
#[must_use]
pub fn books_service_env(listen: SocketAddr, database: &str, auth_url: &str) -> Vec<(&'static str, String)> {
    let mut env = service_env(["BOOKS_LISTEN_ADDR", "BOOKS_SERVICE_TOKEN", "BOOKS_DATABASE_URL"], listen, database);
    env.push(("BOOKS_AUTH_URL", auth_url.to_owned()));
    env
}

/// A service's listen address, service token and database, under its variable names.
fn service_env(
    [listen_var, token_var, database_var]: [&'static str; 3],
    listen: SocketAddr,
    database: &str,
) -> Vec<(&'static str, String)> {
    vec![
        (listen_var, listen.to_string()),
        (token_var, crate::SERVICE_TOKEN.to_owned()),
        (database_var, database.to_owned()),
    ]
}
