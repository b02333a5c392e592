//! Bounded retries: capped exponential backoff with jitter, and a bound on
//! both the attempts and the total time, so no loop retries forever.

use std::time::{Duration, Instant};

/// How a call that failed transiently is retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// The first pause.
    pub initial: Duration,
    /// The longest pause.
    pub max_delay: Duration,
    /// The most attempts (the first included).
    pub max_attempts: u32,
    /// The most time from the first attempt to the start of the last.
    pub max_elapsed: Duration,
}

impl Default for RetryPolicy {
    /// 0.5 s doubling to 30 s, at most 20 attempts in 5 minutes: a manager
    /// restarting or a network blip is ridden out, a manager gone is not
    /// waited for forever.
    fn default() -> Self {
        RetryPolicy {
            initial: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
            max_attempts: 20,
            max_elapsed: Duration::from_secs(300),
        }
    }
}

impl RetryPolicy {
    /// A fresh backoff for one call.
    pub fn start(&self) -> Backoff {
        Backoff {
            policy: *self,
            attempts: 1,
            started: Instant::now(),
        }
    }
}

/// The retry state of one call.
#[derive(Debug)]
pub struct Backoff {
    policy: RetryPolicy,
    attempts: u32,
    started: Instant,
}

impl Backoff {
    /// The attempts made so far.
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// The pause before the next attempt, or `None` when the bound is
    /// reached. `hint` (a `Retry-After`) replaces the computed pause,
    /// clamped to the policy's longest pause.
    pub fn next_delay(&mut self, hint: Option<Duration>) -> Option<Duration> {
        if self.attempts >= self.policy.max_attempts {
            return None;
        }
        let exp = self.attempts.saturating_sub(1).min(20);
        let base = self
            .policy
            .initial
            .saturating_mul(1u32 << exp)
            .min(self.policy.max_delay);
        // Jitter in [base/2, base]: replicas that failed together do not
        // retry together.
        let jittered = base / 2 + base.mul_f64(rand::random::<f64>() / 2.0);
        let delay = hint.map_or(jittered, |h| h.min(self.policy.max_delay));
        if self.started.elapsed() + delay > self.policy.max_elapsed {
            return None;
        }
        self.attempts += 1;
        Some(delay)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_are_capped_and_bounded_in_attempts() {
        let p = RetryPolicy {
            initial: Duration::from_millis(100),
            max_delay: Duration::from_millis(400),
            max_attempts: 5,
            max_elapsed: Duration::from_secs(60),
        };
        let mut b = p.start();
        let delays: Vec<Duration> = std::iter::from_fn(|| b.next_delay(None)).collect();
        assert_eq!(delays.len(), 4, "five attempts: four pauses");
        let bounds = [100, 200, 400, 400];
        for (d, hi) in delays.iter().zip(bounds) {
            assert!(*d <= Duration::from_millis(hi), "{d:?} > {hi}");
            assert!(*d >= Duration::from_millis(hi / 2), "{d:?} < {hi}/2");
        }
        assert_eq!(b.attempts(), 5);
    }

    #[test]
    fn a_hint_is_clamped_and_the_total_time_bounds() {
        let p = RetryPolicy {
            initial: Duration::from_millis(10),
            max_delay: Duration::from_secs(2),
            max_attempts: 100,
            max_elapsed: Duration::from_secs(3),
        };
        let mut b = p.start();
        assert_eq!(
            b.next_delay(Some(Duration::from_secs(3600))),
            Some(Duration::from_secs(2))
        );
        assert_eq!(
            b.next_delay(Some(Duration::from_millis(5))),
            Some(Duration::from_millis(5))
        );
        // A pause that would end past the total bound is not taken.
        let p = RetryPolicy {
            max_elapsed: Duration::from_millis(50),
            ..p
        };
        assert_eq!(p.start().next_delay(Some(Duration::from_secs(1))), None);
    }
}
