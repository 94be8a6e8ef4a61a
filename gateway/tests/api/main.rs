//! The gateway's integration tests: real auth-service, books-service and
//! gateway on ephemeral ports, called over HTTP as a tutorial client would.

// Helpers fail the test by panicking; clippy's `allow-unwrap-in-tests`
// covers only `#[test]` functions, not the helpers they call.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod abuse;
mod accounts;
mod books;
mod cors;
mod helpers;
mod openapi;
mod service;
mod sessions;
mod telemetry;
mod users;
mod vanishing;
