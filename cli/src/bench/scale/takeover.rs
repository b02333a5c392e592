//! `bench scale --replicas`: one replica killed a check interval into the
//! hold, and what the others did about it. Figures:
//! - each replica's share of the worker steps before the kill (between
//!   three quarters and six fifths of an even share: a quarter to two
//!   fifths with three replicas), judged from 1,000 steps up;
//! - overlapping steps (one worker stepped by two replicas at once) over
//!   the whole run, which must be none;
//! - for each worker the killed replica held leased, the time until another
//!   replica stepped it, which must be within one lease (plus a scan's
//!   slack); and for every worker live at the kill, the time to its next
//!   step by a survivor, within a check interval and a lease;
//! - the due-check lag p99 from two lease periods after the kill to the
//!   end of the hold, which must be back under 2 s.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use time::OffsetDateTime;

use super::{live, Run};
use crate::bench::harness::BenchError;
use crate::bench::stats::Distribution;

/// Slack beyond a lease for a freed worker to be claimed: scan ticks and
/// one step.
const TAKEOVER_SLACK: Duration = Duration::from_secs(10);
/// Steps before the kill from which the replicas' shares are judged.
const MIN_STEPS_FOR_SHARES: u64 = 1000;
/// The lag p99 the survivors must be back under.
const RECOVERED_LAG_P99_S: f64 = 2.0;

/// A replica killed mid-run.
pub(super) struct Killed {
    /// When.
    pub at: Instant,
    /// Which.
    pub replica: usize,
    /// The workers it held leased when it died.
    pub leased: Vec<String>,
    /// Every worker live when it died.
    pub live: Vec<String>,
}

/// The replica figures of a run, and the checks they failed.
pub(super) struct ReplicaFigures {
    pub value: Value,
    pub failures: Vec<String>,
}

impl Run<'_> {
    /// Kills the last replica and reads which workers it held leased.
    pub(super) async fn kill_one(&mut self) -> Result<Killed, BenchError> {
        let replica = self.fleet.len().saturating_sub(1);
        let owner = self.fleet.owner(replica).unwrap_or_default().to_string();
        let at = self.fleet.kill(replica);
        // Its leases stay in the store until they expire or are taken:
        // read right after the kill, they are what it held.
        let now = OffsetDateTime::now_utc();
        let ws = live(self.store).await?;
        let leased = ws
            .iter()
            .filter(|w| {
                w.lease_owner.as_deref() == Some(owner.as_str())
                    && w.lease_expires_at.is_some_and(|t| t > now)
            })
            .map(|w| w.id().to_string())
            .collect();
        let live = ws.iter().map(|w| w.id().to_string()).collect();
        Ok(Killed {
            at,
            replica,
            leased,
            live,
        })
    }

    /// What the replicas did, from the step log and the lag samples.
    pub(super) fn replica_figures(
        &self,
        k: &Killed,
        hold_start: Instant,
        hold_end: Instant,
        lease: Duration,
    ) -> ReplicaFigures {
        let mut failures = Vec::new();
        let n = self.fleet.len();
        let Some(log) = &self.fleet.log else {
            return ReplicaFigures {
                value: json!({"replicas": n}),
                failures: vec!["no step log was kept".into()],
            };
        };
        let before = log.steps_by_replica(n, hold_start, k.at);
        let total: u64 = before.iter().sum();
        let shares: Vec<f64> = before
            .iter()
            .map(|s| *s as f64 / total.max(1) as f64)
            .collect();
        let even = 1.0 / n as f64;
        // Claims take every due worker a scan tick finds, so with a few
        // dozen steps one replica's tick can take most of them: the shares
        // are held to their bounds only at fleet size.
        let judged = total >= MIN_STEPS_FOR_SHARES;
        for (i, s) in shares.iter().enumerate().filter(|_| judged) {
            if !(0.75 * even..=1.2 * even).contains(s) {
                failures.push(format!(
                    "replica {i} served {:.0} % of the steps before the kill (wanted {:.0} to {:.0} %)",
                    s * 100.0,
                    75.0 * even,
                    120.0 * even
                ));
            }
        }
        let overlaps = log.overlaps();
        if overlaps > 0 {
            failures.push(format!("{overlaps} overlapping steps of one worker"));
        }
        let taken = log.taken_over(&k.leased, k.replica, k.at);
        let waits: Vec<f64> = taken.iter().flatten().copied().collect();
        let never = taken.len() - waits.len();
        if never > 0 {
            failures.push(format!(
                "{never} of the killed replica's {} leased workers were never taken over",
                taken.len()
            ));
        }
        let waits = Distribution::new(waits);
        if let Some(max) = waits.percentile(1.0) {
            if max > (lease + TAKEOVER_SLACK).as_secs_f64() {
                failures.push(format!(
                    "a killed replica's worker waited {max:.1} s for another (lease {} s)",
                    lease.as_secs()
                ));
            }
        }
        // Every worker, leased or not, is stepped by a survivor within a
        // check interval and a lease.
        let all = log.taken_over(&k.live, k.replica, k.at);
        let unstepped = all.iter().filter(|t| t.is_none()).count();
        let all = Distribution::new(all.into_iter().flatten().collect());
        let bound = (super::CHECK_INTERVAL + lease + TAKEOVER_SLACK).as_secs_f64();
        if unstepped > 0 {
            failures.push(format!(
                "{unstepped} of {} live workers were not stepped after the kill",
                k.live.len()
            ));
        } else if all.percentile(1.0).is_some_and(|m| m > bound) {
            failures.push(format!(
                "a worker waited more than {bound:.0} s for a step after the kill"
            ));
        }
        let recovered_from = k.at + lease * 2;
        let after: Vec<f64> = self
            .capture
            .lag_when(|t| t >= recovered_from)
            .into_values()
            .flatten()
            .collect();
        let during: Vec<f64> = self
            .capture
            .lag_when(|t| t >= k.at && t < recovered_from)
            .into_values()
            .flatten()
            .collect();
        let (after, during) = (Distribution::new(after), Distribution::new(during));
        match after.percentile(0.99) {
            Some(p) if p <= RECOVERED_LAG_P99_S => {}
            Some(p) => failures.push(format!(
                "lag p99 {p:.2} s two leases after the kill (wanted at most {RECOVERED_LAG_P99_S} s)"
            )),
            None if hold_end > recovered_from => {
                failures.push("no lag samples two leases after the kill".into())
            }
            None => failures.push("the hold ended before two leases after the kill".into()),
        }
        ReplicaFigures {
            value: json!({
                "replicas": n,
                "lease_s": lease.as_secs(),
                "steps_before_kill": before,
                "shares_before_kill": shares,
                "shares_judged": judged,
                "overlapping_steps": overlaps,
                "killed": k.replica,
                "killed_leases": k.leased.len(),
                "takeover_s": {"p50": waits.median(), "max": waits.percentile(1.0)},
                "live_at_kill": k.live.len(),
                "first_step_after_kill_s": {"p50": all.median(), "max": all.percentile(1.0)},
                "lag_p99_s_first_two_leases": during.percentile(0.99),
                "lag_p99_s_after_two_leases": after.percentile(0.99),
            }),
            failures,
        }
    }
}
