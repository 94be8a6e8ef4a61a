//! Starts a real auth-service on an ephemeral port with a fresh database.

use std::time::Duration;

use auth_service::{App, Settings};
use bookstore_proto::auth::v1::auth_service_client::AuthServiceClient;
use bookstore_proto::auth::v1::{LoginRequest, RegisterRequest};
use bookstore_testing::grpc::channel;
pub use bookstore_testing::grpc::with_token;
use bookstore_testing::running::Running;
use tempfile::TempDir;
use tonic::transport::Channel;

pub const PASSWORD: &str = "correct horse battery";

pub struct TestApp {
    pub dir: TempDir,
    pub client: AuthServiceClient<Channel>,
    server: Running,
}

pub fn settings(dir: &TempDir) -> Settings {
    let mut settings = Settings::from_env().unwrap();
    settings.listen_addr = "127.0.0.1:0".parse().unwrap();
    settings.database_url = format!("sqlite://{}", dir.path().join("auth.db").display());
    settings.signing_key_file = dir.path().join("keys").join("signing-key.pem");
    settings.service_token = Some(bookstore_testing::SERVICE_TOKEN.into());
    settings
}

pub async fn spawn_app() -> TestApp {
    if std::env::var_os("TEST_LOG").is_some() {
        bookstore_runtime::init_tracing("info");
    }
    let dir = tempfile::tempdir().unwrap();
    start(dir).await
}

/// Starts auth-service on `dir` (a fresh one or one a stopped app used).
pub async fn start(dir: TempDir) -> TestApp {
    let settings = settings(&dir);
    start_with(dir, &settings).await
}

/// Starts auth-service on `dir` with explicit settings.
pub async fn start_with(dir: TempDir, settings: &Settings) -> TestApp {
    let app = App::build(settings).await.unwrap();
    let server = Running::spawn(app.server().local_addr(), |stopped| app.run_until_stopped(stopped));
    let client = AuthServiceClient::new(channel(server.addr, Duration::from_secs(30)));
    TestApp { dir, client, server }
}

impl TestApp {
    /// Stops the server gracefully and hands back its data directory.
    pub async fn stop(mut self) -> TempDir {
        self.server.stop().await;
        self.dir
    }

    pub async fn register(
        &self,
        name: &str,
    ) -> Result<tonic::Response<bookstore_proto::auth::v1::RegisterResponse>, tonic::Status> {
        self.client.clone().register(RegisterRequest { name: name.into(), password: PASSWORD.into() }).await
    }

    /// Logs in; a future that borrows nothing, to run many at once.
    pub fn login_as(&self, name: &str, password: &str) -> impl Future<Output = Result<String, tonic::Status>> + use<> {
        let mut client = self.client.clone();
        let request = LoginRequest { name: name.into(), password: password.into() };
        async move { Ok(client.login(request).await?.into_inner().access_token) }
    }

    pub async fn login(&self, name: &str, password: &str) -> Result<String, tonic::Status> {
        let request = LoginRequest { name: name.into(), password: password.into() };
        Ok(self.client.clone().login(request).await?.into_inner().access_token)
    }

    /// Registers `name` with [`PASSWORD`] and returns an access token of theirs.
    pub async fn new_user_token(&self, name: &str) -> String {
        self.register(name).await.unwrap();
        self.login(name, PASSWORD).await.unwrap()
    }
}

/// A call to a service-only RPC, as books-service makes it.
pub fn as_service<T>(message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert("x-service-token", bookstore_testing::SERVICE_TOKEN.parse().unwrap());
    request
}
