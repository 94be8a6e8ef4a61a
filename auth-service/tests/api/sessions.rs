//! Sessions: refresh-token rotation and reuse detection, logout, password
//! change, account deletion, the revocation feed, rehashing at login.

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHasher as _, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use bookstore_proto::auth::v1::revocation::Subject;
use bookstore_proto::auth::v1::{
    ChangePasswordRequest, DeleteAccountRequest, FindExistingUsersRequest, ListRevocationsRequest, LoginRequest,
    LoginResponse, LogoutRequest, RefreshRequest, RefreshResponse, ValidateTokenRequest,
};
use tonic::Code;

use crate::helpers::{PASSWORD, TestApp, as_service, settings, spawn_app, start_with, with_token};

async fn login(app: &TestApp, name: &str, password: &str) -> LoginResponse {
    let request = LoginRequest { name: name.into(), password: password.into() };
    app.client.clone().login(request).await.unwrap().into_inner()
}

/// Registers `name` with [`PASSWORD`] and logs in.
async fn register_and_login(app: &TestApp, name: &str) -> LoginResponse {
    app.register(name).await.unwrap();
    login(app, name, PASSWORD).await
}

/// An app with one user `name`, logged in once.
async fn spawn_app_with_session(name: &str) -> (TestApp, LoginResponse) {
    let app = spawn_app().await;
    let session = register_and_login(&app, name).await;
    (app, session)
}

async fn refresh(app: &TestApp, refresh_token: &str) -> Result<RefreshResponse, tonic::Status> {
    let request = RefreshRequest { refresh_token: refresh_token.into() };
    app.client.clone().refresh(request).await.map(tonic::Response::into_inner)
}

async fn validate(app: &TestApp, token: &str) -> Result<String, tonic::Status> {
    let request = ValidateTokenRequest { token: token.into() };
    app.client.clone().validate_token(request).await.map(|response| response.into_inner().public_id)
}

/// An app whose spent refresh tokens end their session as soon as they are
/// presented again (no grace window).
async fn spawn_app_without_grace() -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = settings(&dir);
    settings.refresh_reuse_grace_secs = 0;
    start_with(dir, &settings).await
}

#[tokio::test]
async fn login_returns_a_256_bit_refresh_token_that_rotates_on_every_refresh() {
    // Arrange
    let (app, first) = spawn_app_with_session("alice").await;

    // Act
    let second = refresh(&app, &first.refresh_token).await.unwrap();
    let third = refresh(&app, &second.refresh_token).await.unwrap();

    // Assert
    assert_eq!(first.refresh_token.len(), 43, "32 bytes, base64url without padding");
    assert_ne!(first.refresh_token, second.refresh_token);
    assert_ne!(second.refresh_token, third.refresh_token);
    assert_eq!(third.token_type, "Bearer");
    assert!(third.expires_in > 0);
    let public_id = validate(&app, &first.access_token).await.unwrap();
    assert_eq!(validate(&app, &third.access_token).await.unwrap(), public_id);
}

#[tokio::test]
async fn a_spent_refresh_token_within_the_grace_window_is_refused_without_ending_the_session() {
    // Arrange
    let (app, first) = spawn_app_with_session("bob").await;
    let second = refresh(&app, &first.refresh_token).await.unwrap();

    // Act
    let replay = refresh(&app, &first.refresh_token).await.unwrap_err();

    // Assert
    assert_eq!(replay.code(), Code::Unauthenticated);
    assert!(replay.message().contains("already used"), "{}", replay.message());
    refresh(&app, &second.refresh_token).await.unwrap();
    validate(&app, &first.access_token).await.unwrap();
}

#[tokio::test]
async fn a_spent_refresh_token_after_the_grace_window_ends_the_whole_session() {
    // Arrange
    let app = spawn_app_without_grace().await;
    let first = register_and_login(&app, "carol").await;
    let second = refresh(&app, &first.refresh_token).await.unwrap();
    let other_session = login(&app, "carol", PASSWORD).await;

    // Act
    let replay = refresh(&app, &first.refresh_token).await.unwrap_err();

    // Assert
    assert_eq!(replay.code(), Code::Unauthenticated);
    assert!(replay.message().contains("revoked"), "{}", replay.message());
    let descendant = refresh(&app, &second.refresh_token).await.unwrap_err();
    assert_eq!(descendant.code(), Code::Unauthenticated, "the whole family is revoked");
    assert_eq!(validate(&app, &second.access_token).await.unwrap_err().code(), Code::Unauthenticated);
    // Another session of the same user is untouched.
    refresh(&app, &other_session.refresh_token).await.unwrap();
}

#[tokio::test]
async fn unknown_empty_and_oversized_refresh_tokens_are_refused() {
    let app = spawn_app().await;
    for (token, code) in [
        ("", Code::InvalidArgument),
        ("not-a-refresh-token", Code::Unauthenticated),
        (&"x".repeat(10_000), Code::Unauthenticated),
    ] {
        let status = refresh(&app, token).await.unwrap_err();
        assert_eq!(status.code(), code, "{status:?}");
        assert!(status.message().starts_with("refresh_token:"), "{}", status.message());
    }
}

#[tokio::test]
async fn logout_ends_the_session_of_the_access_token_or_of_a_refresh_token() {
    // Arrange
    let (app, by_access) = spawn_app_with_session("dave").await;
    let by_refresh = login(&app, "dave", PASSWORD).await;

    // Act
    app.client.clone().logout(with_token(&by_access.access_token, LogoutRequest::default())).await.unwrap();
    let request = LogoutRequest { refresh_token: by_refresh.refresh_token.clone() };
    app.client.clone().logout(request).await.unwrap();

    // Assert
    for session in [&by_access, &by_refresh] {
        assert_eq!(validate(&app, &session.access_token).await.unwrap_err().code(), Code::Unauthenticated);
        assert_eq!(refresh(&app, &session.refresh_token).await.unwrap_err().code(), Code::Unauthenticated);
    }
    // Logging out again is fine; logging out with nothing is not.
    app.client.clone().logout(with_token(&by_access.access_token, LogoutRequest::default())).await.unwrap();
    let nothing = app.client.clone().logout(LogoutRequest::default()).await.unwrap_err();
    assert_eq!(nothing.code(), Code::Unauthenticated);
    let feed =
        app.client.clone().list_revocations(as_service(ListRevocationsRequest::default())).await.unwrap().into_inner();
    assert_eq!(feed.revocations.len(), 2);
    assert!(feed.revocations.iter().all(|revocation| matches!(revocation.subject, Some(Subject::SessionId(_)))));
}

#[tokio::test]
async fn changing_the_password_ends_every_session_and_the_old_password() {
    // Arrange
    let (app, old) = spawn_app_with_session("erin").await;
    let another = login(&app, "erin", PASSWORD).await;
    let request = ChangePasswordRequest { current_password: PASSWORD.into(), new_password: "a new passphrase".into() };

    // Act
    let new = app.client.clone().change_password(with_token(&old.access_token, request)).await.unwrap().into_inner();

    // Assert
    for session in [&old, &another] {
        assert_eq!(validate(&app, &session.access_token).await.unwrap_err().code(), Code::Unauthenticated);
        assert_eq!(refresh(&app, &session.refresh_token).await.unwrap_err().code(), Code::Unauthenticated);
    }
    validate(&app, &new.access_token).await.unwrap();
    refresh(&app, &new.refresh_token).await.unwrap();
    assert_eq!(app.login("erin", PASSWORD).await.unwrap_err().code(), Code::Unauthenticated);
    app.login("erin", "a new passphrase").await.unwrap();
}

#[tokio::test]
async fn a_password_change_needs_the_current_password_and_a_valid_new_one() {
    let (app, session) = spawn_app_with_session("frank").await;
    let cases = [
        ("wrong current", "a new passphrase", Code::Unauthenticated, "current_password:"),
        (PASSWORD, "short", Code::InvalidArgument, "new_password:"),
    ];
    for (current, new, code, prefix) in cases {
        let request = ChangePasswordRequest { current_password: current.into(), new_password: new.into() };
        let status = app.client.clone().change_password(with_token(&session.access_token, request)).await.unwrap_err();
        assert_eq!(status.code(), code, "{status:?}");
        assert!(status.message().starts_with(prefix), "{}", status.message());
    }
    let request = ChangePasswordRequest { current_password: PASSWORD.into(), new_password: "a new passphrase".into() };
    let status = app.client.clone().change_password(request).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated, "no token");
    app.login("frank", PASSWORD).await.unwrap();
}

#[tokio::test]
async fn deleting_the_account_ends_its_tokens_frees_the_name_and_enters_the_feed() {
    // Arrange
    let app = spawn_app().await;
    let public_id = app.register("grace").await.unwrap().into_inner().user.unwrap().public_id;
    let session = login(&app, "grace", PASSWORD).await;
    let wrong = DeleteAccountRequest { password: "not the password".into() };
    let status = app.client.clone().delete_account(with_token(&session.access_token, wrong)).await.unwrap_err();
    assert_eq!((status.code(), status.message()), (Code::Unauthenticated, "password: is wrong"));

    // Act
    let request = DeleteAccountRequest { password: PASSWORD.into() };
    app.client.clone().delete_account(with_token(&session.access_token, request)).await.unwrap();

    // Assert
    assert_eq!(validate(&app, &session.access_token).await.unwrap_err().code(), Code::Unauthenticated);
    assert_eq!(refresh(&app, &session.refresh_token).await.unwrap_err().code(), Code::Unauthenticated);
    assert_eq!(app.login("grace", PASSWORD).await.unwrap_err().code(), Code::Unauthenticated);
    let feed =
        app.client.clone().list_revocations(as_service(ListRevocationsRequest::default())).await.unwrap().into_inner();
    let deleted: Vec<_> = feed
        .revocations
        .iter()
        .filter_map(|revocation| match &revocation.subject {
            Some(Subject::DeletedUserPublicId(id)) => Some(id.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(deleted, std::slice::from_ref(&public_id));
    let again = app.register("grace").await.unwrap().into_inner().user.unwrap();
    assert_ne!(again.public_id, public_id);
}

#[tokio::test]
async fn the_revocation_feed_pages_and_filters_by_time() {
    // Arrange
    let app = spawn_app().await;
    app.register("heidi").await.unwrap();
    for _ in 0..3 {
        let session = login(&app, "heidi", PASSWORD).await;
        app.client.clone().logout(with_token(&session.access_token, LogoutRequest::default())).await.unwrap();
    }
    let mut client = app.client.clone();

    // Act
    let first =
        client.list_revocations(as_service(ListRevocationsRequest { page_size: 2, ..Default::default() })).await;
    let first = first.unwrap().into_inner();
    let rest = ListRevocationsRequest { page_size: 2, page_token: first.next_page_token.clone(), ..Default::default() };
    let rest = client.list_revocations(as_service(rest)).await.unwrap().into_inner();
    let newest = rest.revocations[0].revoked_at;
    let later = ListRevocationsRequest { since: newest, ..Default::default() };
    let later = client.list_revocations(as_service(later)).await.unwrap().into_inner();

    // Assert
    assert_eq!((first.revocations.len(), rest.revocations.len()), (2, 1));
    assert!(rest.next_page_token.is_empty());
    assert_eq!(later.revocations, rest.revocations);
    let relevant_for = rest.revocations[0].relevant_until.unwrap().seconds - newest.unwrap().seconds;
    assert!((2700..=2731).contains(&relevant_for), "the token lifetime plus leeway: {relevant_for}");
    let bad = ListRevocationsRequest { page_token: "garbage".into(), ..Default::default() };
    assert_eq!(client.list_revocations(as_service(bad)).await.unwrap_err().code(), Code::InvalidArgument);
}

#[tokio::test]
async fn the_revocation_feed_answers_only_our_services() {
    // Arrange: a deleted account, whose public id the feed would tell.
    let (app, session) = spawn_app_with_session("ivan").await;
    let request = DeleteAccountRequest { password: PASSWORD.into() };
    app.client.clone().delete_account(with_token(&session.access_token, request)).await.unwrap();
    let user = register_and_login(&app, "judy").await;
    let mut client = app.client.clone();

    // Act: a stranger, a user with her access token, and a wrong service token.
    let stranger = client.list_revocations(ListRevocationsRequest::default()).await.unwrap_err();
    let with_user_token = client.list_revocations(with_token(&user.access_token, ListRevocationsRequest::default()));
    let with_user_token = with_user_token.await.unwrap_err();
    let mut wrong = tonic::Request::new(ListRevocationsRequest::default());
    wrong.metadata_mut().insert("x-service-token", "a-guess-that-is-long-enough-to-be-checked".parse().unwrap());
    let wrong = client.list_revocations(wrong).await.unwrap_err();
    let service = client.list_revocations(as_service(ListRevocationsRequest::default())).await;

    // Assert
    for refused in [&stranger, &with_user_token] {
        assert_eq!(refused.code(), Code::Unauthenticated, "{refused:?}");
        assert_eq!(refused.message(), "x-service-token: is missing: this RPC is only for Bookstore's own services");
    }
    assert_eq!(
        (wrong.code(), wrong.message()),
        (Code::Unauthenticated, "x-service-token: is not this deployment's service token")
    );
    assert_eq!(service.unwrap().into_inner().revocations.len(), 1);
}

#[tokio::test]
async fn find_existing_users_answers_only_our_services_with_the_users_that_exist() {
    // Arrange: one user kept, one deleted, one id nobody ever had.
    let app = spawn_app().await;
    let kept = app.register("kept").await.unwrap().into_inner().user.unwrap().public_id;
    let deleted = app.register("deleted").await.unwrap().into_inner().user.unwrap().public_id;
    let session = login(&app, "deleted", PASSWORD).await;
    let request = DeleteAccountRequest { password: PASSWORD.into() };
    app.client.clone().delete_account(with_token(&session.access_token, request)).await.unwrap();
    let never = "00000000-0000-4000-8000-000000000000".to_owned();
    let asked = FindExistingUsersRequest { public_ids: vec![deleted, kept.clone(), never, kept.clone()] };
    let user = login(&app, "kept", PASSWORD).await;
    let mut client = app.client.clone();

    // Act
    let stranger = client.find_existing_users(asked.clone()).await.unwrap_err();
    let with_user_token = client.find_existing_users(with_token(&user.access_token, asked.clone())).await.unwrap_err();
    let mut wrong = tonic::Request::new(asked.clone());
    wrong.metadata_mut().insert("x-service-token", "a-guess-that-is-long-enough-to-be-checked".parse().unwrap());
    let wrong = client.find_existing_users(wrong).await.unwrap_err();
    let service = client.find_existing_users(as_service(asked)).await.unwrap().into_inner();
    let too_many = FindExistingUsersRequest { public_ids: vec![kept.clone(); 1001] };
    let too_many = client.find_existing_users(as_service(too_many)).await.unwrap_err();
    let none = client.find_existing_users(as_service(FindExistingUsersRequest::default())).await.unwrap();

    // Assert
    for refused in [&stranger, &with_user_token, &wrong] {
        assert_eq!(refused.code(), Code::Unauthenticated, "{refused:?}");
    }
    assert_eq!(service.public_ids, [kept]);
    assert_eq!(too_many.code(), Code::InvalidArgument, "{too_many:?}");
    assert!(too_many.message().starts_with("public_ids:"), "{}", too_many.message());
    assert!(none.into_inner().public_ids.is_empty());
}

#[tokio::test]
async fn a_hash_made_with_weaker_parameters_is_replaced_at_the_next_login() {
    // Arrange: a user whose hash predates today's parameters.
    let app = spawn_app().await;
    app.register("ivan").await.unwrap();
    let url = settings(&app.dir).database_url;
    let store = auth_service::store::connect(&url).await.unwrap();
    let user = store.find_user_by_name_key("ivan").await.unwrap().unwrap();
    let weak = Argon2::new(Algorithm::Argon2id, Version::V0x13, Params::new(4096, 1, 1, None).unwrap());
    let weak_hash = weak.hash_password(PASSWORD.as_bytes(), &SaltString::generate(&mut OsRng)).unwrap().to_string();
    assert!(store.update_password_hash(user.id, &user.password_hash, &weak_hash).await.unwrap());

    // Act
    login(&app, "ivan", PASSWORD).await;

    // Assert
    let rehashed = store.find_user_by_name_key("ivan").await.unwrap().unwrap().password_hash;
    assert_ne!(rehashed, weak_hash);
    assert!(rehashed.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{rehashed}");
    login(&app, "ivan", PASSWORD).await;
    let unchanged = store.find_user_by_name_key("ivan").await.unwrap().unwrap().password_hash;
    assert_eq!(unchanged, rehashed, "a current hash is left alone");
    store.close().await;
}
