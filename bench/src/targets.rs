//! Where the scenarios send their requests, and the account they act as:
//! the targets' URLs, connections to them, and the account's set-up.

use anyhow::Context as _;
use bookstore_proto::auth::v1::auth_service_client::AuthServiceClient;
use bookstore_proto::auth::v1::{LoginRequest, RegisterRequest, ValidateTokenRequest};
use bookstore_proto::books::v1::books_service_client::BooksServiceClient;
use bookstore_proto::books::v1::{CreateBookRequest, ListBooksRequest};
use clap::Args;
use tonic::metadata::{AsciiMetadataValue, MetadataValue};
use tonic::transport::{Channel, Endpoint};

/// Where the services and references listen.
#[derive(Debug, Clone, Args)]
pub(crate) struct Targets {
    /// auth-service (gRPC).
    #[arg(long, env = "BENCH_AUTH_URL", default_value = "http://127.0.0.1:15051")]
    pub(crate) auth_url: String,
    /// books-service (gRPC).
    #[arg(long, env = "BENCH_BOOKS_URL", default_value = "http://127.0.0.1:15052")]
    pub(crate) books_url: String,
    /// The REST gateway.
    #[arg(long, env = "BENCH_GATEWAY_URL", default_value = "http://127.0.0.1:15000")]
    pub(crate) gateway_url: String,
    /// The `echo-grpc` reference.
    #[arg(long, env = "BENCH_ECHO_GRPC_URL", default_value = "http://127.0.0.1:15061")]
    pub(crate) echo_grpc_url: String,
    /// The `echo-http` reference.
    #[arg(long, env = "BENCH_ECHO_HTTP_URL", default_value = "http://127.0.0.1:15060")]
    pub(crate) echo_http_url: String,
}

/// The user the scenarios act as; registered on first use.
#[derive(Debug, Clone, Args)]
pub(crate) struct Account {
    /// User name.
    #[arg(long, default_value = "bench-reader")]
    pub(crate) user: String,
    /// Password.
    #[arg(long, default_value = "bench-password-1")]
    pub(crate) password: String,
    /// Books the user should own before the run (created if fewer).
    #[arg(long, default_value_t = 20)]
    pub(crate) books: u32,
}

pub(crate) fn lazy_channel(url: &str) -> anyhow::Result<Channel> {
    Ok(Endpoint::from_shared(url.to_owned())
        .with_context(|| format!("bad URL {url:?}"))?
        .tcp_nodelay(true)
        .connect_lazy())
}

pub(crate) fn http_client() -> anyhow::Result<reqwest::Client> {
    // One connection per worker, kept alive, as `wrk -c` does.
    Ok(reqwest::Client::builder().tcp_nodelay(true).pool_max_idle_per_host(1).build()?)
}

pub(crate) fn book(sequence: u64) -> CreateBookRequest {
    CreateBookRequest {
        name: format!("Bench book {sequence}"),
        author: "Bench author".into(),
        publisher: "Bench press".into(),
        book_prize: i64::try_from(sequence % 1000).unwrap_or(0),
    }
}

pub(crate) fn status_text(status: &tonic::Status) -> String {
    format!("{:?}: {}", status.code(), status.message())
}

/// Registers the account (AlreadyExists is fine), logs in, and tops its
/// books up to `account.books`.
pub(crate) async fn prepare_account(targets: &Targets, account: &Account) -> anyhow::Result<(String, String)> {
    let mut auth = AuthServiceClient::new(lazy_channel(&targets.auth_url)?);
    let registered =
        auth.register(RegisterRequest { name: account.user.clone(), password: account.password.clone() }).await;
    match registered {
        Ok(_) => {}
        Err(status) if status.code() == tonic::Code::AlreadyExists => {}
        Err(status) => anyhow::bail!("cannot register {}: {}", account.user, status_text(&status)),
    }
    let login = auth
        .login(LoginRequest { name: account.user.clone(), password: account.password.clone() })
        .await
        .map_err(|status| anyhow::anyhow!("cannot log in as {}: {}", account.user, status_text(&status)))?
        .into_inner();
    let token = login.access_token;
    let claims = auth
        .validate_token(ValidateTokenRequest { token: token.clone() })
        .await
        .map_err(|status| anyhow::anyhow!("the new token does not validate: {}", status_text(&status)))?
        .into_inner();
    let bearer: AsciiMetadataValue = MetadataValue::try_from(format!("Bearer {token}"))?;
    let mut books = BooksServiceClient::new(lazy_channel(&targets.books_url)?);
    let wanted = account.books.min(bookstore_proto::pagination::MAX_PAGE_SIZE);
    let mut request =
        tonic::Request::new(ListBooksRequest { page_size: i32::try_from(wanted)?, page_token: String::new() });
    request.metadata_mut().insert("authorization", bearer.clone());
    let have = u32::try_from(
        books.list_books(request).await.map_err(|s| anyhow::anyhow!(status_text(&s)))?.get_ref().books.len(),
    )?;
    for sequence in have..wanted {
        let mut request = tonic::Request::new(book(u64::from(sequence)));
        request.metadata_mut().insert("authorization", bearer.clone());
        books
            .create_book(request)
            .await
            .map_err(|status| anyhow::anyhow!("cannot create a book: {}", status_text(&status)))?;
    }
    Ok((token, claims.public_id))
}
