//! `POST /register` and `POST /login`.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{PASSWORD, json_of, message, spawn_app};

#[tokio::test]
async fn register_returns_201_with_the_tutorials_message() {
    // Arrange
    let app = spawn_app().await;

    // Act
    let (status, body) = json_of(app.register("alice", PASSWORD).await).await;

    // Assert
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(body, json!({"message": "registered successfully"}));
}

#[tokio::test]
async fn register_returns_409_for_a_taken_name_and_the_first_password_keeps_working() {
    // Arrange
    let app = spawn_app().await;
    app.register("alice", PASSWORD).await;

    // Act
    let (status, body) = json_of(app.register("alice", "another password").await).await;

    // Assert
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(!message(&body).is_empty());
    assert_eq!(app.login("alice", PASSWORD).await.status(), StatusCode::OK);
    assert_eq!(app.login("alice", "another password").await.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn register_returns_a_json_400_or_415_for_bad_bodies() {
    // Arrange
    let app = spawn_app().await;
    let long_name = "n".repeat(70);
    let json_bodies = [
        (json!({"name": "bob"}), "missing password"),
        (json!({"password": PASSWORD}), "missing name"),
        (json!({}), "empty object"),
        (json!({"name": 123, "password": PASSWORD}), "numeric name"),
        (json!({"name": "bob", "password": 123}), "numeric password"),
        (json!({"name": "", "password": ""}), "empty fields"),
        (json!({"name": "bob", "password": "short"}), "short password"),
        (json!({"name": long_name, "password": PASSWORD}), "70-character name"),
        (json!({"name": "a:b", "password": PASSWORD}), "name with a colon"),
        (json!([1, 2]), "array"),
        (json!(["bob", PASSWORD]), "array that fits the fields"),
        (json!(null), "null"),
    ];
    let raw_bodies = [
        ("application/json", r#"{"name":"#, StatusCode::BAD_REQUEST, "malformed JSON"),
        ("application/json", "", StatusCode::BAD_REQUEST, "empty body"),
        (
            "text/plain",
            r#"{"name":"bob","password":"correct horse"}"#,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "text/plain",
        ),
    ];

    for (body, case) in json_bodies {
        // Act
        let response = app.http.post(app.url("/register")).json(&body).send().await.unwrap();

        // Assert
        let (status, body) = json_of(response).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{case}: {body}");
        assert!(!message(&body).is_empty(), "{case}");
    }
    for (content_type, body, expected, case) in raw_bodies {
        let response =
            app.http.post(app.url("/register")).header("content-type", content_type).body(body).send().await.unwrap();
        let (status, body) = json_of(response).await;
        assert_eq!(status, expected, "{case}: {body}");
        assert!(!message(&body).is_empty(), "{case}");
    }
    let no_body = app.http.post(app.url("/register")).send().await.unwrap();
    assert_eq!(json_of(no_body).await.0, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    // Nothing above created a user.
    assert_eq!(app.register("bob", PASSWORD).await.status(), StatusCode::CREATED);
}

#[tokio::test]
async fn register_messages_name_the_field_that_is_wrong() {
    // Arrange
    let app = spawn_app().await;

    // Act
    let (_, missing) =
        json_of(app.http.post(app.url("/register")).json(&json!({"name": "bob"})).send().await.unwrap()).await;
    let (_, wrong_type) = json_of(
        app.http.post(app.url("/register")).json(&json!({"name": 1, "password": PASSWORD})).send().await.unwrap(),
    )
    .await;

    // Assert
    assert!(message(&missing).contains("password"), "{missing}");
    assert!(message(&wrong_type).contains("name"), "{wrong_type}");
}

#[tokio::test]
async fn login_returns_a_bearer_token() {
    // Arrange
    let app = spawn_app().await;
    app.register("alice", PASSWORD).await;

    // Act
    let (status, body) = json_of(app.login("alice", PASSWORD).await).await;

    // Assert
    assert_eq!(status, StatusCode::OK);
    let token = body["token"].as_str().unwrap();
    assert_eq!(token.split('.').count(), 3, "a compact JWS: {token}");
    assert_eq!(body["token_type"], "Bearer");
    assert!(body["expires_in"].as_i64().unwrap() > 0);
}

#[tokio::test]
async fn login_decodes_unicode_credentials_as_utf8() {
    // Arrange
    let app = spawn_app().await;
    app.register("ユーザー", "pässwörd-ü").await;

    // Act
    let response = app.login("ユーザー", "pässwörd-ü").await;

    // Assert
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn login_failures_return_401_could_not_verify_with_a_basic_challenge() {
    // Arrange
    let app = spawn_app().await;
    app.register("alice", PASSWORD).await;
    let login = || app.http.post(app.url("/login"));
    let attempts = [
        ("unknown user", login().basic_auth("mallory", Some(PASSWORD))),
        ("wrong password", login().basic_auth("alice", Some("wrong password"))),
        ("empty password", login().basic_auth("alice", Some(""))),
        ("no header", login()),
        ("garbage header", login().header("authorization", "Basic !!!notbase64")),
        ("no colon", login().header("authorization", "Basic bm8tY29sb24=")),
        ("bearer scheme", login().bearer_auth("eyJhbGciOiJFZERTQSJ9.e30.c2ln")),
        ("credentials as JSON", login().json(&json!({"name": "alice", "password": PASSWORD}))),
    ];

    for (case, request) in attempts {
        // Act
        let response = request.send().await.unwrap();

        // Assert
        let challenge = response.headers().get("www-authenticate").map(|value| value.to_str().unwrap().to_owned());
        assert_eq!(challenge.as_deref(), Some(r#"Basic realm="login required""#), "{case}");
        let (status, body) = json_of(response).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{case}");
        assert_eq!(body, json!({"message": "could not verify"}), "{case}");
    }
}
