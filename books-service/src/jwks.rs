//! The auth-service's public keys, fetched with `GetJwks` and kept in memory
//! so that verifying a token costs no call to auth-service, and keeps
//! working while auth-service restarts.
//!
//! Tokens that verified are kept in a bounded cache (until their `exp`, plus
//! the clock-skew leeway the verifier allows), so a client's next call costs
//! a hash lookup instead of an Ed25519 check. Revocation is not the cache's
//! business: the interceptor checks every call, cached or not, against the
//! revocation list. A change of the key set empties the cache.

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use bookstore_proto::UnixMicros;
use bookstore_proto::auth::v1::GetJwksRequest;
use bookstore_proto::auth::v1::auth_service_client::AuthServiceClient;
use bookstore_runtime::Transport;
use bookstore_tokens::{CLOCK_SKEW_LEEWAY, Claims, PublicJwk, TokenError, TokenFailures, TokenPolicy, TokenVerifier};
use tokio::sync::Mutex;

use crate::error::{Error, Result};

/// How long one `GetJwks` call may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(3);
/// Least time between on-demand fetches after a failed one (auth-service
/// still starting, say): short, so the service is usable as soon as
/// auth-service is, yet a flood of requests makes at most a few calls.
const RETRY_AFTER_FAILURE: Duration = Duration::from_millis(500);

/// A cached JWK Set with on-demand, rate-limited refreshes.
#[derive(Clone)]
pub struct JwksCache {
    inner: Arc<Inner>,
}

struct Inner {
    policy: TokenPolicy,
    client: AuthServiceClient<Transport>,
    verifier: RwLock<Option<Arc<TokenVerifier>>>,
    /// When the last fetch was tried and whether it succeeded; held while a
    /// fetch runs, so concurrent callers wait for that one instead of
    /// starting their own.
    last_fetch: Mutex<Option<Fetch>>,
    min_refetch_interval: Duration,
    /// Verified tokens and their claims; `None` when disabled.
    verified: Option<quick_cache::sync::Cache<String, Arc<Claims>>>,
    failures: TokenFailures,
}

/// When keys were last fetched, and whether that worked.
#[derive(Debug, Clone, Copy)]
struct Fetch {
    at: Instant,
    succeeded: bool,
}

impl JwksCache {
    /// `token_cache_capacity` verified tokens are remembered (0: none).
    pub fn new(
        policy: TokenPolicy,
        client: AuthServiceClient<Transport>,
        min_refetch_interval: Duration,
        token_cache_capacity: usize,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                policy,
                client,
                verifier: RwLock::new(None),
                last_fetch: Mutex::new(None),
                min_refetch_interval,
                verified: (token_cache_capacity > 0).then(|| quick_cache::sync::Cache::new(token_cache_capacity)),
                failures: TokenFailures::default(),
            }),
        }
    }

    /// Verifies a token with the cached keys (or finds it among the tokens
    /// verified before). An unknown `kid` (or no keys yet) triggers one
    /// refetch, at most once per `min_refetch_interval`.
    pub async fn verify(&self, token: &str) -> Result<Arc<Claims>> {
        if let Some(claims) = self.verified_before(token) {
            return Ok(claims);
        }
        let claims = Arc::new(self.verify_signature(token).await?);
        if let Some(verified) = &self.inner.verified {
            verified.insert(token.to_owned(), Arc::clone(&claims));
        }
        Ok(claims)
    }

    /// The claims of a token verified before that the verifier would still
    /// accept (not expired).
    fn verified_before(&self, token: &str) -> Option<Arc<Claims>> {
        let verified = self.inner.verified.as_ref()?;
        let claims = verified.get(token)?;
        if claims.exp.saturating_add(CLOCK_SKEW_LEEWAY.as_secs()) > UnixMicros::now().unsigned_secs() {
            return Some(claims);
        }
        verified.remove(token);
        None
    }

    async fn verify_signature(&self, token: &str) -> Result<Claims> {
        if let Some(verifier) = self.current() {
            match verifier.verify(token) {
                Err(TokenError::UnknownKey(_)) => {}
                outcome => return outcome.map_err(|error| self.unauthenticated(&error)),
            }
        }
        self.refresh_if_due().await;
        let Some(verifier) = self.current() else {
            self.inner.failures.record("keys_unavailable");
            return Err(Error::Unavailable(
                "cannot verify tokens yet: the signing keys could not be fetched from auth-service".into(),
            ));
        };
        verifier.verify(token).map_err(|error| self.unauthenticated(&error))
    }

    /// The count of refused tokens, by reason.
    pub fn failures(&self) -> &TokenFailures {
        &self.inner.failures
    }

    fn unauthenticated(&self, error: &TokenError) -> Error {
        self.inner.failures.record(error.reason());
        Error::Unauthenticated(error.to_string())
    }

    /// Fetches the keys now, whatever the rate limit. For the periodic
    /// refresh and for start-up.
    pub async fn refresh(&self) -> Result<()> {
        let mut last_fetch = self.inner.last_fetch.lock().await;
        let fetched = self.fetch().await;
        *last_fetch = Some(Fetch { at: Instant::now(), succeeded: fetched.is_ok() });
        fetched
    }

    async fn refresh_if_due(&self) {
        let mut last_fetch = self.inner.last_fetch.lock().await;
        if let Some(Fetch { at, succeeded }) = *last_fetch {
            let interval = if succeeded { self.inner.min_refetch_interval } else { RETRY_AFTER_FAILURE };
            if at.elapsed() < interval {
                return;
            }
        }
        let fetched = self.fetch().await;
        *last_fetch = Some(Fetch { at: Instant::now(), succeeded: fetched.is_ok() });
        if let Err(error) = fetched {
            tracing::warn!(%error, "cannot refresh the signing keys");
        }
    }

    /// Whether keys have been loaded: until then every call is refused.
    pub fn has_keys(&self) -> bool {
        self.current().is_some()
    }

    async fn fetch(&self) -> Result<()> {
        let mut request = tonic::Request::new(GetJwksRequest {});
        request.set_timeout(FETCH_TIMEOUT);
        let response = self
            .inner
            .client
            .clone()
            .get_jwks(request)
            .await
            .map_err(|status| Error::Unavailable(format!("auth-service GetJwks failed: {}", status.message())))?;
        let keys: Vec<PublicJwk> = response
            .into_inner()
            .keys
            .into_iter()
            .map(|jwk| PublicJwk {
                kty: jwk.kty,
                crv: jwk.crv,
                x: jwk.x,
                kid: jwk.kid,
                alg: jwk.alg,
                key_use: jwk.r#use,
            })
            .collect();
        let verifier = TokenVerifier::new(&self.inner.policy, &keys)
            .map_err(|error| Error::Internal(anyhow::anyhow!("auth-service published a bad key: {error}")))?;
        let mut kids: Vec<&str> = verifier.kids().collect();
        kids.sort_unstable();
        let changed = self.current().is_none_or(|previous| {
            let mut before: Vec<&str> = previous.kids().collect();
            before.sort_unstable();
            before != kids
        });
        if !changed {
            return Ok(());
        }
        tracing::info!(?kids, "signing keys loaded");
        *self.inner.verifier.write().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(Arc::new(verifier));
        // A key may have been withdrawn: nothing it signed may stay trusted.
        if let Some(verified) = &self.inner.verified {
            verified.clear();
        }
        Ok(())
    }

    fn current(&self) -> Option<Arc<TokenVerifier>> {
        self.inner.verifier.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }
}
