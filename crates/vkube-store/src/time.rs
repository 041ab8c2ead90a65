//! Time as the store sees it: whole seconds since the Unix epoch, always
//! passed in by the caller, so tests control the clock and the store never
//! reads one itself.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// A point in time, in whole seconds since the Unix epoch (UTC). Stored as
/// an integer column; serialized as that integer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Timestamp(i64);

impl Timestamp {
    /// The time `seconds` after the epoch.
    pub const fn from_unix_seconds(seconds: i64) -> Self {
        Timestamp(seconds)
    }

    /// Seconds since the epoch.
    pub const fn unix_seconds(self) -> i64 {
        self.0
    }

    /// The system clock, for callers at the edge (the CLI, the server);
    /// the store itself never calls this.
    pub fn now() -> Self {
        SystemTime::now().into()
    }

    /// `self + duration`, saturating.
    pub fn saturating_add(self, duration: Duration) -> Self {
        let seconds = i64::try_from(duration.as_secs()).unwrap_or(i64::MAX);
        Timestamp(self.0.saturating_add(seconds))
    }

    /// How long after `earlier` this is; zero if it is not later.
    pub fn duration_since(self, earlier: Timestamp) -> Duration {
        Duration::from_secs(u64::try_from(self.0.saturating_sub(earlier.0)).unwrap_or(0))
    }
}

impl From<SystemTime> for Timestamp {
    fn from(time: SystemTime) -> Self {
        match time.duration_since(UNIX_EPOCH) {
            Ok(after) => Timestamp(i64::try_from(after.as_secs()).unwrap_or(i64::MAX)),
            Err(before) => {
                Timestamp(-i64::try_from(before.duration().as_secs()).unwrap_or(i64::MAX))
            }
        }
    }
}

impl std::fmt::Display for Timestamp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// A duration for messages: `45s`, `4m 10s`, `15m`, `2h 5m`.
pub(crate) fn human(duration: Duration) -> String {
    let seconds = duration.as_secs();
    let (hours, minutes, seconds) = (seconds / 3600, seconds % 3600 / 60, seconds % 60);
    match (hours, minutes, seconds) {
        (0, 0, seconds) => format!("{seconds}s"),
        (0, minutes, 0) => format!("{minutes}m"),
        (0, minutes, seconds) => format!("{minutes}m {seconds}s"),
        (hours, 0, _) => format!("{hours}h"),
        (hours, minutes, _) => format!("{hours}h {minutes}m"),
    }
}
