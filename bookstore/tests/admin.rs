//! The admin commands, run as an operator runs them: the real `bookstore`
//! binary on a real data directory (SQLite) or PostgreSQL databases, its
//! output and exit status checked.

#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers outside #[test] fns, too

use std::io::BufRead as _;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

use bookstore_proto::auth::v1::auth_service_client::AuthServiceClient;
use bookstore_proto::auth::v1::{GetJwksRequest, LoginRequest, ValidateTokenRequest};
use bookstore_testing::TestDatabase;

const BIN: &str = env!("CARGO_BIN_EXE_bookstore");
const PASSWORD: &str = "correct horse battery";

/// `bookstore --data-dir DATA ARGS...` with no `AUTH_*` settings inherited.
fn bookstore(data: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(BIN);
    command.arg("--data-dir").arg(data).args(args);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("AUTH_") || name.to_string_lossy().starts_with("BOOKS_") {
            command.env_remove(name);
        }
    }
    command.env("BOOKSTORE_ADMIN_PASSWORD", PASSWORD).env("RUST_BACKTRACE", "0").env_remove("RUST_LOG");
    command
}

fn succeeds(command: &mut Command) -> String {
    let output = command.output().unwrap();
    assert!(output.status.success(), "{command:?} failed: {}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(String::from_utf8_lossy(&output.stderr), "", "no logs from a successful admin command");
    String::from_utf8(output.stdout).unwrap()
}

fn fails(command: &mut Command) -> String {
    let Output { status, stderr, .. } = command.output().unwrap();
    assert!(!status.success(), "{command:?} succeeded");
    String::from_utf8(stderr).unwrap()
}

async fn register(data: &Path, name: &str) {
    let mut settings = auth_service::Settings::from_env().unwrap();
    settings.database_url = format!("sqlite://{}", data.join("auth.db").display());
    settings.signing_key_file = data.join("auth-signing-key.pem");
    let accounts = auth_service::accounts(&settings).await.unwrap();
    accounts.register(name, PASSWORD.into(), false).await.unwrap();
    accounts.close().await;
}

#[tokio::test]
async fn list_users_prints_every_user_as_a_table_or_json() {
    let data = tempfile::tempdir().unwrap();
    succeeds(bookstore(data.path(), &["create-admin", "--name", "root"]).stdin(Stdio::null()));
    register(data.path(), "alice").await;

    let table = succeeds(&mut bookstore(data.path(), &["list-users"]));

    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 4, "{table}");
    assert!(lines[0].starts_with("NAME   ADMIN  PUBLIC_ID"), "{table}");
    assert!(lines[1].starts_with("root   yes    ") && lines[1].ends_with('Z'), "{table}");
    assert!(lines[2].starts_with("alice  no     "), "{table}");
    assert_eq!(lines[3], "2 users");
    let json: serde_json::Value =
        serde_json::from_str(&succeeds(&mut bookstore(data.path(), &["list-users", "--json"]))).unwrap();
    let users: Vec<(&str, bool)> =
        json.as_array().unwrap().iter().map(|u| (u["name"].as_str().unwrap(), u["admin"].as_bool().unwrap())).collect();
    assert_eq!(users, [("root", true), ("alice", false)]);
    assert_eq!(json[1]["public_id"].as_str().unwrap().len(), 36);
}

#[tokio::test]
async fn admin_command_errors_say_what_to_do_next() {
    let data = tempfile::tempdir().unwrap();
    register(data.path(), "alice").await;

    let unknown = fails(&mut bookstore(data.path(), &["promote-admin", "--name", "bob"]));
    let taken = fails(bookstore(data.path(), &["create-admin", "--name", "ALICE"]).stdin(Stdio::null()));
    let no_key = fails(&mut bookstore(&data.path().join("elsewhere"), &["rotate-signing-key"]));
    let bad_url = fails(&mut bookstore(data.path(), &["migrate", "--auth-database-url", "mysql://db/auth"]));

    assert!(unknown.contains(r#"no user named "bob"; list users with `bookstore list-users`"#), "{unknown}");
    assert!(taken.contains("make it an admin with `bookstore promote-admin --name ALICE`"), "{taken}");
    assert!(no_key.contains("no signing key at") && no_key.contains("--signing-key-file"), "{no_key}");
    assert!(bad_url.contains("expected sqlite://PATH or postgres://"), "{bad_url}");
    assert!(!unknown.contains("Stack backtrace"), "{unknown}");
}

#[tokio::test]
async fn promote_admin_grants_and_revokes_admin_rights() {
    let data = tempfile::tempdir().unwrap();
    register(data.path(), "alice").await;

    let granted = succeeds(&mut bookstore(data.path(), &["promote-admin", "--name", "alice"]));
    let listed = succeeds(&mut bookstore(data.path(), &["list-users"]));
    let revoked = succeeds(&mut bookstore(data.path(), &["promote-admin", "--name", "Alice", "--revoke"]));

    assert_eq!(granted, "user \"alice\" admin: true\n");
    assert!(listed.lines().nth(1).unwrap().starts_with("alice  yes"), "{listed}");
    assert_eq!(revoked, "user \"alice\" admin: false\n");
}

#[tokio::test]
async fn migrate_prepares_postgres_databases_and_admin_commands_follow_auth_database_url() {
    let (Some(auth_db), Some(books_db)) = (TestDatabase::postgres().await, TestDatabase::postgres().await) else {
        return;
    };
    let data = tempfile::tempdir().unwrap();
    let migrate = ["migrate", "--auth-database-url", &auth_db.url, "--books-database-url", &books_db.url];

    let first = succeeds(&mut bookstore(data.path(), &migrate));
    let again = succeeds(&mut bookstore(data.path(), &migrate));

    assert_eq!(first, again, "running it again changes nothing");
    assert!(first.starts_with("user database postgres://") && first.contains("book database postgres://"), "{first}");
    for (url, table) in [(&auth_db.url, "users"), (&books_db.url, "books")] {
        let pool = sqlx::PgPool::connect(url).await.unwrap();
        let rows: i64 = sqlx::query_scalar(&format!("select count(*) from {table}")).fetch_one(&pool).await.unwrap();
        assert_eq!(rows, 0, "{table} exists and is empty");
        pool.close().await;
    }
    // Inside an auth-service container AUTH_DATABASE_URL is set: the admin
    // commands use it rather than the data directory.
    let key = data.path().join("shared-key.pem");
    let in_container = |args: &[&str]| {
        let mut command = bookstore(data.path(), args);
        command.env("AUTH_DATABASE_URL", &auth_db.url).env("AUTH_SIGNING_KEY_FILE", &key);
        command
    };
    succeeds(in_container(&["create-admin", "--name", "root"]).stdin(Stdio::null()));
    let listed = succeeds(&mut in_container(&["list-users", "--json"]));
    assert!(listed.contains(r#""name":"root""#), "{listed}");
    assert!(!data.path().join("auth.db").exists(), "the data directory was not used");

    auth_db.cleanup().await;
    books_db.cleanup().await;
}

/// The all-in-one on free ports; returns it and auth-service's address.
fn start_stack(data: &Path) -> (Child, String) {
    let mut child = bookstore(data, &["--gateway-addr", "127.0.0.1:0", "--auth-addr", "127.0.0.1:0"])
        .args(["--books-addr", "127.0.0.1:0", "--auth-metrics-addr", "127.0.0.1:0"])
        .args(["--books-metrics-addr", "127.0.0.1:0", "--gateway-metrics-addr", "127.0.0.1:0"])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut auth = None;
    for line in stdout.lines() {
        let line = line.unwrap();
        if let Some(rest) = line.trim().strip_prefix("auth-service") {
            auth = Some(format!("http://{}", rest.trim().trim_end_matches(" (gRPC)")));
        }
        if line.starts_with("Stop with") {
            break;
        }
    }
    (child, auth.expect("the stack printed auth-service's address"))
}

async fn published_kids(auth: &str) -> Vec<String> {
    let mut client = AuthServiceClient::connect(auth.to_owned()).await.unwrap();
    let keys = client.get_jwks(GetJwksRequest {}).await.unwrap().into_inner().keys;
    let mut kids: Vec<String> = keys.into_iter().map(|key| key.kid).collect();
    kids.sort();
    kids
}

fn kid_in(output: &str, prefix: &str) -> String {
    let line = output.lines().find(|line| line.starts_with(prefix)).unwrap();
    line.rsplit_once("(kid ").unwrap().1.split(')').next().unwrap().to_owned()
}

fn sorted(mut kids: Vec<String>) -> Vec<String> {
    kids.sort();
    kids
}

#[tokio::test]
async fn rotate_signing_key_publishes_the_next_key_then_signs_with_it_and_keeps_old_tokens_valid() {
    let data = tempfile::tempdir().unwrap();
    let dir = data.path();
    register(dir, "alice").await; // also generates the first key
    let (mut stack, auth) = start_stack(dir);
    let old_kid = published_kids(&auth).await.remove(0);
    let mut client = AuthServiceClient::connect(auth).await.unwrap();
    let login = LoginRequest { name: "alice".into(), password: PASSWORD.into() };
    let old_token = client.login(login.clone()).await.unwrap().into_inner().access_token;
    stack.kill().unwrap();
    stack.wait().unwrap();

    // Step 1: the next key is written and, after a restart, published.
    let step1 = succeeds(&mut bookstore(dir, &["rotate-signing-key"]));
    let next_kid = kid_in(&step1, "step 1 of 2 done");
    assert!(step1.contains("add ") && step1.contains("auth-signing-key.next.pem to AUTH_VERIFICATION_KEY_FILES"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(dir.join("auth-signing-key.next.pem")).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let (mut stack, auth) = start_stack(dir);
    assert_eq!(published_kids(&auth).await, sorted(vec![old_kid.clone(), next_kid.clone()]));
    stack.kill().unwrap();
    stack.wait().unwrap();

    // Step 2: the next key signs; the old one's public half still verifies.
    let step2 = succeeds(&mut bookstore(dir, &["rotate-signing-key"]));
    assert_eq!(kid_in(&step2, "step 2 of 2 done"), next_kid);
    let public = std::fs::read_to_string(dir.join("auth-signing-key.previous.pub.pem")).unwrap();
    assert!(public.starts_with("-----BEGIN PUBLIC KEY-----") && !public.contains("PRIVATE"), "{public}");
    assert!(!dir.join("auth-signing-key.next.pem").exists());
    let (mut stack, auth) = start_stack(dir);
    assert_eq!(published_kids(&auth).await, sorted(vec![old_kid.clone(), next_kid.clone()]));
    let mut client = AuthServiceClient::connect(auth.clone()).await.unwrap();
    let old = client.validate_token(ValidateTokenRequest { token: old_token.clone() }).await.unwrap();
    assert_eq!(old.into_inner().name, "alice");
    let new_token = client.login(login).await.unwrap().into_inner().access_token;
    let header = header_kid(&new_token);
    assert_eq!(header, next_kid, "new tokens are signed with the next key");
    stack.kill().unwrap();
    stack.wait().unwrap();

    // Another rotation waits until the previous key is retired.
    let unfinished = fails(&mut bookstore(dir, &["rotate-signing-key"]));
    assert!(unfinished.contains("the last rotation is not finished"), "{unfinished}");
    std::fs::remove_file(dir.join("auth-signing-key.previous.pub.pem")).unwrap();
    let (mut stack, auth) = start_stack(dir);
    assert_eq!(published_kids(&auth).await, vec![next_kid]);
    let mut client = AuthServiceClient::connect(auth).await.unwrap();
    assert!(client.validate_token(ValidateTokenRequest { token: old_token }).await.is_err());
    stack.kill().unwrap();
    stack.wait().unwrap();
}

/// The `kid` of a JWT's header.
fn header_kid(token: &str) -> String {
    use base64::Engine as _;
    let header = token.split('.').next().unwrap();
    let json = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(header).unwrap();
    serde_json::from_slice::<serde_json::Value>(&json).unwrap()["kid"].as_str().unwrap().to_owned()
}
