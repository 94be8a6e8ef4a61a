//! The key rotation of docs/operations.md, done while clients log in and read books all
//! the time: two auth-service replicas rolled one at a time through the
//! three steps, books-service verifying every token, zero failed requests.

#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers outside #[test] fns, too

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use bookstore_proto::auth::v1::auth_service_client::AuthServiceClient;
use bookstore_proto::auth::v1::{LoginRequest, RegisterRequest};
use bookstore_proto::books::v1::ListBooksRequest;
use bookstore_proto::books::v1::books_service_client::BooksServiceClient;
use bookstore_replicas::Replicas;
use bookstore_testing::grpc::with_token;
use bookstore_testing::net::free_addr;
use bookstore_testing::running::Running;

const PASSWORD: &str = "correct horse battery";

async fn start_auth(addr: SocketAddr, database: &str, signing: &PathBuf, verifying: &[PathBuf]) -> Running {
    let mut settings = auth_service::Settings::from_env().unwrap();
    settings.listen_addr = addr;
    settings.database_url = database.to_owned();
    settings.signing_key_file.clone_from(signing);
    settings.verification_key_files = verifying.to_vec();
    settings.generate_signing_key = false;
    settings.service_token = Some(bookstore_testing::SERVICE_TOKEN.into());
    // Four clients log in non-stop from one address: no per-client limit.
    settings.client_rate_per_minute = 0;
    let app = auth_service::App::build(&settings).await.unwrap();
    Running::spawn(app.server().local_addr(), |stopped| app.run_until_stopped(stopped))
}

/// Restarts the replicas one at a time with the next step's keys.
async fn roll(
    replicas: &mut [Option<Running>; 2],
    addrs: [SocketAddr; 2],
    database: &str,
    signing: &PathBuf,
    verifying: &[PathBuf],
) {
    for (replica, addr) in replicas.iter_mut().zip(addrs) {
        if let Some(mut running) = replica.take() {
            running.stop().await;
        }
        *replica = Some(start_auth(addr, database, signing, verifying).await);
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

fn key_file(dir: &tempfile::TempDir, name: &str) -> PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, bookstore_tokens::SigningKey::generate().to_pkcs8_pem().unwrap()).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_key_rotation_fails_no_request() {
    let dir = tempfile::tempdir().unwrap();
    let (old, new) = (key_file(&dir, "old.pem"), key_file(&dir, "new.pem"));
    let auth_db = format!("sqlite://{}", dir.path().join("auth.db").display());
    let (a, b) = (free_addr(), free_addr());

    // Before: both replicas sign with the old key.
    let mut replicas = [Some(start_auth(a, &auth_db, &old, &[]).await), Some(start_auth(b, &auth_db, &old, &[]).await)];
    let auth_url = format!("http://{a},http://{b}");
    let mut books_settings =
        books_service::Settings::for_tests(dir.path(), auth_url, bookstore_testing::SERVICE_TOKEN).unwrap();
    books_settings.jwks_refresh_secs = 1;
    let books = books_service::App::build(&books_settings).await.unwrap();
    let books_addr = books.server().local_addr();
    let mut books = Running::spawn(books_addr, |stopped| books.run_until_stopped(stopped));

    let auth = Replicas::new(
        &format!("http://{a},http://{b}"),
        None,
        |endpoint| endpoint,
        bookstore_proto::idempotency::is_side_effect_free,
    )
    .unwrap();
    let mut auth_client = AuthServiceClient::new(auth.clone());
    auth_client.register(RegisterRequest { name: "rotor".into(), password: PASSWORD.into() }).await.unwrap();

    // Clients: log in (through either replica), then read books with the
    // fresh token, over and over.
    let (calls, failures, done) =
        (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)), Arc::new(AtomicBool::new(false)));
    let mut clients = tokio::task::JoinSet::new();
    for _ in 0..4 {
        let (calls, failures, done) = (Arc::clone(&calls), Arc::clone(&failures), Arc::clone(&done));
        let mut auth = AuthServiceClient::new(auth.clone());
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{books_addr}")).unwrap().connect_lazy();
        let mut books = BooksServiceClient::new(channel);
        clients.spawn(async move {
            while !done.load(Ordering::SeqCst) {
                let login = auth.login(LoginRequest { name: "rotor".into(), password: PASSWORD.into() }).await;
                calls.fetch_add(1, Ordering::SeqCst);
                let login = match login {
                    Ok(login) => login,
                    Err(status) => {
                        eprintln!("login failed: {status:?}");
                        failures.fetch_add(1, Ordering::SeqCst);
                        continue;
                    }
                };
                let request = with_token(&login.into_inner().access_token, ListBooksRequest::default());
                calls.fetch_add(1, Ordering::SeqCst);
                if let Err(status) = books.list_books(request).await {
                    eprintln!("list failed: {status:?}");
                    failures.fetch_add(1, Ordering::SeqCst);
                }
            }
        });
    }
    let settle = || tokio::time::sleep(Duration::from_millis(1500));
    settle().await;

    // 1. Publish the new key; wait for books-service's refresh (1 s here).
    roll(&mut replicas, [a, b], &auth_db, &old, std::slice::from_ref(&new)).await;
    settle().await;
    // 2. Sign with the new key, keep the old one published.
    roll(&mut replicas, [a, b], &auth_db, &new, std::slice::from_ref(&old)).await;
    settle().await;
    // 3. Retire the old key (every token in use is new by now).
    roll(&mut replicas, [a, b], &auth_db, &new, &[]).await;
    settle().await;

    done.store(true, Ordering::SeqCst);
    while clients.join_next().await.is_some() {}
    let (calls, failures) = (calls.load(Ordering::SeqCst), failures.load(Ordering::SeqCst));
    println!("rotation: {calls} calls during a rolling three-step key rotation, {failures} failed");
    assert!(calls > 100, "the clients kept calling");
    assert_eq!(failures, 0);

    for mut replica in replicas.into_iter().flatten() {
        replica.stop().await;
    }
    books.stop().await;
}
