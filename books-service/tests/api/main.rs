//! books-service driven over gRPC as a client would: real auth-service and
//! books-service processes' worth of servers on loopback, real SQLite files.

#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers outside #[test] fns, too

mod books;
mod helpers;
mod orphans;
mod sessions;
mod tokens;
