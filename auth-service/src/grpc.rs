//! `bookstore.auth.v1.AuthService` over [`Accounts`]: decode, call, encode.

use std::net::IpAddr;

use bookstore_proto::auth::v1::auth_service_server::AuthService;
use bookstore_proto::auth::v1::{
    GetJwksRequest, GetJwksResponse, Jwk, ListUsersRequest, ListUsersResponse, LoginRequest, LoginResponse,
    RegisterRequest, RegisterResponse, User, ValidateTokenRequest, ValidateTokenResponse,
};
use bookstore_proto::timestamp_from_micros;
use tonic::{Request, Response, Status};

use crate::accounts::Accounts;
use crate::error::Error;
use crate::store::UserRecord;
use crate::throttle::{ClientRateLimiter, client_address};

/// The gRPC face of [`Accounts`].
pub struct AuthGrpc {
    accounts: Accounts,
    /// Register and Login calls per client address.
    client_limit: Option<(ClientRateLimiter, Vec<IpAddr>)>,
}

impl AuthGrpc {
    pub fn new(accounts: Accounts) -> Self {
        Self { accounts, client_limit: None }
    }

    /// Limits Register and Login per client address; the client of a call
    /// from one of `trusted_proxies` is the one its `x-forwarded-for` names.
    #[must_use]
    pub fn with_client_limit(mut self, limiter: ClientRateLimiter, trusted_proxies: Vec<IpAddr>) -> Self {
        self.client_limit = Some((limiter, trusted_proxies));
        self
    }

    fn check_client_rate<T>(&self, request: &Request<T>) -> Result<(), Error> {
        let Some((limiter, trusted_proxies)) = &self.client_limit else { return Ok(()) };
        match client_address(request, trusted_proxies) {
            Some(client) => limiter.check(client).inspect_err(|_| {
                tracing::info!(%client, "call refused: client rate limit");
            }),
            None => Ok(()),
        }
    }
}

#[tonic::async_trait]
impl AuthService for AuthGrpc {
    async fn register(&self, request: Request<RegisterRequest>) -> Result<Response<RegisterResponse>, Status> {
        self.check_client_rate(&request)?;
        let RegisterRequest { name, password } = request.into_inner();
        let user = self.accounts.register(&name, password, false).await?;
        Ok(Response::new(RegisterResponse { user: Some(public_user(user)) }))
    }

    async fn login(&self, request: Request<LoginRequest>) -> Result<Response<LoginResponse>, Status> {
        self.check_client_rate(&request)?;
        let LoginRequest { name, password } = request.into_inner();
        let issued = self.accounts.login(&name, password).await?;
        Ok(Response::new(LoginResponse {
            access_token: issued.token,
            token_type: "Bearer".into(),
            expires_in: i64::try_from(issued.claims.exp.saturating_sub(issued.claims.iat)).unwrap_or(i64::MAX),
        }))
    }

    async fn validate_token(
        &self,
        request: Request<ValidateTokenRequest>,
    ) -> Result<Response<ValidateTokenResponse>, Status> {
        let claims = self.accounts.validate(&request.get_ref().token)?;
        Ok(Response::new(ValidateTokenResponse {
            public_id: claims.sub,
            name: claims.name,
            admin: claims.admin,
            expires_at: Some(bookstore_proto::prost_types::Timestamp {
                seconds: i64::try_from(claims.exp).unwrap_or(i64::MAX),
                nanos: 0,
            }),
        }))
    }

    async fn get_jwks(&self, _request: Request<GetJwksRequest>) -> Result<Response<GetJwksResponse>, Status> {
        let keys = self
            .accounts
            .jwks()
            .iter()
            .map(|jwk| Jwk {
                kty: jwk.kty.clone(),
                crv: jwk.crv.clone(),
                x: jwk.x.clone(),
                kid: jwk.kid.clone(),
                alg: jwk.alg.clone(),
                r#use: jwk.key_use.clone(),
            })
            .collect();
        Ok(Response::new(GetJwksResponse { keys }))
    }

    async fn list_users(&self, request: Request<ListUsersRequest>) -> Result<Response<ListUsersResponse>, Status> {
        let token = bookstore_tokens::token_from_headers(&request.metadata().clone().into_headers())
            .map_err(|missing| Error::Unauthenticated(missing.to_string()))?
            .to_owned();
        let ListUsersRequest { page_size, page_token } = request.into_inner();
        let page = self.accounts.list_users(&token, page_size, &page_token).await?;
        Ok(Response::new(ListUsersResponse {
            users: page.users.into_iter().map(public_user).collect(),
            next_page_token: page.next_page_token,
        }))
    }
}

/// What others may see of a user: never the password hash.
fn public_user(user: UserRecord) -> User {
    User {
        public_id: user.public_id,
        name: user.name,
        admin: user.admin,
        created_at: Some(timestamp_from_micros(user.created_at)),
    }
}
