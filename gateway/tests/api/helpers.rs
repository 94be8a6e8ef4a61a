//! Starts real auth-service, books-service and gateway in-process, on
//! ephemeral ports, with fresh SQLite databases in a temporary directory.

use std::net::SocketAddr;

pub use bookstore_testing::running::Running;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tempfile::TempDir;

/// A password every test user can have (auth-service wants at least 8 bytes).
pub const PASSWORD: &str = "correct horse battery";

/// How often the test books-service polls auth-service's revocation feed.
pub const REVOCATION_REFRESH_SECS: u64 = 1;

pub struct TestApp {
    pub base_url: String,
    pub http: reqwest::Client,
    pub auth_settings: auth_service::Settings,
    /// With the address books-service was first bound to, so that a restart
    /// comes back where the gateway expects it.
    pub books_settings: books_service::Settings,
    pub auth: Running,
    pub books: Running,
    /// Runs until the test ends: dropping it stops it.
    pub gateway: Running,
    /// Last, so the databases outlive the services.
    _dir: TempDir,
}

fn init_logs() {
    if std::env::var_os("TEST_LOG").is_some() {
        bookstore_runtime::init_tracing("info");
    }
}

/// The whole stack with the gateway's default settings.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// An app with one registered user `name`; their token.
pub async fn spawn_app_with_user(name: &str) -> (TestApp, String) {
    let app = spawn_app().await;
    let token = app.new_user(name).await;
    (app, token)
}

/// The whole stack; `configure` may change the gateway's settings (its
/// upstream URLs are set before, its listen address after).
pub async fn spawn_app_with(configure: impl FnOnce(&mut gateway::Settings)) -> TestApp {
    spawn_app_configured(|_| {}, configure).await
}

/// The whole stack; `configure_auth` may change auth-service's settings
/// (before its address, database and key are set) and `configure` the
/// gateway's.
pub async fn spawn_app_configured(
    configure_auth: impl FnOnce(&mut auth_service::Settings),
    configure: impl FnOnce(&mut gateway::Settings),
) -> TestApp {
    init_logs();
    let dir = tempfile::tempdir().unwrap();
    let any_port: SocketAddr = "127.0.0.1:0".parse().unwrap();

    let mut auth_settings = auth_service::Settings::from_env().unwrap();
    configure_auth(&mut auth_settings);
    auth_settings.listen_addr = any_port;
    auth_settings.database_url = format!("sqlite://{}", dir.path().join("auth.db").display());
    auth_settings.signing_key_file = dir.path().join("signing-key.pem");
    auth_settings.signing_key = None;
    auth_settings.max_concurrent_hashes = 4;
    auth_settings.metrics_addr = Some(any_port);
    auth_settings.service_token = Some(bookstore_testing::SERVICE_TOKEN.into());
    let auth = start_auth(&auth_settings).await;

    let auth_url = format!("http://{}", auth.addr);
    let mut books_settings =
        books_service::Settings::for_tests(dir.path(), auth_url, bookstore_testing::SERVICE_TOKEN).unwrap();
    books_settings.issuer = auth_settings.issuer.clone();
    books_settings.audience = auth_settings.audience.clone();
    books_settings.revocation_refresh_secs = REVOCATION_REFRESH_SECS;
    books_settings.metrics_addr = Some(any_port);
    let books = start_books(&books_settings).await;
    books_settings.listen_addr = books.addr;

    let mut gateway_settings = gateway::Settings::from_env().unwrap();
    gateway_settings.auth_url = format!("http://{}", auth.addr);
    gateway_settings.books_url = format!("http://{}", books.addr);
    configure(&mut gateway_settings);
    gateway_settings.listen_addr = any_port;
    gateway_settings.metrics_addr = Some(any_port);
    let app = gateway::App::build(&gateway_settings).await.unwrap();
    let metrics = app.metrics_addr();
    let gateway = Running::spawn(app.local_addr(), |stopped| app.run_until_stopped(stopped)).with_metrics(metrics);

    TestApp {
        base_url: format!("http://{}", gateway.addr),
        http: reqwest::Client::new(),
        auth_settings,
        books_settings,
        auth,
        books,
        gateway,
        _dir: dir,
    }
}

async fn start_auth(settings: &auth_service::Settings) -> Running {
    let app = auth_service::App::build(settings).await.unwrap();
    let metrics = app.server().metrics_addr();
    Running::spawn(app.server().local_addr(), |stopped| app.run_until_stopped(stopped)).with_metrics(metrics)
}

async fn start_books(settings: &books_service::Settings) -> Running {
    let app = books_service::App::build(settings).await.unwrap();
    let metrics = app.server().metrics_addr();
    Running::spawn(app.server().local_addr(), |stopped| app.run_until_stopped(stopped)).with_metrics(metrics)
}

/// A book body with the tutorial's field names.
pub fn book(name: &str, author: &str) -> Value {
    json!({"name": name, "Author": author, "Publisher": "Tutorial Press", "book_prize": 250})
}

/// The status and JSON body of a response, checking that it is JSON.
pub async fn json_of(response: reqwest::Response) -> (StatusCode, Value) {
    let status = response.status();
    let content_type = response.headers().get("content-type").map(|value| value.to_str().unwrap().to_owned());
    assert_eq!(content_type.as_deref(), Some("application/json"), "status {status}");
    (status, response.json().await.unwrap())
}

/// The `message` of a JSON error body.
pub fn message(body: &Value) -> &str {
    body["message"].as_str().unwrap_or_else(|| panic!("no message in {body}"))
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    pub async fn register(&self, name: &str, password: &str) -> reqwest::Response {
        let body = json!({"name": name, "password": password});
        self.http.post(self.url("/register")).json(&body).send().await.unwrap()
    }

    pub async fn login(&self, name: &str, password: &str) -> reqwest::Response {
        self.http.post(self.url("/login")).basic_auth(name, Some(password)).send().await.unwrap()
    }

    /// Logs a registered user in and returns the token.
    pub async fn token_of(&self, name: &str) -> String {
        let (status, body) = json_of(self.login(name, PASSWORD).await).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["token"].as_str().unwrap().to_owned()
    }

    /// Registers a new user with [`PASSWORD`] and returns their token.
    pub async fn new_user(&self, name: &str) -> String {
        let response = self.register(name, PASSWORD).await;
        assert_eq!(response.status(), StatusCode::CREATED);
        self.token_of(name).await
    }

    /// Creates an admin the way the admin command does, and returns their token.
    pub async fn new_admin(&self, name: &str) -> String {
        let accounts = auth_service::accounts(&self.auth_settings).await.unwrap();
        accounts.register(name, PASSWORD.to_owned(), true).await.unwrap();
        accounts.close().await;
        self.token_of(name).await
    }

    /// Sends a request with the tutorial's `x-access-tokens` header.
    pub fn with_token(&self, method: reqwest::Method, path: &str, token: &str) -> reqwest::RequestBuilder {
        self.http.request(method, self.url(path)).header("x-access-tokens", token)
    }

    pub async fn create_book(&self, token: &str, body: &Value) -> reqwest::Response {
        self.with_token(reqwest::Method::POST, "/book", token).json(body).send().await.unwrap()
    }

    /// Creates a book and returns its id.
    pub async fn new_book(&self, token: &str, name: &str) -> i64 {
        let (status, body) = json_of(self.create_book(token, &book(name, "Some Author")).await).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["id"].as_i64().unwrap()
    }

    /// Creates a book and returns its path, `/books/{id}`.
    pub async fn new_book_path(&self, token: &str, name: &str) -> String {
        format!("/books/{}", self.new_book(token, name).await)
    }

    pub async fn get(&self, path: &str, token: &str) -> reqwest::Response {
        self.with_token(reqwest::Method::GET, path, token).send().await.unwrap()
    }

    pub async fn delete(&self, path: &str, token: &str) -> reqwest::Response {
        self.with_token(reqwest::Method::DELETE, path, token).send().await.unwrap()
    }

    /// The user's books (first page) as JSON.
    pub async fn list_books(&self, token: &str) -> Vec<Value> {
        let (status, body) = json_of(self.get("/books", token).await).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["list_of_books"].as_array().unwrap().clone()
    }

    /// Starts books-service again on the address it had, with its database.
    pub async fn restart_books(&mut self) {
        self.books = start_books(&self.books_settings).await;
        assert_eq!(self.books.addr, self.books_settings.listen_addr);
    }
}
