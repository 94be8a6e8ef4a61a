//! Scale-out end to end, as separate OS processes on loopback: PostgreSQL,
//! two auth-service replicas sharing one signing key, two books-service
//! replicas, and a gateway that spreads calls over them. One books replica
//! is SIGKILLed in the middle of a read load.
//!
//! Needs PostgreSQL (see `bookstore-testing`); skipped without it unless
//! `BOOKSTORE_REQUIRE_POSTGRES=1`. Prints what it measured.

#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers outside #[test] fns, too

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bookstore_proto::auth::v1::auth_service_client::AuthServiceClient;
use bookstore_proto::auth::v1::{LoginRequest, RegisterRequest};
use bookstore_proto::books::v1::books_service_client::BooksServiceClient;
use bookstore_proto::books::v1::{CreateBookRequest, ListBooksRequest};
use bookstore_testing::TestDatabase;
use bookstore_testing::eventually_every;
use bookstore_testing::grpc::{channel, wait_serving_or, with_token};
use bookstore_testing::net::free_addr;
use bookstore_testing::processes::{Process, auth_service_env, books_service_env, wait_ready};

const BIN: &str = env!("CARGO_BIN_EXE_bookstore");
const AUTH: &str = "bookstore.auth.v1.AuthService";
const BOOKS: &str = "bookstore.books.v1.BooksService";
const READERS: usize = 8;
const READS_EACH: usize = 150;

fn start(dir: &Path, name: &str, subcommand: &str, env: &[(&str, String)]) -> Process {
    Process::start(BIN, dir, name, &[subcommand.to_owned()], env)
}

/// Waits until `addr` reports SERVING; on failure, shows the tail of `process`'s log.
async fn wait_serving(addr: SocketAddr, service: &str, process: &Process) {
    wait_serving_or(addr, service, || process.log_tail()).await;
}

fn grpc_channel(addr: SocketAddr) -> tonic::transport::Channel {
    channel(addr, Duration::from_secs(10))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_share_tokens_and_survive_a_killed_books_replica() {
    let (Some(auth_db), Some(books_db)) = (TestDatabase::postgres().await, TestDatabase::postgres().await) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("signing-key.pem");
    let generated = std::process::Command::new(BIN)
        .args(["generate-signing-key", "--out", key.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(generated.status.success(), "{generated:?}");

    let (auth_a, auth_b, books_a, books_b, gateway) = (free_addr(), free_addr(), free_addr(), free_addr(), free_addr());
    let auth_urls = format!("http://{auth_a},http://{auth_b}");
    let auth_env = |addr: SocketAddr| {
        let mut env = auth_service_env(addr, &auth_db.url, &key);
        env.push(("AUTH_GENERATE_SIGNING_KEY", "false".to_owned()));
        env
    };
    let books_env = |addr: SocketAddr| books_service_env(addr, &books_db.url, &auth_urls);
    let auth_a_process = start(dir.path(), "auth-a", "auth-service", &auth_env(auth_a));
    let auth_b_process = start(dir.path(), "auth-b", "auth-service", &auth_env(auth_b));
    wait_serving(auth_a, AUTH, &auth_a_process).await;
    wait_serving(auth_b, AUTH, &auth_b_process).await;
    let mut books_a_process = start(dir.path(), "books-a", "books-service", &books_env(books_a));
    let books_b_process = start(dir.path(), "books-b", "books-service", &books_env(books_b));
    wait_serving(books_a, BOOKS, &books_a_process).await;
    wait_serving(books_b, BOOKS, &books_b_process).await;
    let gateway_env = vec![
        ("GATEWAY_LISTEN_ADDR", gateway.to_string()),
        ("GATEWAY_AUTH_URL", auth_urls.clone()),
        ("GATEWAY_BOOKS_URL", format!("http://{books_a},http://{books_b}")),
    ];
    let gateway_process = start(dir.path(), "gateway", "gateway", &gateway_env);
    let http = reqwest::Client::new();
    let base = format!("http://{gateway}");
    wait_ready(&http, &base, Duration::from_secs(30), || gateway_process.log_tail()).await;

    // Register and log in through auth replica A, use the token on books
    // replica B, and the other way round.
    let mut auth_on_a = AuthServiceClient::new(grpc_channel(auth_a));
    let mut auth_on_b = AuthServiceClient::new(grpc_channel(auth_b));
    let password = "correct horse battery".to_owned();
    auth_on_a.register(RegisterRequest { name: "replicated".into(), password: password.clone() }).await.unwrap();
    let login = LoginRequest { name: "replicated".into(), password: password.clone() };
    let token_from_a = auth_on_a.login(login.clone()).await.unwrap().into_inner().access_token;
    let token_from_b = auth_on_b.login(login).await.unwrap().into_inner().access_token;
    let book = |name: &str| CreateBookRequest {
        name: name.into(),
        author: "Ursula K. Le Guin".into(),
        publisher: "Ace".into(),
        book_prize: 9,
    };
    let mut books_on_a = BooksServiceClient::new(grpc_channel(books_a));
    let mut books_on_b = BooksServiceClient::new(grpc_channel(books_b));
    let first = books_on_b.create_book(with_token(&token_from_a, book("The Dispossessed"))).await.unwrap();
    let second = books_on_a.create_book(with_token(&token_from_b, book("The Left Hand of Darkness"))).await.unwrap();
    let mut acknowledged: HashSet<i64> =
        [first, second].into_iter().map(|response| response.into_inner().book.unwrap().id).collect();
    let listed = books_on_a.list_books(with_token(&token_from_a, ListBooksRequest::default())).await.unwrap();
    assert_eq!(listed.into_inner().books.len(), 2, "both replicas serve one shared database");

    // A read load through the gateway, plus a writer; books replica A is
    // SIGKILLed a third of the way in.
    let reads_done = Arc::new(AtomicUsize::new(0));
    let read_failures = Arc::new(AtomicUsize::new(0));
    let stop_writer = Arc::new(AtomicBool::new(false));
    let mut readers = tokio::task::JoinSet::new();
    for _ in 0..READERS {
        let (http, base, token) = (http.clone(), base.clone(), token_from_a.clone());
        let (done, failures) = (Arc::clone(&reads_done), Arc::clone(&read_failures));
        readers.spawn(async move {
            for _ in 0..READS_EACH {
                let response = http.get(format!("{base}/books")).header("x-access-tokens", &token).send().await;
                if !response.is_ok_and(|response| response.status().is_success()) {
                    failures.fetch_add(1, Ordering::SeqCst);
                }
                done.fetch_add(1, Ordering::SeqCst);
            }
        });
    }
    let writer = {
        let (http, base, token, stop) = (http.clone(), base.clone(), token_from_b.clone(), Arc::clone(&stop_writer));
        tokio::spawn(async move {
            let (mut ids, mut failed, mut i) = (Vec::new(), 0, 0);
            while !stop.load(Ordering::SeqCst) {
                i += 1;
                let body =
                    serde_json::json!({"name": format!("Load {i}"), "Author": "A", "Publisher": "P", "book_prize": i});
                let response =
                    http.post(format!("{base}/book")).header("x-access-tokens", &token).json(&body).send().await;
                match response {
                    Ok(response) if response.status().is_success() => {
                        let body: serde_json::Value = response.json().await.unwrap();
                        ids.push(body["id"].as_i64().unwrap());
                    }
                    _ => failed += 1,
                }
            }
            (ids, failed)
        })
    };
    eventually_every(Duration::from_secs(60), Duration::from_millis(5), || async {
        let done = reads_done.load(Ordering::SeqCst);
        if done < READERS * READS_EACH / 3 { Err(format!("only {done} reads done")) } else { Ok(()) }
    })
    .await;
    books_a_process.kill().await; // SIGKILL
    let killed_at = Instant::now();
    let reads_at_kill = reads_done.load(Ordering::SeqCst);

    // Bring the replica back on its address while the load goes on.
    let books_a_process = start(dir.path(), "books-a-restarted", "books-service", &books_env(books_a));
    wait_serving(books_a, BOOKS, &books_a_process).await;
    let restarted_serving = killed_at.elapsed();
    while readers.join_next().await.is_some() {}
    stop_writer.store(true, Ordering::SeqCst);
    let (written, write_failures) = writer.await.unwrap();
    acknowledged.extend(written.iter().copied());

    // Every acknowledged write is there, read back through the restarted replica.
    let mut books_on_a = BooksServiceClient::new(grpc_channel(books_a));
    let request = ListBooksRequest { page_size: 1000, page_token: String::new() };
    let listed = books_on_a.list_books(with_token(&token_from_a, request)).await.unwrap().into_inner();
    let present: HashSet<i64> = listed.books.iter().map(|book| book.id).collect();
    let missing: Vec<&i64> = acknowledged.difference(&present).collect();

    let reads = READERS * READS_EACH;
    let failures = read_failures.load(Ordering::SeqCst);
    println!(
        "replicas: {reads} reads ({failures} failed, {reads_at_kill} before the kill), {} writes acknowledged \
         ({write_failures} refused), {} missing; killed books replica SERVING again after {restarted_serving:?}",
        written.len(),
        missing.len(),
    );
    assert!(missing.is_empty(), "acknowledged writes lost: {missing:?}");
    assert!(failures <= READERS, "{failures} failed reads: more than the {READERS} that can be in flight");
    assert!(write_failures <= 1, "only the write in flight on the killed replica may fail");

    drop((auth_a_process, auth_b_process, books_b_process, gateway_process, books_a_process));
    auth_db.cleanup().await;
    books_db.cleanup().await;
}
