//! Online backup and restore of the embedded deployment, as an operator
//! runs them: `bookstore backup` while the stack serves writes, then
//! `bookstore restore` into a new data directory and a stack started on it.

#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers outside #[test] fns, too

#[path = "support/processes.rs"]
mod processes;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bookstore_testing::eventually_every;
use bookstore_testing::processes::wait_ready;
use processes::{BIN, start_all_in_one};
use serde_json::{Value, json};
use tokio::sync::Mutex;

const PASSWORD: &str = "backup-test-password";

/// Runs `bookstore --data-dir DATA ARGS...`; its exit status and output.
async fn bookstore(data: &Path, args: &[&str]) -> (bool, String) {
    let output = tokio::process::Command::new(BIN)
        .arg("--data-dir")
        .arg(data)
        .args(args)
        .env("RUST_BACKTRACE", "0")
        .output()
        .await
        .unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    (output.status.success(), text)
}

async fn register_and_login(http: &reqwest::Client, base: &str, name: &str) -> String {
    let registered = http.post(format!("{base}/register")).json(&json!({"name": name, "password": PASSWORD}));
    assert_eq!(registered.send().await.unwrap().status(), 201);
    login(http, base, name).await
}

async fn login(http: &reqwest::Client, base: &str, name: &str) -> String {
    let login = http.post(format!("{base}/login")).basic_auth(name, Some(PASSWORD)).send().await.unwrap();
    assert_eq!(login.status(), 200, "{name} logs in");
    login.json::<Value>().await.unwrap()["token"].as_str().unwrap().to_owned()
}

async fn create_book(http: &reqwest::Client, base: &str, token: &str, name: &str) -> Option<i64> {
    let book = json!({"name": name, "Author": "A", "Publisher": "P", "book_prize": 1});
    let created = http.post(format!("{base}/book")).header("x-access-tokens", token).json(&book).send().await.ok()?;
    if created.status() != 201 {
        return None;
    }
    created.json::<Value>().await.ok()?["id"].as_i64()
}

async fn book_ids(http: &reqwest::Client, base: &str, token: &str) -> Vec<i64> {
    let listed = http.get(format!("{base}/books?limit=1000")).header("x-access-tokens", token).send().await.unwrap();
    assert_eq!(listed.status(), 200, "the token from before the backup verifies");
    let listed: Value = listed.json().await.unwrap();
    listed["list_of_books"].as_array().unwrap().iter().map(|book| book["id"].as_i64().unwrap()).collect()
}

#[tokio::test]
async fn a_backup_taken_under_writes_restores_into_a_stack_with_every_earlier_write() {
    // Arrange: three users with books, and a writer adding books non-stop.
    let (data, restored, backup) =
        (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let http = reqwest::Client::new();
    let (mut stack, base) = start_all_in_one(data.path(), &http).await;
    let mut users = Vec::new();
    for index in 0..3 {
        let name = format!("reader{index}");
        let token = register_and_login(&http, &base, &name).await;
        let mut books = Vec::new();
        for book in 0..20 {
            books.push(create_book(&http, &base, &token, &format!("{name} {book}")).await.unwrap());
        }
        users.push((name, token, books));
    }
    let writer_token = register_and_login(&http, &base, "writer").await;
    // (book id, acknowledged at) of every write the writers got an answer for.
    let acknowledged = Arc::new(Mutex::new(Vec::<(i64, tokio::time::Instant)>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..4)
        .map(|writer| {
            let (http, base, token) = (http.clone(), base.clone(), writer_token.clone());
            let (acknowledged, stop) = (Arc::clone(&acknowledged), Arc::clone(&stop));
            tokio::spawn(async move {
                for book in 0..150 {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    if let Some(id) = create_book(&http, &base, &token, &format!("w{writer} {book}")).await {
                        acknowledged.lock().await.push((id, tokio::time::Instant::now()));
                    }
                }
            })
        })
        .collect();
    eventually_every(Duration::from_secs(60), Duration::from_millis(10), || async {
        let count = acknowledged.lock().await.len();
        if count < 20 { Err(format!("only {count} writes acknowledged")) } else { Ok(()) }
    })
    .await;

    // Act: the backup, while the writers go on.
    let began = tokio::time::Instant::now();
    let target = backup.path().join("nightly");
    let (backed_up, output) = bookstore(data.path(), &["backup", "--to", target.to_str().unwrap()]).await;
    let ended = tokio::time::Instant::now();
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    for writer in writers {
        writer.await.unwrap();
    }
    stack.start_kill().unwrap();
    stack.wait().await.unwrap();
    assert!(backed_up, "{output}");
    let (restored_ok, output) = bookstore(restored.path(), &["restore", "--from", target.to_str().unwrap()]).await;
    assert!(restored_ok, "{output}");
    let (_restored_stack, base) = start_all_in_one(restored.path(), &http).await;

    // Assert: every book acknowledged before the backup began is there, none
    // acknowledged after it ended is, old tokens verify and users log in.
    for (name, token, books) in &users {
        assert_eq!(&book_ids(&http, &base, token).await, books, "{name}'s books");
        login(&http, &base, name).await;
    }
    let acknowledged = acknowledged.lock().await.clone();
    let restored_ids = book_ids(&http, &base, &writer_token).await;
    let before: Vec<i64> = acknowledged.iter().filter(|(_, at)| *at < began).map(|(id, _)| *id).collect();
    let after: Vec<i64> = acknowledged.iter().filter(|(_, at)| *at > ended).map(|(id, _)| *id).collect();
    let during = acknowledged.len() - before.len() - after.len();
    println!(
        "writes acknowledged: {} before the backup, {during} while it ran, {} after; {} in the restored copy",
        before.len(),
        after.len(),
        restored_ids.len()
    );
    assert!(before.iter().all(|id| restored_ids.contains(id)), "a write acknowledged before the backup is missing");
    assert!(after.iter().all(|id| !restored_ids.contains(id)), "a write made after the backup is in it");
    assert!(!after.is_empty(), "the writers went on after the backup");
}

#[tokio::test]
async fn restore_refuses_a_damaged_backup_and_a_non_empty_target() {
    // Arrange: a backup of a stopped stack's data.
    let (data, backup) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let http = reqwest::Client::new();
    let (mut stack, base) = start_all_in_one(data.path(), &http).await;
    register_and_login(&http, &base, "solo").await;
    stack.start_kill().unwrap();
    stack.wait().await.unwrap();
    let target = backup.path().join("b");
    let target = target.to_str().unwrap();
    let (ok, output) = bookstore(data.path(), &["backup", "--to", target]).await;
    assert!(ok, "{output}");

    // Act
    let into_data = bookstore(data.path(), &["restore", "--from", target]).await;
    let again = bookstore(data.path(), &["backup", "--to", target]).await;
    let forced = bookstore(data.path(), &["restore", "--from", target, "--force"]).await;
    let mut books = std::fs::read(backup.path().join("b/books.db")).unwrap();
    books[100] ^= 0xff;
    std::fs::write(backup.path().join("b/books.db"), books).unwrap();
    let fresh = tempfile::tempdir().unwrap();
    let damaged = bookstore(fresh.path(), &["restore", "--from", target]).await;
    let not_a_backup = bookstore(fresh.path(), &["restore", "--from", data.path().to_str().unwrap()]).await;

    // Assert
    assert!(!into_data.0 && into_data.1.contains("is not empty: choose an empty directory"), "{}", into_data.1);
    assert!(!again.0 && again.1.contains("is not empty"), "a backup never overwrites one: {}", again.1);
    assert!(forced.0, "{}", forced.1);
    assert!(!damaged.0 && damaged.1.contains("books.db does not match the manifest"), "{}", damaged.1);
    assert!(!not_a_backup.0 && not_a_backup.1.contains("is not a backup"), "{}", not_a_backup.1);
    assert!(std::fs::read_dir(fresh.path()).unwrap().next().is_none(), "nothing restored from a bad backup");
}

/// auth-service, books-service and the gateway as separate processes on
/// `auth_db` and `books_db`, with the key and service token in `keys`;
/// the processes and the gateway's base URL.
async fn start_on_postgres(
    keys: &Path,
    auth_db: &str,
    books_db: &str,
    http: &reqwest::Client,
) -> (Vec<tokio::process::Child>, String) {
    use processes::{free_addr, spawn, wait_serving};
    let (auth, books, gateway) = (free_addr(), free_addr(), free_addr());
    let token_file = keys.join("service-token").display().to_string();
    let auth_process = spawn(
        keys,
        "auth-service",
        &[
            ("AUTH_LISTEN_ADDR", auth.to_string()),
            ("AUTH_DATABASE_URL", auth_db.to_owned()),
            ("AUTH_SIGNING_KEY_FILE", keys.join("key.pem").display().to_string()),
            ("AUTH_SERVICE_TOKEN_FILE", token_file.clone()),
        ],
    );
    wait_serving(auth, "bookstore.auth.v1.AuthService").await;
    let books_process = spawn(
        keys,
        "books-service",
        &[
            ("BOOKS_LISTEN_ADDR", books.to_string()),
            ("BOOKS_DATABASE_URL", books_db.to_owned()),
            ("BOOKS_AUTH_URL", format!("http://{auth}")),
            ("BOOKS_SERVICE_TOKEN_FILE", token_file),
        ],
    );
    wait_serving(books, "bookstore.books.v1.BooksService").await;
    let gateway_process = spawn(
        keys,
        "gateway",
        &[
            ("GATEWAY_LISTEN_ADDR", gateway.to_string()),
            ("GATEWAY_AUTH_URL", format!("http://{auth}")),
            ("GATEWAY_BOOKS_URL", format!("http://{books}")),
        ],
    );
    let base = format!("http://{gateway}");
    wait_ready(http, &base, Duration::from_secs(15), || "the gateway".to_owned()).await;
    (vec![auth_process, books_process, gateway_process], base)
}

/// `pg_dump` / `pg_restore` as docs/operations.md gives them.
fn run(program: &str, args: &[&str]) {
    let output = std::process::Command::new(program).args(args).output().unwrap_or_else(|error| {
        panic!("{program} is needed for this test (apt-get install postgresql-client): {error}")
    });
    assert!(output.status.success(), "{program} {args:?}: {}", String::from_utf8_lossy(&output.stderr));
}

#[tokio::test]
async fn postgres_databases_restored_with_pg_restore_serve_every_user_book_and_token() {
    let Some(auth_db) = bookstore_testing::TestDatabase::postgres().await else { return };
    let books_db = bookstore_testing::TestDatabase::postgres().await.unwrap();
    let (restored_auth, restored_books) = (
        bookstore_testing::TestDatabase::postgres().await.unwrap(),
        bookstore_testing::TestDatabase::postgres().await.unwrap(),
    );
    // Arrange: a deployment with users and books, then its dumps (the
    // commands of docs/operations.md) and its key files kept aside.
    let (keys, dumps) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let http = reqwest::Client::new();
    let (processes, base) = start_on_postgres(keys.path(), &auth_db.url, &books_db.url, &http).await;
    let token = register_and_login(&http, &base, "pat").await;
    let mut books = Vec::new();
    for book in 0..5 {
        books.push(create_book(&http, &base, &token, &format!("Book {book}")).await.unwrap());
    }
    for (database, file) in [(&auth_db.url, "auth.dump"), (&books_db.url, "books.dump")] {
        let file = dumps.path().join(file);
        run("pg_dump", &["--format=custom", "--no-owner", "--file", file.to_str().unwrap(), database]);
    }
    drop(processes);

    // Act: restore into fresh databases and start the services on them.
    for (database, file) in [(&restored_auth.url, "auth.dump"), (&restored_books.url, "books.dump")] {
        let file = dumps.path().join(file);
        run("pg_restore", &["--no-owner", "--exit-on-error", "--dbname", database, file.to_str().unwrap()]);
    }
    let (_processes, base) = start_on_postgres(keys.path(), &restored_auth.url, &restored_books.url, &http).await;

    // Assert
    assert_eq!(book_ids(&http, &base, &token).await, books);
    login(&http, &base, "pat").await;
    for database in [auth_db, books_db, restored_auth, restored_books] {
        database.cleanup().await;
    }
}
