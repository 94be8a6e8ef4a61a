//! The one error type of books-service and its one mapping to `tonic::Status`.

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
}

impl From<sqlx::Error> for Error {
    fn from(error: sqlx::Error) -> Self {
        match error {
            sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::PoolClosed => {
                tracing::warn!(%error, "database unavailable");
                Self::Unavailable("the book database is unavailable, retry later".to_owned())
            }
            other => Self::Internal(other.into()),
        }
    }
}

impl From<Error> for Status {
    fn from(error: Error) -> Self {
        let message = error.to_string();
        match error {
            Error::InvalidArgument { .. } => Status::invalid_argument(message),
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
