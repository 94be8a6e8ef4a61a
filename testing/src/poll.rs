//! Waiting for something that happens in the background: a server becoming
//! ready, a revocation reaching a service, a sweep running.

use std::fmt::Display;
use std::future::Future;
use std::time::{Duration, Instant};

/// How long [`eventually`] waits between attempts.
pub const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// Calls `attempt` every [`POLL_INTERVAL`] until it returns `Ok`, and
/// returns that value.
///
/// # Panics
/// When `attempt` still fails after `timeout`; the message is its last error.
pub async fn eventually<T, E, F, Fut>(timeout: Duration, attempt: F) -> T
where
    E: Display,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    eventually_every(timeout, POLL_INTERVAL, attempt).await
}

/// [`eventually`] with another interval between attempts.
///
/// # Panics
/// When `attempt` still fails after `timeout`; the message is its last error.
pub async fn eventually_every<T, E, F, Fut>(timeout: Duration, interval: Duration, mut attempt: F) -> T
where
    E: Display,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let started = Instant::now();
    loop {
        match attempt().await {
            Ok(value) => return value,
            Err(error) => assert!(started.elapsed() < timeout, "{error} (after {timeout:?})"),
        }
        tokio::time::sleep(interval).await;
    }
}
