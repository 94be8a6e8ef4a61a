//! Acknowledged writes survive a crash: the all-in-one `bookstore` on SQLite
//! is SIGKILLed right after its last acknowledged write, started again on
//! the same data directory, and every acknowledged book is there. Then each
//! service alone is SIGKILLed in the middle of a write load, on SQLite and
//! on PostgreSQL: every acknowledged write is there, whole.

#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers outside #[test] fns, too

#[path = "support/processes.rs"]
mod processes;

use processes::start_all_in_one as start;

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

// --- Each service SIGKILLed in the middle of a write load, as separate
// processes (`bookstore auth-service`, `bookstore books-service`), on SQLite
// and on PostgreSQL. Prints the figures: sent, acknowledged, found.

mod separate {
    use std::collections::HashMap;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::time::Duration;

    use bookstore_proto::auth::v1::auth_service_client::AuthServiceClient;
    use bookstore_proto::auth::v1::{LoginRequest, RegisterRequest};
    use bookstore_proto::books::v1::books_service_client::BooksServiceClient;
    use bookstore_proto::books::v1::{CreateBookRequest, ListBooksRequest};
    use bookstore_testing::eventually_every;
    use bookstore_testing::grpc::with_token;
    use bookstore_testing::processes::{auth_service_env, books_service_env};
    use tokio::process::Child;

    use crate::processes::{channel, free_addr, spawn, wait_serving};

    const PASSWORD: &str = "crash-test-password";
    const WRITERS: usize = 4;
    /// How long one call may take.
    const TIMEOUT: Duration = Duration::from_secs(10);

    /// Waits until `count` writes were acknowledged (the kill then lands
    /// in the middle of the load, with writes in flight).
    async fn wait_for(acked: &AtomicUsize, count: usize) {
        eventually_every(Duration::from_secs(60), Duration::from_millis(5), || async {
            if acked.load(Ordering::SeqCst) < count { Err("the write load is stuck") } else { Ok(()) }
        })
        .await;
    }

    async fn kill(child: &mut Child) {
        child.start_kill().unwrap(); // SIGKILL: no graceful shutdown
        child.wait().await.unwrap();
    }

    /// Runs `writers` writers, each calling its `make_writer(writer)` with
    /// index 0, 1, ... until a call fails or the process is killed: once
    /// `acked_before_kill` writes were acknowledged, `process` is SIGKILLed.
    /// How many writes were sent, and what every acknowledged one returned.
    async fn write_until_killed<T, W, Fut>(
        writers: usize,
        acked_before_kill: usize,
        process: &mut Child,
        make_writer: impl Fn(usize) -> W,
    ) -> (usize, Vec<T>)
    where
        T: Send + 'static,
        W: FnMut(usize) -> Fut + Send + 'static,
        Fut: Future<Output = Option<T>> + Send,
    {
        let (sent, acked, killed) =
            (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)), Arc::new(AtomicBool::new(false)));
        let mut tasks = tokio::task::JoinSet::new();
        for writer in 0..writers {
            let (sent, acked, killed) = (Arc::clone(&sent), Arc::clone(&acked), Arc::clone(&killed));
            let mut write = make_writer(writer);
            tasks.spawn(async move {
                let mut acknowledged = Vec::new();
                for index in 0.. {
                    if killed.load(Ordering::SeqCst) {
                        break;
                    }
                    sent.fetch_add(1, Ordering::SeqCst);
                    let Some(written) = write(index).await else { break };
                    acked.fetch_add(1, Ordering::SeqCst);
                    acknowledged.push(written);
                }
                acknowledged
            });
        }
        wait_for(&acked, acked_before_kill).await;
        kill(process).await;
        killed.store(true, Ordering::SeqCst);
        let acknowledged = tasks.join_all().await.into_iter().flatten().collect();
        (sent.load(Ordering::SeqCst), acknowledged)
    }

    /// The book writer `writer` sends as its `index`th: every field is
    /// derived from the name, so a half-written row would show.
    fn book(writer: usize, index: usize) -> CreateBookRequest {
        CreateBookRequest {
            name: format!("w{writer}-{index}"),
            author: format!("author of w{writer}-{index}"),
            publisher: format!("publisher {index}"),
            book_prize: i64::try_from(index).unwrap(),
        }
    }

    pub async fn kill_each_service_during_writes(label: &str, auth_database: &str, books_database: &str) {
        let dir = tempfile::tempdir().unwrap();
        let (auth_addr, books_addr) = (free_addr(), free_addr());
        let mut auth_env = auth_service_env(auth_addr, auth_database, &dir.path().join("key.pem"));
        auth_env
            .extend([("AUTH_CLIENT_RATE_PER_MINUTE", "0".to_owned()), ("AUTH_MAX_CONCURRENT_HASHES", "2".to_owned())]);
        let books_env = books_service_env(books_addr, books_database, &format!("http://{auth_addr}"));
        let mut auth = spawn(dir.path(), "auth-service", &auth_env);
        wait_serving(auth_addr, "bookstore.auth.v1.AuthService").await;
        let mut books = spawn(dir.path(), "books-service", &books_env);
        wait_serving(books_addr, "bookstore.books.v1.BooksService").await;
        let mut auth_client = AuthServiceClient::new(channel(auth_addr, TIMEOUT));
        auth_client.register(RegisterRequest { name: "writer".into(), password: PASSWORD.into() }).await.unwrap();
        let login = LoginRequest { name: "writer".into(), password: PASSWORD.into() };
        let token = auth_client.login(login).await.unwrap().into_inner().access_token;

        // books-service: writers create books until it is killed.
        let (sent, acknowledged) = write_until_killed(WRITERS, 200, &mut books, |writer| {
            let (client, token) = (BooksServiceClient::new(channel(books_addr, TIMEOUT)), token.clone());
            move |index| {
                let (mut client, token) = (client.clone(), token.clone());
                async move {
                    let response = client.create_book(with_token(&token, book(writer, index))).await.ok()?;
                    Some((response.into_inner().book.unwrap().id, book(writer, index)))
                }
            }
        })
        .await;

        let mut books = spawn(dir.path(), "books-service", &books_env);
        wait_serving(books_addr, "bookstore.books.v1.BooksService").await;
        let mut client = BooksServiceClient::new(channel(books_addr, TIMEOUT));
        let mut found = HashMap::new();
        let mut page_token = String::new();
        loop {
            let request = ListBooksRequest { page_size: 1000, page_token: page_token.clone() };
            let page = client.list_books(with_token(&token, request)).await.unwrap().into_inner();
            for listed in page.books {
                found.insert(listed.id, listed);
            }
            if page.next_page_token.is_empty() {
                break;
            }
            page_token = page.next_page_token;
        }
        for (id, expected) in &acknowledged {
            let listed = found.get(id).unwrap_or_else(|| panic!("{label}: acknowledged book {id} is missing"));
            assert_eq!(
                (&listed.name, &listed.author, &listed.publisher, listed.book_prize),
                (&expected.name, &expected.author, &expected.publisher, expected.book_prize)
            );
        }
        for listed in found.values() {
            let (writer, index) = listed.name[1..].split_once('-').unwrap();
            let expected = book(writer.parse().unwrap(), index.parse().unwrap());
            assert_eq!(
                (&listed.author, &listed.publisher, listed.book_prize),
                (&expected.author, &expected.publisher, expected.book_prize),
                "{label}: a half-written book"
            );
        }
        println!(
            "crash {label}: books-service SIGKILLed during writes: {sent} sent, {} acknowledged, {} found after restart, 0 missing",
            acknowledged.len(),
            found.len()
        );

        // auth-service: registrations until it is killed; the token from
        // before keeps working on books-service meanwhile.
        let (sent, registered) = write_until_killed(2, 30, &mut auth, |writer| {
            let client = AuthServiceClient::new(channel(auth_addr, TIMEOUT));
            move |index| {
                let mut client = client.clone();
                async move {
                    let name = format!("user-{writer}-{index}");
                    client.register(RegisterRequest { name: name.clone(), password: PASSWORD.into() }).await.ok()?;
                    Some(name)
                }
            }
        })
        .await;
        let still = client.list_books(with_token(&token, ListBooksRequest::default())).await;
        assert!(still.is_ok(), "{label}: a token keeps working while auth-service is down: {still:?}");

        let _auth = spawn(dir.path(), "auth-service", &auth_env);
        wait_serving(auth_addr, "bookstore.auth.v1.AuthService").await;
        let mut auth_client = AuthServiceClient::new(channel(auth_addr, TIMEOUT));
        for name in &registered {
            let login = LoginRequest { name: name.clone(), password: PASSWORD.into() };
            let logged_in = auth_client.login(login).await;
            assert!(logged_in.is_ok(), "{label}: acknowledged user {name} cannot log in: {logged_in:?}");
        }
        println!(
            "crash {label}: auth-service SIGKILLed during registrations: {sent} sent, {} acknowledged, {} log in after restart",
            registered.len(),
            registered.len()
        );
        kill(&mut books).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_service_killed_during_writes_keeps_every_acknowledged_write_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let auth = format!("sqlite://{}", dir.path().join("auth.db").display());
    let books = format!("sqlite://{}", dir.path().join("books.db").display());
    separate::kill_each_service_during_writes("sqlite", &auth, &books).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_service_killed_during_writes_keeps_every_acknowledged_write_on_postgres() {
    let (Some(auth), Some(books)) =
        (bookstore_testing::TestDatabase::postgres().await, bookstore_testing::TestDatabase::postgres().await)
    else {
        return;
    };
    separate::kill_each_service_during_writes("postgres", &auth.url, &books.url).await;
    auth.cleanup().await;
    books.cleanup().await;
}
