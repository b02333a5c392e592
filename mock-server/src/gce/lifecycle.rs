//! An instance's status over time.
//!
//! Nothing runs in the background: a change (insert, stop, start, suspend,
//! resume, delete)
//! writes the instants at which the instance will enter each status, and a
//! read picks the last one that has passed. The instance clock is
//! independent of the operation clock, as in Compute Engine, where a client
//! often polls `instances.get` after the operation is `DONE`.

use std::time::{Duration, Instant};

/// An instance status, plus `Gone` for a deleted (or never born) instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) enum Status {
    /// Resources are being allocated.
    Provisioning,
    /// Resources are acquired; the instance is being prepared to boot.
    Staging,
    /// Booted.
    Running,
    /// Being stopped or deleted.
    Stopping,
    /// Stopped.
    Terminated,
    /// Being suspended: memory is being saved.
    Suspending,
    /// Suspended: memory and device state saved, no VM running.
    Suspended,
    /// Deleted: reads answer 404.
    Gone,
}

impl Status {
    /// The wire name.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Status::Provisioning => "PROVISIONING",
            Status::Staging => "STAGING",
            Status::Running => "RUNNING",
            Status::Stopping => "STOPPING",
            Status::Terminated => "TERMINATED",
            Status::Suspending => "SUSPENDING",
            Status::Suspended => "SUSPENDED",
            // Never rendered: a gone instance is a 404.
            Status::Gone => "TERMINATED",
        }
    }
}

/// The instants at which the instance enters each status, in order.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub(crate) struct Timeline {
    #[serde(with = "crate::snapshot::clock::steps")]
    steps: Vec<(Instant, Status)>,
}

impl Timeline {
    /// A timeline that starts now and then goes through `steps`, each
    /// `(time spent in the previous status, next status)`.
    pub(crate) fn new(now: Instant, first: Status, steps: &[(Duration, Status)]) -> Self {
        let mut t = Timeline {
            steps: vec![(now, first)],
        };
        t.push(now, steps);
        t
    }

    fn push(&mut self, mut at: Instant, steps: &[(Duration, Status)]) {
        for (d, s) in steps {
            at += *d;
            self.steps.push((at, *s));
        }
    }

    /// The status at `now`.
    pub(crate) fn status(&self, now: Instant) -> Status {
        self.steps
            .iter()
            .rev()
            .find(|(at, _)| *at <= now)
            .or(self.steps.first())
            .map(|(_, s)| *s)
            .unwrap_or(Status::Gone)
    }

    /// The status once every scheduled step has passed.
    pub(crate) fn final_status(&self) -> Status {
        self.steps.last().map(|(_, s)| *s).unwrap_or(Status::Gone)
    }

    /// Replaces whatever was still to come with: `first` from now, then
    /// `steps`.
    pub(crate) fn change(&mut self, now: Instant, first: Status, steps: &[(Duration, Status)]) {
        *self = Timeline::new(now, first, steps);
    }

    /// Keeps what happens before `at`, then: `first` from `at`, then
    /// `steps` (a preemption scheduled ahead).
    pub(crate) fn cut(&mut self, at: Instant, first: Status, steps: &[(Duration, Status)]) {
        self.steps.retain(|(t, _)| *t < at);
        self.steps.push((at, first));
        self.push(at, steps);
    }

    /// When the instance entered its current status.
    pub(crate) fn since(&self, now: Instant) -> Option<Instant> {
        self.steps
            .iter()
            .rev()
            .find(|(at, _)| *at <= now)
            .map(|(at, _)| *at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_follow_the_clock() {
        let t0 = Instant::now();
        let s = Duration::from_secs(1);
        let mut t = Timeline::new(
            t0,
            Status::Provisioning,
            &[(s, Status::Staging), (s, Status::Running)],
        );
        assert_eq!(t.status(t0), Status::Provisioning);
        assert_eq!(t.status(t0 + s), Status::Staging);
        assert_eq!(t.status(t0 + 5 * s), Status::Running);
        assert_eq!(t.final_status(), Status::Running);
        t.change(t0 + 5 * s, Status::Stopping, &[(s, Status::Terminated)]);
        assert_eq!(t.status(t0 + 5 * s), Status::Stopping);
        assert_eq!(t.status(t0 + 7 * s), Status::Terminated);
        assert_eq!(t.since(t0 + 7 * s), Some(t0 + 6 * s));
    }

    #[test]
    fn a_cut_keeps_the_past_and_schedules_the_rest() {
        let t0 = Instant::now();
        let s = Duration::from_secs(1);
        let mut t = Timeline::new(t0, Status::Provisioning, &[(s, Status::Running)]);
        t.cut(t0 + 10 * s, Status::Terminated, &[(s, Status::Gone)]);
        assert_eq!(t.status(t0 + 5 * s), Status::Running);
        assert_eq!(t.status(t0 + 10 * s), Status::Terminated);
        assert_eq!(t.status(t0 + 11 * s), Status::Gone);
        // A cut before a scheduled step drops that step.
        let mut t = Timeline::new(t0, Status::Provisioning, &[(5 * s, Status::Running)]);
        t.cut(t0 + 2 * s, Status::Terminated, &[]);
        assert_eq!(t.status(t0 + 6 * s), Status::Terminated);
    }
}
