//! The token interceptor: every BooksService call must carry a valid token;
//! the caller's identity then rides in the request's extensions.
//!
//! It is a tower layer rather than a `tonic::service::Interceptor` because
//! verifying may need to await a key refresh (a token signed with a key
//! published since the last fetch); the check itself is local and in memory:
//! signature (or the verified-token cache), then the revocation list, on
//! every call.

use std::task::{Context, Poll};

use futures::future::BoxFuture;
use tonic::server::NamedService;
use tower::{Layer, Service};

use crate::error::Error;
use crate::jwks::JwksCache;
use crate::revocations::RevocationList;

/// Who is calling, as the token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The user's public id: the owner of the books they create.
    pub public_id: String,
    pub name: String,
}

/// The caller of a request that passed the interceptor.
pub fn caller<T>(request: &tonic::Request<T>) -> Result<&Caller, Error> {
    request
        .extensions()
        .get::<Caller>()
        .ok_or_else(|| Error::Internal(anyhow::anyhow!("BUG: the token interceptor did not run")))
}

/// Wraps a service in [`RequireToken`].
#[derive(Clone)]
pub struct RequireTokenLayer {
    keys: JwksCache,
    revocations: RevocationList,
}

impl RequireTokenLayer {
    pub fn new(keys: JwksCache, revocations: RevocationList) -> Self {
        Self { keys, revocations }
    }
}

impl<S> Layer<S> for RequireTokenLayer {
    type Service = RequireToken<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequireToken { inner, keys: self.keys.clone(), revocations: self.revocations.clone() }
    }
}

/// Refuses calls without a valid token, or with the token of an ended
/// session or a deleted user (`Unauthenticated`; `Unavailable` while no
/// signing keys or revocation list could be fetched yet) and passes the
/// others on with a [`Caller`] extension.
#[derive(Clone)]
pub struct RequireToken<S> {
    inner: S,
    keys: JwksCache,
    revocations: RevocationList,
}

impl<S: NamedService> NamedService for RequireToken<S> {
    const NAME: &'static str = S::NAME;
}

impl<S, Body> Service<http::Request<Body>> for RequireToken<S>
where
    S: Service<http::Request<Body>, Response = http::Response<tonic::body::Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    Body: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<Body>) -> Self::Future {
        // The ready inner service goes into the future; a fresh clone stays.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let (keys, revocations) = (self.keys.clone(), self.revocations.clone());
        Box::pin(async move {
            let verified = match bookstore_tokens::token_from_headers(request.headers()) {
                Ok(token) => match keys.verify(token).await {
                    Ok(claims) => revocations.check(&claims).await.map(|()| claims),
                    Err(error) => Err(error),
                },
                Err(missing) => {
                    keys.failures().record("missing");
                    Err(Error::Unauthenticated(missing.to_string()))
                }
            };
            match verified {
                Ok(claims) => {
                    tracing::debug!(public_id = %claims.sub, "caller authenticated");
                    let caller = Caller { public_id: claims.sub.clone(), name: claims.name.clone() };
                    request.extensions_mut().insert(caller);
                    inner.call(request).await
                }
                Err(error) => Ok(tonic::Status::from(error).into_http()),
            }
        })
    }
}
