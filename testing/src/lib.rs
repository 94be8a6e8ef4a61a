//! Bookstore's test kit: fresh databases, free ports, gRPC clients, services
//! started in the process or as child processes, and [`eventually`] for
//! whatever a test has to wait for. One copy of each helper, for every
//! crate's tests.

pub mod contract;
pub mod database;
pub mod grpc;
pub mod net;
pub mod poll;
pub mod processes;
pub mod running;
pub mod tokens;

pub use database::{TestDatabase, postgres_server};
pub use poll::{eventually, eventually_every};

/// The service token the tests' services share (`AUTH_SERVICE_TOKEN`,
/// `BOOKS_SERVICE_TOKEN`): a test value, not a secret.
pub const SERVICE_TOKEN: &str = "bookstore-test-service-token-not-a-secret";
