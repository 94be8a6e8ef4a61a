use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bookstore_proto::UnixMicros;
use bookstore_proto::books::v1::ListBooksRequest;
use bookstore_proto::books::v1::books_service_client::BooksServiceClient;
use bookstore_tokens::{SigningKey, TokenSigner};
use std::time::Duration;
use tonic::Code;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use bookstore_testing::eventually;
use bookstore_testing::tokens::tamper_signature;

use crate::helpers::{auth_settings, channel, default_policy, spawn_app, spawn_app_with_user, start_auth, with_token};

async fn list_with(
    books: &mut BooksServiceClient<tonic::transport::Channel>,
    request: tonic::Request<ListBooksRequest>,
) -> Result<usize, tonic::Status> {
    books.list_books(request).await.map(|response| response.into_inner().books.len())
}

/// Changes one character in the middle of the signature (not the last one,
/// whose low bits may be base64 padding).

#[tokio::test]
async fn calls_without_a_valid_token_are_unauthenticated() {
    let (app, token) = spawn_app_with_user("alice").await;
    let real = app.real_signer();
    let mut expired_claims = real.issue("someone", "someone", false, "some-session").unwrap().claims;
    expired_claims.exp = UnixMicros::now().unsigned_secs() - 3600;
    let mut wrong_issuer = real.issue("someone", "someone", false, "some-session").unwrap().claims;
    wrong_issuer.iss = "evil-issuer".into();
    // Another key that claims the real key's id.
    let forger_key = SigningKey::generate();
    let forged = TokenSigner::new(&forger_key, default_policy(), Duration::from_secs(60)).unwrap();
    let forged = forged.issue("someone", "someone", true, "some-session").unwrap().token;
    let (_, forged_rest) = forged.split_once('.').unwrap();
    let real_header = token.split_once('.').unwrap().0;
    let forged_with_real_kid = format!("{real_header}.{forged_rest}");
    let payload = token.split('.').nth(1).unwrap();
    let alg_none = format!("{}.{payload}.", URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#));

    let cases = [
        ("garbage", "garbage".to_owned()),
        ("tampered", tamper_signature(&token)),
        ("expired", real.sign(&expired_claims).unwrap()),
        ("wrong issuer", real.sign(&wrong_issuer).unwrap()),
        ("signed by another key", forged_with_real_kid),
        ("unknown key", forged),
        ("alg none", alg_none),
    ];
    let mut books = app.books_client.clone();
    for (case, bad) in cases {
        let status = list_with(&mut books, with_token(&bad, ListBooksRequest::default())).await.unwrap_err();
        assert_eq!(status.code(), Code::Unauthenticated, "{case}: {status:?}");
    }
    let missing = list_with(&mut books, tonic::Request::new(ListBooksRequest::default())).await.unwrap_err();
    assert_eq!(missing.code(), Code::Unauthenticated);
    assert!(missing.message().contains("missing"), "{}", missing.message());
    let expired = with_token(&real.sign(&expired_claims).unwrap(), ListBooksRequest::default());
    assert!(list_with(&mut books, expired).await.unwrap_err().message().contains("expired"));
}

#[tokio::test]
async fn the_tutorial_header_x_access_tokens_is_accepted() {
    let (app, token) = spawn_app_with_user("tutorial").await;
    let mut request = tonic::Request::new(ListBooksRequest::default());
    request.metadata_mut().insert("x-access-tokens", token.parse().unwrap());
    assert_eq!(list_with(&mut app.books_client.clone(), request).await.unwrap(), 0);
}

#[tokio::test]
async fn books_keep_verifying_tokens_while_auth_service_is_stopped() {
    let (mut app, token) = spawn_app_with_user("offline").await;
    app.create_book(&token, "Before", "A").await;

    app.auth.stop().await;
    let mut books = app.books_client.clone();
    assert_eq!(list_with(&mut books, with_token(&token, ListBooksRequest::default())).await.unwrap(), 1);
    app.create_book(&token, "During", "A").await;
    assert_eq!(list_with(&mut books, with_token(&token, ListBooksRequest::default())).await.unwrap(), 2);
    // Garbage is still refused, not waved through for lack of keys.
    let status = list_with(&mut books, with_token("garbage", ListBooksRequest::default())).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
}

#[tokio::test]
async fn a_token_from_a_new_signing_key_is_accepted_after_a_refetch() {
    let (mut app, old_token) = spawn_app_with_user("rotate").await;
    let mut books = app.books_client.clone();
    assert_eq!(list_with(&mut books, with_token(&old_token, ListBooksRequest::default())).await.unwrap(), 0);

    // Restart auth-service on the same address with a brand-new key.
    let addr = app.auth.addr;
    app.auth.stop().await;
    std::fs::remove_file(app.key_file()).unwrap();
    app.auth = start_auth(&auth_settings(&app.dir, addr)).await;
    let new_token = app.user_token("rotate-new").await;
    assert_ne!(old_token.split('.').next(), new_token.split('.').next(), "a new kid");

    assert_eq!(list_with(&mut books, with_token(&new_token, ListBooksRequest::default())).await.unwrap(), 0);
}

#[tokio::test]
async fn books_service_is_unavailable_not_unauthenticated_before_it_has_keys() {
    let (_app, token) = spawn_app_with_user("early").await;
    let dir = tempfile::tempdir().unwrap();
    // A books-service whose auth-service address answers nothing.
    let dead = bookstore_testing::net::free_addr();
    let orphan = crate::helpers::start_books(&dir, dead).await;
    let mut books = BooksServiceClient::new(channel(orphan.addr));
    let status = list_with(&mut books, with_token(&token, ListBooksRequest::default())).await.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
}

#[tokio::test]
async fn health_reports_serving_once_the_signing_keys_are_loaded() {
    let app = spawn_app().await;
    let health = HealthClient::new(channel(app.books.addr));
    for service in ["", "bookstore.books.v1.BooksService"] {
        eventually(Duration::from_secs(10), || {
            let mut health = health.clone();
            async move {
                let response = health.check(HealthCheckRequest { service: service.into() }).await.unwrap();
                if response.into_inner().status() == ServingStatus::Serving {
                    return Ok(());
                }
                Err(format!("{service:?} never became SERVING"))
            }
        })
        .await;
    }
}

#[tokio::test]
async fn health_reports_not_serving_while_no_signing_keys_could_be_fetched() {
    let dir = tempfile::tempdir().unwrap();
    let dead = bookstore_testing::net::free_addr();
    let orphan = crate::helpers::start_books(&dir, dead).await;
    let mut health = HealthClient::new(channel(orphan.addr));
    let response = health.check(HealthCheckRequest { service: "bookstore.books.v1.BooksService".into() }).await;
    assert_eq!(response.unwrap().into_inner().status(), ServingStatus::NotServing);
    let process = health.check(HealthCheckRequest { service: String::new() }).await.unwrap();
    assert_eq!(process.into_inner().status(), ServingStatus::Serving, "alive, only not ready");
}

#[tokio::test]
async fn reflection_lists_the_services_in_v1_and_v1alpha() {
    use tonic_reflection::pb::{v1, v1alpha};
    let app = spawn_app().await;

    let request = v1::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(v1::server_reflection_request::MessageRequest::ListServices(String::new())),
    };
    let mut client = v1::server_reflection_client::ServerReflectionClient::new(channel(app.books.addr));
    let mut stream = client.server_reflection_info(tokio_stream::iter([request])).await.unwrap().into_inner();
    let Some(v1::server_reflection_response::MessageResponse::ListServicesResponse(list)) =
        stream.message().await.unwrap().unwrap().message_response
    else {
        panic!("expected a service list");
    };
    let names: Vec<String> = list.service.into_iter().map(|service| service.name).collect();
    assert!(names.contains(&"bookstore.books.v1.BooksService".to_owned()), "{names:?}");
    assert!(names.contains(&"grpc.health.v1.Health".to_owned()), "{names:?}");

    let request = v1alpha::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(v1alpha::server_reflection_request::MessageRequest::ListServices(String::new())),
    };
    let mut client = v1alpha::server_reflection_client::ServerReflectionClient::new(channel(app.books.addr));
    let mut stream = client.server_reflection_info(tokio_stream::iter([request])).await.unwrap().into_inner();
    let response = stream.message().await.unwrap().unwrap();
    assert!(matches!(
        response.message_response,
        Some(v1alpha::server_reflection_response::MessageResponse::ListServicesResponse(_))
    ));
}

#[tokio::test]
async fn a_100_kib_token_refuses_that_call_and_the_connection_serves_on() {
    // Arrange: one HTTP/2 connection, a good token and a huge one.
    let (app, token) = spawn_app_with_user("huge").await;
    let mut books = app.books_client.clone();
    let huge = "A".repeat(100 * 1024);

    // Act: the huge call and a good one at once on the same connection,
    // then another good one.
    let (mut first, mut second) = (books.clone(), books.clone());
    let (refused, during) = tokio::join!(
        list_with(&mut first, with_token(&huge, ListBooksRequest::default())),
        list_with(&mut second, with_token(&token, ListBooksRequest::default())),
    );
    let after = list_with(&mut books, with_token(&token, ListBooksRequest::default())).await;

    // Assert: only the huge call fails; the connection was not closed.
    let refused = refused.unwrap_err();
    println!("a 100 KiB token: {:?} {:?}", refused.code(), refused.message());
    assert_ne!(refused.code(), Code::Ok);
    assert_eq!(during.unwrap(), 0);
    assert_eq!(after.unwrap(), 0);
}
