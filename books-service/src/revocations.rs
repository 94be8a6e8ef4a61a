//! The sessions and users whose tokens must be refused although their
//! signatures are good: auth-service's revocation feed (`ListRevocations`),
//! polled in the background and consulted in memory on every call.
//!
//! A revocation takes effect here within one refresh interval
//! (`BOOKS_REVOCATION_REFRESH_SECS`). While auth-service cannot be reached
//! the last list keeps being used (tokens revoked meanwhile stay accepted
//! until the feed answers again or they expire); every failed poll logs a
//! warning with how stale the list is. When the feed reports a deleted user,
//! `deleted_users` deletes their books, after their tokens are refused here.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use bookstore_proto::UnixMicros;
use bookstore_proto::auth::v1::auth_service_client::AuthServiceClient;
use bookstore_proto::auth::v1::revocation::Subject;
use bookstore_proto::auth::v1::{ListRevocationsRequest, Revocation};
use bookstore_proto::prost_types::Timestamp;
use bookstore_runtime::Transport;
use bookstore_tokens::{Claims, SERVICE_TOKEN_METADATA, ServiceToken};
use tokio::sync::Mutex;

use crate::deleted_users::DeletedUserBooks;
use crate::error::{Error, Result};

/// How long one `ListRevocations` call may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(3);
/// Each poll asks again for this much before the newest revocation seen:
/// writers on several auth replicas (or PostgreSQL sessions) may commit
/// out of order, and their clocks may differ a little.
const OVERLAP: Duration = Duration::from_secs(30);
/// Least time between on-demand loads while no list was ever loaded.
const RETRY_AFTER_FAILURE: Duration = Duration::from_millis(500);
const PAGE_SIZE: i32 = 1000;

/// The revoked sessions and deleted users, shared by every call.
#[derive(Clone)]
pub struct RevocationList {
    inner: Arc<Inner>,
}

struct Inner {
    client: AuthServiceClient<Transport>,
    /// The feed is only for services: this proves we are one.
    service_token: tonic::metadata::MetadataValue<tonic::metadata::Ascii>,
    deleted_user_books: DeletedUserBooks,
    revoked: RwLock<Revoked>,
    /// Held while a poll runs, so polls never overlap.
    progress: Mutex<Progress>,
}

#[derive(Default)]
struct Revoked {
    /// Session id -> until when it matters.
    sessions: HashMap<String, UnixMicros>,
    /// Deleted user's public id -> until when it matters.
    users: HashMap<String, UnixMicros>,
    /// When the list was last brought up to date.
    loaded_at: Option<Instant>,
}

#[derive(Default)]
struct Progress {
    /// The newest `revoked_at` seen (auth-service's clock).
    newest: UnixMicros,
    /// When the last poll started.
    last_attempt_at: Option<Instant>,
}

impl RevocationList {
    pub fn new(
        client: AuthServiceClient<Transport>,
        service_token: &ServiceToken,
        deleted_user_books: DeletedUserBooks,
    ) -> Self {
        // A service token is printable ASCII, so always a valid value.
        let service_token =
            service_token.expose().parse().unwrap_or_else(|_| tonic::metadata::MetadataValue::from_static(""));
        Self {
            inner: Arc::new(Inner {
                client,
                service_token,
                deleted_user_books,
                revoked: RwLock::new(Revoked::default()),
                progress: Mutex::new(Progress::default()),
            }),
        }
    }

    /// Refuses the token of an ended session or a deleted user. Until the
    /// first list is loaded, tries to load it (rate-limited) and answers
    /// `Unavailable` if that fails: a restarted replica must not accept
    /// revoked tokens.
    pub async fn check(&self, claims: &Claims) -> Result<()> {
        if !self.is_loaded() {
            self.load_if_due().await;
            if !self.is_loaded() {
                return Err(Error::Unavailable(
                    "cannot check tokens yet: the revocation list could not be fetched from auth-service".into(),
                ));
            }
        }
        let revoked = self.read();
        if revoked.users.contains_key(&claims.sub) {
            return Err(Error::Unauthenticated("token's user has been deleted".into()));
        }
        if revoked.sessions.contains_key(&claims.sid) {
            return Err(Error::Unauthenticated("token's session has ended: log in again".into()));
        }
        Ok(())
    }

    /// Whether a list has been loaded at least once.
    pub fn is_loaded(&self) -> bool {
        self.read().loaded_at.is_some()
    }

    /// How long ago the list was last brought up to date.
    pub fn staleness(&self) -> Option<Duration> {
        self.read().loaded_at.map(|at| at.elapsed())
    }

    async fn load_if_due(&self) {
        let mut progress = self.inner.progress.lock().await;
        if self.is_loaded() {
            return;
        }
        if progress.last_attempt_at.is_some_and(|at| at.elapsed() < RETRY_AFTER_FAILURE) {
            return;
        }
        if let Err(error) = self.poll(&mut progress).await {
            tracing::warn!(%error, "cannot load the revocation list");
        }
    }

    /// Brings the list up to date: new revocations in, expired ones out,
    /// deleted users' books deleted (see `deleted_users`).
    pub async fn refresh(&self) -> Result<()> {
        let mut progress = self.inner.progress.lock().await;
        self.poll(&mut progress).await
    }

    async fn poll(&self, progress: &mut Progress) -> Result<()> {
        let polled = self.fetch_and_apply(progress).await;
        progress.last_attempt_at = Some(Instant::now());
        polled?;
        let now = UnixMicros::now();
        self.inner.deleted_user_books.forget_irrelevant_before(now);
        let mut revoked = self.write();
        revoked.sessions.retain(|_, until| *until >= now);
        revoked.users.retain(|_, until| *until >= now);
        revoked.loaded_at = Some(Instant::now());
        Ok(())
    }

    async fn fetch_and_apply(&self, progress: &mut Progress) -> Result<()> {
        let since =
            (progress.newest > UnixMicros::EPOCH).then(|| Timestamp::from(progress.newest.saturating_sub(OVERLAP)));
        let mut page_token = String::new();
        let mut newest = progress.newest;
        loop {
            let mut request = tonic::Request::new(ListRevocationsRequest {
                since,
                page_size: PAGE_SIZE,
                page_token: std::mem::take(&mut page_token),
            });
            request.set_timeout(FETCH_TIMEOUT);
            request.metadata_mut().insert(SERVICE_TOKEN_METADATA, self.inner.service_token.clone());
            let page = self.inner.client.clone().list_revocations(request).await.map_err(|status| {
                Error::Unavailable(format!("auth-service ListRevocations failed: {}", status.message()))
            })?;
            let page = page.into_inner();
            for revocation in page.revocations {
                newest = newest.max(self.apply(revocation).await?);
            }
            if page.next_page_token.is_empty() {
                break;
            }
            page_token = page.next_page_token;
        }
        // Only once everything up to `newest` is applied (a failed book
        // deletion is retried by the next poll).
        progress.newest = newest;
        Ok(())
    }

    /// Applies one revocation; its `revoked_at`.
    async fn apply(&self, revocation: Revocation) -> Result<UnixMicros> {
        let until = revocation.relevant_until.as_ref().map_or(UnixMicros::MAX, UnixMicros::from);
        match revocation.subject {
            Some(Subject::SessionId(session_id)) => {
                self.write().sessions.insert(session_id, until);
            }
            Some(Subject::DeletedUserPublicId(public_id)) => {
                // Refuse first, then delete, so that no new book slips in
                // after (but for calls already past the check).
                let until = *self.write().users.entry(public_id.clone()).or_insert(until);
                self.inner.deleted_user_books.delete_once(&public_id, until).await?;
            }
            None => {}
        }
        Ok(revocation.revoked_at.as_ref().map_or(UnixMicros::EPOCH, UnixMicros::from))
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Revoked> {
        self.inner.revoked.read().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Revoked> {
        self.inner.revoked.write().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
