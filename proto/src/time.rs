//! [`UnixMicros`]: the one representation of an instant the services store
//! and exchange, with its protobuf `Timestamp` conversions.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prost_types::Timestamp;

/// An instant as microseconds since the Unix epoch: what the databases
/// store (a bigint column) and what a protobuf `Timestamp` carries on the
/// wire.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UnixMicros(pub i64);

impl UnixMicros {
    /// The epoch itself; also what a clock before it reads as.
    pub const EPOCH: Self = Self(0);
    /// The latest instant there is.
    pub const MAX: Self = Self(i64::MAX);

    /// The system clock now (the epoch if the clock is set before it).
    #[must_use]
    pub fn now() -> Self {
        Self(
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |elapsed| i64::try_from(elapsed.as_micros()).unwrap_or(i64::MAX)),
        )
    }

    /// Microseconds since the epoch.
    #[must_use]
    pub const fn get(self) -> i64 {
        self.0
    }

    /// Whole seconds since the epoch, rounded down.
    #[must_use]
    pub const fn secs(self) -> i64 {
        self.0.div_euclid(1_000_000)
    }

    /// Whole seconds since the epoch, as JWT claims count them (0 before
    /// the epoch).
    #[must_use]
    pub fn unsigned_secs(self) -> u64 {
        u64::try_from(self.secs()).unwrap_or(0)
    }

    /// `duration` later, saturating at [`UnixMicros::MAX`].
    #[must_use]
    pub fn saturating_add(self, duration: Duration) -> Self {
        Self(self.0.saturating_add(micros(duration)))
    }

    /// `duration` earlier, saturating at the smallest instant.
    #[must_use]
    pub fn saturating_sub(self, duration: Duration) -> Self {
        Self(self.0.saturating_sub(micros(duration)))
    }
}

/// A duration in whole microseconds, saturating at `i64::MAX`.
fn micros(duration: Duration) -> i64 {
    i64::try_from(duration.as_micros()).unwrap_or(i64::MAX)
}

impl From<UnixMicros> for Timestamp {
    fn from(instant: UnixMicros) -> Self {
        Self {
            seconds: instant.secs(),
            // The remainder is in 0..1_000_000, so the product fits in i32.
            nanos: i32::try_from(instant.0.rem_euclid(1_000_000) * 1_000).unwrap_or(0),
        }
    }
}

/// Sub-microsecond nanos are dropped; an instant past what `i64`
/// microseconds hold saturates.
impl From<&Timestamp> for UnixMicros {
    fn from(timestamp: &Timestamp) -> Self {
        Self(timestamp.seconds.saturating_mul(1_000_000).saturating_add(i64::from(timestamp.nanos / 1_000)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_timestamp_round_trips_to_the_microsecond() {
        for micros in [0, 1, 999_999, 1_000_000, 1_700_000_000_123_456, -1, -1_500_000] {
            let timestamp = Timestamp::from(UnixMicros(micros));
            assert!((0..1_000_000_000).contains(&timestamp.nanos), "{timestamp:?}");
            assert_eq!(UnixMicros::from(&timestamp), UnixMicros(micros));
        }
    }

    #[test]
    fn seconds_round_down_and_unsigned_seconds_stop_at_the_epoch() {
        assert_eq!(UnixMicros(1_999_999).secs(), 1);
        assert_eq!(UnixMicros(-1).secs(), -1);
        assert_eq!(UnixMicros(-1).unsigned_secs(), 0);
        assert_eq!(UnixMicros(5_000_000).unsigned_secs(), 5);
    }

    #[test]
    fn adding_and_subtracting_durations_saturates() {
        assert_eq!(UnixMicros(10).saturating_add(Duration::from_micros(5)), UnixMicros(15));
        assert_eq!(UnixMicros(10).saturating_sub(Duration::from_micros(5)), UnixMicros(5));
        assert_eq!(UnixMicros::MAX.saturating_add(Duration::from_secs(1)), UnixMicros::MAX);
        assert_eq!(UnixMicros(0).saturating_add(Duration::MAX), UnixMicros::MAX);
    }
}
