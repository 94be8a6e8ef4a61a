//! What the gateway does on its own: health, readiness, upstream failures,
//! unknown routes and methods, body limits and request ids.

use std::time::{Duration, Instant};

use bookstore_testing::eventually;
use bookstore_testing::processes::wait_ready;
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{json_of, message, spawn_app, spawn_app_with};

#[tokio::test]
async fn healthz_returns_ok() {
    // Arrange
    let app = spawn_app().await;

    // Act
    let (status, body) = json_of(app.http.get(app.url("/healthz")).send().await.unwrap()).await;

    // Assert
    assert_eq!((status, body), (StatusCode::OK, json!({"status": "ok"})));
}

#[tokio::test]
async fn readyz_is_200_while_both_upstreams_serve_and_503_once_books_service_stops() {
    // Arrange
    let mut app = spawn_app().await;
    // books-service is ready once it has the keys and the revocation list.
    wait_ready(&app.http, &app.base_url, Duration::from_secs(10), String::new).await;

    // Act
    app.books.stop().await;
    let (status, body) = json_of(app.http.get(app.url("/readyz")).send().await.unwrap()).await;

    // Assert
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(message(&body).contains("books-service"), "{body}");
    assert!(!message(&body).contains("auth-service"), "{body}");
}

#[tokio::test]
async fn an_unreachable_upstream_gives_503_json_and_the_gateway_recovers_after_a_restart() {
    // Arrange
    let mut app = spawn_app().await;
    let token = app.new_user("alice").await;
    let id = app.new_book(&token, "Dune").await;
    app.books.stop().await;

    // Act
    let (status, body) = json_of(app.get("/books", &token).await).await;

    // Assert
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(!message(&body).is_empty());
    assert!(!body.to_string().contains("127.0.0.1"), "no internals: {body}");

    // Act: books-service comes back on the same address.
    app.restart_books().await;
    let books = eventually(Duration::from_secs(5), || async {
        let response = app.get("/books", &token).await;
        if response.status() != StatusCode::OK {
            return Err("the gateway did not recover");
        }
        Ok(response.json::<serde_json::Value>().await.unwrap())
    })
    .await;

    // Assert
    assert_eq!(books["list_of_books"][0]["id"], id);
    let (status, _) = json_of(app.http.get(app.url("/readyz")).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn the_gateway_starts_and_answers_503_while_auth_service_is_down() {
    // Arrange
    let mut app = spawn_app().await;
    app.auth.stop().await;

    // Act
    let (status, body) = json_of(app.login("alice", "whatever password").await).await;

    // Assert
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "login is still 503, not 401: {body}");
    let register = app.register("alice", "whatever password").await;
    assert_eq!(json_of(register).await.0, StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn a_silent_upstream_gives_504_within_the_deadline() {
    // Arrange: books-service's address accepts connections and never answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_addr = silent.local_addr().unwrap();
    let app = spawn_app_with(|settings| {
        settings.books_url = format!("http://{silent_addr}");
        settings.request_timeout_secs = 1;
    })
    .await;
    let token = app.new_user("alice").await;
    let started = Instant::now();

    // Act
    let (status, body) = json_of(app.get("/books", &token).await).await;

    // Assert
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT, "{body}");
    assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
    drop(silent);
}

#[tokio::test]
async fn unknown_routes_return_404_json() {
    // Arrange
    let app = spawn_app().await;

    // Act
    let (status, body) = json_of(app.http.get(app.url("/nope")).send().await.unwrap()).await;

    // Assert
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(message(&body).contains("/nope"));
}

#[tokio::test]
async fn wrong_methods_return_405_json_with_an_allow_header() {
    // Arrange
    let app = spawn_app().await;
    let cases = [
        (reqwest::Method::GET, "/register", "POST"),
        (reqwest::Method::GET, "/login", "POST"),
        (reqwest::Method::POST, "/books", "GET,HEAD"),
        (reqwest::Method::POST, "/books/1", "GET,HEAD,DELETE,PATCH,PUT"),
    ];

    for (method, path, allow) in cases {
        // Act
        let response = app.http.request(method.clone(), app.url(path)).send().await.unwrap();

        // Assert
        let mut allowed: Vec<String> =
            response.headers()["allow"].to_str().unwrap().split(',').map(|m| m.trim().to_owned()).collect();
        allowed.sort();
        let mut expected: Vec<&str> = allow.split(',').collect();
        expected.sort_unstable();
        assert_eq!(allowed, expected, "{method} {path}");
        let (status, body) = json_of(response).await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
        assert!(!message(&body).is_empty());
    }
}

#[tokio::test]
async fn bodies_over_the_limit_return_413_json() {
    // Arrange
    let app = spawn_app_with(|settings| settings.max_body_bytes = 1024).await;
    let token = app.new_user("alice").await;
    let huge = json!({"name": "x".repeat(2048), "Author": "a", "Publisher": "p", "book_prize": 1});

    // Act
    let (status, body) = json_of(app.create_book(&token, &huge).await).await;

    // Assert
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(!message(&body).is_empty());
}

#[tokio::test]
async fn the_default_body_limit_refuses_100_kib() {
    // Arrange
    let app = spawn_app().await;
    let huge = json!({"name": "x".repeat(100 * 1024), "password": "correct horse battery"});

    // Act
    let response = app.http.post(app.url("/register")).json(&huge).send().await.unwrap();

    // Assert
    assert_eq!(json_of(response).await.0, StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn request_ids_are_generated_or_echoed() {
    // Arrange
    let app = spawn_app().await;

    // Act
    let generated = app.http.get(app.url("/healthz")).send().await.unwrap();
    let echoed = app.http.get(app.url("/nope")).header("x-request-id", "my-request-42").send().await.unwrap();

    // Assert
    let generated = generated.headers()["x-request-id"].to_str().unwrap();
    assert_eq!(generated.len(), 36, "a UUID: {generated}");
    assert_eq!(echoed.headers()["x-request-id"], "my-request-42");
}
