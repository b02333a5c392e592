//! The waits the mock tells clients about (`Retry-After` on long-running
//! operations and throttles, `x-amz-retry-after`), scaled by `time_scale`
//! and written into the headers the official clients read.
//!
//! Header choice ([`Delay::insert_headers`]):
//! - a delay of a second or more: `Retry-After: <whole seconds, rounded up>`
//!   and `retry-after-ms: <milliseconds>` (clients that read the
//!   millisecond header, like skyfleet's own transport, get the exact wait);
//! - a delay under a second: `retry-after-ms: <milliseconds>` alone. Never
//!   `Retry-After: 0`: azure-core reads a zero `Retry-After` as absent and
//!   falls back to its default polling interval (30 s for ARM), and it reads
//!   `retry-after-ms` only when `Retry-After` is missing.
//!
//! Every delay is at least [`MIN_DELAY`], so a client honouring it never
//! spins, even at `time_scale` 0.

use std::time::Duration;

use http::{HeaderMap, HeaderValue};

/// The shortest delay the mock announces (10 ms): a `time_scale` of 0 or a
/// tiny scaled wait still gives clients a pause between requests.
pub const MIN_DELAY: Duration = Duration::from_millis(10);

/// The header with the delay in milliseconds.
pub const RETRY_AFTER_MS: &str = "retry-after-ms";

/// A wait announced to a client: already scaled, at least [`MIN_DELAY`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Delay(Duration);

impl Delay {
    /// `unscaled` times `scale` (the global time scale), at least
    /// [`MIN_DELAY`]. A non-finite or negative scale counts as 0; an absurd
    /// product is capped like every scaled duration.
    pub fn scaled(unscaled: Duration, scale: f64) -> Delay {
        Delay::real(crate::bounded::scale(unscaled, scale))
    }

    /// A wait that runs on the real clock (a rate bucket refilling), not
    /// scaled; at least [`MIN_DELAY`].
    pub fn real(d: Duration) -> Delay {
        Delay(d.max(MIN_DELAY))
    }

    /// This delay, or `other` if shorter (still at least [`MIN_DELAY`]).
    pub fn at_most(self, other: Duration) -> Delay {
        Delay::real(self.0.min(other))
    }

    /// The wait in whole milliseconds, rounded up.
    pub fn millis(self) -> u64 {
        let ms = self.0.as_millis();
        let ms = if self.0.subsec_nanos() % 1_000_000 == 0 {
            ms
        } else {
            ms + 1
        };
        u64::try_from(ms).unwrap_or(u64::MAX)
    }

    /// The wait in whole seconds, rounded up (1 for a delay under a second).
    pub fn whole_seconds(self) -> u64 {
        self.0
            .as_secs()
            .saturating_add(u64::from(self.0.subsec_nanos() > 0))
    }

    /// The wait in seconds as error messages word it: whole seconds from a
    /// second up ("7"), otherwise a decimal fraction ("0.01").
    pub fn seconds_text(self) -> String {
        let ms = self.millis();
        if ms >= 1000 {
            self.whole_seconds().to_string()
        } else {
            format!("0.{ms:03}").trim_end_matches('0').to_string()
        }
    }

    /// Sets `Retry-After` and `retry-after-ms` as the module documentation
    /// describes (removing a `Retry-After` already there for a sub-second
    /// delay).
    pub fn insert_headers(self, headers: &mut HeaderMap) {
        if self.0 >= Duration::from_secs(1) {
            headers.insert(
                http::header::RETRY_AFTER,
                HeaderValue::from(self.whole_seconds()),
            );
        } else {
            headers.remove(http::header::RETRY_AFTER);
        }
        headers.insert(RETRY_AFTER_MS, HeaderValue::from(self.millis()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(d: Delay) -> (Option<String>, Option<String>) {
        let mut h = HeaderMap::new();
        h.insert(http::header::RETRY_AFTER, HeaderValue::from_static("9"));
        d.insert_headers(&mut h);
        let get = |n: &str| h.get(n).map(|v| v.to_str().unwrap_or("?").to_string());
        (get("retry-after"), get("retry-after-ms"))
    }

    #[test]
    fn scaling_floors_and_caps() {
        let s = Duration::from_secs(1);
        assert_eq!(Delay::scaled(s, 0.01).0, MIN_DELAY);
        assert_eq!(Delay::scaled(s, 0.5).0, Duration::from_millis(500));
        assert_eq!(Delay::scaled(s, 0.0).0, MIN_DELAY);
        assert_eq!(Delay::scaled(s, f64::NAN).0, MIN_DELAY);
        assert_eq!(Delay::scaled(s, -3.0).0, MIN_DELAY);
        assert_eq!(Delay::scaled(s * 3, 1.0).0, s * 3);
        assert!(Delay::scaled(Duration::MAX, 1e300).0 < Duration::MAX);
        assert_eq!(
            Delay::scaled(s * 3, 1.0).at_most(s).0,
            s,
            "a shorter remaining time wins"
        );
        assert_eq!(
            Delay::scaled(s, 1.0).at_most(Duration::ZERO).0,
            MIN_DELAY
        );
    }

    #[test]
    fn headers_never_say_zero_seconds() {
        let ms = |n| Delay::real(Duration::from_millis(n));
        assert_eq!(headers(ms(30)), (None, Some("30".into())));
        assert_eq!(headers(ms(999)), (None, Some("999".into())));
        assert_eq!(headers(ms(1000)), (Some("1".into()), Some("1000".into())));
        assert_eq!(headers(ms(1500)), (Some("2".into()), Some("1500".into())));
        assert_eq!(
            headers(Delay::real(Duration::from_micros(10_500))),
            (None, Some("11".into())),
            "milliseconds round up"
        );
        assert_eq!(headers(Delay::real(Duration::ZERO)), (None, Some("10".into())));
    }

    #[test]
    fn message_wording() {
        let ms = |n| Delay::real(Duration::from_millis(n));
        assert_eq!(ms(7000).seconds_text(), "7");
        assert_eq!(ms(1200).seconds_text(), "2");
        assert_eq!(ms(10).seconds_text(), "0.01");
        assert_eq!(ms(250).seconds_text(), "0.25");
        assert_eq!(Delay::real(Duration::from_micros(999_500)).seconds_text(), "1");
        assert_eq!(ms(10).whole_seconds(), 1);
    }
}
