//! Loopback addresses for servers a test starts.

use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicU32, Ordering};

/// The lowest port [`free_addr`] hands out.
const LOWEST: u16 = 10_000;

/// How many ports this process has handed out.
static HANDED_OUT: AtomicU32 = AtomicU32::new(0);

/// A loopback address with a port that was free a moment ago, for a server
/// that binds it itself (a child process, or a restart on the same port).
///
/// The port lies below the kernel's ephemeral range, where `bind(0)` and
/// outgoing connections take theirs: a port asked for with `:0` is one
/// the kernel may give the very next client socket, and a server started a
/// moment later then fails with "address in use". Below that range only
/// another `free_addr` could take it, and this process never hands out a
/// port twice (other processes start elsewhere in the range).
///
/// # Panics
/// When no loopback port can be bound.
#[must_use]
pub fn free_addr() -> SocketAddr {
    let highest = ephemeral_start().saturating_sub(1);
    if highest > LOWEST {
        let span = u32::from(highest - LOWEST) + 1;
        let start = std::process::id().wrapping_mul(7919) % span;
        for _ in 0..span {
            let offset = (start + HANDED_OUT.fetch_add(1, Ordering::Relaxed)) % span;
            let port = LOWEST + u16::try_from(offset).unwrap_or(0);
            if let Ok(listener) = TcpListener::bind(("127.0.0.1", port)) {
                return local_addr(&listener);
            }
        }
    }
    #[allow(clippy::expect_used)]
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free loopback port");
    local_addr(&listener)
}

/// The first port of the kernel's ephemeral range (Linux's default where
/// it cannot be read).
fn ephemeral_start() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse().ok())
        .unwrap_or(32_768)
}

fn local_addr(listener: &TcpListener) -> SocketAddr {
    #[allow(clippy::expect_used)]
    listener.local_addr().expect("the address of a bound listener")
}
