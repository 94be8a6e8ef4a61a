//! The periodic sweep that keeps the session, token, revocation and login
//! throttle tables bounded: every `AUTH_SWEEP_INTERVAL_SECS` it deletes the
//! rows no request will use again (the rules: `store::sweep_sql`).
//!
//! Several replicas on one PostgreSQL each run it; the deletes are
//! conditional and idempotent, so sweeps that meet only share the work. The
//! first sweep waits a random part of the interval, so replicas started
//! together do not sweep in step.

use std::future::Future;
use std::time::Duration;

use bookstore_runtime::metrics::SweptRows;
use tokio::time::Instant;

use crate::accounts::Accounts;
use crate::store::SweepReport;

/// How long a deleted user's revocation stays in the feed after its last
/// token has expired: a books replica away for less than this (a long
/// weekend and then some) learns of the deletion from the feed at its next
/// poll. One away for longer finds the deleted users' books by its orphan
/// reconciliation, which asks auth-service which owners still exist.
pub const DELETED_USER_RETENTION: Duration = Duration::from_secs(7 * 24 * 60 * 60);

/// Sweeps `accounts`' store every `interval` until `stop` resolves (a sweep
/// under way is abandoned between two statements; each is its own
/// transaction). Failures are logged; the next interval tries again.
pub async fn run(accounts: Accounts, interval: Duration, swept: SweptRows, stop: impl Future<Output = ()>) {
    tokio::pin!(stop);
    let mut next = Instant::now() + interval.mul_f64(rand::random::<f64>());
    loop {
        tokio::select! {
            () = &mut stop => return,
            () = tokio::time::sleep_until(next) => {}
        }
        let started = Instant::now();
        tokio::select! {
            () = &mut stop => return,
            outcome = accounts.sweep_stale_rows(DELETED_USER_RETENTION) => match outcome {
                Ok(report) => record(&report, started.elapsed(), &swept),
                Err(error) => tracing::warn!(%error, "sweep of stale rows failed; trying again at the next interval"),
            },
        }
        next = Instant::now() + interval;
    }
}

fn record(report: &SweepReport, took: Duration, swept: &SweptRows) {
    swept.record("refresh_tokens", report.refresh_tokens);
    swept.record("sessions", report.sessions);
    swept.record("revocations", report.session_revocations + report.deleted_users);
    swept.record("login_failures", report.login_failures);
    tracing::info!(
        refresh_tokens = report.refresh_tokens,
        sessions = report.sessions,
        session_revocations = report.session_revocations,
        deleted_user_revocations = report.deleted_users,
        login_failures = report.login_failures,
        took_ms = took.as_millis(),
        "stale rows swept"
    );
}
