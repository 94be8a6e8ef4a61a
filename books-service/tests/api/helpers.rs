//! Starts real services on ephemeral ports with fresh SQLite databases.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use bookstore_proto::auth::v1::auth_service_client::AuthServiceClient;
use bookstore_proto::auth::v1::{LoginRequest, LoginResponse, RegisterRequest};
use bookstore_proto::books::v1::CreateBookRequest;
use bookstore_proto::books::v1::books_service_client::BooksServiceClient;
use bookstore_tokens::{SigningKey, TokenPolicy, TokenSigner};
use tempfile::TempDir;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::Channel;

/// How often the test books-service polls the revocation feed.
pub const REVOCATION_REFRESH_SECS: u64 = 1;

/// A running service and the means to stop it.
pub struct Running {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<anyhow::Result<()>>>,
}

impl Running {
    /// Shuts the service down gracefully and waits until it has stopped.
    pub async fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap().unwrap();
        }
    }
}

fn stop_pair() -> (oneshot::Sender<()>, impl Future<Output = ()>) {
    let (stop, stopped) = oneshot::channel::<()>();
    (stop, async {
        let _ = stopped.await;
    })
}

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
    let addr = app.local_addr();
    let (stop, stopped) = stop_pair();
    let task = tokio::spawn(app.run_until_stopped(stopped));
    Running { addr, stop: Some(stop), task: Some(task) }
}

pub async fn start_books(dir: &TempDir, auth_addr: SocketAddr) -> Running {
    let mut settings = books_service::Settings::from_env().unwrap();
    settings.listen_addr = "127.0.0.1:0".parse().unwrap();
    settings.database_url = format!("sqlite://{}", dir.path().join("books.db").display());
    settings.auth_url = format!("http://{auth_addr}");
    settings.service_token = Some(bookstore_testing::SERVICE_TOKEN.into());
    // Tests rotate keys on purpose: refetch on every unknown key id.
    settings.jwks_min_refetch_secs = 0;
    settings.revocation_refresh_secs = REVOCATION_REFRESH_SECS;
    let app = books_service::App::build(&settings).await.unwrap();
    let addr = app.local_addr();
    let (stop, stopped) = stop_pair();
    let task = tokio::spawn(app.run_until_stopped(stopped));
    Running { addr, stop: Some(stop), task: Some(task) }
}

pub fn channel(addr: SocketAddr) -> Channel {
    tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .timeout(Duration::from_secs(30))
        .connect_lazy()
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

/// A request carrying `authorization: Bearer <token>`.
pub fn with_token<T>(token: &str, message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert("authorization", format!("Bearer {token}").parse().unwrap());
    request
}

pub fn uuid_suffix() -> String {
    format!("{:08x}", rand::random::<u32>())
}
