//! Starts real services on ephemeral ports with fresh SQLite databases.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use bookstore_proto::auth::v1::auth_service_client::AuthServiceClient;
use bookstore_proto::auth::v1::{LoginRequest, LoginResponse, RegisterRequest};
use bookstore_proto::books::v1::CreateBookRequest;
use bookstore_proto::books::v1::books_service_client::BooksServiceClient;
pub use bookstore_testing::grpc::with_token;
pub use bookstore_testing::running::Running;
use bookstore_tokens::{SigningKey, TokenPolicy, TokenSigner};
use tempfile::TempDir;
use tonic::transport::Channel;

/// How often the test books-service polls the revocation feed.
pub const REVOCATION_REFRESH_SECS: u64 = 1;

pub struct TestApp {
    pub dir: TempDir,
    pub auth: Running,
    pub books: Running,
    pub auth_client: AuthServiceClient<Channel>,
    pub books_client: BooksServiceClient<Channel>,
}

pub fn init_logs() {
    if std::env::var_os("TEST_LOG").is_some() {
        bookstore_runtime::init_tracing("info");
    }
}

pub fn auth_settings(dir: &TempDir, addr: SocketAddr) -> auth_service::Settings {
    let mut settings = auth_service::Settings::from_env().unwrap();
    settings.listen_addr = addr;
    settings.database_url = format!("sqlite://{}", dir.path().join("auth.db").display());
    settings.signing_key_file = dir.path().join("signing-key.pem");
    settings.max_concurrent_hashes = 4;
    settings.service_token = Some(bookstore_testing::SERVICE_TOKEN.into());
    settings
}

pub async fn start_auth(settings: &auth_service::Settings) -> Running {
    let app = auth_service::App::build(settings).await.unwrap();
    Running::spawn(app.server().local_addr(), |stopped| app.run_until_stopped(stopped))
}

pub async fn start_books(dir: &TempDir, auth_addr: SocketAddr) -> Running {
    let auth_url = format!("http://{auth_addr}");
    let mut settings =
        books_service::Settings::for_tests(dir.path(), auth_url, bookstore_testing::SERVICE_TOKEN).unwrap();
    // Tests rotate keys on purpose: refetch on every unknown key id.
    settings.jwks_min_refetch_secs = 0;
    settings.revocation_refresh_secs = REVOCATION_REFRESH_SECS;
    let app = books_service::App::build(&settings).await.unwrap();
    Running::spawn(app.server().local_addr(), |stopped| app.run_until_stopped(stopped))
}

/// A lazy channel to a service under test; each call may take 30 s.
pub fn channel(addr: SocketAddr) -> Channel {
    bookstore_testing::grpc::channel(addr, Duration::from_secs(30))
}

pub async fn spawn_app() -> TestApp {
    init_logs();
    let dir = tempfile::tempdir().unwrap();
    let auth = start_auth(&auth_settings(&dir, "127.0.0.1:0".parse().unwrap())).await;
    let books = start_books(&dir, auth.addr).await;
    TestApp {
        auth_client: AuthServiceClient::new(channel(auth.addr)),
        books_client: BooksServiceClient::new(channel(books.addr)),
        dir,
        auth,
        books,
    }
}

/// An app with one registered user (a unique name from `prefix`); their
/// access token.
pub async fn spawn_app_with_user(prefix: &str) -> (TestApp, String) {
    let app = spawn_app().await;
    let token = app.user_token(prefix).await;
    (app, token)
}

impl TestApp {
    /// Registers a user (a unique name from `prefix`) and logs in.
    pub async fn user_token(&self, prefix: &str) -> String {
        self.user_login(prefix).await.access_token
    }

    /// Registers a user (a unique name from `prefix`) and logs in: the
    /// whole answer, refresh token included.
    pub async fn user_login(&self, prefix: &str) -> LoginResponse {
        let name = format!("{prefix}-{}", uuid_suffix());
        let mut auth = self.auth_client.clone();
        auth.register(RegisterRequest { name: name.clone(), password: PASSWORD.to_owned() }).await.unwrap();
        auth.login(LoginRequest { name, password: PASSWORD.to_owned() }).await.unwrap().into_inner()
    }

    /// Creates a book and returns its id.
    pub async fn create_book(&self, token: &str, name: &str, author: &str) -> i64 {
        let request =
            CreateBookRequest { name: name.into(), author: author.into(), publisher: "Tor".into(), book_prize: 250 };
        self.books_client.clone().create_book(with_token(token, request)).await.unwrap().into_inner().book.unwrap().id
    }

    /// A signer with the auth-service's own key, for unusual tokens.
    pub fn real_signer(&self) -> TokenSigner {
        let pem = std::fs::read_to_string(self.key_file()).unwrap();
        let key = SigningKey::from_pkcs8_pem(&pem).unwrap();
        TokenSigner::new(&key, default_policy(), Duration::from_secs(60)).unwrap()
    }

    pub fn key_file(&self) -> PathBuf {
        self.dir.path().join("signing-key.pem")
    }
}

/// The password of every test user.
pub const PASSWORD: &str = "correct horse battery";

pub fn default_policy() -> TokenPolicy {
    TokenPolicy { issuer: "bookstore-auth".into(), audience: "bookstore".into() }
}

/// Waits until the store holds `count` books; fails the test after `bound`.
pub async fn until_book_count_is(store: &dyn books_service::store::BookStore, count: i64, bound: Duration) {
    bookstore_testing::eventually(bound, || async {
        let books = store.count_books().await.unwrap();
        if books == count {
            Ok(())
        } else {
            Err(format!("{books} books, not {count}: the deleted user's books are still there"))
        }
    })
    .await;
}

pub fn uuid_suffix() -> String {
    format!("{:08x}", rand::random::<u32>())
}
