//! The book routes: the tutorial's journey, tokens, isolation, validation
//! and pagination.

use std::collections::BTreeSet;

use bookstore_testing::tokens::tamper_signature;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{book, json_of, message, spawn_app_with_user};

#[tokio::test]
async fn the_tutorial_journey_works_end_to_end() {
    // Arrange
    let (app, token) = spawn_app_with_user("alice").await;

    // Act + Assert: create
    let (status, created) = json_of(app.create_book(&token, &book("Dune", "Frank Herbert")).await).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(created["message"], "new books created");
    let id = created["id"].as_i64().unwrap();
    let expected =
        json!({"id": id, "name": "Dune", "Author": "Frank Herbert", "Publisher": "Tutorial Press", "book_prize": 250});

    // list
    let (status, list) = json_of(app.get("/books", &token).await).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list, json!({"list_of_books": [expected]}), "no next_page_token on the only page");

    // get
    let (status, got) = json_of(app.get(&format!("/books/{id}"), &token).await).await;
    assert_eq!((status, got), (StatusCode::OK, expected));

    // put
    let replacement = json!({"name": "Dune Messiah", "Author": "F. Herbert", "Publisher": "Ace", "book_prize": 300});
    let response =
        app.with_token(Method::PUT, &format!("/books/{id}"), &token).json(&replacement).send().await.unwrap();
    let (status, put) = json_of(response).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        put,
        json!({"id": id, "name": "Dune Messiah", "Author": "F. Herbert", "Publisher": "Ace", "book_prize": 300})
    );

    // patch
    let response = app
        .with_token(Method::PATCH, &format!("/books/{id}"), &token)
        .json(&json!({"book_prize": 99}))
        .send()
        .await
        .unwrap();
    let (status, patched) = json_of(response).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        patched,
        json!({"id": id, "name": "Dune Messiah", "Author": "F. Herbert", "Publisher": "Ace", "book_prize": 99})
    );

    // delete
    let (status, deleted) = json_of(app.delete(&format!("/books/{id}"), &token).await).await;
    assert_eq!((status, deleted), (StatusCode::OK, json!({"message": "Book deleted"})));

    // list empty
    let (status, list) = json_of(app.get("/books", &token).await).await;
    assert_eq!((status, list), (StatusCode::OK, json!({"list_of_books": []})));
}

#[tokio::test]
async fn create_book_answers_with_the_new_books_location() {
    // Arrange
    let (app, token) = spawn_app_with_user("alice").await;

    // Act
    let response = app.create_book(&token, &book("Dune", "Frank Herbert")).await;

    // Assert
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let (_, body) = json_of(response).await;
    assert_eq!(location, format!("/books/{}", body["id"]));
}

#[tokio::test]
async fn book_routes_without_a_token_return_401_a_valid_token_is_missing() {
    // Arrange
    let (app, token) = spawn_app_with_user("alice").await;
    let path = app.new_book_path(&token, "Dune").await;
    let requests = [
        app.http.post(app.url("/book")).json(&book("Emma", "Jane Austen")),
        app.http.get(app.url("/books")),
        app.http.get(app.url(&path)),
        app.http.put(app.url(&path)).json(&book("Emma", "Jane Austen")),
        app.http.patch(app.url(&path)).json(&json!({"book_prize": 1})),
        app.http.delete(app.url(&path)),
        app.http.get(app.url("/books")).header("x-access-tokens", ""),
        app.http.get(app.url("/books")).header("authorization", "Bearer "),
    ];

    for request in requests {
        // Act
        let (status, body) = json_of(request.send().await.unwrap()).await;

        // Assert
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(message(&body), "a valid token is missing");
    }
    assert_eq!(app.list_books(&token).await.len(), 1, "nothing was changed");
}

/// Changes the character in the middle of the token's signature (never the
/// last one, whose low bits may be base64 padding).

#[tokio::test]
async fn garbage_and_tampered_tokens_return_401_token_is_invalid() {
    // Arrange
    let (app, token) = spawn_app_with_user("alice").await;
    let (header, _) = token.split_once('.').unwrap();
    let bad_tokens =
        ["garbage".to_owned(), tamper_signature(&token), format!("{header}.eyJzdWIiOiJ4In0.c2ln"), "Bearer".to_owned()];

    for bad in bad_tokens {
        // Act
        let (status, body) = json_of(app.get("/books", &bad).await).await;

        // Assert
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{bad}");
        assert_eq!(message(&body), "token is invalid", "{bad}");
    }
}

#[tokio::test]
async fn tokens_work_in_x_access_tokens_and_in_authorization_bearer() {
    // Arrange
    let (app, token) = spawn_app_with_user("alice").await;
    app.new_book(&token, "Dune").await;

    // Act
    let tutorial = app.http.get(app.url("/books")).header("x-access-tokens", &token).send().await.unwrap();
    let bearer = app.http.get(app.url("/books")).bearer_auth(&token).send().await.unwrap();
    let prefixed =
        app.http.get(app.url("/books")).header("x-access-tokens", format!("Bearer {token}")).send().await.unwrap();

    // Assert
    for response in [tutorial, bearer, prefixed] {
        let (status, body) = json_of(response).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["list_of_books"].as_array().unwrap().len(), 1);
    }
}

#[tokio::test]
async fn another_users_book_does_not_exist_for_them_and_survives() {
    // Arrange
    let (app, alice) = spawn_app_with_user("alice").await;
    let mallory = app.new_user("mallory").await;
    let path = app.new_book_path(&alice, "Dune").await;

    // Act
    let answers = [
        app.get(&path, &mallory).await,
        app.delete(&path, &mallory).await,
        app.with_token(Method::PUT, &path, &mallory).json(&book("Mine", "Me")).send().await.unwrap(),
        app.with_token(Method::PATCH, &path, &mallory).json(&json!({"name": "Mine"})).send().await.unwrap(),
    ];

    // Assert
    for response in answers {
        let (status, body) = json_of(response).await;
        assert_eq!((status, body), (StatusCode::NOT_FOUND, json!({"message": "book does not exist"})));
    }
    let (status, survivor) = json_of(app.get(&path, &alice).await).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(survivor["name"], "Dune");
    assert!(app.list_books(&mallory).await.is_empty());
}

#[tokio::test]
async fn missing_and_deleted_books_do_not_exist() {
    // Arrange
    let (app, token) = spawn_app_with_user("alice").await;
    let id = app.new_book(&token, "Dune").await;
    app.delete(&format!("/books/{id}"), &token).await;

    for path in [format!("/books/{id}"), "/books/999999999".to_owned()] {
        // Act
        let (status, body) = json_of(app.delete(&path, &token).await).await;

        // Assert
        assert_eq!((status, body), (StatusCode::NOT_FOUND, json!({"message": "book does not exist"})));
    }
}

#[tokio::test]
async fn book_ids_that_are_not_positive_integers_return_400() {
    // Arrange
    let (app, token) = spawn_app_with_user("alice").await;

    for id in ["abc", "-1", "0", "1.5", "99999999999999999999"] {
        // Act
        let (status, body) = json_of(app.delete(&format!("/books/{id}"), &token).await).await;

        // Assert
        assert_eq!(status, StatusCode::BAD_REQUEST, "{id}");
        assert!(message(&body).contains("book id"), "{id}: {body}");
    }
}

#[tokio::test]
async fn create_book_returns_400_for_bad_fields() {
    // Arrange
    let (app, token) = spawn_app_with_user("alice").await;
    let with = |field: &str, value: Value| {
        let mut body = book("Dune", "Frank Herbert");
        body[field] = value;
        body
    };
    let mut missing_author = book("Dune", "Frank Herbert");
    missing_author.as_object_mut().unwrap().remove("Author");
    let cases = [
        ("prize as a string", with("book_prize", json!("abc"))),
        ("fractional prize", with("book_prize", json!(12.5))),
        ("boolean prize", with("book_prize", json!(true))),
        ("null prize", with("book_prize", Value::Null)),
        ("huge prize", with("book_prize", json!(1e20))),
        ("negative prize", with("book_prize", json!(-5))),
        ("missing Author", missing_author),
        ("51-character name", with("name", json!("x".repeat(51)))),
        ("empty name", with("name", json!(""))),
        ("numeric name", with("name", json!(123))),
        ("empty object", json!({})),
        ("array", json!([])),
    ];

    for (case, body) in cases {
        // Act
        let (status, answer) = json_of(app.create_book(&token, &body).await).await;

        // Assert
        assert_eq!(status, StatusCode::BAD_REQUEST, "{case}: {answer}");
        assert!(!message(&answer).is_empty(), "{case}");
    }
    assert!(app.list_books(&token).await.is_empty(), "no book was stored");
}

#[tokio::test]
async fn create_book_accepts_fifty_characters_and_ignores_unknown_fields() {
    // Arrange
    let (app, token) = spawn_app_with_user("alice").await;
    let mut body = book(&"я".repeat(50), "Фёдор Достоевский");
    body["id"] = json!(999_999);

    // Act
    let (status, created) = json_of(app.create_book(&token, &body).await).await;

    // Assert
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_ne!(created["id"], 999_999);
    assert_eq!(app.list_books(&token).await[0]["name"], "я".repeat(50));
}

#[tokio::test]
async fn update_book_rejects_bad_bodies() {
    // Arrange
    let (app, token) = spawn_app_with_user("alice").await;
    let path = app.new_book_path(&token, "Dune").await;
    let cases = [
        (Method::PATCH, json!({}), "no fields to update"),
        (Method::PATCH, json!({"unknown": 1}), "no fields to update"),
        (Method::PATCH, json!({"book_prize": null}), "book_prize"),
        (Method::PATCH, json!({"name": ""}), "name"),
        (Method::PUT, json!({"name": "Only a name"}), "Author"),
    ];

    for (method, body, expected) in cases {
        // Act
        let response = app.with_token(method.clone(), &path, &token).json(&body).send().await.unwrap();

        // Assert
        let (status, answer) = json_of(response).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{method} {body}: {answer}");
        assert!(message(&answer).contains(expected), "{method} {body}: {answer}");
    }
    assert_eq!(app.list_books(&token).await[0]["name"], "Dune", "unchanged");
}

#[tokio::test]
async fn two_users_may_own_the_same_title_and_one_author_many_books() {
    // Arrange
    let (app, alice) = spawn_app_with_user("alice").await;
    let bob = app.new_user("bob").await;

    // Act
    let statuses = [
        app.create_book(&alice, &book("Dune", "Frank Herbert")).await.status(),
        app.create_book(&bob, &book("Dune", "Frank Herbert")).await.status(),
        app.create_book(&alice, &book("Children of Dune", "Frank Herbert")).await.status(),
    ];

    // Assert
    assert_eq!(statuses, [StatusCode::CREATED; 3]);
    assert_eq!(app.list_books(&alice).await.len(), 2);
    assert_eq!(app.list_books(&bob).await.len(), 1);
}

#[tokio::test]
async fn ids_are_not_reused_after_a_delete() {
    // Arrange
    let (app, token) = spawn_app_with_user("alice").await;
    let first = app.new_book(&token, "One").await;
    let highest = app.new_book(&token, "Two").await;
    app.delete(&format!("/books/{highest}"), &token).await;

    // Act
    let next = app.new_book(&token, "Three").await;

    // Assert
    assert!(next > highest && highest > first, "{first} {highest} {next}");
}

#[tokio::test]
async fn limit_walks_every_page_with_each_book_exactly_once() {
    // Arrange
    let (app, token) = spawn_app_with_user("alice").await;
    let mut created = BTreeSet::new();
    for n in 0..5 {
        created.insert(app.new_book(&token, &format!("Book {n}")).await);
    }
    let mut seen = Vec::new();
    let mut query = "/books?limit=2".to_owned();

    // Act
    let mut pages = 0;
    loop {
        let (status, page) = json_of(app.get(&query, &token).await).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        pages += 1;
        let books = page["list_of_books"].as_array().unwrap();
        assert!(books.len() <= 2);
        seen.extend(books.iter().map(|book| book["id"].as_i64().unwrap()));
        let Some(next) = page["next_page_token"].as_str() else {
            break;
        };
        query = format!("/books?limit=2&page_token={next}");
        assert!(pages < 10, "pagination does not end");
    }

    // Assert
    assert_eq!(pages, 3);
    assert_eq!(seen.len(), created.len(), "{seen:?}");
    assert_eq!(seen.into_iter().collect::<BTreeSet<_>>(), created);
}

#[tokio::test]
async fn list_books_without_limit_returns_a_page_of_the_default_size() {
    // Arrange
    let (app, token) = spawn_app_with_user("alice").await;
    for n in 0..101 {
        app.new_book(&token, &format!("Book {n}")).await;
    }

    // Act
    let (status, page) = json_of(app.get("/books", &token).await).await;

    // Assert
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page["list_of_books"].as_array().unwrap().len(), 100);
    let next = page["next_page_token"].as_str().unwrap();
    let (_, rest) = json_of(app.get(&format!("/books?page_token={next}"), &token).await).await;
    assert_eq!(rest["list_of_books"].as_array().unwrap().len(), 1);
    assert!(rest.get("next_page_token").is_none());
}

#[tokio::test]
async fn bad_limits_and_page_tokens_return_400() {
    // Arrange
    let (app, token) = spawn_app_with_user("alice").await;

    for query in ["limit=0", "limit=1001", "limit=-1", "limit=abc", "limit=", "page_token=not-a-token"] {
        // Act
        let (status, body) = json_of(app.get(&format!("/books?{query}"), &token).await).await;

        // Assert
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {body}");
        assert!(!message(&body).is_empty());
    }
}
