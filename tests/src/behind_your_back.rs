//! Conformance cases for clouds that change behind the provider's back,
//! run against `skyfleet-mock` through its control API:
//!
//! - [`vanished_vm_is_noticed`]: a worker's VM deleted out of band (as from
//!   the console) is noticed by the provider's next checks; the worker ends
//!   final with a reason, its leftovers go, and a replacement runs.
//! - [`lagging_reads_create_no_duplicate`]: with the cloud's reads lagging
//!   behind its writes (eventual consistency), creating a worker with every
//!   step replayed still makes exactly one VM.
//! - [`stuck_create_ends_at_the_deadline`]: a create the cloud accepts and
//!   never finishes (an operation forever `InProgress`, an instance forever
//!   `pending`) is given up at the worker's provisioning deadline, and
//!   nothing of it is left.
//!
//! [`run_all`] runs all three, then checks nothing of the manager is left.

use std::time::Duration;

use serde_json::{json, Value};
use skyfleet_core::clock::{Clock, SystemClock};
use skyfleet_core::model::tag::{MANAGER, WORKER};
use skyfleet_core::{DesiredState, Error, Phase, Result, Worker};

use crate::{drive, MockCloudKind, Subject};

/// The mock's control API, as these cases use it: out-of-band actions,
/// the consistency windows and the VMs of one manager.
#[derive(Debug, Clone)]
pub struct Backstage {
    url: String,
    cloud: &'static str,
    create_operation: &'static str,
    manager_id: String,
    http: reqwest::Client,
}

/// The kinds `GET /_mock/resources` gives VMs.
const VM_KINDS: [&str; 2] = ["instance", "virtualMachine"];

/// How long reads lag in [`lagging_reads_create_no_duplicate`], in real
/// time: below every provider's tolerance of a new VM being missing
/// (the suite's AWS grace is 800 ms, GCP's three reads).
const LAG: Duration = Duration::from_millis(500);

fn control_err(what: &str, e: impl std::fmt::Display) -> Error {
    Error::internal(format!("mock control API: {what}: {e}"))
}

impl Backstage {
    /// The control API of the mock at `url`, acting on `kind`'s cloud and
    /// the VMs of `manager_id`.
    pub fn new(url: &str, kind: &MockCloudKind, manager_id: &str) -> Self {
        Backstage {
            url: url.trim_end_matches('/').to_string(),
            cloud: kind.cloud,
            create_operation: kind.create_operation,
            manager_id: manager_id.to_string(),
            http: reqwest::Client::new(),
        }
    }

    /// Uses `client` (one trusting the mock's TLS certificate).
    pub fn with_client(mut self, client: reqwest::Client) -> Self {
        self.http = client;
        self
    }

    async fn send(&self, req: reqwest::RequestBuilder, what: &str) -> Result<Value> {
        let r = req.send().await.map_err(|e| control_err(what, e))?;
        let status = r.status();
        let body: Value = r.json().await.map_err(|e| control_err(what, e))?;
        if !status.is_success() {
            return Err(control_err(what, format!("HTTP {status}: {body}")));
        }
        Ok(body)
    }

    /// The ids of the live VMs of worker `worker_id`, as the mock (which
    /// never lags) lists them.
    pub async fn vms_of(&self, worker_id: &str) -> Result<Vec<String>> {
        let url = format!("{}/_mock/resources?cloud={}", self.url, self.cloud);
        let all = self
            .send(self.http.get(url), "GET /_mock/resources")
            .await?;
        Ok(all
            .as_array()
            .into_iter()
            .flatten()
            .filter(|r| r["tags"][MANAGER] == self.manager_id.as_str())
            .filter(|r| r["tags"][WORKER] == worker_id)
            .filter(|r| r["kind"].as_str().is_some_and(|k| VM_KINDS.contains(&k)))
            .filter_map(|r| r["id"].as_str().map(str::to_string))
            .collect())
    }

    /// Deletes VM `id` out of band.
    pub async fn delete_vm(&self, id: &str) -> Result<Value> {
        let url = format!(
            "{}/_mock/resources/{}/actions",
            self.url,
            id.replace('/', "%2F")
        );
        let req = self.http.post(url).json(&json!({"action": "delete"}));
        self.send(req, "POST /_mock/resources/{id}/actions").await
    }

    /// Makes the next create of a VM stick: accepted, never finished
    /// (the mock's `stuck` fault, one match).
    pub async fn stick_next_create(&self) -> Result<()> {
        let rules = json!([{
            "cloud": self.cloud,
            "operation": self.create_operation,
            "count": 1,
            "effect": {"kind": "stuck"},
        }]);
        let url = format!("{}/_mock/faults", self.url);
        self.send(self.http.put(url).json(&rules), "PUT /_mock/faults")
            .await
            .map(|_| ())
    }

    /// How many matches the fault rules in force have left (`count`).
    pub async fn faults_left(&self) -> Result<u64> {
        let url = format!("{}/_mock/faults", self.url);
        let rules = self.send(self.http.get(url), "GET /_mock/faults").await?;
        Ok(rules
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|r| r["count"].as_u64())
            .sum())
    }

    /// Removes every fault rule.
    pub async fn clear_faults(&self) -> Result<()> {
        let url = format!("{}/_mock/faults", self.url);
        self.send(self.http.delete(url), "DELETE /_mock/faults")
            .await
            .map(|_| ())
    }

    /// Makes the cloud's reads lag `lag` (real time) behind its writes.
    pub async fn set_lag(&self, lag: Duration) -> Result<()> {
        let url = format!("{}/_mock/config", self.url);
        let mut cfg = self.send(self.http.get(&url), "GET /_mock/config").await?;
        let scale = cfg["time_scale"].as_f64().unwrap_or(1.0);
        // The window is simulated time: real time divided by the scale.
        let simulated_s = if scale > 0.0 {
            lag.as_secs_f64() / scale
        } else {
            0.0
        };
        let (key, value) = match self.cloud {
            "azure" => ("consistency_window_s", json!(simulated_s)),
            _ => (
                "consistency_window_ms",
                json!((simulated_s * 1000.0).round() as u64),
            ),
        };
        cfg[self.cloud][key] = value;
        self.send(self.http.put(&url).json(&cfg), "PUT /_mock/config")
            .await
            .map(|_| ())
    }
}

/// Removes worker `w` and waits (up to the subject's deadline) until the
/// cloud holds nothing of it.
async fn remove_and_check(s: &Subject, w: &mut Worker) {
    if !w.phase.is_final() {
        w.desired = DesiredState::Removed;
        w.next_check_at = SystemClock.now();
        let d = drive(s, w, &[], false).await;
        if let Some(e) = &d.stopped_by {
            panic!("{}: remove {}: stopped by {e}", s.name, w.id());
        }
    }
    let give_up = tokio::time::Instant::now() + s.deadline;
    loop {
        let left = s
            .inspector
            .count_for(w.id())
            .await
            .unwrap_or_else(|e| panic!("{}: inspector failed: {e}", s.name));
        if left == 0 {
            return;
        }
        assert!(
            tokio::time::Instant::now() < give_up,
            "{}: worker {} ({:?}) left {left} resources behind",
            s.name,
            w.id(),
            w.phase
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A running worker's VM is deleted out of band: the provider's next
/// checks notice it, the worker ends final (`Stopped` or `Failed`) with the
/// reason recorded, whatever the VM left behind is cleaned up, and a
/// replacement worker with the same launch config runs.
pub async fn vanished_vm_is_noticed(s: &Subject, b: &Backstage) {
    let mut w = s.worker("cf-oob-gone");
    let d = drive(s, &mut w, &[Phase::Running], false).await;
    assert!(
        d.stopped_by.is_none(),
        "{}: create: {:?}",
        s.name,
        d.stopped_by
    );
    assert_eq!(w.phase, Phase::Running, "{}", s.name);
    let vms = b.vms_of(w.id()).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(vms.len(), 1, "{}: VMs of the worker: {vms:?}", s.name);
    b.delete_vm(&vms[0])
        .await
        .unwrap_or_else(|e| panic!("{}: {e}", s.name));

    // Still desired running: only the provider's checks can find out.
    w.next_check_at = SystemClock.now();
    let d = drive(s, &mut w, &[], false).await;
    assert!(
        d.stopped_by.is_none(),
        "{}: a vanished VM stopped the drive with an error instead of a step: {:?}",
        s.name,
        d.stopped_by
    );
    assert!(
        matches!(w.phase, Phase::Stopped | Phase::Failed),
        "{}: after the VM vanished the worker is {:?}",
        s.name,
        w.phase
    );
    let reason = w
        .last_error
        .as_ref()
        .map(|e| format!("{e:?}"))
        .or_else(|| w.removal_reason.clone());
    assert!(
        reason.is_some(),
        "{}: the worker ended {:?} without a reason",
        s.name,
        w.phase
    );
    assert_eq!(w.desired, DesiredState::Running, "{}: nobody asked", s.name);
    remove_and_check(s, &mut w).await;

    // The fleet's replacement: a new worker with the same launch config.
    let mut r = s.worker("cf-oob-again");
    let d = drive(s, &mut r, &[Phase::Running], false).await;
    assert!(
        d.stopped_by.is_none(),
        "{}: replacement: {:?}",
        s.name,
        d.stopped_by
    );
    assert_eq!(r.phase, Phase::Running, "{}: replacement", s.name);
    remove_and_check(s, &mut r).await;
}

/// With reads lagging 500 ms (`LAG`) behind writes, a create whose every step is
/// replayed (its first answer lost) makes exactly one VM: a provider must
/// not take "not found yet" for "not made" and launch again.
pub async fn lagging_reads_create_no_duplicate(s: &Subject, b: &Backstage) {
    b.set_lag(LAG)
        .await
        .unwrap_or_else(|e| panic!("{}: {e}", s.name));
    let mut w = s.worker("cf-oob-lag");
    let d = drive(s, &mut w, &[Phase::Running], true).await;
    // The lag goes (and what was hidden shows) before the checks below.
    tokio::time::sleep(LAG).await;
    b.set_lag(Duration::ZERO)
        .await
        .unwrap_or_else(|e| panic!("{}: {e}", s.name));
    assert!(
        d.stopped_by.is_none(),
        "{}: create: {:?}",
        s.name,
        d.stopped_by
    );
    assert_eq!(w.phase, Phase::Running, "{}: {:?}", s.name, w.last_error);
    let vms = b.vms_of(w.id()).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        vms.len(),
        1,
        "{}: lagging reads made duplicate VMs: {vms:?}",
        s.name
    );
    assert_eq!(
        s.inspector
            .count_for(w.id())
            .await
            .unwrap_or_else(|e| panic!("{e}")),
        s.resources_per_worker,
        "{}",
        s.name
    );
    remove_and_check(s, &mut w).await;
}

/// The provisioning deadline of the worker in
/// [`stuck_create_ends_at_the_deadline`]: well past a create at the suite's
/// time scale (well under a second), well inside the subject's deadline.
const STUCK_DEADLINE: Duration = Duration::from_secs(3);

/// The cloud accepts the create of a worker's VM and never finishes it (the
/// mock's `stuck` fault): the provider keeps polling, gives up at the
/// worker's provisioning deadline (not before), ends the worker final with
/// a reason, and whatever the stuck create made goes.
pub async fn stuck_create_ends_at_the_deadline(s: &Subject, b: &Backstage) {
    b.stick_next_create()
        .await
        .unwrap_or_else(|e| panic!("{}: {e}", s.name));
    let mut w = s.worker("cf-oob-stuck");
    w.spec.lifecycle.provisioning_deadline = STUCK_DEADLINE;
    let started = tokio::time::Instant::now();
    let d = drive(s, &mut w, &[Phase::Running], false).await;
    let took = started.elapsed();
    let left = b.faults_left().await.unwrap_or_else(|e| panic!("{e}"));
    b.clear_faults().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(left, 0, "{}: the stuck create was never made", s.name);
    assert!(
        d.stopped_by.is_none(),
        "{}: a stuck create stopped the drive with an error instead of a step: {:?}",
        s.name,
        d.stopped_by
    );
    assert!(
        w.phase.is_final(),
        "{}: a stuck create ended {:?}, not final",
        s.name,
        w.phase
    );
    assert!(
        took >= STUCK_DEADLINE,
        "{}: gave up after {took:?}, before the {STUCK_DEADLINE:?} deadline",
        s.name
    );
    let reason = w
        .last_error
        .as_ref()
        .map(|e| format!("{e:?}"))
        .or_else(|| w.removal_reason.clone());
    assert!(
        reason.as_deref().is_some_and(|r| r.contains("deadline")),
        "{}: a stuck create ended {:?} with reason {reason:?}, which does not name the deadline",
        s.name,
        w.phase
    );
    remove_and_check(s, &mut w).await;
}

/// All three cases, then a check that the subject's manager owns nothing.
pub async fn run_all(s: &Subject, b: &Backstage) {
    vanished_vm_is_noticed(s, b).await;
    lagging_reads_create_no_duplicate(s, b).await;
    stuck_create_ends_at_the_deadline(s, b).await;
    let left = s
        .inspector
        .resources()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(left.is_empty(), "{}: leaked {left:?}", s.name);
}
