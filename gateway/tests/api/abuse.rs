//! Attacks and limits through the REST gateway, over real sockets: forged
//! and broken tokens, login throttling, rate limits, oversized requests,
//! overload, and an auth-service outage.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bookstore_proto::UnixMicros;
use bookstore_tokens::SigningKey;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{
    PASSWORD, TestApp, json_of, message, spawn_app, spawn_app_configured, spawn_app_with, spawn_app_with_user,
};

/// Signs `claims` with `key` as `alg` with `kid`.
fn sign(alg: Algorithm, kid: Option<&str>, claims: &Value, key: &EncodingKey) -> String {
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&header, claims, key).unwrap()
}

fn claims_of(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

fn with(mut claims: Value, changes: &Value) -> Value {
    for (key, value) in changes.as_object().unwrap() {
        claims[key] = value.clone();
    }
    claims
}

/// Every kind of bad token we know of, each named, built from a real one.
fn bad_tokens(app: &TestApp, real: &str) -> Vec<(&'static str, String)> {
    let pem = std::fs::read(&app.auth_settings.signing_key_file).unwrap();
    let ours = EncodingKey::from_ed_pem(&pem).unwrap();
    let our_key = SigningKey::from_pkcs8_pem(std::str::from_utf8(&pem).unwrap()).unwrap();
    let kid = our_key.kid().to_owned();
    let public_x = our_key.public_jwk().x.clone();
    let public_raw = URL_SAFE_NO_PAD.decode(&public_x).unwrap();
    let foreign_key = SigningKey::generate();
    let foreign = EncodingKey::from_ed_pem(foreign_key.to_pkcs8_pem().unwrap().as_bytes()).unwrap();
    let claims = claims_of(real);
    let now = UnixMicros::now().unsigned_secs();
    let header_of = |json: &str| URL_SAFE_NO_PAD.encode(json);
    let payload = real.split('.').nth(1).unwrap().to_owned();
    let admin_payload = URL_SAFE_NO_PAD.encode(with(claims.clone(), &json!({"admin": true})).to_string());
    let (signed, signature) = real.rsplit_once('.').unwrap();
    let real_header = real.split('.').next().unwrap();
    vec![
        ("alg none", format!("{}.{payload}.", header_of(r#"{"alg":"none","typ":"JWT"}"#))),
        ("alg none with kid", format!("{}.{payload}.", header_of(&format!(r#"{{"alg":"none","kid":"{kid}"}}"#)))),
        (
            "HS256 keyed with the JWK x",
            sign(Algorithm::HS256, Some(&kid), &claims, &EncodingKey::from_secret(public_x.as_bytes()).unwrap()),
        ),
        (
            "HS256 keyed with the raw public key",
            sign(Algorithm::HS256, Some(&kid), &claims, &EncodingKey::from_secret(&public_raw).unwrap()),
        ),
        (
            "expired",
            sign(
                Algorithm::EdDSA,
                Some(&kid),
                &with(claims.clone(), &json!({"iat": now - 7200, "exp": now - 3600})),
                &ours,
            ),
        ),
        (
            "not valid before an hour from now",
            sign(Algorithm::EdDSA, Some(&kid), &with(claims.clone(), &json!({"nbf": now + 3600})), &ours),
        ),
        (
            "issued an hour from now",
            sign(
                Algorithm::EdDSA,
                Some(&kid),
                &with(claims.clone(), &json!({"iat": now + 3600, "exp": now + 7200})),
                &ours,
            ),
        ),
        ("wrong iss", sign(Algorithm::EdDSA, Some(&kid), &with(claims.clone(), &json!({"iss": "evil"})), &ours)),
        ("wrong aud", sign(Algorithm::EdDSA, Some(&kid), &with(claims.clone(), &json!({"aud": "another-api"})), &ours)),
        (
            "no exp",
            sign(
                Algorithm::EdDSA,
                Some(&kid),
                &{
                    let mut c = claims.clone();
                    c.as_object_mut().unwrap().remove("exp");
                    c
                },
                &ours,
            ),
        ),
        ("no kid", sign(Algorithm::EdDSA, None, &claims, &ours)),
        ("unknown kid", sign(Algorithm::EdDSA, Some("no-such-key"), &claims, &ours)),
        ("path in kid", sign(Algorithm::EdDSA, Some("../../../../etc/passwd"), &claims, &ours)),
        ("SQL in kid", sign(Algorithm::EdDSA, Some("' or 1=1 --"), &claims, &ours)),
        ("4 KiB kid", sign(Algorithm::EdDSA, Some(&"k".repeat(4096)), &claims, &ours)),
        ("another deployment's valid token", sign(Algorithm::EdDSA, Some(foreign_key.kid()), &claims, &foreign)),
        ("another key claiming our kid", sign(Algorithm::EdDSA, Some(&kid), &claims, &foreign)),
        ("payload changed to admin", format!("{real_header}.{admin_payload}.{signature}")),
        ("signature dropped", format!("{signed}.")),
        ("truncated", real[..real.len() - 5].to_owned()),
        ("header only", real_header.to_owned()),
        ("two parts", signed.to_owned()),
        ("four parts", format!("{real}.{signature}")),
        ("garbage", "garbage".to_owned()),
        ("dots", "...".to_owned()),
        ("bad base64", "@@@.###.$$$".to_owned()),
        ("JSON array header", format!("{}.{payload}.{signature}", header_of("[1,2,3]"))),
        ("12 KiB of base64", "A".repeat(12 * 1024)),
    ]
}

#[tokio::test]
async fn every_forged_expired_or_broken_token_is_401_on_every_book_route() {
    // Arrange
    let (app, real) = spawn_app_with_user("victim").await;
    let path = app.new_book_path(&real, "Dune").await;

    for (case, token) in bad_tokens(&app, &real) {
        // Act
        let responses = [
            app.get("/books", &token).await,
            app.get(&path, &token).await,
            app.delete(&path, &token).await,
            app.create_book(&token, &crate::helpers::book("Forged", "X")).await,
            app.with_token(reqwest::Method::PATCH, &path, &token).json(&json!({"name": "Owned"})).send().await.unwrap(),
            app.get("/users", &token).await,
        ];

        // Assert
        for response in responses {
            let (status, body) = json_of(response).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{case}: {body}");
            assert!(["token is invalid", "a valid token is missing"].contains(&message(&body)), "{case}: {body}");
        }
    }
    let (status, book) = json_of(app.get(&path, &real).await).await;
    assert_eq!((status, &book["name"]), (StatusCode::OK, &json!("Dune")), "the book is intact");
}

#[tokio::test]
async fn repeated_failed_logins_get_429_with_retry_after_even_for_the_right_password() {
    // Arrange: 5 free attempts, then a 30 s wait.
    let app = spawn_app_configured(|auth| auth.login_delay_secs = 30, |_| {}).await;
    app.register("bruce", PASSWORD).await;
    for _ in 0..5 {
        assert_eq!(app.login("bruce", "wrong-password").await.status(), StatusCode::UNAUTHORIZED);
    }

    // Act
    let locked = app.login("bruce", PASSWORD).await;

    // Assert
    assert_eq!(locked.status(), StatusCode::TOO_MANY_REQUESTS);
    let wait: u64 = locked.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((29..=30).contains(&wait), "{wait}");
    let (_, body) = json_of(locked).await;
    assert_eq!(message(&body), format!("too many failed logins for this name, retry in {wait} s"));
}

#[tokio::test]
async fn password_guesses_with_a_stolen_token_get_429_over_rest() {
    // Arrange: 5 free checks, then a 30 s wait; the attacker has a token.
    let app = spawn_app_configured(|auth| auth.login_delay_secs = 30, |_| {}).await;
    app.register("selina", PASSWORD).await;
    let stolen = app.token_of("selina").await;
    let change = |current: &str| {
        app.http
            .put(format!("{}/users/me/password", app.base_url))
            .header("x-access-tokens", &stolen)
            .json(&json!({"current_password": current, "new_password": "taken over!"}))
            .send()
    };
    for guess in 0..5 {
        assert_eq!(change(&format!("guess-{guess}")).await.unwrap().status(), StatusCode::UNAUTHORIZED);
    }

    // Act
    let right = change(PASSWORD).await.unwrap();
    let delete = app
        .http
        .delete(format!("{}/users/me", app.base_url))
        .header("x-access-tokens", &stolen)
        .json(&json!({"password": PASSWORD}))
        .send()
        .await
        .unwrap();

    // Assert: both refused with the wait, the account untouched.
    for refused in [right, delete] {
        assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
        let wait: u64 = refused.headers()["retry-after"].to_str().unwrap().parse().unwrap();
        assert!((29..=30).contains(&wait), "{wait}");
        let (_, body) = json_of(refused).await;
        assert!(message(&body).starts_with("too many failed logins for this name"), "{body}");
    }
}

#[tokio::test]
async fn the_per_client_limit_answers_429_with_retry_after_through_the_gateway() {
    // Arrange: 2 calls, then one a minute, per client address.
    let app = spawn_app_configured(
        |auth| {
            auth.client_rate_per_minute = 1;
            auth.client_burst = 2;
        },
        |_| {},
    )
    .await;

    // Act
    let first = app.register("one", PASSWORD).await.status();
    let second = app.register("two", PASSWORD).await.status();
    let third = app.register("three", PASSWORD).await;

    // Assert
    assert_eq!((first, second), (StatusCode::CREATED, StatusCode::CREATED));
    assert_eq!(third.status(), StatusCode::TOO_MANY_REQUESTS);
    let wait: u64 = third.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
    let (_, body) = json_of(third).await;
    assert_eq!(message(&body), "too many requests from this address, retry later");
}

#[tokio::test]
async fn headers_over_the_limit_return_431_json() {
    // Arrange
    let app = spawn_app().await;

    // Act
    let response = app.get("/books", &"A".repeat(20 * 1024)).await;

    // Assert
    let (status, body) = json_of(response).await;
    assert_eq!(status, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    assert!(message(&body).contains("more than the limit of 16384"), "{body}");
}

#[tokio::test]
async fn a_one_mib_json_body_returns_413_json() {
    let app = spawn_app().await;
    let body = json!({"name": "x".repeat(1024 * 1024), "password": PASSWORD});
    let response = app.http.post(app.url("/register")).json(&body).send().await.unwrap();
    let (status, body) = json_of(response).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
}

#[tokio::test]
async fn an_overloaded_gateway_answers_503_with_retry_after_at_once() {
    // Arrange: one request in progress at a time.
    let app = spawn_app_with(|gateway| gateway.max_concurrent_requests = 1).await;
    app.register("many", PASSWORD).await;

    // Act: 16 logins (each one argon2 check) at once.
    let logins = (0..16).map(|_| async {
        let started = std::time::Instant::now();
        let response = app.login("many", PASSWORD).await;
        (response.status(), response.headers().get("retry-after").cloned(), started.elapsed())
    });
    let results = futures::future::join_all(logins).await;

    // Assert
    let shed: Vec<_> = results.iter().filter(|(status, _, _)| *status == StatusCode::SERVICE_UNAVAILABLE).collect();
    let ok = results.iter().filter(|(status, _, _)| *status == StatusCode::OK).count();
    assert!(!shed.is_empty() && ok > 0 && ok + shed.len() == results.len(), "{results:?}");
    assert!(shed.iter().all(|(_, retry_after, _)| retry_after.as_ref().is_some_and(|value| value == "1")));
    let slowest = shed.iter().map(|(_, _, elapsed)| *elapsed).max().unwrap();
    println!("gateway overload: {} of {} shed with 503, slowest refusal {slowest:?}", shed.len(), results.len());
}

#[tokio::test]
async fn with_auth_service_down_logins_are_503_and_tokens_keep_working() {
    // Arrange
    let mut app = spawn_app().await;
    let token = app.new_user("steady").await;
    app.new_book(&token, "Before").await;

    // Act
    app.auth.stop().await;
    let login = app.login("steady", PASSWORD).await;
    let register = app.register("newcomer", PASSWORD).await;

    // Assert
    for response in [login, register] {
        let (status, body) = json_of(response).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    }
    assert_eq!(app.list_books(&token).await.len(), 1, "reads with an existing token");
    app.new_book(&token, "During").await;
    assert_eq!(app.list_books(&token).await.len(), 2, "writes with an existing token");
}
