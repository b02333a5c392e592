//! The agent's decisions, pure: what to do with a heartbeat's answer, what
//! to report, and when the secret is renewed. [`crate::Agent`] does the I/O
//! around them.

use std::time::Duration;

use skyfleet_core::protocol::{Action, Activity, HeartbeatRequest};
use time::OffsetDateTime;

use crate::work::WorkStatus;

/// The shortest heartbeat interval the agent keeps, whatever the manager
/// says (a zero would make it spin).
pub const MIN_HEARTBEAT: Duration = Duration::from_secs(1);
/// The longest (a missed heartbeat is how the manager learns a worker died).
pub const MAX_HEARTBEAT: Duration = Duration::from_secs(3600);

/// Where the agent is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Registered; the work runs.
    Working,
    /// Told to drain: the work is being stopped; `drained` follows.
    Draining,
}

/// What to do after a heartbeat's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Carry on as before.
    Continue,
    /// Stop taking work, stop what runs (within the grace), then confirm
    /// `drained`.
    StartDrain,
    /// Stop the work now and exit.
    Terminate,
}

/// The decision for the manager's `action` in `phase`. A drain, once
/// begun, is not undone by a later `continue` (the work was already
/// signalled); only `terminate` cuts it short.
pub fn on_answer(phase: Phase, action: Action) -> Next {
    match (phase, action) {
        (_, Action::Terminate) => Next::Terminate,
        (Phase::Working, Action::Drain) => Next::StartDrain,
        (Phase::Working, Action::Continue) => Next::Continue,
        (Phase::Draining, Action::Drain | Action::Continue) => Next::Continue,
    }
}

/// The heartbeat of `worker_id` in `phase` with the work's `status`: a
/// draining worker says `draining` whatever its work says.
pub fn report(worker_id: &str, phase: Phase, status: &WorkStatus) -> HeartbeatRequest {
    let state = match phase {
        Phase::Draining => Activity::Draining,
        Phase::Working => status.activity,
    };
    HeartbeatRequest {
        worker_id: worker_id.to_string(),
        state,
        running: status.running,
        capacity_used: status.capacity_used,
        tasks_completed: status.tasks_completed,
        interruption: None,
    }
}

/// The manager's interval, kept within [`MIN_HEARTBEAT`, `MAX_HEARTBEAT`].
pub fn heartbeat_interval(secs: u64) -> Duration {
    Duration::from_secs(secs).clamp(MIN_HEARTBEAT, MAX_HEARTBEAT)
}

/// When a secret was received and when it expires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SecretTimes {
    /// When it was received.
    pub received: OffsetDateTime,
    /// When it stops being accepted.
    pub expires: OffsetDateTime,
}

impl SecretTimes {
    /// When it is renewed: three quarters of its lifetime after it was
    /// received (at once if it was received expired).
    pub fn renew_at(&self) -> OffsetDateTime {
        let life = self.expires - self.received;
        if life <= time::Duration::ZERO {
            return self.received;
        }
        self.received + life * 3 / 4
    }

    /// Whether it is time to renew.
    pub fn renew_due(&self, now: OffsetDateTime) -> bool {
        now >= self.renew_at()
    }

    /// Whether it has expired.
    pub fn expired(&self, now: OffsetDateTime) -> bool {
        now >= self.expires
    }

    /// How long to wait at most before the next look (the heartbeat
    /// interval, or less when renewal is due sooner).
    pub fn wait(&self, now: OffsetDateTime, interval: Duration) -> Duration {
        let until_renew = self.renew_at() - now;
        if until_renew <= time::Duration::ZERO {
            return Duration::ZERO;
        }
        let until_renew = Duration::try_from(until_renew).unwrap_or(interval);
        interval.min(until_renew)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_move_the_phase_and_a_drain_is_not_undone() {
        assert_eq!(on_answer(Phase::Working, Action::Continue), Next::Continue);
        assert_eq!(on_answer(Phase::Working, Action::Drain), Next::StartDrain);
        assert_eq!(
            on_answer(Phase::Working, Action::Terminate),
            Next::Terminate
        );
        assert_eq!(on_answer(Phase::Draining, Action::Drain), Next::Continue);
        assert_eq!(on_answer(Phase::Draining, Action::Continue), Next::Continue);
        assert_eq!(
            on_answer(Phase::Draining, Action::Terminate),
            Next::Terminate
        );
    }

    #[test]
    fn a_draining_worker_reports_draining_whatever_the_work_says() {
        let busy = WorkStatus {
            activity: Activity::Busy,
            running: 2,
            capacity_used: 2,
            tasks_completed: 5,
        };
        let r = report("w-1", Phase::Working, &busy);
        assert_eq!(
            (r.state, r.running, r.tasks_completed),
            (Activity::Busy, 2, 5)
        );
        let r = report("w-1", Phase::Draining, &WorkStatus::idle(5));
        assert_eq!(r.state, Activity::Draining);
        assert_eq!(r.worker_id, "w-1");
    }

    #[test]
    fn renewal_is_at_three_quarters_of_the_lifetime() {
        let t0 = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
        let s = SecretTimes {
            received: t0,
            expires: t0 + time::Duration::seconds(400),
        };
        assert_eq!(s.renew_at(), t0 + time::Duration::seconds(300));
        assert!(!s.renew_due(t0 + time::Duration::seconds(299)));
        assert!(s.renew_due(t0 + time::Duration::seconds(300)));
        assert!(!s.expired(t0 + time::Duration::seconds(399)));
        assert!(s.expired(t0 + time::Duration::seconds(400)));
        // The wait is the interval, or what remains until renewal.
        assert_eq!(s.wait(t0, Duration::from_secs(30)), Duration::from_secs(30));
        let late = t0 + time::Duration::seconds(290);
        assert_eq!(
            s.wait(late, Duration::from_secs(30)),
            Duration::from_secs(10)
        );
        assert_eq!(
            s.wait(t0 + time::Duration::seconds(301), Duration::from_secs(30)),
            Duration::ZERO
        );
        // A secret received already expired is renewed at once.
        let dead = SecretTimes {
            received: t0,
            expires: t0 - time::Duration::seconds(1),
        };
        assert!(dead.renew_due(t0));
    }

    #[test]
    fn intervals_are_clamped() {
        assert_eq!(heartbeat_interval(0), MIN_HEARTBEAT);
        assert_eq!(heartbeat_interval(30), Duration::from_secs(30));
        assert_eq!(heartbeat_interval(u64::MAX), MAX_HEARTBEAT);
    }
}
