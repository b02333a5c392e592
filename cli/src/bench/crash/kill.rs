//! How `bench crash` kills its fleet: at a random moment, or while one of
//! its mutating calls is in flight.
//!
//! A random moment mostly lands between calls: a fleet on the mock spends
//! milliseconds per call and most of its time waiting. The dangerous
//! instants are inside a call that changes something, where the cloud may
//! or may not have carried it out when the process dies. To land there,
//! the harness arms a one-shot fault on every mutating operation of every
//! cloud before it starts the child, watches the rules' remaining counts
//! (a count drops when a request arrives, before the mock acts on it), and
//! kills the child the moment one fires. The fault is either `hang` (the
//! call never lands: the next process must send it again) or
//! `lose_answer` (it lands and its answer is lost: the next process must
//! find what it made instead of making a second one).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::Rng;
use serde::Serialize;
use serde_json::{json, Value};
use skyfleet_mock::MockCloud;

use crate::mockctl;

/// The operations that change something, per mock cloud, as the mock's
/// fault rules and journal name them.
pub const MUTATING: &[(&str, &[&str])] = &[
    ("aws", &["RunInstances", "TerminateInstances"]),
    (
        "azure",
        &[
            "PublicIPAddresses_CreateOrUpdate",
            "PublicIPAddresses_Delete",
            "NetworkInterfaces_CreateOrUpdate",
            "NetworkInterfaces_Delete",
            "Disks_CreateOrUpdate",
            "Disks_Delete",
            "VirtualMachines_CreateOrUpdate",
            "VirtualMachines_Delete",
        ],
    ),
    (
        "gcp",
        &["compute.instances.insert", "compute.instances.delete"],
    ),
];

/// The longest a mid-call kill waits for a mutating call: a killed child's
/// leases (3 s) must run out before its successor steps those workers.
const FIRE_WAIT: Duration = Duration::from_secs(8);

/// How often the armed rules are looked at while waiting.
const POLL: Duration = Duration::from_millis(5);

/// A fleet child process.
pub struct Child(pub tokio::process::Child);

impl Child {
    /// SIGKILL: no cleanup, no lease release.
    pub async fn kill(mut self) {
        let _ = self.0.start_kill();
        let _ = self.0.wait().await;
    }
}

/// What the kills were.
#[derive(Debug, Default, Serialize)]
pub struct Tally {
    /// Kills in all.
    pub kills: u32,
    /// Kills while a mutating call was in flight.
    pub mid_call: u32,
    /// Of those, calls that had landed (`lose_answer`).
    pub mid_call_landed: u32,
    /// Of those, calls that had not (`hang`).
    pub mid_call_not_landed: u32,
    /// Kills at a random moment (including mid-call attempts no mutating
    /// call came to in time).
    pub random: u32,
    /// Mid-call kills per cloud and operation (`aws/RunInstances`).
    pub by_call: BTreeMap<String, u32>,
}

/// Kills children: seven in eight while a mutating call is in flight, the
/// eighth at a random moment.
pub struct Killer {
    rng: StdRng,
    base_rules: Value,
    /// What was done.
    pub tally: Tally,
}

impl Killer {
    /// A killer drawing moments and effects from `rng`, restoring
    /// `base_rules` (the run's own fault rules) after every kill.
    pub fn new(rng: StdRng, base_rules: Value) -> Self {
        Killer {
            rng,
            base_rules,
            tally: Tally::default(),
        }
    }

    /// Starts a child with `spawn` and kills it; the `n`-th kill of the run.
    pub async fn kill_one(
        &mut self,
        mock: &MockCloud,
        n: u32,
        spawn: impl FnOnce() -> Result<Child, String>,
    ) -> Result<(), String> {
        self.tally.kills += 1;
        if n % 8 == 7 {
            let child = spawn()?;
            let wait = Duration::from_millis(self.rng.random_range(100..1500));
            tokio::time::sleep(wait).await;
            child.kill().await;
            self.tally.random += 1;
            return Ok(());
        }
        let landed = self.rng.random_bool(0.5);
        let effect = if landed { "lose_answer" } else { "hang" };
        let armed = arm(effect);
        let mut rules = armed.clone();
        if let Value::Array(base) = &self.base_rules {
            rules.extend(base.iter().cloned());
        }
        mockctl::set_faults(mock, &Value::Array(rules)).await?;
        let child = spawn()?;
        let fired = fired_call(mock, armed.len(), FIRE_WAIT).await;
        child.kill().await;
        mockctl::set_faults(mock, &self.base_rules).await?;
        match fired {
            Some(call) => {
                self.tally.mid_call += 1;
                if landed {
                    self.tally.mid_call_landed += 1;
                } else {
                    self.tally.mid_call_not_landed += 1;
                }
                *self.tally.by_call.entry(call).or_default() += 1;
            }
            None => self.tally.random += 1,
        }
        Ok(())
    }
}

/// One-shot `effect` rules on every mutating operation.
fn arm(effect: &str) -> Vec<Value> {
    MUTATING
        .iter()
        .flat_map(|(cloud, ops)| {
            ops.iter().map(move |op| {
                json!({"cloud": cloud, "operation": op, "count": 1, "effect": {"kind": effect}})
            })
        })
        .collect()
}

/// Waits up to `limit` for one of the first `armed` rules to fire; the
/// call it caught (`cloud/operation`).
async fn fired_call(mock: &MockCloud, armed: usize, limit: Duration) -> Option<String> {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        let hit = mock
            .ctx()
            .faults()
            .into_iter()
            .take(armed)
            .find(|r| r.count == Some(0));
        if let Some(r) = hit {
            return Some(format!("{}/{}", r.cloud.as_str(), r.operation));
        }
        tokio::time::sleep(POLL).await;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_mutating_operation_of_every_cloud_is_armed_once() {
        let rules = arm("hang");
        let n: usize = MUTATING.iter().map(|(_, ops)| ops.len()).sum();
        assert_eq!(rules.len(), n);
        assert!(rules.iter().all(|r| r["count"] == 1));
        // The mock accepts them as written.
        let parsed: Result<Vec<skyfleet_mock::FaultRule>, _> =
            serde_json::from_value(Value::Array(rules));
        assert!(parsed.is_ok(), "{parsed:?}");
    }
}
