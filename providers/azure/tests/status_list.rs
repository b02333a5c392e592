//! Health checks in batches: `step_many` answers running workers from one
//! shared `statusOnly=true` listing of the subscription's VMs, trusting it
//! only for good news; everything else (a VM deleted or deallocated, one
//! created after the listing, a failed listing, the snapshot disabled)
//! makes the VM's own instance-view GET.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};
use skyfleet_azure::{AzureBuilder, AzureProvider};
use skyfleet_core::clock::{Clock, SystemClock};
use skyfleet_core::provider::apply_step;
use skyfleet_core::{Phase, Provider, Worker};
use time::OffsetDateTime;

/// The system clock moved forward by a settable amount.
#[derive(Debug, Default)]
struct ShiftedClock(Mutex<Duration>);

impl ShiftedClock {
    fn shift(&self, by: Duration) {
        *self.0.lock().unwrap() += by;
    }
}

impl Clock for ShiftedClock {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc() + *self.0.lock().unwrap()
    }
}

fn provider(env: &Env, max_age: Option<Duration>, clock: Arc<ShiftedClock>) -> AzureProvider {
    let mut b = AzureBuilder::from_config(env.config()).with_clock(clock);
    if let Some(age) = max_age {
        b = b.with_status_max_age(age);
    }
    b.build().expect("provider")
}

/// Requests of one ARM operation so far, any status.
async fn calls(env: &Env, op: &str) -> u64 {
    env.stats().await["operations"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["cloud"] == "azure" && r["operation"] == op)
        .map(|r| r["count"].as_u64().unwrap())
        .sum()
}

/// Every ARM request so far.
async fn arm_calls(env: &Env) -> u64 {
    env.stats().await["by_cloud"]["azure"].as_u64().unwrap_or(0)
}

const LIST: &str = "VirtualMachines_ListAll";
const VIEW: &str = "VirtualMachines_InstanceView";

/// Creates every worker through `step_many`, stepping the due ones in
/// batches, until all run.
async fn create_all(p: &AzureProvider, ws: &mut [Worker]) {
    let give_up = Instant::now() + Duration::from_secs(240);
    loop {
        let now = SystemClock.now();
        let due: Vec<usize> = (0..ws.len())
            .filter(|&i| ws[i].phase != Phase::Running && !ws[i].phase.is_final())
            .filter(|&i| ws[i].next_check_at <= now)
            .collect();
        let waiting = ws
            .iter()
            .any(|w| w.phase != Phase::Running && !w.phase.is_final());
        if !waiting {
            break;
        }
        assert!(Instant::now() < give_up, "stuck creating");
        if due.is_empty() {
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        }
        let batch: Vec<Worker> = due.iter().map(|&i| ws[i].clone()).collect();
        let out = p.step_many(&batch).await;
        assert_eq!(out.len(), batch.len(), "one answer per worker");
        for (&i, r) in due.iter().zip(out) {
            match r {
                Ok(s) => apply_step(&mut ws[i], &s, SystemClock.now()),
                Err(_) => ws[i].next_check_at = SystemClock.now() + Duration::from_millis(100),
            }
        }
    }
    for w in ws.iter() {
        assert_eq!(w.phase, Phase::Running, "{:?}", w.last_error);
    }
}

/// One `step_many` of all of `ws`, applied; returns the steps' error codes
/// and interruptions per worker.
async fn check_all(p: &AzureProvider, ws: &mut [Worker]) -> Vec<(Option<String>, bool)> {
    let out = p.step_many(ws).await;
    assert_eq!(out.len(), ws.len(), "one answer per worker");
    let mut seen = Vec::new();
    for (w, r) in ws.iter_mut().zip(out) {
        let s = r.unwrap_or_else(|e| panic!("{}: {e}", w.id()));
        seen.push((
            s.error.as_ref().and_then(|e| e.code.clone()),
            s.interruption.is_some(),
        ));
        apply_step(w, &s, SystemClock.now());
    }
    seen
}

fn spot_deallocate_launch() -> Value {
    let mut l = launch(false, 0);
    l["priority"] = json!("Spot");
    l["max_price"] = json!(0.05);
    l["eviction_policy"] = json!("Deallocate");
    l
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_fifty_running_workers_cost_three_list_calls() {
    let env = Env::start().await;
    let clock = Arc::new(ShiftedClock::default());
    let p = provider(&env, None, clock.clone());
    assert_eq!(p.batch_limit(), 500);
    let mut ws: Vec<Worker> = (0..250)
        .map(|i| {
            let l = if i == 1 {
                spot_deallocate_launch()
            } else {
                launch(false, 0)
            };
            worker(&format!("sl-{i:03}"), l)
        })
        .collect();
    create_all(&p, &mut ws).await;

    // The first batch lists 250 VMs: 3 pages, no instance view.
    let (all0, lists0, views0) = (
        arm_calls(&env).await,
        calls(&env, LIST).await,
        calls(&env, VIEW).await,
    );
    let seen = check_all(&p, &mut ws).await;
    assert!(seen.iter().all(|s| *s == (None, false)), "{seen:?}");
    assert!(ws.iter().all(|w| w.phase == Phase::Running));
    let all1 = arm_calls(&env).await;
    assert!(
        all1 - all0 <= 250_u64.div_ceil(100) + 1,
        "{} calls",
        all1 - all0
    );
    assert_eq!(calls(&env, LIST).await - lists0, 3);
    assert_eq!(calls(&env, VIEW).await, views0, "no instance view read");

    // Within max_age (15 s): no call at all.
    let seen = check_all(&p, &mut ws).await;
    assert!(seen.iter().all(|s| *s == (None, false)), "{seen:?}");
    assert_eq!(arm_calls(&env).await, all1, "the snapshot is shared");

    // Out of band: sl-000's VM is deleted, sl-001 (spot) is evicted and
    // deallocated. Both are noticed once the snapshot is renewed.
    let url = format!(
        "{}/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.Compute/virtualMachines/sf-sl-000-vm?api-version=2024-07-01",
        env.mock.url()
    );
    let r = env.http.delete(url).bearer_auth("x").send().await.unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    let r = env
        .http
        .post(format!("{}/_mock/interrupt", env.mock.url()))
        .json(&json!({"cloud": "azure", "instances": ["sf-sl-001-vm"]}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    // VM delete 30 s and eviction notice 30 s, at time scale 0.01.
    tokio::time::sleep(Duration::from_millis(800)).await;
    // The DELETE above is in the count.
    let all2 = arm_calls(&env).await;
    let seen = check_all(&p, &mut ws).await;
    assert_eq!(
        arm_calls(&env).await,
        all2,
        "still within max_age: nothing is asked, nothing is judged"
    );
    assert!(ws.iter().all(|w| w.phase == Phase::Running), "{seen:?}");

    clock.shift(Duration::from_secs(16));
    let (lists1, views1) = (calls(&env, LIST).await, calls(&env, VIEW).await);
    let seen = check_all(&p, &mut ws).await;
    assert_eq!(calls(&env, LIST).await - lists1, 3, "one renewal");
    assert_eq!(
        calls(&env, VIEW).await - views1,
        2,
        "only the two VMs not shown running are read one by one"
    );
    assert_eq!(seen[0], (Some("VmMissing".into()), false));
    assert_eq!(seen[1], (Some("PowerState/deallocated".into()), true));
    assert_eq!(ws[0].phase, Phase::Stopping);
    assert_eq!(ws[1].phase, Phase::Stopping);
    for (w, s) in ws.iter().zip(&seen).skip(2) {
        assert_eq!(*s, (None, false), "{}", w.id());
        assert_eq!(w.phase, Phase::Running, "{}", w.id());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_snapshot_falls_back_to_each_vms_own_instance_view() {
    let env = Env::start().await;
    let clock = Arc::new(ShiftedClock::default());
    let maker = provider(&env, None, clock.clone());
    let mut ws: Vec<Worker> = (0..3)
        .map(|i| worker(&format!("fb-{i}"), launch(false, 0)))
        .collect();
    create_all(&maker, &mut ws).await;

    // max_age zero: no listing, one instance view per worker.
    let off = provider(&env, Some(Duration::ZERO), clock.clone());
    let (lists, views) = (calls(&env, LIST).await, calls(&env, VIEW).await);
    let seen = check_all(&off, &mut ws).await;
    assert!(seen.iter().all(|s| *s == (None, false)), "{seen:?}");
    assert_eq!(calls(&env, LIST).await, lists);
    assert_eq!(calls(&env, VIEW).await - views, 3);

    // A refused listing: each worker reads its own instance view, and all
    // stay running.
    env.set_faults(json!([{"cloud": "azure", "operation": LIST, "count": 1,
        "effect": {"kind": "error", "status": 403, "code": "AuthorizationFailed",
                   "message": "no list for you"}}]))
        .await;
    let refused = provider(&env, None, clock.clone());
    let (lists, views) = (calls(&env, LIST).await, calls(&env, VIEW).await);
    let seen = check_all(&refused, &mut ws).await;
    assert!(seen.iter().all(|s| *s == (None, false)), "{seen:?}");
    assert!(ws.iter().all(|w| w.phase == Phase::Running));
    assert_eq!(calls(&env, LIST).await - lists, 1, "refused once");
    assert_eq!(calls(&env, VIEW).await - views, 3);
    // The failure was not kept: the next batch lists again, and needs no
    // instance view.
    let (lists, views) = (calls(&env, LIST).await, calls(&env, VIEW).await);
    check_all(&refused, &mut ws).await;
    assert_eq!(calls(&env, LIST).await - lists, 1);
    assert_eq!(calls(&env, VIEW).await, views);

    // A VM made after the listing is not in it: its own GET says it runs.
    let mut late = vec![worker("fb-late", launch(false, 0))];
    create_all(&maker, &mut late).await;
    ws.extend(late);
    let (lists, views) = (calls(&env, LIST).await, calls(&env, VIEW).await);
    let seen = check_all(&refused, &mut ws).await;
    assert!(seen.iter().all(|s| *s == (None, false)), "{seen:?}");
    assert!(ws.iter().all(|w| w.phase == Phase::Running));
    assert_eq!(
        calls(&env, LIST).await,
        lists,
        "the snapshot is still fresh"
    );
    assert_eq!(calls(&env, VIEW).await - views, 1, "fb-late only");

    // Two batches at once share one listing.
    let fresh = provider(&env, None, clock.clone());
    let (lists, views) = (calls(&env, LIST).await, calls(&env, VIEW).await);
    let (a, b) = ws.split_at(2);
    let (ra, rb) = tokio::join!(fresh.step_many(a), fresh.step_many(b));
    for r in ra.into_iter().chain(rb) {
        let s = r.expect("step");
        assert_eq!(s.phase, Phase::Running);
        assert!(s.error.is_none(), "{:?}", s.error);
    }
    assert_eq!(calls(&env, LIST).await - lists, 1, "one refresh in flight");
    assert_eq!(calls(&env, VIEW).await, views);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn steps_other_than_checks_run_as_before_in_order() {
    let env = Env::start().await;
    let p = provider(&env, None, Arc::new(ShiftedClock::default()));
    let mut ws: Vec<Worker> = (0..2)
        .map(|i| worker(&format!("mx-{i}"), launch(false, 0)))
        .collect();
    create_all(&p, &mut ws).await;
    // One removal, one check, one new worker, one bad launch config.
    ws[0].desired = skyfleet_core::DesiredState::Removed;
    let mut bad = launch(false, 0);
    bad.as_object_mut().unwrap().remove("subnet_id");
    ws.push(worker("mx-new", launch(false, 0)));
    ws.push(worker("mx-bad", bad));
    let out = p.step_many(&ws).await;
    assert_eq!(out.len(), 4);
    let phases: Vec<Phase> = out.iter().map(|r| r.as_ref().unwrap().phase).collect();
    assert_eq!(phases[1], Phase::Running);
    assert_ne!(
        phases[0],
        Phase::Running,
        "the removal started its teardown"
    );
    assert_eq!(phases[2], Phase::Requested);
    assert_eq!(phases[3], Phase::Failed);
    assert_eq!(
        out[2].as_ref().unwrap().state["names"]["vm"],
        "sf-mx-new-vm"
    );
}
