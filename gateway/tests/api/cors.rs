//! CORS: off unless origins are configured; then preflights from those
//! origins (and only those) are allowed, with both token headers.

use reqwest::{Method, StatusCode};

use crate::helpers::{spawn_app, spawn_app_with};

const ALLOWED: &str = "https://app.example.com";

async fn preflight(app: &crate::helpers::TestApp, origin: &str) -> reqwest::Response {
    app.http
        .request(Method::OPTIONS, app.url("/books"))
        .header("origin", origin)
        .header("access-control-request-method", "GET")
        .header("access-control-request-headers", "x-access-tokens,authorization")
        .send()
        .await
        .unwrap()
}

fn allow_origin(response: &reqwest::Response) -> Option<&str> {
    response.headers().get("access-control-allow-origin").map(|value| value.to_str().unwrap())
}

#[tokio::test]
async fn cors_is_off_by_default() {
    let app = spawn_app().await;

    let response = preflight(&app, ALLOWED).await;

    assert_eq!(allow_origin(&response), None);
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    let response = app.http.get(app.url("/healthz")).header("origin", ALLOWED).send().await.unwrap();
    assert_eq!(allow_origin(&response), None);
}

#[tokio::test]
async fn a_preflight_from_an_allowed_origin_is_allowed_with_both_token_headers() {
    let app = spawn_app_with(|settings| {
        settings.cors_allowed_origins = vec!["http://localhost:3000".into(), ALLOWED.into()];
    })
    .await;

    let response = preflight(&app, ALLOWED).await;

    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(allow_origin(&response), Some(ALLOWED));
    let allowed_headers = response.headers()["access-control-allow-headers"].to_str().unwrap().to_owned();
    for header in ["x-access-tokens", "authorization", "content-type"] {
        assert!(allowed_headers.contains(header), "{header} not in {allowed_headers}");
    }
    let allowed_methods = response.headers()["access-control-allow-methods"].to_str().unwrap().to_owned();
    for method in ["GET", "POST", "PUT", "PATCH", "DELETE"] {
        assert!(allowed_methods.contains(method), "{method} not in {allowed_methods}");
    }
}

#[tokio::test]
async fn a_preflight_from_another_origin_is_refused() {
    let app = spawn_app_with(|settings| settings.cors_allowed_origins = vec![ALLOWED.into()]).await;

    let response = preflight(&app, "https://evil.example.com").await;

    assert_eq!(allow_origin(&response), None, "the browser must block the call");
}

#[tokio::test]
async fn an_allowed_origin_may_read_the_answer_and_its_request_id() {
    let app = spawn_app_with(|settings| settings.cors_allowed_origins = vec![ALLOWED.into()]).await;

    let response = app.http.get(app.url("/books")).header("origin", ALLOWED).send().await.unwrap();

    assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "CORS changes nothing else");
    assert_eq!(allow_origin(&response), Some(ALLOWED));
    let exposed = response.headers()["access-control-expose-headers"].to_str().unwrap();
    assert!(exposed.contains("x-request-id"), "{exposed}");
}

#[tokio::test]
async fn a_bad_origin_stops_the_gateway_at_start_up() {
    let mut settings = gateway::Settings::from_env().unwrap();
    settings.listen_addr = "127.0.0.1:0".parse().unwrap();
    settings.cors_allowed_origins = vec!["https://app.example.com/".into()];

    let error = gateway::App::build(&settings).await.err().expect("a trailing slash is not an origin");

    assert!(error.to_string().contains("cors_allowed_origins"), "{error}");
}
