//! Orphan reconciliation: a books replica away for longer than the
//! revocation feed keeps a deletion still deletes the deleted user's books,
//! by asking auth-service which owners exist; and it deletes nothing when
//! auth-service cannot answer.

use std::sync::Arc;
use std::time::Duration;

use auth_service::store::SweepCutoffs;
use auth_service::sweep::DELETED_USER_RETENTION;
use books_service::orphans::{OrphanReconciler, Reconciled};
use books_service::store::BookStore;
use books_service::store::testing::book;
use bookstore_proto::UnixMicros;
use bookstore_proto::auth::v1::auth_service_client::AuthServiceClient;
use bookstore_proto::auth::v1::revocation::Subject;
use bookstore_proto::auth::v1::{DeleteAccountRequest, ListRevocationsRequest};
use bookstore_replicas::Replicas;
use bookstore_runtime::Transport;
use bookstore_tokens::{CLOCK_SKEW_LEEWAY, ServiceToken};

use crate::helpers::{
    PASSWORD, TestApp, auth_settings, spawn_app, spawn_app_with_user, start_books, until_book_count_is, with_token,
};

const BOUND: Duration = Duration::from_secs(10);

async fn books_store(app: &TestApp) -> Arc<dyn BookStore> {
    books_service::store::connect(&format!("sqlite://{}", app.dir.path().join("books.db").display())).await.unwrap()
}

fn reconciler(app: &TestApp, service_token: &str, store: Arc<dyn BookStore>) -> OrphanReconciler {
    let replicas = Replicas::new(
        &format!("http://{}", app.auth.addr),
        None,
        |endpoint| endpoint,
        bookstore_proto::idempotency::is_side_effect_free,
    )
    .unwrap();
    OrphanReconciler::new(
        AuthServiceClient::new(Transport::new(replicas)),
        &ServiceToken::parse(service_token).unwrap(),
        store,
    )
}

#[tokio::test]
async fn a_books_replica_back_after_the_feed_forgot_a_deletion_still_deletes_the_users_books() {
    // Arrange: two users with books; books-service stops; one user deletes
    // the account, and auth-service's sweep, a week and more later, forgets
    // the deletion.
    let mut app = spawn_app().await;
    let leaving = app.user_login("leaving").await;
    for title in ["One", "Two"] {
        app.create_book(&leaving.access_token, title, "Author").await;
    }
    let staying = app.user_token("staying").await;
    app.create_book(&staying, "Kept", "Author").await;
    app.books.stop().await;
    let request = DeleteAccountRequest { password: PASSWORD.into() };
    app.auth_client.clone().delete_account(with_token(&leaving.access_token, request)).await.unwrap();
    let auth_store = auth_service::store::connect(&auth_settings(&app.dir, app.auth.addr).database_url).await.unwrap();
    let longest_token = Duration::from_secs(auth_settings(&app.dir, app.auth.addr).token_ttl_secs) + CLOCK_SKEW_LEEWAY;
    let later =
        UnixMicros::now().get() + i64::try_from((DELETED_USER_RETENTION + longest_token * 2).as_micros()).unwrap();
    let swept = auth_store.sweep(SweepCutoffs::at(later, longest_token, DELETED_USER_RETENTION)).await.unwrap();
    assert_eq!(swept.deleted_users, 1);
    auth_store.close().await;
    let mut feed_request = tonic::Request::new(ListRevocationsRequest::default());
    feed_request.metadata_mut().insert("x-service-token", bookstore_testing::SERVICE_TOKEN.parse().unwrap());
    let feed = app.auth_client.clone().list_revocations(feed_request).await.unwrap().into_inner().revocations;
    assert!(
        !feed.iter().any(|row| matches!(row.subject, Some(Subject::DeletedUserPublicId(_)))),
        "the feed no longer names the deleted user: {feed:?}"
    );

    // Act: books-service comes back.
    let mut books = start_books(&app.dir, app.auth.addr).await;

    // Assert
    let store = books_store(&app).await;
    until_book_count_is(store.as_ref(), 1, BOUND).await;
    assert_eq!(store.list_owners("", 10).await.unwrap().len(), 1, "only the staying user's book is left");
    store.close().await;
    books.stop().await;
}

#[tokio::test]
async fn orphan_reconciliation_deletes_only_what_auth_service_answered_as_absent() {
    // Arrange: a user with a book, and books of an owner auth-service never
    // had; books-service itself is stopped, so only this reconciler runs.
    let (mut app, user) = spawn_app_with_user("owner").await;
    app.create_book(&user, "Kept", "Author").await;
    app.books.stop().await;
    let store = books_store(&app).await;
    for title in ["Lost", "Found"] {
        store.create_book("5e0f1c9a-0000-4000-8000-000000000001", book(title, "Author", 1), 1).await.unwrap();
    }

    // Act, Assert: refused for a wrong service token, nothing deleted.
    let wrong = reconciler(&app, "a-guess-that-is-long-enough-to-be-checked", store.clone()).reconcile().await;
    assert!(wrong.is_err(), "{wrong:?}");
    assert_eq!(store.count_books().await.unwrap(), 3);

    // Act, Assert: auth-service answers.
    let done = reconciler(&app, bookstore_testing::SERVICE_TOKEN, store.clone()).reconcile().await.unwrap();
    assert_eq!(done, Reconciled { owners: 2, orphaned_owners: 1, deleted_books: 2 });
    assert_eq!(store.count_books().await.unwrap(), 1);

    // Act, Assert: auth-service is down; another unknown owner's book stays.
    store.create_book("5e0f1c9a-0000-4000-8000-000000000002", book("Orphan", "Author", 1), 1).await.unwrap();
    app.auth.stop().await;
    let down = reconciler(&app, bookstore_testing::SERVICE_TOKEN, store.clone()).reconcile().await;
    assert!(down.is_err(), "{down:?}");
    assert_eq!(store.count_books().await.unwrap(), 2);
    store.close().await;
}
