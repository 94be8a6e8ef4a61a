//! books-service: per-user book CRUD over gRPC, every call gated by a token
//! interceptor that verifies auth-service's JWTs locally.

mod app;
pub mod config;
mod deleted_users;
pub mod domain;
mod error;
mod grpc;
mod interceptor;
mod jwks;
pub mod orphans;
mod revocations;
pub mod store;

pub use app::App;
pub use config::Settings;
pub use error::{Error, Result};
