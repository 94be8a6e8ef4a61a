//! Sessions and their tokens: starting one at login, refreshing, ending
//! (logout, password change, admin), the revocation feed other services
//! read, and checking a presented access token.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bookstore_proto::{UnixMicros, pagination};
use bookstore_tokens::{CLOCK_SKEW_LEEWAY, Claims, IssuedToken, PublicJwk};
use sha2::{Digest as _, Sha256};

use super::Accounts;
use crate::domain::UserName;
use crate::error::{Error, Result};
use crate::store::{NewSession, NextRefreshToken, RevocationRecord, Rotation, SweepCutoffs, SweepReport, UserRecord};

/// Random bytes in a refresh token.
const REFRESH_TOKEN_BYTES: usize = 32;
/// Longer input is not a refresh token; refused before hashing.
const MAX_REFRESH_TOKEN_CHARS: usize = 128;

/// How long refresh tokens live and how a spent one presented again is
/// treated.
#[derive(Debug, Clone, Copy)]
pub struct SessionPolicy {
    /// Lifetime of a refresh token (each rotation starts a new one).
    pub refresh_ttl: Duration,
    /// A spent refresh token presented again within this time of its
    /// rotation is refused without ending the session (two tabs refreshing
    /// at once); later, it ends the session (a stolen copy).
    pub reuse_grace: Duration,
}

/// An access token and the refresh token of the same session.
#[derive(Debug, Clone)]
pub struct TokenPair {
    pub access: IssuedToken,
    pub refresh_token: String,
}

impl TokenPair {
    /// Seconds until the access token expires.
    pub fn expires_in(&self) -> i64 {
        i64::try_from(self.access.claims.exp.saturating_sub(self.access.claims.iat)).unwrap_or(i64::MAX)
    }
}

/// The holder of a valid token: its claims and its user as stored now.
#[derive(Debug)]
pub struct Authenticated {
    pub claims: Claims,
    pub user: UserRecord,
}

/// One page of the revocation feed.
#[derive(Debug)]
pub struct RevocationPage {
    pub revocations: Vec<RevocationRecord>,
    pub next_page_token: String,
}

impl Accounts {
    /// Starts a session for `user`: an access token carrying its id and its
    /// first refresh token.
    pub(super) async fn start_session(&self, user: &UserRecord) -> Result<TokenPair> {
        let NewRefreshToken { token: refresh_token, hash: refresh_token_hash } = new_refresh_token();
        let now = UnixMicros::now().get();
        let session_id = uuid::Uuid::new_v4().to_string();
        self.store
            .create_session(NewSession {
                id: session_id.clone(),
                user_id: user.id,
                refresh_token_hash,
                created_at: now,
                refresh_expires_at: now.saturating_add(micros(self.sessions.refresh_ttl)),
            })
            .await?;
        let access = self.issue(user, &session_id)?;
        tracing::info!(public_id = %user.public_id, session_id, "session started");
        Ok(TokenPair { access, refresh_token })
    }

    fn issue(&self, user: &UserRecord, session_id: &str) -> Result<IssuedToken> {
        self.signer
            .issue(&user.public_id, &user.name, user.admin, session_id)
            .map_err(|error| Error::Internal(error.into()))
    }

    /// Spends a refresh token for a new pair. A spent token presented again
    /// after the grace window ends its session.
    #[tracing::instrument(skip_all)]
    pub async fn refresh(&self, refresh_token: &str) -> Result<TokenPair> {
        let token_hash = refresh_token_hash(refresh_token)?;
        let NewRefreshToken { token: next_token, hash: next_hash } = new_refresh_token();
        let now = UnixMicros::now().get();
        let next = NextRefreshToken {
            hash: next_hash,
            now,
            expires_at: now.saturating_add(micros(self.sessions.refresh_ttl)),
        };
        match self.store.rotate_refresh_token(&token_hash, next).await? {
            Rotation::Rotated { session_id, user } => {
                let access = self.issue(&user, &session_id)?;
                tracing::info!(public_id = %user.public_id, session_id, "session refreshed");
                Ok(TokenPair { access, refresh_token: next_token })
            }
            Rotation::AlreadySpent { session_id, rotated_at } => {
                if now.saturating_sub(rotated_at) <= micros(self.sessions.reuse_grace) {
                    return Err(Error::wrong_credential(
                        "refresh_token",
                        "was already used; use the one its refresh returned",
                    ));
                }
                self.store.revoke_session(&session_id, now, self.relevant_until(now)).await?;
                tracing::warn!(session_id, "spent refresh token presented again: session revoked");
                Err(Error::wrong_credential("refresh_token", "was already used; the session is revoked, log in again"))
            }
            Rotation::Invalid => Err(Error::wrong_credential("refresh_token", "is not valid")),
        }
    }

    /// Ends the session of an access token (its signature is enough: ending
    /// an ended session is fine) and/or that of a refresh token.
    #[tracing::instrument(skip_all)]
    pub async fn logout(&self, access_token: Option<&str>, refresh_token: Option<&str>) -> Result<()> {
        let mut sessions = Vec::new();
        if let Some(token) = access_token {
            sessions.push(self.validate_signature(token)?.sid);
        }
        if let Some(token) = refresh_token {
            let session = self.store.session_of_refresh_token(&refresh_token_hash(token)?).await?;
            sessions.push(session.ok_or_else(|| Error::wrong_credential("refresh_token", "is not valid"))?);
        }
        if sessions.is_empty() {
            return Err(Error::Unauthenticated(bookstore_tokens::MissingToken.to_string()));
        }
        let now = UnixMicros::now().get();
        for session_id in sessions {
            if self.store.revoke_session(&session_id, now, self.relevant_until(now)).await? {
                tracing::info!(session_id, "session ended");
            }
        }
        Ok(())
    }

    /// Ends every session of a user (the admin command); how many.
    pub async fn revoke_sessions(&self, name: &str) -> Result<u64> {
        let name = UserName::parse(name)?;
        let user = self
            .store
            .find_user_by_name_key(&name.key())
            .await?
            .ok_or_else(|| Error::NotFound("no user with this name".into()))?;
        let now = UnixMicros::now().get();
        self.store.revoke_user_sessions(user.id, now, self.relevant_until(now)).await
    }

    /// A page of the revocation feed, from `since` (unix micros).
    pub async fn list_revocations(&self, since: i64, page_size: i32, page_token: &str) -> Result<RevocationPage> {
        let limit = pagination::effective_page_size(page_size)
            .ok_or_else(|| Error::invalid("page_size", "must not be negative"))?;
        let after = pagination::parse_page_token(page_token)
            .ok_or_else(|| Error::invalid("page_token", "is not a token this service issued"))?;
        let rows = self.store.list_revocations(since, after, limit + 1).await?;
        let (revocations, next_page_token) = pagination::into_page(rows, limit, |row| row.id);
        Ok(RevocationPage { revocations, next_page_token })
    }

    /// Until when a revocation made `now` matters: the longest an access
    /// token issued before it stays valid, clock skew allowance included.
    pub(super) fn relevant_until(&self, now: i64) -> i64 {
        now.saturating_add(micros(self.longest_access_token()))
    }

    /// The longest an access token is accepted: its lifetime plus the
    /// clock skew leeway of verifiers.
    pub(super) fn longest_access_token(&self) -> Duration {
        self.signer.lifetime() + CLOCK_SKEW_LEEWAY
    }

    /// Deletes the rows no request will use again, as of now (see
    /// `store::sweep_sql`); deleted users' revocations are kept
    /// `deleted_user_retention` past their `relevant_until`.
    pub async fn sweep_stale_rows(&self, deleted_user_retention: Duration) -> Result<SweepReport> {
        let cutoffs = SweepCutoffs::at(UnixMicros::now().get(), self.longest_access_token(), deleted_user_retention);
        self.store.sweep(cutoffs).await
    }

    /// Verifies a token's signature, issuer, audience and expiry, and that
    /// its session is open and its user exists.
    pub async fn authenticate(&self, token: &str) -> Result<Authenticated> {
        let claims = self.validate_signature(token)?;
        let user = self
            .store
            .find_active_session_user(&claims.sid)
            .await?
            .filter(|user| user.public_id == claims.sub)
            .ok_or_else(|| Error::Unauthenticated("token's session has ended: log in again".into()))?;
        Ok(Authenticated { claims, user })
    }

    /// Verifies a token's signature, issuer, audience and expiry only.
    pub(super) fn validate_signature(&self, token: &str) -> Result<Claims> {
        self.verifier.verify(token).map_err(|error| {
            self.token_failures.record(error.reason());
            Error::Unauthenticated(error.to_string())
        })
    }

    /// The public keys that verify this service's tokens.
    pub fn jwks(&self) -> &[PublicJwk] {
        &self.jwks
    }
}

/// A new refresh token (256 random bits, base64url) and its SHA-256 (hex),
/// which is all the database keeps.
fn new_refresh_token() -> NewRefreshToken {
    let mut bytes = [0; REFRESH_TOKEN_BYTES];
    bookstore_tokens::os_random(&mut bytes);
    let token = URL_SAFE_NO_PAD.encode(bytes);
    let hash = sha256_hex(&token);
    NewRefreshToken { token, hash }
}

/// A refresh token for the client and its hash for the database.
struct NewRefreshToken {
    token: String,
    /// SHA-256 (hex) of `token`.
    hash: String,
}

/// The stored form of a presented refresh token.
fn refresh_token_hash(token: &str) -> Result<String> {
    let token = token.trim();
    if token.is_empty() {
        return Err(Error::invalid("refresh_token", "must not be empty"));
    }
    if token.len() > MAX_REFRESH_TOKEN_CHARS {
        return Err(Error::wrong_credential("refresh_token", "is not valid"));
    }
    Ok(sha256_hex(token))
}

fn sha256_hex(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

fn micros(duration: Duration) -> i64 {
    i64::try_from(duration.as_micros()).unwrap_or(i64::MAX)
}
