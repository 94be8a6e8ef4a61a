//! `bookstore.auth.v1.AuthService` over [`Accounts`]: decode, call, encode.

use std::net::IpAddr;

use bookstore_proto::UnixMicros;
use bookstore_proto::auth::v1::auth_service_server::AuthService;
use bookstore_proto::auth::v1::revocation::Subject;
use bookstore_proto::auth::v1::{
    ChangePasswordRequest, ChangePasswordResponse, DeleteAccountRequest, DeleteAccountResponse,
    FindExistingUsersRequest, FindExistingUsersResponse, GetJwksRequest, GetJwksResponse, Jwk, ListRevocationsRequest,
    ListRevocationsResponse, ListUsersRequest, ListUsersResponse, LoginRequest, LoginResponse, LogoutRequest,
    LogoutResponse, RefreshRequest, RefreshResponse, RegisterRequest, RegisterResponse, Revocation, User,
    ValidateTokenRequest, ValidateTokenResponse,
};
use bookstore_proto::prost_types::Timestamp;
use bookstore_runtime::InProcessCaller;
use bookstore_tokens::{SERVICE_TOKEN_METADATA, ServiceToken};
use tonic::{Request, Response, Status};

use crate::accounts::{Accounts, Authenticated, TokenPair};
use crate::error::Error;
use crate::store::{RevocationKind, RevocationRecord, UserRecord};
use crate::throttle::{ClientRateLimiter, TrustedProxy, client_address};

/// The gRPC face of [`Accounts`].
pub struct AuthGrpc {
    accounts: Accounts,
    /// What callers of the service-only RPCs must present over plaintext.
    service_token: ServiceToken,
    /// The listener verifies client certificates: callers of the
    /// service-only RPCs must present a service's certificate instead.
    service_certificates: bool,
    /// Register and Login calls per client address.
    client_limit: Option<ClientLimit>,
}

impl AuthGrpc {
    pub fn new(accounts: Accounts, service_token: ServiceToken) -> Self {
        Self { accounts, service_token, service_certificates: false, client_limit: None }
    }

    /// The listener verifies client certificates (mutual TLS): the
    /// service-only RPCs then require a certificate issued for one of our
    /// services, and the service token alone is not enough.
    #[must_use]
    pub fn requiring_service_certificates(mut self, required: bool) -> Self {
        self.service_certificates = required;
        self
    }

    /// Refuses a call to a service-only RPC that is not from one of our
    /// services: users (even admins) and strangers get Unauthenticated, a
    /// client certificate of anything but a service PermissionDenied. Our
    /// services prove who they are by a service certificate under mutual
    /// TLS, by the service token otherwise, and by nothing in this process
    /// (the all-in-one's parts call each other without a network).
    fn require_service<T>(&self, request: &Request<T>) -> Result<(), Error> {
        if request.extensions().get::<InProcessCaller>().is_some() {
            return Ok(());
        }
        if self.service_certificates {
            let certificates = bookstore_tls::peer_certificates(request);
            let Some(leaf) = certificates.as_ref().and_then(|chain| chain.first()) else {
                return Err(Error::Unauthenticated(
                    "this RPC is only for Bookstore's own services: present a service certificate".to_owned(),
                ));
            };
            return match bookstore_tls::service_identity(leaf) {
                Some(service) => {
                    tracing::debug!(service, "service-only call by certificate");
                    Ok(())
                }
                None => {
                    tracing::warn!("service-only call refused: the client certificate names no Bookstore service");
                    Err(Error::PermissionDenied(format!(
                        "the client certificate identifies no Bookstore service (no {}SERVICE URI name)",
                        bookstore_tls::SERVICE_URI_PREFIX
                    )))
                }
            };
        }
        let presented = request.metadata().get(SERVICE_TOKEN_METADATA).and_then(|value| value.to_str().ok());
        match presented {
            Some(token) if self.service_token.matches(token) => Ok(()),
            Some(_) => {
                tracing::warn!("service-only call refused: wrong service token");
                Err(Error::Unauthenticated(format!("{SERVICE_TOKEN_METADATA}: is not this deployment's service token")))
            }
            None => Err(Error::Unauthenticated(format!(
                "{SERVICE_TOKEN_METADATA}: is missing: this RPC is only for Bookstore's own services"
            ))),
        }
    }

    /// Limits Register and Login per client address; the client of a call
    /// from one of `trusted_proxies` is the one its `x-forwarded-for` names.
    #[must_use]
    pub fn with_client_limit(mut self, limiter: ClientRateLimiter, trusted_proxies: Vec<TrustedProxy>) -> Self {
        self.client_limit = Some(ClientLimit { limiter, trusted_proxies });
        self
    }

    /// Takes a token from the caller's bucket; the caller, to refund it to
    /// if the call turns out not to count.
    fn check_client_rate<T>(&self, request: &Request<T>) -> Result<Option<IpAddr>, Error> {
        let Some(ClientLimit { limiter, trusted_proxies }) = &self.client_limit else { return Ok(None) };
        let Some(client) = client_address(request, trusted_proxies) else { return Ok(None) };
        limiter.check(client).inspect_err(|_| tracing::info!(%client, "call refused: client rate limit"))?;
        Ok(Some(client))
    }

    fn refund_client_rate(&self, client: Option<IpAddr>) {
        if let (Some(limit), Some(client)) = (&self.client_limit, client) {
            limit.limiter.refund(client);
        }
    }
}

/// Register and Login calls per client address, and whose word to take
/// for a call's client address.
struct ClientLimit {
    limiter: ClientRateLimiter,
    trusted_proxies: Vec<TrustedProxy>,
}

#[tonic::async_trait]
impl AuthService for AuthGrpc {
    async fn register(&self, request: Request<RegisterRequest>) -> Result<Response<RegisterResponse>, Status> {
        // Every registration counts, successful or not: each one creates an
        // account (and costs a hash), so one address cannot mass-create them.
        self.check_client_rate(&request)?;
        let RegisterRequest { name, password } = request.into_inner();
        let user = self.accounts.register(&name, password, false).await?;
        Ok(Response::new(RegisterResponse { user: Some(public_user(user)) }))
    }

    async fn login(&self, request: Request<LoginRequest>) -> Result<Response<LoginResponse>, Status> {
        // Failed logins count against the address; successful ones do not.
        let client = self.check_client_rate(&request)?;
        let LoginRequest { name, password } = request.into_inner();
        let pair = self.accounts.login(&name, password).await?;
        self.refund_client_rate(client);
        Ok(Response::new(pair.into()))
    }

    async fn refresh(&self, request: Request<RefreshRequest>) -> Result<Response<RefreshResponse>, Status> {
        let pair = self.accounts.refresh(&request.get_ref().refresh_token).await?;
        Ok(Response::new(pair.into()))
    }

    async fn logout(&self, request: Request<LogoutRequest>) -> Result<Response<LogoutResponse>, Status> {
        let access_token = token_of(&request).ok();
        let refresh_token = Some(request.get_ref().refresh_token.as_str()).filter(|token| !token.is_empty());
        self.accounts.logout(access_token.as_deref(), refresh_token).await?;
        Ok(Response::new(LogoutResponse {}))
    }

    async fn change_password(
        &self,
        request: Request<ChangePasswordRequest>,
    ) -> Result<Response<ChangePasswordResponse>, Status> {
        let token = token_of(&request)?;
        let ChangePasswordRequest { current_password, new_password } = request.into_inner();
        let pair = self.accounts.change_password(&token, current_password, new_password).await?;
        Ok(Response::new(pair.into()))
    }

    async fn delete_account(
        &self,
        request: Request<DeleteAccountRequest>,
    ) -> Result<Response<DeleteAccountResponse>, Status> {
        let token = token_of(&request)?;
        self.accounts.delete_account(&token, request.into_inner().password).await?;
        Ok(Response::new(DeleteAccountResponse {}))
    }

    async fn list_revocations(
        &self,
        request: Request<ListRevocationsRequest>,
    ) -> Result<Response<ListRevocationsResponse>, Status> {
        self.require_service(&request)?;
        let ListRevocationsRequest { since, page_size, page_token } = request.into_inner();
        let since = since
            .map_or(0, |since| since.seconds.saturating_mul(1_000_000).saturating_add(i64::from(since.nanos / 1_000)));
        let page = self.accounts.list_revocations(since, page_size, &page_token).await?;
        Ok(Response::new(ListRevocationsResponse {
            revocations: page.revocations.into_iter().map(revocation).collect(),
            next_page_token: page.next_page_token,
        }))
    }

    async fn find_existing_users(
        &self,
        request: Request<FindExistingUsersRequest>,
    ) -> Result<Response<FindExistingUsersResponse>, Status> {
        self.require_service(&request)?;
        let public_ids = self.accounts.find_existing_users(&request.get_ref().public_ids).await?;
        Ok(Response::new(FindExistingUsersResponse { public_ids }))
    }

    async fn validate_token(
        &self,
        request: Request<ValidateTokenRequest>,
    ) -> Result<Response<ValidateTokenResponse>, Status> {
        // The admin flag as the database has it now: the claim in the token
        // may predate a demotion.
        let Authenticated { claims, user } = self.accounts.authenticate(&request.get_ref().token).await?;
        Ok(Response::new(ValidateTokenResponse {
            public_id: claims.sub,
            name: user.name,
            admin: user.admin,
            expires_at: Some(Timestamp { seconds: i64::try_from(claims.exp).unwrap_or(i64::MAX), nanos: 0 }),
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
        let token = token_of(&request)?;
        let ListUsersRequest { page_size, page_token } = request.into_inner();
        let page = self.accounts.list_users(&token, page_size, &page_token).await?;
        Ok(Response::new(ListUsersResponse {
            users: page.users.into_iter().map(public_user).collect(),
            next_page_token: page.next_page_token,
        }))
    }
}

/// The caller's token from `authorization: Bearer` or `x-access-tokens`.
fn token_of<T>(request: &Request<T>) -> Result<String, Error> {
    bookstore_tokens::token_from_headers(&request.metadata().clone().into_headers())
        .map(str::to_owned)
        .map_err(|missing| Error::Unauthenticated(missing.to_string()))
}

fn revocation(record: RevocationRecord) -> Revocation {
    let subject = match record.kind {
        RevocationKind::DeletedUser => Subject::DeletedUserPublicId(record.subject),
        RevocationKind::Session => Subject::SessionId(record.subject),
    };
    Revocation {
        subject: Some(subject),
        revoked_at: Some(Timestamp::from(UnixMicros(record.revoked_at))),
        relevant_until: Some(Timestamp::from(UnixMicros(record.relevant_until))),
    }
}

/// What others may see of a user: never the password hash.
fn public_user(user: UserRecord) -> User {
    User {
        public_id: user.public_id,
        name: user.name,
        admin: user.admin,
        created_at: Some(Timestamp::from(UnixMicros(user.created_at))),
    }
}

/// Login, Refresh and ChangePassword each answer with a new token pair, in
/// a response message of their own with the same four fields.
macro_rules! answers_with_a_token_pair {
    ($($response:ty),+) => {$(
        impl From<TokenPair> for $response {
            fn from(pair: TokenPair) -> Self {
                Self {
                    expires_in: pair.expires_in(),
                    access_token: pair.access.token,
                    token_type: "Bearer".into(),
                    refresh_token: pair.refresh_token,
                }
            }
        }
    )+};
}

answers_with_a_token_pair!(LoginResponse, RefreshResponse, ChangePasswordResponse);
