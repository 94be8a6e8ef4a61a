//! `bookstore copy-data` from the embedded SQLite files into PostgreSQL, and
//! back (production data for local debugging), run as a user would run it. Needs PostgreSQL (skipped without it unless
//! `BOOKSTORE_REQUIRE_POSTGRES=1`).

#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers outside #[test] fns, too

use std::path::Path;

use books_service::store::testing::{book, id};
use bookstore_testing::TestDatabase;

const BIN: &str = env!("CARGO_BIN_EXE_bookstore");
const PASSWORD: &str = "correct horse battery";

fn auth_settings(data: &Path, database_url: String) -> auth_service::Settings {
    let mut settings = auth_service::Settings::from_env().unwrap();
    settings.database_url = database_url;
    settings.signing_key_file = data.join("auth-signing-key.pem");
    settings
}

fn copy_data(data: &Path, to_auth: &str, to_books: &str) -> String {
    copy_data_with(data, &[], to_auth, to_books)
}

fn copy_data_with(data: &Path, from: &[&str], to_auth: &str, to_books: &str) -> String {
    let output = std::process::Command::new(BIN)
        .args(["--data-dir", data.to_str().unwrap(), "copy-data"])
        .args(from)
        .args(["--to-auth-database-url", to_auth, "--to-books-database-url", to_books])
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).unwrap()
}

#[tokio::test]
async fn copy_data_moves_users_and_books_to_postgres_and_back_once_and_keeps_ids() {
    let (Some(auth_db), Some(books_db)) = (TestDatabase::postgres().await, TestDatabase::postgres().await) else {
        return;
    };
    // An embedded deployment with two users and their books, one deleted.
    let data = tempfile::tempdir().unwrap();
    let sqlite_auth = format!("sqlite://{}", data.path().join("auth.db").display());
    let sqlite_books = format!("sqlite://{}", data.path().join("books.db").display());
    let accounts = auth_service::accounts(&auth_settings(data.path(), sqlite_auth)).await.unwrap();
    let alice = accounts.register("alice", PASSWORD.into(), false).await.unwrap();
    accounts.register("root", PASSWORD.into(), true).await.unwrap();
    accounts.close().await;
    let books = books_service::store::connect(&sqlite_books).await.unwrap();
    let mut ids = Vec::new();
    for title in ["Dune", "Emma", "Ubik"] {
        ids.push(books.create_book(&alice.public_id, book(title, "A", 1), 1).await.unwrap().id);
    }
    books.delete_book(&alice.public_id, id(ids.remove(1))).await.unwrap();
    books.close().await;

    let first = copy_data(data.path(), &auth_db.url, &books_db.url);
    assert!(first.contains("users: 2 in the source, 2 newly copied"), "{first}");
    assert!(first.contains("books: 2 in the source, 2 newly copied"), "{first}");
    let again = copy_data(data.path(), &auth_db.url, &books_db.url);
    assert!(again.contains("users: 2 in the source, 0 newly copied"), "{again}");
    assert!(again.contains("books: 2 in the source, 0 newly copied"), "{again}");

    // On PostgreSQL: the password still logs in, the books keep their ids,
    // and new ids continue after the copied ones.
    let accounts = auth_service::accounts(&auth_settings(data.path(), auth_db.url.clone())).await.unwrap();
    let token = accounts.login("ALICE", PASSWORD.into()).await.unwrap();
    assert_eq!(token.access.claims.sub, alice.public_id);
    accounts.register("newcomer", PASSWORD.into(), false).await.unwrap();
    accounts.close().await;
    let books = books_service::store::connect(&books_db.url).await.unwrap();
    let copied: Vec<i64> = books.list_books(&alice.public_id, 0, 10).await.unwrap().iter().map(|b| b.id).collect();
    assert_eq!(copied, ids);
    let new = books.create_book(&alice.public_id, book("Solaris", "Lem", 2), 2).await.unwrap();
    assert!(new.id > *ids.last().unwrap());
    books.close().await;

    // And back: PostgreSQL into a fresh SQLite data directory (same key).
    let local = tempfile::tempdir().unwrap();
    std::fs::copy(data.path().join("auth-signing-key.pem"), local.path().join("auth-signing-key.pem")).unwrap();
    let (local_auth, local_books) = (
        format!("sqlite://{}", local.path().join("auth.db").display()),
        format!("sqlite://{}", local.path().join("books.db").display()),
    );
    let from = ["--from-auth-database-url", &auth_db.url, "--from-books-database-url", &books_db.url];
    let back = copy_data_with(data.path(), &from, &local_auth, &local_books);
    assert!(back.contains("users: 3 in the source, 3 newly copied, all present"), "{back}");
    assert!(back.contains("books: 3 in the source, 3 newly copied, all present"), "{back}");
    let again = copy_data_with(data.path(), &from, &local_auth, &local_books);
    assert!(again.contains("users: 3 in the source, 0 newly copied"), "{again}");
    let accounts = auth_service::accounts(&auth_settings(local.path(), local_auth)).await.unwrap();
    assert_eq!(accounts.login("alice", PASSWORD.into()).await.unwrap().access.claims.sub, alice.public_id);
    accounts.close().await;
    let books = books_service::store::connect(&local_books).await.unwrap();
    let copied: Vec<i64> = books.list_books(&alice.public_id, 0, 10).await.unwrap().iter().map(|b| b.id).collect();
    assert_eq!(copied, [ids[0], ids[1], new.id]);
    assert!(books.create_book(&alice.public_id, book("Eon", "Bear", 3), 3).await.unwrap().id > new.id);
    books.close().await;

    auth_db.cleanup().await;
    books_db.cleanup().await;
}

#[tokio::test]
async fn copy_data_refuses_a_missing_source() {
    let data = tempfile::tempdir().unwrap();
    let output = std::process::Command::new(BIN)
        .args(["--data-dir", data.path().join("nowhere").to_str().unwrap(), "copy-data"])
        .args(["--to-auth-database-url", "postgres://x/y", "--to-books-database-url", "postgres://x/z"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("does not exist"));
}
