//! The provider conformance suite: behaviours every [`Provider`] must show,
//! written once over an `Arc<dyn Provider>` and a [`CloudInspector`] that
//! sees the cloud from outside (the mock's `/_mock/resources`, or the
//! in-memory [`TestingCloud`]).
//!
//! A provider plugs in by building a [`Subject`] and calling [`run_all`]:
//!
//! ```no_run
//! # async fn demo(subject: skyfleet_tests::Subject) {
//! skyfleet_tests::run_all(&subject).await;
//! # }
//! ```
//!
//! The behaviours ([`invalid_launch_is_refused`], [`create_run_remove`],
//! [`replayed_steps_create_nothing`], [`list_owned_is_exact`], [`retries_within_budget`],
//! [`capacity_is_classified`], [`half_created_teardown`]) panic with a
//! message naming the subject when a provider misbehaves; they are test
//! code. Fault injection is optional: an inspector that cannot inject a
//! fault says so and the behaviour that needs it is skipped, with a note on
//! stderr.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{json, Value};
use skyfleet_core::clock::{Clock, SystemClock};
use skyfleet_core::provider::apply_step;
use skyfleet_core::testing::{fixtures, CallKind, TestingCloud};
use skyfleet_core::{
    DesiredState, Error, ErrorKind, OwnershipScope, Phase, Provider, Result, Worker,
};
use skyfleet_static::StaticProvider;
pub mod behind_your_back;
mod inspectors;
pub use inspectors::{MockCloudKind, MockInspector, StaticInspector, TestingInspector};

/// One live cloud resource, as the inspector sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct CloudResource {
    /// The cloud's id.
    pub id: String,
    /// Its kind (`instance`, `networkInterface`, ...).
    pub kind: String,
    /// The worker it belongs to, from its tags (or name).
    pub worker_id: Option<String>,
}

/// A fault the suite asks the cloud to produce.
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// The next `times` create calls are throttled.
    Throttle {
        /// How many.
        times: u32,
    },
    /// The next `times` create calls fail with a 5xx.
    Transient {
        /// How many.
        times: u32,
    },
    /// Creating this worker's instance fails for lack of capacity (at the
    /// call or in its asynchronous operation).
    Capacity {
        /// The worker.
        worker_id: String,
    },
}

/// The cloud seen from outside the provider.
#[async_trait]
pub trait CloudInspector: Send + Sync {
    /// Every live resource of the subject's manager.
    async fn resources(&self) -> Result<Vec<CloudResource>>;

    /// Live resources of one worker.
    async fn count_for(&self, worker_id: &str) -> Result<usize> {
        Ok(self
            .resources()
            .await?
            .iter()
            .filter(|r| r.worker_id.as_deref() == Some(worker_id))
            .count())
    }

    /// Arms `fault`; `Ok(false)` when this cloud cannot produce it.
    async fn inject(&self, fault: Fault) -> Result<bool>;

    /// Disarms every fault.
    async fn clear_faults(&self) -> Result<()>;

    /// Plays the machine's part after each step (a static machine
    /// registering itself). The default does nothing.
    async fn after_step(&self, _worker: &mut Worker) -> Result<()> {
        Ok(())
    }
}

/// A provider under test, with what the suite needs to know about it.
pub struct Subject {
    /// A name for messages (`gcp`, `testing`).
    pub name: String,
    /// The provider.
    pub provider: Arc<dyn Provider>,
    /// Its cloud, seen from outside.
    pub inspector: Arc<dyn CloudInspector>,
    /// A valid launch config.
    pub launch: Value,
    /// The manager id put on workers (and so on their resources).
    pub manager_id: String,
    /// Live resources one running worker holds (1 for an instance, 0 for
    /// a static machine).
    pub resources_per_worker: usize,
    /// How long one worker may take to reach a phase.
    pub deadline: Duration,
}

impl Subject {
    /// A new worker record for `id` with this subject's launch config.
    pub fn worker(&self, id: &str) -> Worker {
        fixtures::worker(id)
            .pool("conformance/pool")
            .provider(self.provider.id())
            .manager(self.manager_id.as_str())
            .launch(self.launch.clone())
            .build(SystemClock.now())
    }

    fn scope(&self) -> OwnershipScope {
        OwnershipScope {
            manager_id: self.manager_id.clone(),
            provider_id: self.provider.id().to_string(),
        }
    }

    async fn count(&self, worker_id: &str) -> usize {
        self.inspector
            .count_for(worker_id)
            .await
            .unwrap_or_else(|e| panic!("{}: inspector failed: {e}", self.name))
    }
}

/// How a drive ended.
#[derive(Debug)]
pub struct Driven {
    /// Step errors seen (each retried).
    pub errors: Vec<Error>,
    /// The non-retryable error that stopped the drive, if one did.
    pub stopped_by: Option<Error>,
}

/// The most step errors in a row a drive tolerates: the budget within which
/// throttles and transient failures must be absorbed.
pub const ERROR_BUDGET: u32 = 8;

/// The longest sleep between two steps of a drive.
const MAX_NAP: Duration = Duration::from_millis(100);

/// Steps `worker` until its phase is in `until` or final, with the
/// inspector's machine hook after each step; `replay` repeats every step from
/// the state before it, throwing the first answer away (a crash between a
/// step and its persistence).
pub async fn drive(s: &Subject, worker: &mut Worker, until: &[Phase], replay: bool) -> Driven {
    let give_up = tokio::time::Instant::now() + s.deadline;
    let mut driven = Driven {
        errors: Vec::new(),
        stopped_by: None,
    };
    let mut streak = 0u32;
    while !until.contains(&worker.phase) && !worker.phase.is_final() {
        assert!(
            tokio::time::Instant::now() < give_up,
            "{}: worker {} stuck in {:?} (last error {:?}, errors {:?})",
            s.name,
            worker.id(),
            worker.phase,
            worker.last_error,
            driven.errors
        );
        if replay {
            let _lost = s.provider.step(worker).await;
        }
        match s.provider.step(worker).await {
            Ok(step) => {
                streak = 0;
                apply_step(worker, &step, SystemClock.now());
                s.inspector
                    .after_step(worker)
                    .await
                    .unwrap_or_else(|e| panic!("{}: machine hook failed: {e}", s.name));
                let nap = step.next_check_in.min(MAX_NAP);
                if !nap.is_zero() && !until.contains(&worker.phase) {
                    tokio::time::sleep(nap).await;
                }
            }
            Err(e) => {
                streak += 1;
                let retry = e.is_retryable() && streak < ERROR_BUDGET;
                if !retry {
                    driven.stopped_by = Some(e);
                    return driven;
                }
                let wait = e.retry_after().unwrap_or(Duration::from_millis(50));
                driven.errors.push(e);
                tokio::time::sleep(wait.min(Duration::from_secs(2))).await;
            }
        }
    }
    driven
}

fn must(s: &Subject, d: &Driven, what: &str) {
    if let Some(e) = &d.stopped_by {
        panic!("{}: {what}: stopped by {e}", s.name);
    }
}

async fn remove(s: &Subject, w: &mut Worker, replay: bool) {
    w.desired = DesiredState::Removed;
    w.next_check_at = SystemClock.now();
    let d = drive(s, w, &[], replay).await;
    must(s, &d, "remove");
    assert!(w.phase.is_final(), "{}: remove ended {:?}", s.name, w.phase);
    assert_eq!(
        s.count(w.id()).await,
        0,
        "{}: worker {} left resources behind",
        s.name,
        w.id()
    );
}

/// create -> running -> remove -> gone.
pub async fn create_run_remove(s: &Subject) {
    let mut w = s.worker("cf-life");
    let d = drive(s, &mut w, &[Phase::Running], false).await;
    must(s, &d, "create");
    assert_eq!(
        w.phase,
        Phase::Running,
        "{}: create ended {:?}",
        s.name,
        w.phase
    );
    assert_eq!(
        s.count("cf-life").await,
        s.resources_per_worker,
        "{}",
        s.name
    );
    remove(s, &mut w, false).await;
    assert_eq!(w.phase, Phase::Stopped, "{}", s.name);
}

/// Every step repeated after a simulated crash (its answer lost) creates
/// nothing new, through create and remove.
pub async fn replayed_steps_create_nothing(s: &Subject) {
    let mut w = s.worker("cf-replay");
    let d = drive(s, &mut w, &[Phase::Running], true).await;
    must(s, &d, "create with replays");
    assert_eq!(w.phase, Phase::Running, "{}", s.name);
    assert_eq!(
        s.count("cf-replay").await,
        s.resources_per_worker,
        "{}: replayed steps duplicated resources",
        s.name
    );
    remove(s, &mut w, true).await;
}

/// `list_owned` returns exactly the resources created, and nothing once
/// they are removed.
pub async fn list_owned_is_exact(s: &Subject) {
    let ids = ["cf-list-0", "cf-list-1", "cf-list-2"];
    let mut workers = Vec::new();
    for id in ids {
        let mut w = s.worker(id);
        let d = drive(s, &mut w, &[Phase::Running], false).await;
        must(s, &d, "create");
        workers.push(w);
    }
    let owned = s
        .provider
        .list_owned(&s.scope())
        .await
        .unwrap_or_else(|e| panic!("{}: list_owned: {e}", s.name));
    let mut per_worker: BTreeMap<String, usize> = BTreeMap::new();
    for r in &owned {
        let wid = r
            .worker_id
            .clone()
            .unwrap_or_else(|| panic!("{}: owned resource {} has no worker tag", s.name, r.id));
        *per_worker.entry(wid).or_default() += 1;
    }
    let mut seen = BTreeMap::new();
    for r in s
        .inspector
        .resources()
        .await
        .unwrap_or_else(|e| panic!("{e}"))
    {
        if let Some(w) = r.worker_id {
            *seen.entry(w).or_insert(0usize) += 1;
        }
    }
    assert_eq!(
        per_worker, seen,
        "{}: list_owned differs from the cloud",
        s.name
    );
    assert_eq!(
        owned.len(),
        ids.len() * s.resources_per_worker,
        "{}",
        s.name
    );
    for w in &mut workers {
        remove(s, w, false).await;
    }
    let left = s
        .provider
        .list_owned(&s.scope())
        .await
        .unwrap_or_else(|e| panic!("{}: list_owned after teardown: {e}", s.name));
    assert!(left.is_empty(), "{}: still owned: {left:?}", s.name);
}

/// Throttles and transient failures are retried (by the transport or by
/// the step loop) within [`ERROR_BUDGET`], without duplicating anything.
pub async fn retries_within_budget(s: &Subject) {
    // A failed control call is a failed test, not a cloud that cannot
    // inject: only `Ok(false)` skips.
    let armed = s
        .inspector
        .inject(Fault::Throttle { times: 2 })
        .await
        .unwrap_or_else(|e| panic!("{}: arming throttles: {e}", s.name))
        && s.inspector
            .inject(Fault::Transient { times: 2 })
            .await
            .unwrap_or_else(|e| panic!("{}: arming transient errors: {e}", s.name));
    if !armed {
        eprintln!(
            "{}: cannot inject throttles; retries_within_budget skipped",
            s.name
        );
        let _ = s.inspector.clear_faults().await;
        return;
    }
    let mut w = s.worker("cf-retry");
    let d = drive(s, &mut w, &[Phase::Running], false).await;
    s.inspector
        .clear_faults()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    must(s, &d, "create under throttling");
    assert_eq!(w.phase, Phase::Running, "{}", s.name);
    assert!(
        d.errors.len() < ERROR_BUDGET as usize,
        "{}: {:?}",
        s.name,
        d.errors
    );
    assert_eq!(
        s.count("cf-retry").await,
        s.resources_per_worker,
        "{}",
        s.name
    );
    remove(s, &mut w, false).await;
}

/// A capacity failure is classified `CapacityOrQuota` (on the step's error
/// or the worker's last error), so a caller can try another launch config,
/// and leaves nothing behind.
pub async fn capacity_is_classified(s: &Subject) {
    let armed = s
        .inspector
        .inject(Fault::Capacity {
            worker_id: "cf-cap".into(),
        })
        .await
        .unwrap_or_else(|e| panic!("{}: arming a capacity error: {e}", s.name));
    if !armed {
        eprintln!(
            "{}: cannot inject capacity errors; capacity_is_classified skipped",
            s.name
        );
        return;
    }
    let mut w = s.worker("cf-cap");
    let d = drive(s, &mut w, &[Phase::Running], false).await;
    s.inspector
        .clear_faults()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let classified = match &d.stopped_by {
        Some(e) => e.kind() == &ErrorKind::CapacityOrQuota,
        None => {
            w.phase == Phase::Failed
                && w.last_error.as_ref().map(|e| e.kind.name()) == Some("capacity_or_quota")
        }
    };
    assert!(
        classified,
        "{}: capacity failure not classified: phase {:?}, last error {:?}, stopped by {:?}",
        s.name, w.phase, w.last_error, d.stopped_by
    );
    if !w.phase.is_final() {
        remove(s, &mut w, false).await;
    }
    assert_eq!(
        s.count("cf-cap").await,
        0,
        "{}: capacity failure leaked",
        s.name
    );
}

/// A worker torn down half way through its creation (its first resource
/// exists, it is not running yet) leaves nothing.
pub async fn half_created_teardown(s: &Subject) {
    let mut w = s.worker("cf-half");
    for _ in 0..50 {
        if s.count("cf-half").await > 0 || w.phase != Phase::Requested {
            break;
        }
        match s.provider.step(&w).await {
            Ok(step) => apply_step(&mut w, &step, SystemClock.now()),
            Err(e) if e.is_retryable() => tokio::time::sleep(Duration::from_millis(50)).await,
            Err(e) => panic!("{}: {e}", s.name),
        }
    }
    if s.resources_per_worker > 0 {
        assert!(
            s.count("cf-half").await > 0,
            "{}: no resource appeared while creating",
            s.name
        );
    }
    remove(s, &mut w, false).await;
}

/// A launch config that is not even an object is refused up front with
/// `InvalidConfig` naming a field, and the subject's own is accepted.
pub async fn invalid_launch_is_refused(s: &Subject) {
    s.provider
        .validate(&s.launch)
        .unwrap_or_else(|e| panic!("{}: its own launch config refused: {e}", s.name));
    let e = s
        .provider
        .validate(&json!("not a launch config"))
        .err()
        .unwrap_or_else(|| panic!("{}: a string was accepted as a launch config", s.name));
    match e.kind() {
        ErrorKind::InvalidConfig { field } => {
            assert!(
                !field.is_empty(),
                "{}: InvalidConfig without a field",
                s.name
            )
        }
        k => panic!("{}: bad launch config classified {k:?}", s.name),
    }
}

/// Every behaviour, in order, then a check that the subject's manager owns
/// nothing in the cloud.
pub async fn run_all(s: &Subject) {
    invalid_launch_is_refused(s).await;
    create_run_remove(s).await;
    replayed_steps_create_nothing(s).await;
    list_owned_is_exact(s).await;
    retries_within_budget(s).await;
    capacity_is_classified(s).await;
    half_created_teardown(s).await;
    let left = s
        .inspector
        .resources()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(left.is_empty(), "{}: leaked {left:?}", s.name);
}

/// Worker ids the suite uses (to clean up between runs if needed).
pub fn worker_ids() -> BTreeSet<&'static str> {
    [
        "cf-life",
        "cf-replay",
        "cf-list-0",
        "cf-list-1",
        "cf-list-2",
        "cf-retry",
        "cf-cap",
        "cf-half",
    ]
    .into_iter()
    .collect()
}
