//! books-service driven over gRPC as a client would: real auth-service and
//! books-service processes' worth of servers on loopback, real SQLite files.

mod books;
mod helpers;
mod tokens;
