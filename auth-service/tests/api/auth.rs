use std::collections::HashSet;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bookstore_proto::auth::v1::{GetJwksRequest, ListUsersRequest, RegisterRequest, ValidateTokenRequest};
use bookstore_tokens::{PublicJwk, TokenPolicy, TokenVerifier};
use tonic::Code;
use tonic_types::StatusExt as _;

use crate::helpers::{PASSWORD, settings, spawn_app, start, with_token};

fn decode_part(token: &str, index: usize) -> serde_json::Value {
    let part = token.split('.').nth(index).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

#[tokio::test]
async fn register_returns_the_user_without_any_password() {
    let app = spawn_app().await;
    let user = app.register("  alice  ").await.unwrap().into_inner().user.unwrap();
    assert_eq!(user.name, "alice", "names are trimmed");
    assert!(!user.admin, "registration never makes admins");
    assert_eq!(uuid::Uuid::parse_str(&user.public_id).unwrap().get_version_num(), 4);
    let debug = format!("{user:?}");
    assert!(!debug.contains("argon2") && !debug.contains(PASSWORD));
}

#[tokio::test]
async fn duplicate_names_are_already_exists_ignoring_case() {
    let app = spawn_app().await;
    app.register("Alice").await.unwrap();
    let status = app.register("aLICE").await.unwrap_err();
    assert_eq!(status.code(), Code::AlreadyExists);
    assert_eq!(status.message(), "a user with this name already exists");
    // The first password still works.
    app.login("alice", PASSWORD).await.unwrap();
}

#[tokio::test]
async fn parallel_registrations_of_one_name_create_exactly_one_user() {
    let app = spawn_app().await;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..10 {
        let mut client = app.client.clone();
        tasks.spawn(async move {
            client.register(RegisterRequest { name: "racer".into(), password: PASSWORD.into() }).await.map(|_| ())
        });
    }
    let mut codes = Vec::new();
    while let Some(outcome) = tasks.join_next().await {
        codes.push(outcome.unwrap().map_or_else(|status| status.code(), |()| Code::Ok));
    }
    assert_eq!(codes.iter().filter(|code| **code == Code::Ok).count(), 1, "{codes:?}");
    assert_eq!(codes.iter().filter(|code| **code == Code::AlreadyExists).count(), 9, "{codes:?}");
}

#[tokio::test]
async fn bad_registrations_are_invalid_argument_naming_the_field() {
    let app = spawn_app().await;
    let cases = [
        ("", PASSWORD.to_owned(), "name"),
        ("   ", PASSWORD.to_owned(), "name"),
        (&*"n".repeat(65), PASSWORD.to_owned(), "name"),
        ("a:b", PASSWORD.to_owned(), "name"),
        ("bob", "short".to_owned(), "password"),
        ("bob", "p".repeat(1025), "password"),
    ];
    for (name, password, field) in cases {
        let request = RegisterRequest { name: name.into(), password };
        let status = app.client.clone().register(request).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{name:?}");
        assert!(status.message().starts_with(field), "{field}: {}", status.message());
        let violations = status.get_details_bad_request().expect("a BadRequest detail").field_violations;
        assert_eq!(violations[0].field, field, "the detail names the field");
    }
}

#[tokio::test]
async fn login_issues_an_eddsa_token_with_the_expected_claims() {
    let app = spawn_app().await;
    let user = app.register("carol").await.unwrap().into_inner().user.unwrap();
    let response = app
        .client
        .clone()
        .login(bookstore_proto::auth::v1::LoginRequest { name: "CAROL".into(), password: PASSWORD.into() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(response.token_type, "Bearer");
    assert_eq!(response.expires_in, 45 * 60);

    let header = decode_part(&response.access_token, 0);
    assert_eq!(header["alg"], "EdDSA");
    let claims = decode_part(&response.access_token, 1);
    assert_eq!(claims["sub"], user.public_id.as_str());
    assert_eq!(claims["iss"], "bookstore-auth");
    assert_eq!(claims["aud"], "bookstore");
    assert_eq!(claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap(), 2700);
    assert!(claims["jti"].is_string());

    // The published JWKS verifies it, selected by kid.
    let jwks = app.client.clone().get_jwks(GetJwksRequest {}).await.unwrap().into_inner().keys;
    assert_eq!(jwks.len(), 1);
    assert_eq!(header["kid"], jwks[0].kid.as_str());
    assert_eq!((jwks[0].kty.as_str(), jwks[0].crv.as_str(), jwks[0].r#use.as_str()), ("OKP", "Ed25519", "sig"));
    let keys: Vec<PublicJwk> = jwks
        .into_iter()
        .map(|jwk| PublicJwk { kty: jwk.kty, crv: jwk.crv, x: jwk.x, kid: jwk.kid, alg: jwk.alg, key_use: jwk.r#use })
        .collect();
    let policy = TokenPolicy { issuer: "bookstore-auth".into(), audience: "bookstore".into() };
    let verified = TokenVerifier::new(&policy, &keys).unwrap().verify(&response.access_token).unwrap();
    assert_eq!(verified.sub, user.public_id);
}

#[tokio::test]
async fn unknown_user_and_wrong_password_fail_alike() {
    let app = spawn_app().await;
    app.register("dave").await.unwrap();
    let wrong_password = app.login("dave", "not the password").await.unwrap_err();
    let unknown_user = app.login("nobody", PASSWORD).await.unwrap_err();
    let malformed_name = app.login("", PASSWORD).await.unwrap_err();
    for status in [&wrong_password, &unknown_user, &malformed_name] {
        assert_eq!(status.code(), Code::Unauthenticated);
        assert_eq!(status.message(), wrong_password.message());
    }
}

#[tokio::test]
async fn validate_token_returns_the_claims_of_good_tokens_only() {
    let app = spawn_app().await;
    let user = app.register("erin").await.unwrap().into_inner().user.unwrap();
    let token = app.login("erin", PASSWORD).await.unwrap();
    let claims = app.client.clone().validate_token(ValidateTokenRequest { token: token.clone() }).await.unwrap();
    let claims = claims.into_inner();
    assert_eq!((claims.public_id, claims.name, claims.admin), (user.public_id, "erin".to_owned(), false));
    assert!(claims.expires_at.is_some());

    for bad in ["", "garbage", &token[..token.len() - 10]] {
        let status = app.client.clone().validate_token(ValidateTokenRequest { token: bad.into() }).await.unwrap_err();
        assert_eq!(status.code(), Code::Unauthenticated, "{bad:?}");
    }
}

#[tokio::test]
async fn list_users_is_for_admins_only() {
    let app = spawn_app().await;
    app.register("frank").await.unwrap();
    let accounts = auth_service::accounts(&settings(&app.dir)).await.unwrap();
    accounts.register("root", PASSWORD.into(), true).await.unwrap();
    let user_token = app.login("frank", PASSWORD).await.unwrap();
    let admin_token = app.login("root", PASSWORD).await.unwrap();
    let mut client = app.client.clone();

    let anonymous = client.list_users(ListUsersRequest::default()).await.unwrap_err();
    assert_eq!(anonymous.code(), Code::Unauthenticated);
    let garbage = client.list_users(with_token("garbage", ListUsersRequest::default())).await.unwrap_err();
    assert_eq!(garbage.code(), Code::Unauthenticated);
    let user = client.list_users(with_token(&user_token, ListUsersRequest::default())).await.unwrap_err();
    assert_eq!(user.code(), Code::PermissionDenied);

    let listed = client.list_users(with_token(&admin_token, ListUsersRequest::default())).await.unwrap().into_inner();
    let names: Vec<(&str, bool)> = listed.users.iter().map(|user| (user.name.as_str(), user.admin)).collect();
    assert_eq!(names, [("frank", false), ("root", true)]);

    // A demoted admin loses the right at once, token or not.
    accounts.set_admin("root", false).await.unwrap();
    let demoted = client.list_users(with_token(&admin_token, ListUsersRequest::default())).await.unwrap_err();
    assert_eq!(demoted.code(), Code::PermissionDenied);
}

#[tokio::test]
async fn list_users_pages_cover_every_user_once() {
    let app = spawn_app().await;
    let accounts = auth_service::accounts(&settings(&app.dir)).await.unwrap();
    accounts.register("admin", PASSWORD.into(), true).await.unwrap();
    for i in 0..4 {
        app.register(&format!("user{i}")).await.unwrap();
    }
    let token = app.login("admin", PASSWORD).await.unwrap();
    let (mut names, mut page_token) = (HashSet::new(), String::new());
    loop {
        let request = ListUsersRequest { page_size: 2, page_token: page_token.clone() };
        let page = app.client.clone().list_users(with_token(&token, request)).await.unwrap().into_inner();
        for user in page.users {
            assert!(names.insert(user.name), "listed twice");
        }
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    assert_eq!(names.len(), 5);
    let bad = ListUsersRequest { page_size: -1, page_token: String::new() };
    assert_eq!(app.client.clone().list_users(with_token(&token, bad)).await.unwrap_err().code(), Code::InvalidArgument);
}

#[tokio::test]
async fn tokens_stay_valid_across_a_restart() {
    let (token, dir) = token_of_a_stopped_app("grace").await;
    let key_file = settings(&dir).signing_key_file;
    let pem = std::fs::read_to_string(&key_file).unwrap();
    assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777, 0o600);
    }

    let app = start(dir).await;
    app.client.clone().validate_token(ValidateTokenRequest { token }).await.unwrap();
    app.login("grace", PASSWORD).await.unwrap();
}

#[tokio::test]
async fn admin_command_creates_and_promotes_admins() {
    let app = spawn_app().await;
    app.register("henry").await.unwrap();
    let settings = settings(&app.dir);
    let promote = auth_service::admin::AdminCommand::PromoteAdmin { name: "HENRY".into(), revoke: false };
    promote.run(&settings).await.unwrap();
    let token = app.login("henry", PASSWORD).await.unwrap();
    assert_eq!(decode_part(&token, 1)["admin"], true);
    let missing = auth_service::admin::AdminCommand::PromoteAdmin { name: "nobody".into(), revoke: false };
    assert!(missing.run(&settings).await.is_err());
}

#[tokio::test]
async fn rotation_publishes_the_next_key_and_keeps_the_previous_one_valid() {
    // Before: key A signs. Publish B in advance.
    let (token_a, dir) = token_of_a_stopped_app("ivy").await;
    let key_a = settings(&dir).signing_key_file;
    let key_b = dir.path().join("keys").join("next.pem");
    std::fs::write(&key_b, bookstore_tokens::SigningKey::generate().to_pkcs8_pem().unwrap()).unwrap();

    let mut publish_b = settings(&dir);
    publish_b.verification_key_files = vec![key_b.clone()];
    let app = crate::helpers::start_with(dir, &publish_b).await;
    let kids: Vec<String> = app
        .client
        .clone()
        .get_jwks(GetJwksRequest {})
        .await
        .unwrap()
        .into_inner()
        .keys
        .into_iter()
        .map(|k| k.kid)
        .collect();
    assert_eq!(kids.len(), 2, "A signs, B is published");
    let dir = app.stop().await;

    // Then B signs and A is only published, so A's tokens stay valid.
    let mut sign_b = settings(&dir);
    sign_b.signing_key_file = key_b;
    sign_b.verification_key_files = vec![key_a];
    let app = crate::helpers::start_with(dir, &sign_b).await;
    let token_b = app.login("ivy", PASSWORD).await.unwrap();
    assert_ne!(decode_part(&token_b, 0)["kid"], decode_part(&token_a, 0)["kid"]);
    for token in [token_a, token_b] {
        app.client.clone().validate_token(ValidateTokenRequest { token }).await.unwrap();
    }
}

#[tokio::test]
async fn look_alike_names_are_the_same_account_or_refused() {
    // Arrange
    let app = spawn_app().await;
    app.register("alice").await.unwrap();
    app.register("zoé").await.unwrap();

    // Act
    let attempts = [
        ("ａｌｉｃｅ", "fullwidth letters"),
        ("ALICE", "capitals"),
        ("zoe\u{301}", "a decomposed é"),
        ("ali\u{200B}ce", "a zero-width space"),
        ("\u{430}lice", "a Cyrillic а"),
        ("\u{200D}alice", "a zero-width joiner"),
    ];
    let mut answers = Vec::new();
    for (name, what) in attempts {
        let status = app.register(name).await.unwrap_err();
        answers.push((what, status.code(), status.message().to_owned()));
    }

    // Assert: the same account, or no account at all.
    let taken = "a user with this name already exists".to_owned();
    assert_eq!(
        answers,
        [
            ("fullwidth letters", Code::AlreadyExists, taken.clone()),
            ("capitals", Code::AlreadyExists, taken.clone()),
            ("a decomposed é", Code::AlreadyExists, taken),
            ("a zero-width space", Code::InvalidArgument, "name: must not contain U+200B".to_owned()),
            (
                "a Cyrillic а",
                Code::InvalidArgument,
                "name: must not mix scripts (as Latin and Cyrillic letters)".into()
            ),
            (
                "a zero-width joiner",
                Code::InvalidArgument,
                r#"name: "\u{200d}alice" is not a valid user name (RFC 8265)"#.into()
            ),
        ]
    );
    // Logging in by a look-alike of the name reaches the one account.
    app.login("ＡＬＩＣＥ", PASSWORD).await.unwrap();
    app.login("zoe\u{301}", PASSWORD).await.unwrap();
}

#[tokio::test]
async fn names_registered_before_the_profile_are_rekeyed_at_start() {
    // Arrange: users as an older version stored them (lowercase keys,
    // unchecked names), and the migration not yet run.
    let app = spawn_app().await;
    for name in ["dave", "erin", "erin2", "carol"] {
        app.register(name).await.unwrap();
    }
    let dir = app.stop().await;
    let url = format!("sqlite://{}", dir.path().join("auth.db").display());
    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    for (old, name) in [("dave", "Ｄave"), ("erin2", "ＥＲＩＮ"), ("carol", "carol\u{200B}")] {
        sqlx::query("update users set name = $1, name_key = $2 where name = $3")
            .bind(name)
            .bind(name.to_lowercase())
            .bind(old)
            .execute(&pool)
            .await
            .unwrap();
    }
    sqlx::query("delete from data_migrations").execute(&pool).await.unwrap();
    pool.close().await;

    // Act
    let app = start(dir).await;

    // Assert: the fullwidth name now has the narrow key; a name the profile
    // refuses, and one whose new key an older user has, keep theirs.
    assert_eq!(app.register("dave").await.unwrap_err().code(), Code::AlreadyExists);
    app.login("DAVE", PASSWORD).await.unwrap();
    app.login("carol\u{200B}", PASSWORD).await.unwrap();
    assert_eq!(app.register("carol\u{200B}").await.unwrap_err().code(), Code::InvalidArgument);
    app.login("erin", PASSWORD).await.unwrap();
    assert_eq!(app.register("ｅｒｉｎ").await.unwrap_err().code(), Code::AlreadyExists);
}

#[tokio::test]
async fn validate_token_reads_the_admin_flag_from_the_database() {
    // Arrange: an admin logs in; the token's claim says admin.
    let app = spawn_app().await;
    app.register("root").await.unwrap();
    let admin = auth_service::accounts(&settings(&app.dir)).await.unwrap();
    admin.set_admin("root", true).await.unwrap();
    let token = app.login("root", PASSWORD).await.unwrap();
    let validate = || {
        let mut client = app.client.clone();
        let request = ValidateTokenRequest { token: token.clone() };
        async move { client.validate_token(request).await }
    };
    assert!(validate().await.unwrap().into_inner().admin);

    // Act: demoted while the token is still valid.
    admin.set_admin("root", false).await.unwrap();
    let answer = validate().await.unwrap().into_inner();

    // Assert
    assert!(!answer.admin, "a demoted admin's token still said admin: {answer:?}");
    assert_eq!(decode_part(&token, 1)["admin"], true, "the claim itself is unchanged");
    admin.close().await;
}

/// A token of a new user `name`, from an app stopped since; the app's
/// directory, to start it again from.
async fn token_of_a_stopped_app(name: &str) -> (String, tempfile::TempDir) {
    let app = spawn_app().await;
    let token = app.new_user_token(name).await;
    (token, app.stop().await)
}
