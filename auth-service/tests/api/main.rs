//! auth-service driven over gRPC as a client would: a real server on
//! loopback, a real SQLite file, a real key file.

mod auth;
mod helpers;
