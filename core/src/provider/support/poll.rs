//! The polling ladder of an asynchronous cloud operation, as one step takes
//! it: **not due** -> come back later; **due** -> poll once and record the
//! answer on the [`Operation`]; **expired or lost** (the cloud no longer
//! knows the operation, or polls kept failing) -> look the resource up by
//! name, which tells what the operation did.
//!
//! Azure takes this ladder for every create and teardown of its chain and
//! Compute Engine for inserts and deletes; each supplies its own poll (what
//! the status URL or operation says) and lookup (a GET by name), and
//! [`advance`] does the rest with [`Operation`]'s schedule, deadline and
//! error streak.

use std::future::Future;
use std::time::Duration;

use crate::clock::Clock;
use crate::error::{Error, Result};
use crate::operation::{Operation, OperationStatus, PollPolicy};

/// What one poll of the cloud answered.
#[derive(Debug, Clone, PartialEq)]
pub enum Polled {
    /// The operation's status, and the `Retry-After` the cloud named.
    Status(OperationStatus, Option<Duration>),
    /// The cloud no longer knows the operation (its record expired: ARM's
    /// 404 on the status URL, GCE's 404 on the operation).
    Gone,
}

/// What to do when polls fail [`PollPolicy::max_consecutive_errors`] times
/// in a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnStreak {
    /// Fail the operation with the streak's error (Azure).
    Fail,
    /// Stop polling and look the resource up by name instead (Compute
    /// Engine: the resource, bounded by the provisioning deadline, decides).
    LookUp,
}

/// Where the ladder ended for this step.
#[derive(Debug)]
pub enum Rung<L> {
    /// Not due yet: come back after this wait. Nothing was sent.
    NotDue(Duration),
    /// Polled and still running: come back after `wait`. `error` is a poll
    /// error tolerated within the streak, for the record.
    InProgress {
        /// Until the next poll is due.
        wait: Duration,
        /// The tolerated poll error, if this poll failed.
        error: Option<Error>,
    },
    /// The operation succeeded.
    Succeeded,
    /// The operation failed, passed its deadline, or (with
    /// [`OnStreak::Fail`]) its polls kept failing.
    Failed(Error),
    /// The operation was gone (or, with [`OnStreak::LookUp`], its polls kept
    /// failing): what the lookup by name found.
    LookedUp(L),
}

/// Takes one step of the ladder for `op` (see the module doc): `poll` is
/// called only when a poll is due, `lookup` only when the operation is gone
/// (or its poll error streak ran out, with [`OnStreak::LookUp`]). An error
/// from `lookup` is returned as is (nothing changed that must be kept).
pub async fn advance<L, P, PFut, F, LFut>(
    op: &mut Operation,
    clock: &dyn Clock,
    policy: &PollPolicy,
    on_streak: OnStreak,
    poll: P,
    lookup: F,
) -> Result<Rung<L>>
where
    P: FnOnce(&Operation) -> PFut,
    PFut: Future<Output = Result<Polled>>,
    F: FnOnce() -> LFut,
    LFut: Future<Output = Result<L>>,
{
    let now = clock.now();
    if !op.is_due(now) {
        return Ok(Rung::NotDue(op.wait(now)));
    }
    let answer = poll(op).await;
    let now = clock.now();
    match answer {
        Ok(Polled::Status(status, retry_after)) => {
            match op.record_status(status, retry_after, now, policy) {
                Ok(()) if op.status == OperationStatus::Succeeded => Ok(Rung::Succeeded),
                Ok(()) => Ok(Rung::InProgress {
                    wait: op.wait(now),
                    error: None,
                }),
                Err(e) => Ok(Rung::Failed(e)),
            }
        }
        Ok(Polled::Gone) => Ok(Rung::LookedUp(lookup().await?)),
        Err(e) => match op.record_poll_error(e.clone(), now, policy) {
            Ok(()) => Ok(Rung::InProgress {
                wait: op.wait(now),
                error: Some(e),
            }),
            Err(_) if on_streak == OnStreak::LookUp && !is_deadline(op, now) => {
                Ok(Rung::LookedUp(lookup().await?))
            }
            Err(streak) => Ok(Rung::Failed(streak)),
        },
    }
}

fn is_deadline(op: &Operation, now: time::OffsetDateTime) -> bool {
    op.check_deadline(now).is_err()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::clock::TokioClock;
    use crate::operation::FinalState;
    use crate::ErrorKind;

    fn setup() -> (TokioClock, PollPolicy, Operation) {
        let clock = TokioClock::new();
        let policy = PollPolicy::default();
        let op = Operation::start(
            "https://cloud/op/1",
            "PUT",
            FinalState::None,
            Some(Duration::from_secs(5)),
            clock.now(),
            &policy,
        );
        (clock, policy, op)
    }

    async fn no_lookup() -> Result<&'static str> {
        panic!("looked up")
    }

    #[tokio::test(start_paused = true)]
    async fn not_due_sends_nothing() {
        let (clock, policy, mut op) = setup();
        let rung = advance(
            &mut op,
            &clock,
            &policy,
            OnStreak::Fail,
            |_| async { panic!("polled") },
            no_lookup,
        )
        .await
        .unwrap();
        assert!(matches!(rung, Rung::NotDue(d) if d == Duration::from_secs(5)));
    }

    #[tokio::test(start_paused = true)]
    async fn due_polls_and_records() {
        let (clock, policy, mut op) = setup();
        tokio::time::advance(Duration::from_secs(5)).await;
        let rung = advance(
            &mut op,
            &clock,
            &policy,
            OnStreak::Fail,
            |o| {
                assert_eq!(o.poll_url, "https://cloud/op/1");
                async {
                    Ok(Polled::Status(
                        OperationStatus::InProgress,
                        Some(Duration::from_secs(7)),
                    ))
                }
            },
            no_lookup,
        )
        .await
        .unwrap();
        assert!(
            matches!(rung, Rung::InProgress { wait, error: None } if wait == Duration::from_secs(7))
        );
        assert_eq!(op.polls, 1);

        tokio::time::advance(Duration::from_secs(7)).await;
        let rung = advance(
            &mut op,
            &clock,
            &policy,
            OnStreak::Fail,
            |_| async { Ok(Polled::Status(OperationStatus::Succeeded, None)) },
            no_lookup,
        )
        .await
        .unwrap();
        assert!(matches!(rung, Rung::Succeeded));

        let (clock, policy, mut op) = setup();
        tokio::time::advance(Duration::from_secs(5)).await;
        let failed = OperationStatus::Failed {
            code: "AllocationFailed".into(),
            message: "no room".into(),
        };
        let rung = advance(
            &mut op,
            &clock,
            &policy,
            OnStreak::Fail,
            |_| async { Ok(Polled::Status(failed, None)) },
            no_lookup,
        )
        .await
        .unwrap();
        assert!(
            matches!(&rung, Rung::Failed(e) if e.code() == Some("AllocationFailed")),
            "{rung:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn gone_looks_up_by_name() {
        let (clock, policy, mut op) = setup();
        tokio::time::advance(Duration::from_secs(5)).await;
        let rung = advance(
            &mut op,
            &clock,
            &policy,
            OnStreak::Fail,
            |_| async { Ok(Polled::Gone) },
            || async { Ok("vm-1 exists") },
        )
        .await
        .unwrap();
        assert!(matches!(rung, Rung::LookedUp("vm-1 exists")));
    }

    #[tokio::test(start_paused = true)]
    async fn poll_errors_are_tolerated_then_end_per_policy() {
        for on_streak in [OnStreak::Fail, OnStreak::LookUp] {
            let (clock, policy, mut op) = setup();
            let mut last = None;
            for _ in 0..policy.max_consecutive_errors {
                tokio::time::advance(Duration::from_secs(60)).await;
                last = Some(
                    advance(
                        &mut op,
                        &clock,
                        &policy,
                        on_streak,
                        |_| async { Err(Error::new(ErrorKind::Transient, "reset")) },
                        || async { Ok("found") },
                    )
                    .await
                    .unwrap(),
                );
                if !matches!(last, Some(Rung::InProgress { error: Some(_), .. })) {
                    break;
                }
            }
            match (on_streak, last) {
                (OnStreak::Fail, Some(Rung::Failed(e))) => {
                    assert_eq!(e.kind(), &ErrorKind::Transient)
                }
                (OnStreak::LookUp, Some(Rung::LookedUp("found"))) => {}
                (s, r) => panic!("{s:?}: {r:?}"),
            }
        }
    }
}
