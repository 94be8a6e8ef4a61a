//! `POST /refresh`, `POST /logout`, `PUT /users/me/password`,
//! `DELETE /users/me`, and the refresh token `/login` returns.

use std::time::Duration;

use bookstore_testing::eventually;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{PASSWORD, REVOCATION_REFRESH_SECS, TestApp, json_of, message, spawn_app, spawn_app_with_user};

/// The longest a revocation may take to reach books-service, with slack.
const BOUND: Duration = Duration::from_secs(REVOCATION_REFRESH_SECS + 4);

/// Registers `name` and logs in: the whole `/login` body.
async fn session_of(app: &TestApp, name: &str) -> Value {
    assert_eq!(app.register(name, PASSWORD).await.status(), StatusCode::CREATED);
    let (status, body) = json_of(app.login(name, PASSWORD).await).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

fn field<'a>(body: &'a Value, name: &str) -> &'a str {
    body[name].as_str().unwrap_or_else(|| panic!("no {name} in {body}"))
}

async fn refresh(app: &TestApp, refresh_token: &str) -> (StatusCode, Value) {
    let body = json!({"refresh_token": refresh_token});
    json_of(app.http.post(app.url("/refresh")).json(&body).send().await.unwrap()).await
}

/// Polls `GET /books` until it is 401; fails the test after [`BOUND`].
async fn until_books_refuse(app: &TestApp, token: &str) {
    eventually(BOUND, || async {
        if app.get("/books", token).await.status() == StatusCode::UNAUTHORIZED {
            Ok(())
        } else {
            Err("token still accepted")
        }
    })
    .await;
}

#[tokio::test]
async fn login_returns_a_refresh_token_and_refresh_rotates_it() {
    // Arrange
    let app = spawn_app().await;
    let login = session_of(&app, "alice").await;

    // Act
    let (status, refreshed) = refresh(&app, field(&login, "refresh_token")).await;

    // Assert
    assert_eq!(status, StatusCode::OK, "{refreshed}");
    assert_eq!(field(&refreshed, "token_type"), "Bearer");
    assert_ne!(field(&refreshed, "refresh_token"), field(&login, "refresh_token"));
    assert!(app.list_books(field(&refreshed, "token")).await.is_empty());
    let (status, body) = refresh(&app, field(&login, "refresh_token")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "a spent refresh token: {body}");
    assert!(message(&body).starts_with("refresh_token:"), "{body}");
}

#[tokio::test]
async fn refresh_answers_400_415_or_401_for_bad_requests() {
    let app = spawn_app().await;
    let cases = [
        (Some(json!({})), StatusCode::BAD_REQUEST, "missing refresh_token"),
        (Some(json!({"refresh_token": 5})), StatusCode::BAD_REQUEST, "numeric refresh_token"),
        (Some(json!({"refresh_token": ""})), StatusCode::BAD_REQUEST, "empty refresh_token"),
        (Some(json!({"refresh_token": "made-up"})), StatusCode::UNAUTHORIZED, "unknown refresh_token"),
        (None, StatusCode::UNSUPPORTED_MEDIA_TYPE, "no body"),
    ];
    for (body, expected, case) in cases {
        let mut request = app.http.post(app.url("/refresh"));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let (status, body) = json_of(request.send().await.unwrap()).await;
        assert_eq!(status, expected, "{case}: {body}");
        assert!(!message(&body).is_empty(), "{case}");
    }
}

#[tokio::test]
async fn logout_ends_the_session_on_books_service_within_the_refresh_delay() {
    // Arrange
    let app = spawn_app().await;
    let login = session_of(&app, "bob").await;
    let token = field(&login, "token");
    assert!(app.list_books(token).await.is_empty());

    // Act
    let response = app.with_token(Method::POST, "/logout", token).send().await.unwrap();

    // Assert
    let (status, body) = json_of(response).await;
    assert_eq!((status, body), (StatusCode::OK, json!({"message": "logged out"})));
    until_books_refuse(&app, token).await;
    let (status, _) = refresh(&app, field(&login, "refresh_token")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn logout_with_only_a_refresh_token_ends_its_session() {
    // Arrange
    let app = spawn_app().await;
    let login = session_of(&app, "carol").await;
    let body = json!({"refresh_token": field(&login, "refresh_token")});

    // Act
    let response = app.http.post(app.url("/logout")).json(&body).send().await.unwrap();

    // Assert
    assert_eq!(response.status(), StatusCode::OK);
    until_books_refuse(&app, field(&login, "token")).await;
}

#[tokio::test]
async fn logout_without_any_token_or_with_a_bad_body_is_refused() {
    let app = spawn_app().await;
    let login = session_of(&app, "dave").await;

    let (status, body) = json_of(app.http.post(app.url("/logout")).send().await.unwrap()).await;
    assert_eq!((status, message(&body)), (StatusCode::UNAUTHORIZED, "a valid token is missing"));
    let garbage = app.http.post(app.url("/logout")).header("x-access-tokens", "garbage").send().await.unwrap();
    assert_eq!(garbage.status(), StatusCode::UNAUTHORIZED);
    let malformed = app
        .with_token(Method::POST, "/logout", field(&login, "token"))
        .header("content-type", "application/json")
        .body("{")
        .send()
        .await
        .unwrap();
    let (status, body) = json_of(malformed).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let unknown = json!({"refresh_token": "made-up"});
    let (status, body) = json_of(app.http.post(app.url("/logout")).json(&unknown).send().await.unwrap()).await;
    assert_eq!((status, message(&body)), (StatusCode::UNAUTHORIZED, "refresh_token: is not valid"));
    assert!(app.list_books(field(&login, "token")).await.is_empty(), "the session is untouched");
}

#[tokio::test]
async fn changing_the_password_revokes_old_sessions_and_the_old_password() {
    // Arrange
    let app = spawn_app().await;
    let login = session_of(&app, "erin").await;
    let old_token = field(&login, "token");
    let body = json!({"current_password": PASSWORD, "new_password": "a new passphrase"});

    // Act
    let response = app.with_token(Method::PUT, "/users/me/password", old_token).json(&body).send().await.unwrap();

    // Assert
    let (status, new) = json_of(response).await;
    assert_eq!(status, StatusCode::OK, "{new}");
    assert!(app.list_books(field(&new, "token")).await.is_empty());
    until_books_refuse(&app, old_token).await;
    assert_eq!(app.login("erin", PASSWORD).await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(app.login("erin", "a new passphrase").await.status(), StatusCode::OK);
    let (status, _) = refresh(&app, field(&login, "refresh_token")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn change_password_answers_400_401_or_415_for_bad_requests() {
    let (app, token) = spawn_app_with_user("frank").await;
    let cases = [
        (json!({"current_password": "wrong password", "new_password": "a new passphrase"}), StatusCode::UNAUTHORIZED),
        (json!({"current_password": PASSWORD, "new_password": "short"}), StatusCode::BAD_REQUEST),
        (json!({"current_password": PASSWORD}), StatusCode::BAD_REQUEST),
        (json!({"new_password": "a new passphrase"}), StatusCode::BAD_REQUEST),
        (json!(["a", "b"]), StatusCode::BAD_REQUEST),
    ];
    for (body, expected) in cases {
        let response = app.with_token(Method::PUT, "/users/me/password", &token).json(&body).send().await.unwrap();
        let (status, answer) = json_of(response).await;
        assert_eq!(status, expected, "{body}: {answer}");
        assert!(!message(&answer).is_empty());
    }
    let wrong = json!({"current_password": "wrong password", "new_password": "a new passphrase"});
    let response = app.with_token(Method::PUT, "/users/me/password", &token).json(&wrong).send().await.unwrap();
    assert_eq!(message(&json_of(response).await.1), "current_password: is wrong");
    let body = json!({"current_password": PASSWORD, "new_password": "a new passphrase"});
    let no_token = app.http.put(app.url("/users/me/password")).json(&body).send().await.unwrap();
    let (status, answer) = json_of(no_token).await;
    assert_eq!((status, message(&answer)), (StatusCode::UNAUTHORIZED, "a valid token is missing"));
    let no_body = app.with_token(Method::PUT, "/users/me/password", &token).send().await.unwrap();
    assert_eq!(no_body.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(app.login("frank", PASSWORD).await.status(), StatusCode::OK, "nothing changed");
}

#[tokio::test]
async fn deleting_the_account_ends_its_token_and_frees_the_name() {
    // Arrange
    let (app, token) = spawn_app_with_user("grace").await;
    app.new_book(&token, "Dune").await;

    // Act
    let body = json!({"password": PASSWORD});
    let response = app.with_token(Method::DELETE, "/users/me", &token).json(&body).send().await.unwrap();

    // Assert
    let (status, answer) = json_of(response).await;
    assert_eq!((status, answer), (StatusCode::OK, json!({"message": "account deleted"})));
    until_books_refuse(&app, &token).await;
    assert_eq!(app.login("grace", PASSWORD).await.status(), StatusCode::UNAUTHORIZED);
    let again = app.new_user("grace").await;
    assert!(app.list_books(&again).await.is_empty(), "the new grace has none of the old one's books");
}

#[tokio::test]
async fn delete_account_answers_400_401_or_415_for_bad_requests() {
    let (app, token) = spawn_app_with_user("heidi").await;
    let wrong = app.with_token(Method::DELETE, "/users/me", &token).json(&json!({"password": "nope nope"}));
    let (status, body) = json_of(wrong.send().await.unwrap()).await;
    assert_eq!((status, message(&body)), (StatusCode::UNAUTHORIZED, "password: is wrong"));
    let (status, _) =
        json_of(app.with_token(Method::DELETE, "/users/me", &token).json(&json!({})).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = json_of(app.with_token(Method::DELETE, "/users/me", &token).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let anonymous = app.http.delete(app.url("/users/me")).json(&json!({"password": PASSWORD})).send().await;
    assert_eq!(anonymous.unwrap().status(), StatusCode::UNAUTHORIZED);
    assert!(app.list_books(&token).await.is_empty(), "the account is still there");
}
