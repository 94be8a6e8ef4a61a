//! Orphan reconciliation: deletes the books of users auth-service no longer
//! has. A deleted user's books go within seconds when the revocation feed
//! reports the deletion (`deleted_users`), but the feed keeps a deletion
//! only for a while (a week past the user's last token); a books replica
//! away for longer never reads it. So at start, once the revocation list is
//! loaded, and then every `BOOKS_ORPHAN_SWEEP_INTERVAL_SECS`, this pages
//! through the distinct book owners and asks auth-service
//! (`FindExistingUsers`, a service-only RPC) which of them exist.
//!
//! Fail safe: only owners auth-service explicitly answered as absent lose
//! their books. An unreachable auth-service, an error, a refusal or an
//! answer naming ids that were not asked about stops the pass with nothing
//! more deleted; the next pass starts over. Public ids are never reused, so
//! an owner absent once stays absent. Several books replicas may run it at
//! once: deleting an owner's books is idempotent.
//!
//! It trusts auth-service's user table: pointed at the wrong auth database
//! (another deployment's, or one restored from a backup older than the book
//! database) it would delete the books of every user that database lacks.
//! Turn it off (`0`) while the two databases do not belong together.

use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bookstore_proto::auth::v1::FindExistingUsersRequest;
use bookstore_proto::auth::v1::auth_service_client::AuthServiceClient;
use bookstore_runtime::Transport;
use bookstore_runtime::metrics::SweptRows;
use bookstore_tokens::{SERVICE_TOKEN_METADATA, ServiceToken};
use tokio::time::Instant;

use crate::error::{Error, Result};
use crate::revocations::RevocationList;
use crate::store::BookStore;

/// Owners asked about per `FindExistingUsers` call (auth-service's limit).
const BATCH: u32 = 1000;
/// How long one `FindExistingUsers` call may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// How often to look whether the revocation list is loaded yet, before the
/// first pass.
const WAIT_FOR_REVOCATIONS: Duration = Duration::from_millis(200);

/// Finds and deletes the books of owners auth-service does not know.
#[derive(Clone)]
pub struct OrphanReconciler {
    client: AuthServiceClient<Transport>,
    service_token: tonic::metadata::MetadataValue<tonic::metadata::Ascii>,
    store: Arc<dyn BookStore>,
}

/// What one pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Reconciled {
    /// Distinct owners asked about.
    pub owners: u64,
    /// Owners auth-service answered as absent.
    pub orphaned_owners: u64,
    /// Their books, deleted.
    pub deleted_books: u64,
}

impl OrphanReconciler {
    pub fn new(client: AuthServiceClient<Transport>, service_token: &ServiceToken, store: Arc<dyn BookStore>) -> Self {
        // A service token is printable ASCII, so always a valid value.
        let service_token =
            service_token.expose().parse().unwrap_or_else(|_| tonic::metadata::MetadataValue::from_static(""));
        Self { client, service_token, store }
    }

    /// One pass over every book owner. Stops at the first failure (books of
    /// owners confirmed absent before it stay deleted).
    pub async fn reconcile(&self) -> Result<Reconciled> {
        let mut done = Reconciled::default();
        let mut after = String::new();
        loop {
            let owners = self.store.list_owners(&after, BATCH).await?;
            let Some(last) = owners.last() else { break };
            after.clone_from(last);
            let existing = self.existing(&owners).await?;
            done.owners += owners.len() as u64;
            for owner in owners.iter().filter(|owner| !existing.contains(*owner)) {
                let deleted = self.store.delete_books_of_owner(owner).await?;
                tracing::info!(public_id = %owner, deleted, "books of a user auth-service no longer has deleted");
                done.orphaned_owners += 1;
                done.deleted_books += deleted;
            }
            if owners.len() < BATCH as usize {
                break;
            }
        }
        Ok(done)
    }

    /// Which of `owners` auth-service says exist.
    async fn existing(&self, owners: &[String]) -> Result<HashSet<String>> {
        let mut request = tonic::Request::new(FindExistingUsersRequest { public_ids: owners.to_vec() });
        request.set_timeout(CALL_TIMEOUT);
        request.metadata_mut().insert(SERVICE_TOKEN_METADATA, self.service_token.clone());
        let answer = self.client.clone().find_existing_users(request).await.map_err(|status| {
            Error::Unavailable(format!("auth-service FindExistingUsers failed: {}", status.message()))
        })?;
        let existing: HashSet<String> = answer.into_inner().public_ids.into_iter().collect();
        // An answer about other ids than asked is not an answer to trust.
        if let Some(stranger) = existing.iter().find(|id| !owners.contains(id)) {
            return Err(Error::Unavailable(format!(
                "auth-service FindExistingUsers answered with an id not asked about: {stranger}"
            )));
        }
        Ok(existing)
    }

    /// Runs a pass once `revocations` is loaded, then every `interval`,
    /// until `stop` resolves. Failures are logged; the next pass is one
    /// interval later.
    pub async fn run(
        self,
        revocations: RevocationList,
        interval: Duration,
        swept: SweptRows,
        stop: impl Future<Output = ()>,
    ) {
        tokio::pin!(stop);
        while !revocations.is_loaded() {
            tokio::select! {
                () = &mut stop => return,
                () = tokio::time::sleep(WAIT_FOR_REVOCATIONS) => {}
            }
        }
        loop {
            let started = Instant::now();
            tokio::select! {
                () = &mut stop => return,
                outcome = self.reconcile() => match outcome {
                    Ok(done) => {
                        swept.record("books", done.deleted_books);
                        tracing::info!(
                            owners = done.owners,
                            orphaned_owners = done.orphaned_owners,
                            deleted_books = done.deleted_books,
                            took_ms = started.elapsed().as_millis(),
                            "book owners reconciled with auth-service"
                        );
                    }
                    Err(error) => tracing::warn!(%error, "orphan reconciliation stopped, nothing deleted past the failure; \
                        trying again at the next interval"),
                },
            }
            tokio::select! {
                () = &mut stop => return,
                () = tokio::time::sleep(interval) => {}
            }
        }
    }
}
