//! [`Operation`]: the persisted handle of one asynchronous cloud operation,
//! and the schedule on which it is polled.
//!
//! Azure answers a PUT with an `Azure-AsyncOperation` URL, Compute Engine an
//! insert with a zone operation, and both expect the client to poll. The
//! handle records everything needed to carry on polling in *another process*
//! after a crash: what to poll, what to GET at the end, when the cloud asked
//! us to look again, and when to give up. Resuming polls the handle; it never
//! resends the initial request.
//!
//! Two rules make an operation end, whatever the cloud does:
//! - the **deadline**: an operation still running past it is failed with
//!   [`ErrorKind::Timeout`];
//! - a bounded streak of **consecutive poll errors**: Taskcluster treated a
//!   failing poll as "still running" and waited forever; here the streak ends
//!   the operation with the last error.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::clock::{until, Clock};
use crate::error::{Error, ErrorKind, Result};

/// How the final result of an operation is fetched once it succeeds
/// (Azure's `final-state-via`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FinalState {
    /// GET the original resource URL (Azure's default for PUT and PATCH).
    OriginalUri,
    /// GET the `Location` URL (Azure's default for POST and DELETE with one).
    Location,
    /// The status resource itself carries the result.
    AsyncOperation,
    /// Nothing to fetch (DELETE, or Compute Engine operations).
    None,
}

/// The last known status of an operation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum OperationStatus {
    /// Still running.
    InProgress,
    /// Finished successfully.
    Succeeded,
    /// Finished in failure, with the cloud's code and message.
    Failed {
        /// The cloud's error code.
        code: String,
        /// The cloud's message.
        message: String,
    },
    /// Cancelled by the cloud or a user.
    Canceled,
}

impl OperationStatus {
    /// Whether the operation has ended.
    pub fn is_terminal(&self) -> bool {
        !matches!(self, OperationStatus::InProgress)
    }
}

/// The polling rules: how often, for how long, and how many errors in a row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PollPolicy {
    /// The shortest wait between polls; a smaller `Retry-After` is raised to it.
    #[serde(with = "crate::operation::secs")]
    pub min_interval: Duration,
    /// The longest wait between polls; a larger `Retry-After` is cut to it.
    #[serde(with = "crate::operation::secs")]
    pub max_interval: Duration,
    /// The wait when the cloud gives no `Retry-After` (doubled after each
    /// poll without one, within the bounds).
    #[serde(with = "crate::operation::secs")]
    pub default_interval: Duration,
    /// How long an operation may run before it is failed.
    #[serde(with = "crate::operation::secs")]
    pub deadline: Duration,
    /// Consecutive poll errors after which the operation is failed.
    pub max_consecutive_errors: u32,
}

impl Default for PollPolicy {
    fn default() -> Self {
        PollPolicy {
            min_interval: Duration::from_secs(1),
            max_interval: Duration::from_secs(60),
            default_interval: Duration::from_secs(1),
            deadline: Duration::from_secs(600),
            max_consecutive_errors: 5,
        }
    }
}

impl PollPolicy {
    /// Checks the bounds, naming the bad field.
    pub fn validate(&self) -> Result<()> {
        if self.min_interval > self.max_interval {
            return Err(Error::invalid_config(
                "poll.min_interval",
                "must not exceed poll.max_interval",
            ));
        }
        if self.deadline.is_zero() {
            return Err(Error::invalid_config("poll.deadline", "must be > 0"));
        }
        if self.max_consecutive_errors == 0 {
            return Err(Error::invalid_config(
                "poll.max_consecutive_errors",
                "must be at least 1",
            ));
        }
        Ok(())
    }

    /// `retry_after` clamped to `[min_interval, max_interval]`.
    pub fn clamp(&self, retry_after: Duration) -> Duration {
        retry_after.clamp(self.min_interval, self.max_interval)
    }
}

pub(crate) mod secs {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;
    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_millis() as u64)
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_millis(u64::deserialize(d)?))
    }
}

/// The persisted handle of one asynchronous cloud operation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Operation {
    /// What to poll: a status URL (Azure) or an operation name/URL (GCE).
    pub poll_url: String,
    /// Where to GET the result once done, per [`FinalState`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub final_url: Option<String>,
    /// The HTTP method of the initial request (`PUT`, `DELETE`, `POST`).
    pub method: String,
    /// How the final result is fetched.
    pub final_state: FinalState,
    /// The last status seen.
    pub status: OperationStatus,
    /// The `Retry-After` of the last answer, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_ms: Option<u64>,
    /// When the initial request was accepted.
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: OffsetDateTime,
    /// When the operation is failed if still running.
    #[serde(with = "time::serde::rfc3339")]
    pub deadline: OffsetDateTime,
    /// When to poll next.
    #[serde(with = "time::serde::rfc3339")]
    pub next_poll_at: OffsetDateTime,
    /// Polls made so far.
    pub polls: u32,
    /// Poll errors in a row (reset by a successful poll).
    pub consecutive_errors: u32,
    /// The wait used when the cloud gave no `Retry-After`, in milliseconds.
    pub backoff_ms: u64,
}

impl Operation {
    /// A handle for an operation accepted at `now` whose first answer asked
    /// to wait `retry_after` (if it said).
    pub fn start(
        poll_url: impl Into<String>,
        method: impl Into<String>,
        final_state: FinalState,
        retry_after: Option<Duration>,
        now: OffsetDateTime,
        policy: &PollPolicy,
    ) -> Self {
        let mut op = Operation {
            poll_url: poll_url.into(),
            final_url: None,
            method: method.into(),
            final_state,
            status: OperationStatus::InProgress,
            retry_after_ms: None,
            started_at: now,
            deadline: now + policy.deadline,
            next_poll_at: now,
            polls: 0,
            consecutive_errors: 0,
            backoff_ms: policy.default_interval.as_millis() as u64,
        };
        op.schedule(retry_after, now, policy);
        op
    }

    /// Sets where the final result is fetched.
    pub fn with_final_url(mut self, url: impl Into<String>) -> Self {
        self.final_url = Some(url.into());
        self
    }

    fn schedule(
        &mut self,
        retry_after: Option<Duration>,
        now: OffsetDateTime,
        policy: &PollPolicy,
    ) {
        let wait = match retry_after {
            Some(ra) => {
                self.retry_after_ms = Some(ra.as_millis() as u64);
                policy.clamp(ra)
            }
            None => {
                self.retry_after_ms = None;
                let w = policy.clamp(Duration::from_millis(self.backoff_ms));
                self.backoff_ms = policy.clamp(w * 2).as_millis() as u64;
                w
            }
        };
        self.next_poll_at = now + wait;
    }

    /// Whether a poll is due at `now`.
    pub fn is_due(&self, now: OffsetDateTime) -> bool {
        now >= self.next_poll_at
    }

    /// How long from `now` until the next poll is due.
    pub fn wait(&self, now: OffsetDateTime) -> Duration {
        until(now, self.next_poll_at)
    }

    /// Records a successful poll's answer. A still-running operation past its
    /// deadline becomes an error of kind `Timeout`; a failed one an error of
    /// kind `OperationFailed` with the cloud's code.
    pub fn record_status(
        &mut self,
        status: OperationStatus,
        retry_after: Option<Duration>,
        now: OffsetDateTime,
        policy: &PollPolicy,
    ) -> Result<()> {
        self.polls += 1;
        self.consecutive_errors = 0;
        self.status = status;
        match &self.status {
            OperationStatus::InProgress => {
                self.check_deadline(now)?;
                self.schedule(retry_after, now, policy);
                Ok(())
            }
            OperationStatus::Succeeded => Ok(()),
            OperationStatus::Failed { code, message } => Err(Error::new(
                ErrorKind::OperationFailed,
                format!("{} operation failed: {message}", self.method),
            )
            .with_code(code.clone())),
            OperationStatus::Canceled => Err(Error::new(
                ErrorKind::OperationFailed,
                format!("{} operation was canceled", self.method),
            )
            .with_code("Canceled")),
        }
    }

    /// Records a failed poll. Up to the policy's streak the operation is
    /// polled again (after the error's `Retry-After`, if a throttle); the
    /// error that completes the streak is returned, and the caller must treat
    /// the operation as failed. Past the deadline it fails at once.
    pub fn record_poll_error(
        &mut self,
        error: Error,
        now: OffsetDateTime,
        policy: &PollPolicy,
    ) -> Result<()> {
        self.polls += 1;
        self.consecutive_errors += 1;
        if self.consecutive_errors >= policy.max_consecutive_errors {
            return Err(Error::new(
                error.kind().clone(),
                format!(
                    "giving up on {} operation after {} consecutive poll errors; last: {}",
                    self.method,
                    self.consecutive_errors,
                    error.message()
                ),
            )
            .with_code(error.code().unwrap_or("PollErrors").to_string()));
        }
        self.check_deadline(now)?;
        let retry_after = error.retry_after();
        self.schedule(retry_after, now, policy);
        Ok(())
    }

    /// An error of kind `Timeout` once `now` is past the deadline.
    pub fn check_deadline(&self, now: OffsetDateTime) -> Result<()> {
        if now >= self.deadline && !self.status.is_terminal() {
            return Err(Error::new(
                ErrorKind::Timeout,
                format!(
                    "{} operation did not finish within its deadline ({} s)",
                    self.method,
                    (self.deadline - self.started_at).whole_seconds()
                ),
            )
            .with_code("OperationDeadlineExceeded"));
        }
        Ok(())
    }

    /// Polls to the end, sleeping (with tokio's clock) between polls.
    ///
    /// `poll` fetches the current status and the `Retry-After` the cloud
    /// gave. This helper is for callers that wait in-process; the fleet
    /// runtime instead persists the handle and comes back at
    /// [`Operation::next_poll_at`].
    pub async fn wait_until_done<F, Fut>(
        &mut self,
        clock: &dyn Clock,
        policy: &PollPolicy,
        mut poll: F,
    ) -> Result<()>
    where
        F: FnMut(&Operation) -> Fut,
        Fut: std::future::Future<Output = Result<(OperationStatus, Option<Duration>)>>,
    {
        while !self.status.is_terminal() {
            tokio::time::sleep(self.wait(clock.now())).await;
            let answer = poll(self).await;
            let now = clock.now();
            match answer {
                Ok((status, retry_after)) => {
                    self.record_status(status, retry_after, now, policy)?
                }
                Err(e) => self.record_poll_error(e, now, policy)?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::TokioClock;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Arc;

    fn policy() -> PollPolicy {
        PollPolicy::default()
    }

    fn op(clock: &TokioClock, retry_after: Option<Duration>) -> Operation {
        Operation::start(
            "https://mock/op/1",
            "PUT",
            FinalState::OriginalUri,
            retry_after,
            clock.now(),
            &policy(),
        )
    }

    #[tokio::test(start_paused = true)]
    async fn retry_after_is_honoured_and_clamped() {
        let clock = TokioClock::new();
        let start = tokio::time::Instant::now();
        let polled_at = Arc::new(std::sync::Mutex::new(Vec::new()));
        let answers = [
            Some(Duration::from_secs(5)),
            Some(Duration::ZERO),            // raised to the 1 s floor
            Some(Duration::from_secs(3600)), // cut to the 60 s ceiling
            None,
        ];
        let n = Arc::new(AtomicU32::new(0));
        let mut o = op(&clock, Some(Duration::from_secs(2)));
        let p = policy();
        let (pa, n2) = (polled_at.clone(), n.clone());
        o.wait_until_done(&clock, &p, move |_| {
            let (pa, n2) = (pa.clone(), n2.clone());
            async move {
                pa.lock().unwrap().push(start.elapsed().as_secs());
                let i = n2.fetch_add(1, Ordering::SeqCst) as usize;
                if i < answers.len() {
                    Ok((OperationStatus::InProgress, answers[i]))
                } else {
                    Ok((OperationStatus::Succeeded, None))
                }
            }
        })
        .await
        .unwrap();
        // First poll after the initial 2 s; then +5, +1 (clamped up),
        // +60 (clamped down), +1 (default interval when none given).
        assert_eq!(*polled_at.lock().unwrap(), vec![2, 7, 8, 68, 69]);
        assert_eq!(o.status, OperationStatus::Succeeded);
        assert_eq!(o.polls, 5);
    }

    #[tokio::test(start_paused = true)]
    async fn default_interval_backs_off_within_bounds() {
        let clock = TokioClock::new();
        let p = PollPolicy {
            max_interval: Duration::from_secs(8),
            ..policy()
        };
        let mut o = op(&clock, None);
        let mut waits = Vec::new();
        for _ in 0..6 {
            let now = clock.now();
            let w = o.wait(now);
            waits.push(w.as_secs());
            tokio::time::advance(w).await;
            o.record_status(OperationStatus::InProgress, None, clock.now(), &p)
                .unwrap();
        }
        assert_eq!(waits, vec![1, 2, 4, 8, 8, 8]);
    }

    #[tokio::test(start_paused = true)]
    async fn deadline_expiry_fails_with_timeout() {
        let clock = TokioClock::new();
        let p = PollPolicy {
            deadline: Duration::from_secs(30),
            ..policy()
        };
        let mut o = Operation::start("u", "PUT", FinalState::None, None, clock.now(), &p);
        let err = o
            .wait_until_done(&clock, &p, |_| async {
                Ok((OperationStatus::InProgress, Some(Duration::from_secs(10))))
            })
            .await
            .unwrap_err();
        assert_eq!(err.kind(), &ErrorKind::Timeout);
        assert_eq!(err.code(), Some("OperationDeadlineExceeded"));
        // It gave up at the first poll at or after 30 s, not later.
        let elapsed = clock.now() - o.started_at;
        assert!(elapsed >= time::Duration::seconds(30) && elapsed <= time::Duration::seconds(31));
    }

    #[tokio::test(start_paused = true)]
    async fn poll_errors_are_bounded_and_reset_by_success() {
        let clock = TokioClock::new();
        let p = PollPolicy {
            max_consecutive_errors: 3,
            ..policy()
        };
        // Two errors, a success, then errors forever: fails on the third
        // error in a row, i.e. the sixth poll.
        let n = Arc::new(AtomicU32::new(0));
        let mut o = op(&clock, None);
        let n2 = n.clone();
        let err = o
            .wait_until_done(&clock, &p, move |_| {
                let i = n2.fetch_add(1, Ordering::SeqCst);
                async move {
                    if i == 2 {
                        Ok((OperationStatus::InProgress, None))
                    } else {
                        Err(Error::new(ErrorKind::Transient, "502 from poll"))
                    }
                }
            })
            .await
            .unwrap_err();
        assert_eq!(n.load(Ordering::SeqCst), 6);
        assert_eq!(err.kind(), &ErrorKind::Transient);
        assert!(err.message().contains("3 consecutive poll errors"), "{err}");
    }

    #[tokio::test(start_paused = true)]
    async fn throttled_poll_waits_for_its_retry_after() {
        let clock = TokioClock::new();
        let p = policy();
        let mut o = op(&clock, Some(Duration::from_secs(1)));
        tokio::time::advance(Duration::from_secs(1)).await;
        let throttle = Error::new(
            ErrorKind::Throttled {
                retry_after: Some(Duration::from_secs(20)),
            },
            "429",
        );
        o.record_poll_error(throttle, clock.now(), &p).unwrap();
        assert_eq!(o.wait(clock.now()), Duration::from_secs(20));
    }

    #[test]
    fn failed_status_carries_the_cloud_code_and_survives_serde() {
        let now = OffsetDateTime::now_utc();
        let p = policy();
        let mut o = Operation::start("u", "PUT", FinalState::OriginalUri, None, now, &p);
        let back: Operation = serde_json::from_value(serde_json::to_value(&o).unwrap()).unwrap();
        assert_eq!(back, o);
        let err = o
            .record_status(
                OperationStatus::Failed {
                    code: "AllocationFailed".into(),
                    message: "no capacity".into(),
                },
                None,
                now,
                &p,
            )
            .unwrap_err();
        assert_eq!(err.kind(), &ErrorKind::OperationFailed);
        assert_eq!(err.code(), Some("AllocationFailed"));
        assert!(PollPolicy {
            min_interval: Duration::from_secs(9),
            max_interval: Duration::from_secs(1),
            ..p
        }
        .validate()
        .is_err());
    }
}
