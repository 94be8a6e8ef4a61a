//! The one error type of books-service and its one mapping to `tonic::Status`.

use bookstore_proto::errors;
use tonic::Status;

/// Everything a books-service operation can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `InvalidArgument`: a request field is malformed.
    #[error("{field}: {reason}")]
    InvalidArgument { field: &'static str, reason: String },
    /// `Unauthenticated`: the token is missing or not valid.
    #[error("{0}")]
    Unauthenticated(String),
    /// `NotFound`: no such book among the caller's (another user's book is
    /// not found either, so existence never leaks).
    #[error("{0}")]
    NotFound(String),
    /// `Unavailable`: the database or the signing keys cannot be reached.
    #[error("{0}")]
    Unavailable(String),
    /// `Internal`: a bug or an unexpected failure. Details stay in the log.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

/// The result of a books-service operation.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        Self::InvalidArgument { field, reason: reason.into() }
    }

    pub(crate) fn book_not_found(id: i64) -> Self {
        Self::NotFound(format!("book {id} does not exist"))
    }

    /// The database cannot be reached now (no free connection in time, the
    /// store closed, an I/O failure): worth a retry, unlike a bug.
    pub(crate) fn database_unavailable(error: &dyn std::fmt::Display) -> Self {
        tracing::warn!(%error, "database unavailable");
        Self::Unavailable("the book database is unavailable, retry later".to_owned())
    }
}

impl From<sqlx::Error> for Error {
    fn from(error: sqlx::Error) -> Self {
        match error {
            sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::PoolClosed => {
                Self::database_unavailable(&error)
            }
            other => Self::Internal(other.into()),
        }
    }
}

/// The SQLite store's errors. SQLite reports its failures (a busy database
/// included) as database errors, which sqlx's mapping above leaves
/// `Internal` as well; pool exhaustion and closing are mapped by the store.
impl From<rusqlite::Error> for Error {
    fn from(error: rusqlite::Error) -> Self {
        match error.sqlite_error_code() {
            // A lock held past `busy_timeout`: the database is there, busy.
            Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) => {
                Self::database_unavailable(&error)
            }
            _ => Self::Internal(error.into()),
        }
    }
}

impl From<Error> for Status {
    fn from(error: Error) -> Self {
        let message = error.to_string();
        match error {
            Error::InvalidArgument { field, reason } => errors::invalid_field(field, &reason, message),
            Error::Unauthenticated(_) => Status::unauthenticated(message),
            Error::NotFound(_) => Status::not_found(message),
            Error::Unavailable(_) => Status::unavailable(message),
            Error::Internal(source) => {
                tracing::error!(error = ?source, "request failed");
                Status::internal("internal error")
            }
        }
    }
}
