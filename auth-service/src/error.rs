//! The one error type of auth-service and its one mapping to `tonic::Status`.

use bookstore_proto::errors;
use tonic::Status;

/// Everything an auth-service operation can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `InvalidArgument`: a request field is malformed.
    #[error("{field}: {reason}")]
    InvalidArgument { field: &'static str, reason: String },
    /// `Unauthenticated`: wrong credentials, or a missing or bad token.
    #[error("{0}")]
    Unauthenticated(String),
    /// `Unauthenticated` about a credential field of the request (a
    /// password, a refresh token) rather than the caller's access token;
    /// callers tell the two apart by the `WRONG_CREDENTIAL` error reason.
    #[error("{field}: {reason}")]
    WrongCredential { field: &'static str, reason: String },
    /// `PermissionDenied`: authenticated, but not allowed (not an admin).
    #[error("{0}")]
    PermissionDenied(String),
    /// `NotFound`.
    #[error("{0}")]
    NotFound(String),
    /// `AlreadyExists`: a unique constraint (the user name) was violated.
    #[error("{0}")]
    AlreadyExists(String),
    /// `ResourceExhausted`: too much concurrent password hashing; retry later.
    #[error("{0}")]
    ResourceExhausted(String),
    /// `ResourceExhausted` with `retry-after` metadata (whole seconds): too
    /// many attempts from this address or for this name; wait that long.
    #[error("{message}")]
    RateLimited { message: String, retry_after: std::time::Duration },
    /// `Unavailable`: the database cannot be reached; retry later.
    #[error("{0}")]
    Unavailable(String),
    /// `Internal`: a bug or an unexpected failure. Details stay in the log.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

/// The result of an auth-service operation.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        Self::InvalidArgument { field, reason: reason.into() }
    }

    pub(crate) fn wrong_credential(field: &'static str, reason: impl Into<String>) -> Self {
        Self::WrongCredential { field, reason: reason.into() }
    }

    /// Maps a database error: unique violations become `AlreadyExists` with
    /// `on_unique` as message, lost connections `Unavailable`.
    pub(crate) fn from_db(error: sqlx::Error, on_unique: &str) -> Self {
        match error {
            sqlx::Error::Database(db) if db.is_unique_violation() => Self::AlreadyExists(on_unique.to_owned()),
            sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::PoolClosed => {
                tracing::warn!(%error, "database unavailable");
                Self::Unavailable("the user database is unavailable, retry later".to_owned())
            }
            other => Self::Internal(other.into()),
        }
    }
}

impl From<sqlx::Error> for Error {
    fn from(error: sqlx::Error) -> Self {
        Self::from_db(error, "already exists")
    }
}

impl From<Error> for Status {
    fn from(error: Error) -> Self {
        let message = error.to_string();
        match error {
            Error::InvalidArgument { field, reason } => errors::invalid_field(field, &reason, message),
            Error::Unauthenticated(_) => Status::unauthenticated(message),
            Error::WrongCredential { field, .. } => {
                errors::with_reason(tonic::Code::Unauthenticated, message, errors::WRONG_CREDENTIAL, field)
            }
            Error::PermissionDenied(_) => Status::permission_denied(message),
            Error::NotFound(_) => Status::not_found(message),
            Error::AlreadyExists(_) => Status::already_exists(message),
            Error::ResourceExhausted(_) => Status::resource_exhausted(message),
            Error::RateLimited { retry_after, .. } => {
                let mut status = Status::resource_exhausted(message);
                // Whole seconds, rounded up: never "retry after 0".
                let seconds = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
                status
                    .metadata_mut()
                    .insert(bookstore_runtime::RETRY_AFTER, tonic::metadata::MetadataValue::from(seconds.max(1)));
                status
            }
            Error::Unavailable(_) => Status::unavailable(message),
            Error::Internal(source) => {
                tracing::error!(error = ?source, "request failed");
                Status::internal("internal error")
            }
        }
    }
}
