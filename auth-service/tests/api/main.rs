//! auth-service driven over gRPC as a client would: a real server on
//! loopback, a real SQLite file, a real key file.

#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers outside #[test] fns, too

mod abuse;
mod auth;
mod helpers;
mod sessions;
mod sweep;
