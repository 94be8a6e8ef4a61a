//! Metrics scraped over HTTP after real calls, and grpc-web calls to the
//! services over HTTP/1.1, as a browser makes them.

use bookstore_proto::auth::v1::{GetJwksRequest, GetJwksResponse};
use bookstore_proto::books::v1::{ListBooksRequest, ListBooksResponse};
use bookstore_proto::prost::Message;
use reqwest::StatusCode;

use crate::helpers::{PASSWORD, TestApp, book, spawn_app};

async fn scrape(app: &TestApp, url: String) -> String {
    let response = app.http.get(url).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let content_type = response.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(content_type.starts_with("application/openmetrics-text"), "{content_type}");
    response.text().await.unwrap()
}

/// The value of the series `series` (name and labels, exactly as exposed).
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

async fn register_and_login(app: &TestApp, name: &str) -> String {
    let registered = app.http.post(format!("{}/register", app.base_url));
    let registered = registered.json(&serde_json::json!({"name": name, "password": PASSWORD})).send().await.unwrap();
    assert_eq!(registered.status(), StatusCode::CREATED);
    let login = app.http.post(format!("{}/login", app.base_url)).basic_auth(name, Some(PASSWORD)).send().await;
    login.unwrap().json::<serde_json::Value>().await.unwrap()["token"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn every_service_counts_its_requests_by_route_or_method_and_status_on_metrics() {
    // Arrange
    let app = spawn_app().await;
    let token = register_and_login(&app, "metered").await;
    let created = app.http.post(format!("{}/book", app.base_url)).header("x-access-tokens", &token);
    let created: serde_json::Value = created.json(&book("Dune", "Herbert")).send().await.unwrap().json().await.unwrap();
    let id = created["id"].as_i64().unwrap();

    // Act
    for _ in 0..2 {
        let found = app.http.get(format!("{}/books/{id}", app.base_url)).header("x-access-tokens", &token);
        assert_eq!(found.send().await.unwrap().status(), StatusCode::OK);
    }
    let missing = app.http.get(format!("{}/books/999999", app.base_url)).header("x-access-tokens", &token);
    assert_eq!(missing.send().await.unwrap().status(), StatusCode::NOT_FOUND);
    let garbage = app.http.get(format!("{}/books", app.base_url)).header("x-access-tokens", "garbage");
    assert_eq!(garbage.send().await.unwrap().status(), StatusCode::UNAUTHORIZED);
    let unknown = app.http.get(format!("{}/no/such/route/{id}", app.base_url)).send().await.unwrap();
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
    let gateway = scrape(&app, format!("http://{}/metrics", app.gateway.metrics.unwrap())).await;
    let books = scrape(&app, format!("http://{}/metrics", app.books.metrics.unwrap())).await;
    let auth = scrape(&app, format!("http://{}/metrics", app.auth.metrics.unwrap())).await;

    // Assert: the gateway, by route template (not the raw path) and status.
    let http = |method: &str, route: &str, status: u16| {
        value(
            &gateway,
            &format!(r#"http_server_requests_total{{method="{method}",route="{route}",status="{status}"}}"#),
        )
    };
    assert_eq!(http("GET", "/books/{book_id}", 200), Some(2.0), "{gateway}");
    assert_eq!(http("GET", "/books/{book_id}", 404), Some(1.0), "{gateway}");
    assert_eq!(http("GET", "/books", 401), Some(1.0), "{gateway}");
    assert_eq!(http("POST", "/login", 200), Some(1.0), "{gateway}");
    assert_eq!(http("GET", "unmatched", 404), Some(1.0), "{gateway}");
    assert!(
        gateway.contains(r#"http_server_request_duration_seconds_bucket{le="#)
            || gateway.contains("http_server_request_duration_seconds_count{"),
        "{gateway}"
    );
    assert!(!gateway.contains(&format!("/books/{id}\"")), "raw paths must not become labels: {gateway}");

    // books-service: by gRPC method and code, token failures by reason, its pool.
    let grpc = |text: &str, service: &str, method: &str, code: &str| {
        value(text, &format!(r#"grpc_server_requests_total{{service="{service}",method="{method}",code="{code}"}}"#))
    };
    let books_service = "bookstore.books.v1.BooksService";
    assert_eq!(grpc(&books, books_service, "GetBook", "Ok"), Some(2.0), "{books}");
    assert_eq!(grpc(&books, books_service, "GetBook", "NotFound"), Some(1.0), "{books}");
    assert_eq!(grpc(&books, books_service, "ListBooks", "Unauthenticated"), Some(1.0), "{books}");
    assert_eq!(value(&books, r#"token_verification_failures_total{reason="malformed"}"#), Some(1.0), "{books}");
    assert!(value(&books, r#"db_pool_connections{state="idle"}"#).is_some(), "{books}");
    // On SQLite: one writer and four readers (books-service/src/store/sqlite.rs).
    assert_eq!(value(&books, "db_pool_max_connections"), Some(5.0), "{books}");
    assert!(books.contains("grpc_server_request_duration_seconds_count{"), "{books}");

    // auth-service: its calls, the idle hashing queue, its pool.
    let auth_service = "bookstore.auth.v1.AuthService";
    assert_eq!(grpc(&auth, auth_service, "Register", "Ok"), Some(1.0), "{auth}");
    assert_eq!(grpc(&auth, auth_service, "Login", "Ok"), Some(1.0), "{auth}");
    assert_eq!(value(&auth, "auth_password_hash_queue_depth"), Some(0.0), "{auth}");
    assert_eq!(value(&auth, "auth_password_hashes_in_flight"), Some(0.0), "{auth}");
    assert!(value(&auth, r#"db_pool_connections{state="in_use"}"#).is_some(), "{auth}");
}

#[tokio::test]
async fn the_gateway_serves_metrics_on_its_admin_address_only() {
    // Arrange
    let app = spawn_app().await;

    // Act
    let public = app.http.get(format!("{}/metrics", app.base_url)).send().await.unwrap();
    let admin = scrape(&app, format!("http://{}/metrics", app.gateway.metrics.unwrap())).await;

    // Assert: the public address knows no /metrics; the admin one counted
    // the public attempt.
    assert_eq!(public.status(), StatusCode::NOT_FOUND);
    assert!(admin.contains(r#"http_server_requests_total{method="GET",route="unmatched",status="404"} 1"#), "{admin}");
}

#[tokio::test]
async fn auth_service_counts_refused_tokens_by_reason() {
    // Arrange: a token signed by a key auth-service does not know.
    let app = spawn_app().await;
    let policy = bookstore_tokens::TokenPolicy {
        issuer: app.auth_settings.issuer.clone(),
        audience: app.auth_settings.audience.clone(),
    };
    let foreign_key = bookstore_tokens::SigningKey::generate();
    let signer = bookstore_tokens::TokenSigner::new(&foreign_key, policy, std::time::Duration::from_secs(60)).unwrap();
    let foreign = signer.issue("someone", "someone", true, "no-session").unwrap().token;

    // Act: `GET /users` has auth-service check the token.
    for bad in [foreign.as_str(), "not-a-jwt", "not-a-jwt-either"] {
        let users = app.http.get(format!("{}/users", app.base_url)).header("x-access-tokens", bad);
        assert_eq!(users.send().await.unwrap().status(), StatusCode::UNAUTHORIZED);
    }
    let auth = scrape(&app, format!("http://{}/metrics", app.auth.metrics.unwrap())).await;

    // Assert
    assert_eq!(value(&auth, r#"token_verification_failures_total{reason="malformed"}"#), Some(2.0), "{auth}");
    assert_eq!(value(&auth, r#"token_verification_failures_total{reason="unknown_key"}"#), Some(1.0), "{auth}");
    let grpc = r#"grpc_server_requests_total{service="bookstore.auth.v1.AuthService",method="ListUsers",code="Unauthenticated"}"#;
    assert_eq!(value(&auth, grpc), Some(3.0), "{auth}");
}

/// A grpc-web unary call over HTTP/1.1: one length-prefixed message out,
/// one message and a trailers frame back.
async fn grpc_web_call<T: Message + Default>(
    addr: std::net::SocketAddr,
    path: &str,
    token: Option<&str>,
    request: &impl Message,
) -> (T, String) {
    let message = request.encode_to_vec();
    let mut body = vec![0u8];
    body.extend_from_slice(&u32::try_from(message.len()).unwrap().to_be_bytes());
    body.extend_from_slice(&message);
    let http1 = reqwest::Client::builder().http1_only().build().unwrap();
    let mut call = http1
        .post(format!("http://{addr}{path}"))
        .header("content-type", "application/grpc-web+proto")
        .header("x-grpc-web", "1")
        .body(body);
    if let Some(token) = token {
        call = call.header("authorization", format!("Bearer {token}"));
    }
    let response = call.send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.version(), reqwest::Version::HTTP_11);
    assert_eq!(response.headers()["content-type"], "application/grpc-web+proto");
    let bytes = response.bytes().await.unwrap();
    let (mut frames, mut rest) = (Vec::new(), &bytes[..]);
    while rest.len() >= 5 {
        let length = u32::from_be_bytes(rest[1..5].try_into().unwrap()) as usize;
        frames.push((rest[0], rest[5..5 + length].to_vec()));
        rest = &rest[5 + length..];
    }
    let data = frames.iter().find(|(flag, _)| *flag == 0).expect("a message frame");
    let trailers = frames.iter().find(|(flag, _)| *flag == 0x80).expect("a trailers frame");
    (T::decode(&data.1[..]).unwrap(), String::from_utf8(trailers.1.clone()).unwrap())
}

#[tokio::test]
async fn both_services_answer_grpc_web_calls_over_http1() {
    // Arrange
    let app = spawn_app().await;
    let token = register_and_login(&app, "browser").await;
    let created = app.http.post(format!("{}/book", app.base_url)).header("x-access-tokens", &token);
    assert_eq!(created.json(&book("Dune", "Herbert")).send().await.unwrap().status(), StatusCode::CREATED);

    // Act
    let (books, books_trailers): (ListBooksResponse, _) = grpc_web_call(
        app.books.addr,
        "/bookstore.books.v1.BooksService/ListBooks",
        Some(&token),
        &ListBooksRequest { page_size: 10, page_token: String::new() },
    )
    .await;
    let (jwks, jwks_trailers): (GetJwksResponse, _) =
        grpc_web_call(app.auth.addr, "/bookstore.auth.v1.AuthService/GetJwks", None, &GetJwksRequest {}).await;

    // Assert
    assert!(books_trailers.contains("grpc-status:0"), "{books_trailers}");
    assert_eq!(books.books.len(), 1);
    assert_eq!(books.books[0].name, "Dune");
    assert!(jwks_trailers.contains("grpc-status:0"), "{jwks_trailers}");
    assert_eq!(jwks.keys.len(), 1);
    assert_eq!(jwks.keys[0].alg, "EdDSA");
}
