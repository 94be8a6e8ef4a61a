//! Dependency outages: the database goes away under running services and
//! comes back; the services recover by themselves, without a restart.
//!
//! Runs a private PostgreSQL (initdb into a temporary directory, on a free
//! port) so that it can be stopped and started; never the shared server.
//! Skipped, with a note, where no PostgreSQL binaries are installed.

#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers outside #[test] fns, too

#[path = "support/processes.rs"]
mod processes;

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use bookstore_proto::auth::v1::auth_service_client::AuthServiceClient;
use bookstore_proto::auth::v1::{LoginRequest, RegisterRequest};
use bookstore_proto::books::v1::books_service_client::BooksServiceClient;
use bookstore_proto::books::v1::{CreateBookRequest, ListBooksRequest};
use bookstore_testing::eventually;
use bookstore_testing::grpc::with_token;
use bookstore_testing::processes::{auth_service_env, books_service_env};
use tonic::Code;

use processes::{channel, free_addr, spawn, wait_serving};

const PASSWORD: &str = "outage-test-password";
/// How long one call may take.
const TIMEOUT: Duration = Duration::from_secs(15);

/// A PostgreSQL server of our own in a temporary directory.
struct PrivatePostgres {
    bin: PathBuf,
    dir: tempfile::TempDir,
    port: u16,
}

impl PrivatePostgres {
    /// `None` where no PostgreSQL binaries are installed.
    fn init() -> Option<Self> {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .filter_map(Result::ok)
            .map(|entry| entry.path().join("bin"))
            .find(|bin| bin.join("initdb").exists())?;
        let dir = tempfile::tempdir().unwrap();
        let port = free_addr().port();
        let postgres = Self { bin, dir, port };
        // initdb and postgres refuse to run as root: run them as postgres.
        if is_root() {
            run("chown", &["-R", "postgres", postgres.dir.path().to_str().unwrap()]);
        }
        postgres.as_owner("initdb", &["-D", &postgres.data(), "-A", "trust", "-U", "postgres", "--no-sync"]);
        Some(postgres)
    }

    fn data(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    fn as_owner(&self, program: &str, args: &[&str]) {
        let program = self.bin.join(program).display().to_string();
        if is_root() {
            let mut all = vec!["-u", "postgres", "--", program.as_str()];
            all.extend_from_slice(args);
            run("runuser", &all);
        } else {
            run(&program, args);
        }
    }

    fn start(&self) {
        let options = format!("-k {} -p {} -c listen_addresses=127.0.0.1", self.dir.path().display(), self.port);
        let log = self.dir.path().join("postgres.log").display().to_string();
        self.as_owner("pg_ctl", &["-D", &self.data(), "-o", &options, "-l", &log, "-w", "start"]);
    }

    fn stop(&self) {
        self.as_owner("pg_ctl", &["-D", &self.data(), "-m", "fast", "-w", "stop"]);
    }

    fn create_database(&self, name: &str) -> String {
        let port = self.port.to_string();
        self.as_owner("createdb", &["-h", "127.0.0.1", "-p", &port, "-U", "postgres", name]);
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let data = self.data();
        let _ = std::process::Command::new(self.bin.join("pg_ctl"))
            .args(["-D", &data, "-m", "immediate", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        if is_root() {
            let _ = std::process::Command::new("runuser")
                .args(["-u", "postgres", "--", self.bin.join("pg_ctl").to_str().unwrap(), "-D", &data])
                .args(["-m", "immediate", "stop"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

fn is_root() -> bool {
    std::process::Command::new("id").arg("-u").output().is_ok_and(|out| out.stdout.starts_with(b"0\n"))
}

fn run(program: &str, args: &[&str]) {
    let output = std::process::Command::new(program).args(args).output().unwrap();
    assert!(output.status.success(), "{program} {args:?}: {}", String::from_utf8_lossy(&output.stderr));
}

fn a_book(name: &str) -> CreateBookRequest {
    CreateBookRequest { name: name.into(), author: "A".into(), publisher: "P".into(), book_prize: 1 }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_recover_by_themselves_after_the_database_restarts() {
    let Some(postgres) = PrivatePostgres::init() else {
        eprintln!("skipped: no PostgreSQL binaries under /usr/lib/postgresql");
        return;
    };
    postgres.start();
    let (auth_url, books_url) = (postgres.create_database("auth"), postgres.create_database("books"));
    let dir = tempfile::tempdir().unwrap();
    let (auth_addr, books_addr) = (free_addr(), free_addr());
    let _auth = spawn(dir.path(), "auth-service", &auth_service_env(auth_addr, &auth_url, &dir.path().join("key.pem")));
    wait_serving(auth_addr, "bookstore.auth.v1.AuthService").await;
    let _books =
        spawn(dir.path(), "books-service", &books_service_env(books_addr, &books_url, &format!("http://{auth_addr}")));
    wait_serving(books_addr, "bookstore.books.v1.BooksService").await;
    let mut auth = AuthServiceClient::new(channel(auth_addr, TIMEOUT));
    let mut books = BooksServiceClient::new(channel(books_addr, TIMEOUT));
    auth.register(RegisterRequest { name: "steady".into(), password: PASSWORD.into() }).await.unwrap();
    let login = || LoginRequest { name: "steady".into(), password: PASSWORD.into() };
    let token = auth.login(login()).await.unwrap().into_inner().access_token;
    books.create_book(with_token(&token, a_book("Before"))).await.unwrap();

    // Act 1: the database goes away.
    postgres.stop();
    let write = books.create_book(with_token(&token, a_book("During"))).await.unwrap_err();
    let login_down = auth.login(login()).await.unwrap_err();

    // Assert 1: a clean, retryable refusal, not a hang or an internal error.
    assert_eq!(write.code(), Code::Unavailable, "{write:?}");
    assert_eq!(login_down.code(), Code::Unavailable, "{login_down:?}");

    // Act 2: it comes back; the same processes serve again.
    postgres.start();
    let restarted = Instant::now();
    eventually(Duration::from_secs(30), || {
        let mut books = books.clone();
        let token = &token;
        async move {
            books.create_book(with_token(token, a_book("After"))).await.map_err(|_| "books-service never recovered")
        }
    })
    .await;
    let recovered = restarted.elapsed();

    // Assert 2
    auth.login(login()).await.unwrap();
    let listed = books.list_books(with_token(&token, ListBooksRequest::default())).await.unwrap().into_inner();
    let names: Vec<String> = listed.books.into_iter().map(|book| book.name).collect();
    assert_eq!(names, ["Before", "After"]);
    println!("outage: database stopped and started; books-service wrote again {recovered:?} after the restart");
}
