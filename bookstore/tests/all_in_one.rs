//! The all-in-one's parts call each other in the process, not over its gRPC
//! ports, and those calls go through the same layers as calls from the
//! network: the services count and log them, check the token, limit each
//! client address; meanwhile the gRPC ports serve other clients as before.
//! (Linux: the test reads the kernel's table of TCP connections.)

#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers outside #[test] fns, too

#[path = "support/processes.rs"]
mod processes;

use std::time::Duration;

use bookstore_proto::books::v1::ListBooksRequest;
use bookstore_proto::books::v1::books_service_client::BooksServiceClient;
use bookstore_testing::grpc::with_token;
use processes::{Ports, channel, start_all_in_one_on};
use serde_json::{Value, json};

const PASSWORD: &str = "all-in-one-password";

/// The value of one sample on a `/metrics` page, 0 when absent.
async fn sample(http: &reqwest::Client, metrics: std::net::SocketAddr, series: &str) -> u64 {
    let text = http.get(format!("http://{metrics}/metrics")).send().await.unwrap().text().await.unwrap();
    text.lines().find_map(|line| line.strip_prefix(series)?.trim().parse().ok()).unwrap_or(0)
}

/// Open TCP connections (IPv4) from or to any of `ports` on this host.
fn connections_to(ports: &[u16]) -> usize {
    const ESTABLISHED: &str = "01";
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
    let port = |address: &str| u16::from_str_radix(address.rsplit(':').next().unwrap(), 16).unwrap();
    table
        .lines()
        .skip(1)
        .map(|line| line.split_whitespace().collect::<Vec<_>>())
        .filter(|fields| fields[3] == ESTABLISHED)
        .filter(|fields| ports.contains(&port(fields[1])) || ports.contains(&port(fields[2])))
        .count()
}

fn requests(service: &str, method: &str, code: &str) -> String {
    format!(r#"grpc_server_requests_total{{service="bookstore.{service}",method="{method}",code="{code}"}}"#)
}

#[tokio::test]
async fn the_gateways_calls_go_through_the_services_layers_in_the_process() {
    // Arrange: an all-in-one whose auth-service lets one client address
    // make 3 registrations or failed logins at once.
    let data = tempfile::tempdir().unwrap();
    let http = reqwest::Client::new();
    let ports = Ports::free();
    let env = [("AUTH_CLIENT_BURST", "3".to_owned()), ("AUTH_CLIENT_RATE_PER_MINUTE", "1".to_owned())];
    let _stack = start_all_in_one_on(data.path(), &http, &ports, &env).await;
    let base = format!("http://{}", ports.gateway);

    // Act: a user's journey through the gateway.
    let registered = http.post(format!("{base}/register")).json(&json!({"name": "ada", "password": PASSWORD}));
    assert_eq!(registered.send().await.unwrap().status(), 201);
    let login = http.post(format!("{base}/login")).basic_auth("ada", Some(PASSWORD)).send().await.unwrap();
    assert_eq!(login.status(), 200);
    let token = login.json::<Value>().await.unwrap()["token"].as_str().unwrap().to_owned();
    let book = json!({"name": "Dune", "Author": "Herbert", "Publisher": "Chilton", "book_prize": 9});
    let created = http.post(format!("{base}/book")).header("x-access-tokens", &token).json(&book).send().await;
    assert_eq!(created.unwrap().status(), 201);
    let listed = http.get(format!("{base}/books")).header("x-access-tokens", &token).send().await.unwrap();
    assert_eq!(listed.status(), 200);
    let listed: Value = listed.json().await.unwrap();
    let forged = http.get(format!("{base}/books")).header("x-access-tokens", format!("{token}x")).send().await;

    // Assert: each service counted the calls it answered in the process.
    assert_eq!(listed["list_of_books"][0]["name"], "Dune");
    assert_eq!(forged.unwrap().status(), 401, "books-service's token layer refuses a forged token");
    let books = |method, code| requests("books.v1.BooksService", method, code);
    let auth = |method, code| requests("auth.v1.AuthService", method, code);
    assert_eq!(sample(&http, ports.books_metrics, &books("CreateBook", "Ok")).await, 1);
    assert_eq!(sample(&http, ports.books_metrics, &books("ListBooks", "Ok")).await, 1);
    assert_eq!(sample(&http, ports.books_metrics, &books("ListBooks", "Unauthenticated")).await, 1);
    assert_eq!(sample(&http, ports.auth_metrics, &auth("Register", "Ok")).await, 1);
    assert_eq!(sample(&http, ports.auth_metrics, &auth("Login", "Ok")).await, 1);

    // And auth-service sees the HTTP client's address: its per-address
    // limit stops failed logins once the burst is spent.
    let mut statuses = Vec::new();
    for stranger in 0..4 {
        // A new name each time: the per-name throttle stays out of it.
        let wrong = http.post(format!("{base}/login")).basic_auth(format!("nobody-{stranger}"), Some(PASSWORD));
        let wrong = wrong.send().await;
        statuses.push(wrong.unwrap().status().as_u16());
    }
    assert_eq!(statuses.last(), Some(&429), "failed logins from one address are limited: {statuses:?}");

    // And no connection to either gRPC port was ever opened.
    assert_eq!(connections_to(&[ports.auth.port(), ports.books.port()]), 0);

    // And the gRPC port serves other clients the same books.
    let mut grpc = BooksServiceClient::new(channel(ports.books, Duration::from_secs(10)));
    let over_tcp = grpc.list_books(with_token(&token, ListBooksRequest::default())).await.unwrap().into_inner();
    assert_eq!(over_tcp.books.len(), 1);
    assert_eq!(over_tcp.books[0].name, "Dune");
}
