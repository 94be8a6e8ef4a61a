//! Acknowledged writes survive a crash: the all-in-one `bookstore` on SQLite
//! is SIGKILLed right after its last acknowledged write, started again on
//! the same data directory, and every acknowledged book is there.

#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers outside #[test] fns, too

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::process::{Child, Command};

const BIN: &str = env!("CARGO_BIN_EXE_bookstore");

fn free_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap()
}

/// Starts the whole stack on `data` and waits until the gateway is ready.
async fn start(data: &Path, http: &reqwest::Client) -> (Child, String) {
    let (gateway, auth, books) = (free_addr(), free_addr(), free_addr());
    let child = Command::new(BIN)
        .arg("--data-dir")
        .arg(data)
        .args(["--gateway-addr", &gateway.to_string(), "--auth-addr", &auth.to_string()])
        .args(["--books-addr", &books.to_string()])
        .args(["--auth-metrics-addr", "127.0.0.1:0", "--books-metrics-addr", "127.0.0.1:0"])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let base = format!("http://{gateway}");
    let started = Instant::now();
    while http.get(format!("{base}/readyz")).send().await.map(|r| r.status().as_u16()).unwrap_or(0) != 200 {
        assert!(started.elapsed() < Duration::from_secs(30), "bookstore never became ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    (child, base)
}

#[tokio::test]
async fn acknowledged_books_survive_a_sigkill() {
    let data = tempfile::tempdir().unwrap();
    let http = reqwest::Client::new();
    let (mut bookstore, base) = start(data.path(), &http).await;
    let credentials = serde_json::json!({"name": "crash", "password": "crash-test-password"});
    let registered = http.post(format!("{base}/register")).json(&credentials).send().await.unwrap();
    assert_eq!(registered.status(), 201);
    let login = http.post(format!("{base}/login")).basic_auth("crash", Some("crash-test-password")).send().await;
    let token = login.unwrap().json::<serde_json::Value>().await.unwrap()["token"].as_str().unwrap().to_owned();

    let mut acknowledged = Vec::new();
    for i in 0..40 {
        let book = serde_json::json!({"name": format!("Book {i}"), "Author": "A", "Publisher": "P", "book_prize": i});
        let created = http.post(format!("{base}/book")).header("x-access-tokens", &token).json(&book).send().await;
        let created: serde_json::Value = created.unwrap().json().await.unwrap();
        acknowledged.push(created["id"].as_i64().unwrap());
    }
    bookstore.start_kill().unwrap(); // SIGKILL: no graceful shutdown, no checkpoint
    bookstore.wait().await.unwrap();

    let (_bookstore, base) = start(data.path(), &http).await;
    let listed = http.get(format!("{base}/books")).header("x-access-tokens", &token).send().await.unwrap();
    assert_eq!(listed.status(), 200, "the token from before the crash is still valid");
    let listed: serde_json::Value = listed.json().await.unwrap();
    let ids: Vec<i64> = listed["list_of_books"].as_array().unwrap().iter().map(|b| b["id"].as_i64().unwrap()).collect();
    assert_eq!(ids, acknowledged);
}
