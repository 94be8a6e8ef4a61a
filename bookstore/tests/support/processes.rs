//! The kit's process helpers (`bookstore_testing::processes`) bound to this
//! crate's `bookstore` binary, for the tests that kill, outlive or restart
//! it (`crash.rs`, `outage.rs`, `backup.rs`, `all_in_one.rs`).

// Each test binary includes this module and uses a part of it.
#![allow(dead_code, unused_imports)]

use std::path::Path;

pub use bookstore_testing::grpc::{channel, wait_serving};
pub use bookstore_testing::net::free_addr;
pub use bookstore_testing::processes::Ports;
use tokio::process::Child;

pub const BIN: &str = env!("CARGO_BIN_EXE_bookstore");

/// `bookstore SUBCOMMAND` with `env`, its log in `dir/SUBCOMMAND.log`,
/// killed when dropped.
pub fn spawn(dir: &Path, subcommand: &str, env: &[(&str, String)]) -> Child {
    bookstore_testing::processes::spawn(BIN, dir, subcommand, env)
}

/// Starts the all-in-one on `data` on free ports and waits until the
/// gateway is ready; it and the gateway's base URL.
pub async fn start_all_in_one(data: &Path, http: &reqwest::Client) -> (Child, String) {
    bookstore_testing::processes::start_all_in_one(BIN, data, http).await
}

/// Starts the all-in-one on `data` on `ports`, with `env`, and waits until
/// the gateway is ready.
pub async fn start_all_in_one_on(data: &Path, http: &reqwest::Client, ports: &Ports, env: &[(&str, String)]) -> Child {
    bookstore_testing::processes::start_all_in_one_on(BIN, data, http, ports, env).await
}
