//! Loopback addresses for servers a test starts.

use std::net::SocketAddr;

/// A loopback address with a port that was free a moment ago, for a server
/// that binds it itself (a child process, or a restart on the same port).
///
/// # Panics
/// When no loopback port can be bound.
#[must_use]
pub fn free_addr() -> SocketAddr {
    #[allow(clippy::expect_used)]
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free loopback port");
    #[allow(clippy::expect_used)]
    listener.local_addr().expect("the address of a bound listener")
}
