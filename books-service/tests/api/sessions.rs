//! Revocation: books-service refuses the tokens of ended sessions and
//! deleted users within its revocation refresh delay, verified tokens
//! cached or not, and deletes a deleted user's books.

use std::time::{Duration, Instant};

use bookstore_proto::auth::v1::{ChangePasswordRequest, DeleteAccountRequest, LogoutRequest};
use bookstore_proto::books::v1::ListBooksRequest;
use bookstore_proto::books::v1::books_service_client::BooksServiceClient;
use tonic::Code;

use crate::helpers::{
    PASSWORD, REVOCATION_REFRESH_SECS, TestApp, channel, spawn_app, start_books, until_book_count_is, with_token,
};
use bookstore_testing::eventually;

/// The longest a revocation may take to reach books-service: one refresh
/// interval, plus slack for a slow machine.
const BOUND: Duration = Duration::from_secs(REVOCATION_REFRESH_SECS + 4);

async fn list(app: &TestApp, token: &str) -> Result<usize, tonic::Status> {
    let request = with_token(token, ListBooksRequest::default());
    app.books_client.clone().list_books(request).await.map(|response| response.into_inner().books.len())
}

/// Polls until books-service refuses `token` as Unauthenticated; how long
/// it took. Fails the test after [`BOUND`].
async fn until_refused(app: &TestApp, token: &str) -> (Duration, tonic::Status) {
    let started = Instant::now();
    let status = eventually(BOUND, || async {
        match list(app, token).await {
            Err(status) if status.code() == Code::Unauthenticated => Ok(status),
            outcome => Err(format!("still {outcome:?}")),
        }
    })
    .await;
    (started.elapsed(), status)
}

#[tokio::test]
async fn a_logged_out_token_is_refused_within_the_refresh_delay_even_when_cached() {
    // Arrange: the token has been verified (and cached) by books-service.
    let app = spawn_app().await;
    let session = app.user_login("leaving").await;
    app.create_book(&session.access_token, "Dune", "Herbert").await;
    assert_eq!(list(&app, &session.access_token).await.unwrap(), 1);
    let other = app.user_token("staying").await;

    // Act
    let logout = with_token(&session.access_token, LogoutRequest::default());
    app.auth_client.clone().logout(logout).await.unwrap();

    // Assert
    let (took, status) = until_refused(&app, &session.access_token).await;
    assert!(status.message().contains("session has ended"), "{}", status.message());
    assert!(took <= BOUND, "{took:?}");
    assert_eq!(list(&app, &other).await.unwrap(), 0, "other sessions keep working");
}

#[tokio::test]
async fn a_password_change_ends_the_old_tokens_on_books_service_too() {
    // Arrange
    let app = spawn_app().await;
    let session = app.user_login("changer").await;
    assert_eq!(list(&app, &session.access_token).await.unwrap(), 0);

    // Act
    let request = ChangePasswordRequest { current_password: PASSWORD.into(), new_password: "a new passphrase".into() };
    let new =
        app.auth_client.clone().change_password(with_token(&session.access_token, request)).await.unwrap().into_inner();

    // Assert
    until_refused(&app, &session.access_token).await;
    assert_eq!(list(&app, &new.access_token).await.unwrap(), 0);
}

#[tokio::test]
async fn a_deleted_users_tokens_are_refused_and_their_books_deleted() {
    // Arrange
    let app = spawn_app().await;
    let session = app.user_login("deleted").await;
    for title in ["One", "Two", "Three"] {
        app.create_book(&session.access_token, title, "Author").await;
    }
    let survivor = app.user_token("survivor").await;
    app.create_book(&survivor, "Kept", "Author").await;

    // Act
    let request = DeleteAccountRequest { password: PASSWORD.into() };
    app.auth_client.clone().delete_account(with_token(&session.access_token, request)).await.unwrap();

    // Assert
    let (_, status) = until_refused(&app, &session.access_token).await;
    assert!(status.message().contains("deleted"), "{}", status.message());
    let url = format!("sqlite://{}", app.dir.path().join("books.db").display());
    let store = books_service::store::connect(&url).await.unwrap();
    until_book_count_is(store.as_ref(), 1, BOUND).await;
    store.close().await;
    assert_eq!(list(&app, &survivor).await.unwrap(), 1);
}

#[tokio::test]
async fn a_books_service_started_after_a_logout_refuses_the_token_at_once() {
    // Arrange
    let app = spawn_app().await;
    let session = app.user_login("early-leaver").await;
    app.auth_client.clone().logout(with_token(&session.access_token, LogoutRequest::default())).await.unwrap();

    // Act: a new books replica, which has never seen this token.
    let dir = tempfile::tempdir().unwrap();
    let fresh = start_books(&dir, app.auth.addr).await;
    let mut books = BooksServiceClient::new(channel(fresh.addr));

    // Assert
    let status = books.list_books(with_token(&session.access_token, ListBooksRequest::default())).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
}

#[tokio::test]
async fn books_keep_serving_with_the_last_revocation_list_while_auth_service_is_down() {
    // Arrange
    let mut app = spawn_app().await;
    let session = app.user_login("offline").await;
    assert_eq!(list(&app, &session.access_token).await.unwrap(), 0);

    // Act
    app.auth.stop().await;
    // Longer than a refresh interval, so at least one poll has failed.
    tokio::time::sleep(Duration::from_secs(REVOCATION_REFRESH_SECS) + Duration::from_millis(500)).await;

    // Assert
    assert_eq!(list(&app, &session.access_token).await.unwrap(), 0);
}
