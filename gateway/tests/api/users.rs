//! `GET /users`: admins only, never a password.

use reqwest::StatusCode;

use crate::helpers::{TestApp, json_of, message, spawn_app, spawn_app_with_user};

#[tokio::test]
async fn users_without_a_token_return_401() {
    // Arrange
    let app = spawn_app().await;

    // Act
    let (status, body) = json_of(app.http.get(app.url("/users")).send().await.unwrap()).await;

    // Assert
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(message(&body), "a valid token is missing");
}

#[tokio::test]
async fn users_for_a_non_admin_return_403() {
    // Arrange
    let (app, token) = spawn_app_with_user("alice").await;

    // Act
    let (status, body) = json_of(app.get("/users", &token).await).await;

    // Assert
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(!message(&body).is_empty());
}

#[tokio::test]
async fn users_for_an_admin_list_everyone_without_passwords() {
    // Arrange
    let (app, admin) = spawn_app_with_alice_and_admin_root().await;

    // Act
    let (status, body) = json_of(app.get("/users", &admin).await).await;

    // Assert
    assert_eq!(status, StatusCode::OK, "{body}");
    let users = body["users"].as_array().unwrap();
    let names: Vec<(&str, bool)> =
        users.iter().map(|user| (user["name"].as_str().unwrap(), user["admin"].as_bool().unwrap())).collect();
    assert_eq!(names, [("alice", false), ("root", true)]);
    for user in users {
        let mut keys: Vec<&str> = user.as_object().unwrap().keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(keys, ["admin", "name", "public_id"], "never a password or hash");
    }
    assert!(!body.to_string().contains("argon2"));
    assert!(body.get("next_page_token").is_none());
}

#[tokio::test]
async fn users_are_listed_a_page_at_a_time() {
    // Arrange
    let (app, admin) = spawn_app_with_alice_and_admin_root().await;

    // Act
    let (_, first) = json_of(app.get("/users?limit=1", &admin).await).await;
    let next = first["next_page_token"].as_str().unwrap();
    let (_, second) = json_of(app.get(&format!("/users?limit=1&page_token={next}"), &admin).await).await;

    // Assert
    assert_eq!(first["users"][0]["name"], "alice");
    assert_eq!(second["users"][0]["name"], "root");
    assert!(second.get("next_page_token").is_none());
}

/// The user `alice`, then the admin `root`; `root`'s token.
async fn spawn_app_with_alice_and_admin_root() -> (TestApp, String) {
    let app = spawn_app().await;
    app.new_user("alice").await;
    let admin = app.new_admin("root").await;
    (app, admin)
}
