//! The books of users auth-service deleted: deleted here as soon as the
//! revocation feed reports the deletion (`revocations` refuses the user's
//! tokens first, so no new book slips in after). A replica away for longer
//! than the feed keeps a deletion finds the rest by orphan reconciliation
//! (`orphans`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use bookstore_proto::UnixMicros;

use crate::error::Result;
use crate::store::BookStore;

/// Deletes each deleted user's books once, however often the feed's
/// overlapping polls report the deletion.
pub struct DeletedUserBooks {
    store: Arc<dyn BookStore>,
    /// Deleted users whose books are deleted -> until when their revocation
    /// matters (then it is no longer reported and may be forgotten).
    done: Mutex<HashMap<String, UnixMicros>>,
}

impl DeletedUserBooks {
    pub fn new(store: Arc<dyn BookStore>) -> Self {
        Self { store, done: Mutex::new(HashMap::new()) }
    }

    /// Deletes the books of `public_id`, unless done before; a failure is
    /// retried at the next report of the deletion. `relevant_until`: when
    /// the deletion's revocation stops mattering.
    pub async fn delete_once(&self, public_id: &str, relevant_until: UnixMicros) -> Result<()> {
        if self.done().contains_key(public_id) {
            return Ok(());
        }
        let deleted = self.store.delete_books_of_owner(public_id).await?;
        tracing::info!(public_id, deleted, "books of a deleted user deleted");
        self.done().insert(public_id.to_owned(), relevant_until);
        Ok(())
    }

    /// Forgets the users whose revocation stopped mattering before `now`.
    pub fn forget_irrelevant_before(&self, now: UnixMicros) {
        self.done().retain(|_, until| *until >= now);
    }

    fn done(&self) -> MutexGuard<'_, HashMap<String, UnixMicros>> {
        self.done.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
