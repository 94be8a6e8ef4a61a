//! auth-service: registers users (argon2id), logs them in with EdDSA-signed
//! JWTs, validates tokens, publishes its JWKS and lists users for admins.

pub mod accounts;
pub mod admin;
mod app;
pub mod config;
mod domain;
mod error;
mod grpc;
mod keys;
mod password;
pub mod store;
pub mod sweep;
pub mod throttle;

pub use app::{App, accounts};
pub use config::Settings;
pub use error::{Error, Result};
