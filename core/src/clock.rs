//! Wall-clock time, injectable so that schedules can be tested with tokio's
//! paused clock.
//!
//! Persisted times (deadlines, `next_check_at`, lease expiry) must be wall
//! time, because another process reads them after a restart. But tests of
//! polling schedules want `tokio::time::pause()` to control time. [`TokioClock`]
//! bridges the two: it reads the system time once, then advances with tokio's
//! (possibly paused) monotonic clock.

use std::fmt::Debug;
use std::time::Duration;

use time::OffsetDateTime;

/// A source of wall-clock time.
pub trait Clock: Send + Sync + Debug {
    /// The current time.
    fn now(&self) -> OffsetDateTime;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }
}

/// Wall time anchored once, then advanced by tokio's clock, so that
/// `tokio::time::pause()` and `advance()` move it in tests.
#[derive(Debug, Clone, Copy)]
pub struct TokioClock {
    base: OffsetDateTime,
    start: tokio::time::Instant,
}

impl TokioClock {
    /// A clock reading the system time now.
    pub fn new() -> Self {
        TokioClock {
            base: OffsetDateTime::now_utc(),
            start: tokio::time::Instant::now(),
        }
    }
}

impl Default for TokioClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for TokioClock {
    fn now(&self) -> OffsetDateTime {
        self.base + self.start.elapsed()
    }
}

/// Milliseconds since the Unix epoch, the representation stores use.
pub fn to_millis(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

/// The inverse of [`to_millis`]; out-of-range values clamp to the epoch.
pub fn from_millis(ms: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// The non-negative duration from `now` until `t` (zero if `t` has passed).
pub fn until(now: OffsetDateTime, t: OffsetDateTime) -> Duration {
    let d = t - now;
    if d.is_negative() {
        Duration::ZERO
    } else {
        d.unsigned_abs()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn tokio_clock_follows_paused_time() {
        let c = TokioClock::new();
        let a = c.now();
        tokio::time::advance(Duration::from_secs(90)).await;
        assert_eq!(c.now() - a, time::Duration::seconds(90));
    }

    #[test]
    fn millis_round_trip() {
        let t = from_millis(1_700_000_000_123);
        assert_eq!(to_millis(t), 1_700_000_000_123);
        assert_eq!(until(t, t - time::Duration::seconds(1)), Duration::ZERO);
    }
}
