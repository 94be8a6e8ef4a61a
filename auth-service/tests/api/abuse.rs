//! Abuse resistance over real sockets: the per-name login throttle, the
//! per-client rate limit, message size and load shedding.

use std::time::{Duration, Instant};

use auth_service::Settings;
use bookstore_proto::auth::v1::auth_service_client::AuthServiceClient;
use bookstore_proto::auth::v1::{
    ChangePasswordRequest, DeleteAccountRequest, LoginRequest, RegisterRequest, ValidateTokenRequest,
};
use tonic::Code;

use crate::helpers::{PASSWORD, TestApp, settings, start_with, with_token};

/// A server with only the limits a test asks for switched on.
async fn spawn_with(configure: impl FnOnce(&mut Settings)) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = settings(&dir);
    settings.client_rate_per_minute = 0;
    configure(&mut settings);
    start_with(dir, &settings).await
}

fn retry_after(status: &tonic::Status) -> u64 {
    status.metadata().get("retry-after").expect("a retry-after").to_str().unwrap().parse().unwrap()
}

async fn parallel_logins(
    app: &TestApp,
    name: &str,
    password: &str,
    count: usize,
) -> Vec<Result<String, tonic::Status>> {
    let attempts = (0..count).map(|_| app.login(name, password));
    futures::future::join_all(attempts).await
}

fn codes(results: &[Result<String, tonic::Status>]) -> (usize, usize, usize) {
    let refused = results.iter().filter(|r| r.as_ref().is_err_and(|s| s.code() == Code::Unauthenticated)).count();
    let waiting = results.iter().filter(|r| r.as_ref().is_err_and(|s| s.code() == Code::ResourceExhausted)).count();
    (results.iter().filter(|r| r.is_ok()).count(), refused, waiting)
}

#[tokio::test]
async fn parallel_wrong_guesses_never_exceed_the_free_attempts() {
    // Arrange
    let app = spawn_with(|settings| {
        settings.login_free_attempts = 3;
        settings.login_delay_secs = 60;
    })
    .await;
    app.register("victim").await.unwrap();

    // Act: 24 guesses at once, for a real name and for an unknown one.
    let known = parallel_logins(&app, "victim", "guess-guess", 24).await;
    let unknown = parallel_logins(&app, "nobody-here", "guess-guess", 24).await;

    // Assert: exactly the free attempts were checked; the rest must wait,
    // and an unknown name is throttled exactly like a real one.
    assert_eq!(codes(&known), (0, 3, 21), "{known:?}");
    assert_eq!(codes(&unknown), (0, 3, 21), "{unknown:?}");
    let waited = known.iter().find_map(|r| r.as_ref().err().filter(|s| s.code() == Code::ResourceExhausted)).unwrap();
    assert!((59..=60).contains(&retry_after(waited)), "{waited:?}");
    assert!(waited.message().starts_with("too many failed logins for this name, retry in"), "{waited:?}");
}

#[tokio::test]
async fn a_correct_password_while_the_name_waits_gets_the_same_refusal() {
    // Arrange
    let app = spawn_with(|settings| {
        settings.login_free_attempts = 2;
        settings.login_delay_secs = 30;
    })
    .await;
    app.register("carol").await.unwrap();
    for _ in 0..2 {
        assert_eq!(app.login("carol", "wrong-password").await.unwrap_err().code(), Code::Unauthenticated);
    }
    assert_eq!(app.login("nobody", "wrong-password").await.unwrap_err().code(), Code::Unauthenticated);
    assert_eq!(app.login("nobody", "wrong-password").await.unwrap_err().code(), Code::Unauthenticated);

    // Act
    let correct = app.login("carol", PASSWORD).await.unwrap_err();
    let unknown = app.login("nobody", PASSWORD).await.unwrap_err();

    // Assert
    // Same code and message (but for the seconds left, which tick).
    let without_digits = |status: &tonic::Status| status.message().replace(|c: char| c.is_ascii_digit(), "");
    assert_eq!(correct.code(), Code::ResourceExhausted);
    assert_eq!((unknown.code(), without_digits(&unknown)), (correct.code(), without_digits(&correct)));
    assert!(retry_after(&unknown).abs_diff(retry_after(&correct)) <= 1);
}

#[tokio::test]
async fn the_wait_expires_and_a_success_clears_the_count() {
    // Arrange: two free attempts, then a 3 s wait (long enough for a
    // loaded machine to make the next call inside it).
    let app = spawn_with(|settings| {
        settings.login_free_attempts = 2;
        settings.login_delay_secs = 3;
    })
    .await;
    app.register("dora").await.unwrap();
    app.login("dora", "wrong-password").await.unwrap_err();
    app.login("dora", "wrong-password").await.unwrap_err();
    let waiting = app.login("dora", PASSWORD).await.unwrap_err();
    assert_eq!(waiting.code(), Code::ResourceExhausted);
    assert!((1..=3).contains(&retry_after(&waiting)), "{waiting:?}");

    // Act
    tokio::time::sleep(Duration::from_millis(3100)).await;
    let after_the_wait = app.login("dora", PASSWORD).await;

    // Assert: no permanent lockout, and the success reset the count.
    after_the_wait.unwrap();
    assert_eq!(app.login("dora", "wrong-password").await.unwrap_err().code(), Code::Unauthenticated);
    app.login("dora", PASSWORD).await.unwrap();
}

#[tokio::test]
async fn the_client_rate_limit_refuses_register_and_login_with_a_retry_after() {
    // Arrange: a burst of 3, then one a second.
    let app = spawn_with(|settings| {
        settings.client_rate_per_minute = 60;
        settings.client_burst = 3;
    })
    .await;

    // Act
    let mut results = Vec::new();
    for index in 0..3 {
        results.push(app.register(&format!("user{index}")).await.map(|_| ()));
    }
    let register = app.register("user3").await.unwrap_err();
    let login = app.login("user0", PASSWORD).await.unwrap_err();

    // Assert
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    for refused in [&register, &login] {
        assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
        assert_eq!(retry_after(refused), 1);
        assert_eq!(refused.message(), "too many requests from this address, retry later");
    }
    // Other RPCs are not limited by it.
    let jwks = app.client.clone().get_jwks(bookstore_proto::auth::v1::GetJwksRequest {}).await;
    assert!(jwks.is_ok());
}

#[tokio::test]
async fn guessing_the_current_password_with_a_stolen_token_is_throttled_like_login() {
    // Arrange: the attacker holds the victim's access token, not the password.
    let app = spawn_with(|settings| {
        settings.login_free_attempts = 3;
        settings.login_delay_secs = 60;
    })
    .await;
    let stolen = app.new_user_token("victim").await;
    let change = |current: &str| {
        let request = ChangePasswordRequest { current_password: current.into(), new_password: "taken over!".into() };
        let mut client = app.client.clone();
        let request = with_token(&stolen, request);
        async move { client.change_password(request).await.map(|_| ()) }
    };
    let delete = |password: &str| {
        let request = with_token(&stolen, DeleteAccountRequest { password: password.into() });
        let mut client = app.client.clone();
        async move { client.delete_account(request).await.map(|_| ()) }
    };

    // Act: 30 wrong guesses at once over both RPCs, then the right password.
    let guesses = (0..30).map(|index| async move {
        if index % 2 == 0 { change(&format!("guess-{index}")).await } else { delete(&format!("guess-{index}")).await }
    });
    let results = futures::future::join_all(guesses).await;
    let right_change = change(PASSWORD).await.unwrap_err();
    let right_delete = delete(PASSWORD).await.unwrap_err();

    // Assert: three guesses were checked, the rest must wait, and so must
    // the right password: the account is not taken over.
    let checked = results.iter().filter(|r| r.as_ref().is_err_and(|s| s.code() == Code::Unauthenticated)).count();
    let waiting = results.iter().filter(|r| r.as_ref().is_err_and(|s| s.code() == Code::ResourceExhausted)).count();
    assert_eq!((checked, waiting), (3, 27), "{results:?}");
    for refused in [&right_change, &right_delete] {
        assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
        assert!((59..=60).contains(&retry_after(refused)), "{refused:?}");
        assert!(refused.message().starts_with("too many failed logins for this name"), "{refused:?}");
    }
    // The same throttle: a login for the name waits too.
    assert_eq!(app.login("victim", PASSWORD).await.unwrap_err().code(), Code::ResourceExhausted);
    let still_valid = app.client.clone().validate_token(ValidateTokenRequest { token: stolen.clone() }).await;
    assert!(still_valid.is_ok(), "{still_valid:?}");
}

#[tokio::test]
async fn a_right_current_password_clears_the_count() {
    // Arrange
    let app = spawn_with(|settings| {
        settings.login_free_attempts = 2;
        settings.login_delay_secs = 60;
    })
    .await;
    let token = app.new_user_token("erin").await;
    let wrong = ChangePasswordRequest { current_password: "nope-nope".into(), new_password: "a new passphrase".into() };
    let status = app.client.clone().change_password(with_token(&token, wrong)).await.unwrap_err();
    assert_eq!((status.code(), status.message()), (Code::Unauthenticated, "current_password: is wrong"));

    // Act
    let right = ChangePasswordRequest { current_password: PASSWORD.into(), new_password: "a new passphrase".into() };
    let changed = app.client.clone().change_password(with_token(&token, right)).await.unwrap().into_inner();

    // Assert: the earlier failure is forgotten: two more wrong checks are
    // checked (not refused with a wait).
    for _ in 0..2 {
        let wrong = DeleteAccountRequest { password: "nope-nope".into() };
        let status = app.client.clone().delete_account(with_token(&changed.access_token, wrong)).await.unwrap_err();
        assert_eq!((status.code(), status.message()), (Code::Unauthenticated, "password: is wrong"));
        let reason = bookstore_proto::errors::reason(&status);
        assert_eq!(reason.as_deref(), Some(bookstore_proto::errors::WRONG_CREDENTIAL), "callers branch on the reason");
    }
}

#[tokio::test]
async fn correct_logins_from_one_address_are_not_limited_but_failed_ones_are() {
    // Arrange: a burst of 30 per address, refilled by 1 a minute (so that
    // however slowly the hashes run, the bucket hardly refills and the
    // counts below hold), ten users registered from this one address.
    let app = spawn_with(|settings| {
        settings.client_rate_per_minute = 1;
        settings.client_burst = 30;
    })
    .await;
    for index in 0..10 {
        app.register(&format!("office{index}")).await.unwrap();
    }

    // Act: 100 correct logins, ten at a time, from the same address.
    let mut results = Vec::new();
    for round in 0..10 {
        let logins = (0..10).map(|index| app.login_as(&format!("office{}", (index + round) % 10), PASSWORD));
        results.extend(futures::future::join_all(logins).await);
    }
    // ... then a stream of wrong passwords for names that do not exist.
    let mut failed = Vec::new();
    for index in 0..40 {
        failed.push(app.login(&format!("stranger{index}"), "wrong password").await.unwrap_err());
    }

    // Assert
    let refused: Vec<_> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    assert!(refused.is_empty(), "{} of 100 correct logins refused: {refused:?}", refused.len());
    let limited = failed.iter().position(|status| status.code() == Code::ResourceExhausted);
    let limited = limited.expect("wrong logins from one address are limited");
    assert!(limited <= 30, "{limited} wrong logins passed before the limit: {failed:?}");
    assert_eq!(failed[limited].message(), "too many requests from this address, retry later");
}

fn from_client(client: &str, name: &str) -> tonic::Request<RegisterRequest> {
    let mut request = tonic::Request::new(RegisterRequest { name: name.into(), password: PASSWORD.into() });
    request.metadata_mut().insert("x-forwarded-for", client.parse().unwrap());
    request
}

#[tokio::test]
async fn x_forwarded_for_is_honoured_only_from_a_trusted_proxy() {
    // Arrange: one call per client address.
    let trusting = spawn_with(|settings| {
        settings.client_rate_per_minute = 1;
        settings.client_burst = 1;
    })
    .await;
    let distrusting = spawn_with(|settings| {
        settings.client_rate_per_minute = 1;
        settings.client_burst = 1;
        settings.trusted_proxies = vec![];
    })
    .await;

    // Act: this test's loopback peer claims to forward for two clients.
    let mut trusted = Vec::new();
    let mut untrusted = Vec::new();
    for (index, client) in ["198.51.100.1", "198.51.100.2"].into_iter().enumerate() {
        trusted.push(trusting.client.clone().register(from_client(client, &format!("t{index}"))).await.map(|_| ()));
        untrusted
            .push(distrusting.client.clone().register(from_client(client, &format!("u{index}"))).await.map(|_| ()));
    }

    // Assert: trusted, two clients got one call each; untrusted, the claim
    // is ignored and the one peer got one call.
    assert!(trusted.iter().all(Result::is_ok), "{trusted:?}");
    assert!(untrusted[0].is_ok());
    assert_eq!(untrusted[1].as_ref().unwrap_err().code(), Code::ResourceExhausted);
}

#[tokio::test]
async fn a_message_over_the_size_limit_is_refused() {
    // Arrange
    let app = spawn_with(|_| {}).await;
    let huge = "x".repeat(1024 * 1024);

    // Act
    let status = app.client.clone().register(RegisterRequest { name: "big".into(), password: huge }).await.unwrap_err();

    // Assert: tonic's own answer to an oversized message.
    assert_eq!(status.code(), Code::OutOfRange, "{status:?}");
    assert!(status.message().contains("message length too large"), "{status:?}");
}

#[tokio::test]
async fn an_overloaded_server_sheds_calls_at_once() {
    // Arrange: one call in progress at a time, one hashing thread.
    let app = spawn_with(|settings| {
        settings.max_concurrent_requests = 1;
        settings.max_concurrent_hashes = 1;
        settings.login_free_attempts = 0;
    })
    .await;
    app.register("busy").await.unwrap();

    // Act: 16 logins at once on separate connections.
    let addr = app.client.clone();
    let calls = (0..16).map(|_| {
        let mut client: AuthServiceClient<_> = addr.clone();
        async move {
            let started = Instant::now();
            let result = client.login(LoginRequest { name: "busy".into(), password: PASSWORD.into() }).await;
            (result.map(|_| ()), started.elapsed())
        }
    });
    let results = futures::future::join_all(calls).await;

    // Assert
    let shed: Vec<_> = results.iter().filter(|(result, _)| result.is_err()).collect();
    assert!(!shed.is_empty() && shed.len() < results.len(), "{results:?}");
    let slowest_shed = shed.iter().map(|(_, elapsed)| *elapsed).max().unwrap();
    for (result, _) in &shed {
        let status = result.as_ref().unwrap_err();
        assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
        assert!(status.message().contains("overloaded"), "{status:?}");
        assert_eq!(retry_after(status), 1);
    }
    println!("overload: {} of {} calls shed, slowest refusal {slowest_shed:?}", shed.len(), results.len());
}

#[tokio::test]
async fn login_throttle_counters_are_shared_by_replicas_on_postgres() {
    let Some(database) = bookstore_testing::TestDatabase::postgres().await else { return };
    // Arrange: two auth-services on one PostgreSQL database, one key.
    let mut replicas = Vec::new();
    let key_dir = tempfile::tempdir().unwrap();
    for _ in 0..2 {
        let dir = tempfile::tempdir().unwrap();
        let mut settings = settings(&dir);
        settings.database_url = database.url.clone();
        settings.signing_key_file = key_dir.path().join("key.pem");
        settings.client_rate_per_minute = 0;
        settings.login_free_attempts = 4;
        settings.login_delay_secs = 60;
        replicas.push(start_with(dir, &settings).await);
    }
    replicas[0].register("shared").await.unwrap();

    // Act: 20 guesses on each replica at once.
    let (first, second) = tokio::join!(
        parallel_logins(&replicas[0], "shared", "guess-guess", 20),
        parallel_logins(&replicas[1], "shared", "guess-guess", 20),
    );

    // Assert: four checked in all, not four per replica.
    let (ok_a, refused_a, waiting_a) = codes(&first);
    let (ok_b, refused_b, waiting_b) = codes(&second);
    assert_eq!((ok_a + ok_b, refused_a + refused_b, waiting_a + waiting_b), (0, 4, 36), "{first:?} {second:?}");
    for replica in replicas {
        replica.stop().await;
    }
    database.cleanup().await;
}
