//! Resident memory of the services under load, from `/proc/PID/status`.

use std::time::Duration;

use serde::Serialize;
use tokio::sync::watch;

/// A process to watch, as `NAME=PID` on the command line.
#[derive(Debug, Clone)]
pub struct Watched {
    pub name: String,
    pub pid: u32,
}

impl std::str::FromStr for Watched {
    type Err = String;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        let (name, pid) = raw.split_once('=').unwrap_or((raw, raw));
        let pid = pid.parse().map_err(|_| format!("expected NAME=PID or PID, got {raw:?}"))?;
        Ok(Self { name: name.to_owned(), pid })
    }
}

/// What one process's memory did during a run, in KiB.
#[derive(Debug, Clone, Serialize)]
pub struct Memory {
    pub name: String,
    pub pid: u32,
    /// The largest VmRSS sampled (every 50 ms) during the run.
    pub peak_rss_kib: u64,
    /// VmRSS at the end of the run.
    pub end_rss_kib: u64,
    /// VmHWM at the end: the peak since the process started, so it also
    /// covers earlier runs against the same process.
    pub hwm_kib: u64,
}

/// One `Vm*:` field of `/proc/PID/status`, in KiB.
pub fn status_field_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|value| value.split_whitespace().next()?.parse().ok())
}

/// Samples the processes' VmRSS until `stop` turns true, then reports.
pub async fn sample_until(watched: Vec<Watched>, mut stop: watch::Receiver<bool>) -> Vec<Memory> {
    let mut peaks = vec![0_u64; watched.len()];
    let mut interval = tokio::time::interval(Duration::from_millis(50));
    loop {
        for (peak, process) in peaks.iter_mut().zip(&watched) {
            *peak = (*peak).max(status_field_kib(process.pid, "VmRSS").unwrap_or(0));
        }
        tokio::select! {
            _ = interval.tick() => {}
            _ = stop.changed() => break,
        }
    }
    watched
        .into_iter()
        .zip(peaks)
        .map(|(process, peak)| Memory {
            peak_rss_kib: peak,
            end_rss_kib: status_field_kib(process.pid, "VmRSS").unwrap_or(0),
            hwm_kib: status_field_kib(process.pid, "VmHWM").unwrap_or(0),
            name: process.name,
            pid: process.pid,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_own_resident_memory_is_readable() {
        let rss = status_field_kib(std::process::id(), "VmRSS").unwrap();
        assert!(rss > 0);
        assert!(status_field_kib(std::process::id(), "VmHWM").unwrap() >= rss);
    }

    #[test]
    fn a_watched_process_is_name_equals_pid_or_a_bare_pid() {
        let named: Watched = "books=42".parse().unwrap();
        assert_eq!((named.name.as_str(), named.pid), ("books", 42));
        let bare: Watched = "7".parse().unwrap();
        assert_eq!((bare.name.as_str(), bare.pid), ("7", 7));
        assert!("books=x".parse::<Watched>().is_err());
    }
}
