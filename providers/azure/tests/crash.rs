//! Crash anywhere: at every step boundary the provider is dropped and a new
//! one is built from the config alone; and before every persisted step a
//! step is run whose answer is lost (the process died between sending its
//! request and persisting the result). Afterwards the mock holds exactly one
//! VM per worker and, after teardown, nothing of ours.

mod common;

use std::time::Duration;

use common::*;
use skyfleet_core::clock::until;
use skyfleet_core::provider::apply_step;
use skyfleet_core::{DesiredState, Phase, Provider, Worker};

/// The worker's VMs, counted by its ownership tag rather than by the name
/// the provider derives: a second create under another name (a lost
/// answer replayed with a fresh name) is still counted.
async fn vms_of(env: &Env, worker: &str) -> usize {
    env.ours()
        .await
        .iter()
        .filter(|r| {
            r["kind"] == "virtualMachine"
                && r["tags"][skyfleet_core::model::tag::WORKER].as_str() == Some(worker)
        })
        .count()
}

/// Walks `w` to `target` with a fresh provider per step and, when `lose`,
/// a lost step before each persisted one. Returns the number of steps.
async fn walk(env: &Env, w: &mut Worker, target: &[Phase], lose: bool) -> usize {
    let mut steps = 0;
    let give_up = std::time::Instant::now() + Duration::from_secs(90);
    while !(target.contains(&w.phase) || w.phase.is_final()) {
        assert!(std::time::Instant::now() < give_up, "stuck: {w:#?}");
        let wait = until(time::OffsetDateTime::now_utc(), w.next_check_at);
        tokio::time::sleep(wait).await;
        if lose {
            // Crash between sending and persisting: the answer is lost.
            let doomed = env.provider();
            let _ = doomed.step(w).await;
            drop(doomed);
        }
        // A new process: a provider built from the config only.
        let p = env.provider();
        match p.step(w).await {
            Ok(s) => apply_step(w, &s, time::OffsetDateTime::now_utc()),
            Err(e) => {
                assert!(
                    e.is_retryable() || e.code() == Some("GarbledResponse"),
                    "{e}"
                );
                w.next_check_at = time::OffsetDateTime::now_utc() + Duration::from_millis(50);
            }
        }
        steps += 1;
        assert!(
            vms_of(env, w.id()).await <= 1,
            "a duplicate VM for {}",
            w.id()
        );
    }
    steps
}

async fn crash_everywhere(env: &Env, id: &str, public_ip: bool, disks: usize, lose: bool) {
    crash_with(env, id, launch(public_ip, disks), lose).await
}

async fn crash_with(env: &Env, id: &str, launch: serde_json::Value, lose: bool) {
    let mut w = worker(id, launch);
    let n = walk(env, &mut w, &[Phase::Running], lose).await;
    assert_eq!(w.phase, Phase::Running, "{id}: {:?}", w.last_error);
    assert_eq!(vms_of(env, id).await, 1, "{id}: exactly one VM");
    assert!(n >= 2, "{id}: {n} steps");
    w.desired = DesiredState::Removed;
    w.next_check_at = time::OffsetDateTime::now_utc();
    walk(env, &mut w, &[], lose).await;
    assert_eq!(w.phase, Phase::Stopped, "{id}: {:?}", w.last_error);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_at_every_boundary_and_between_send_and_persist() {
    let env = Env::start().await;
    tokio::join!(
        crash_everywhere(&env, "c-plain-lost", false, 0, true),
        crash_everywhere(&env, "c-full-lost", true, 2, true),
        crash_everywhere(&env, "c-plain-fresh", false, 0, false),
        crash_everywhere(&env, "c-full-fresh", true, 1, false),
        crash_with(&env, "c-osdisk-lost", explicit_os_launch(), true),
    );
    assert!(env.ours().await.is_empty(), "{:#?}", env.ours().await);
}

/// A crash while the worker is half created, then removal: teardown finds
/// and deletes what the lost steps created.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_mid_chain_then_remove() {
    let env = Env::start().await;
    for stop_after in 1..=4 {
        let id = format!("c-half-{stop_after}");
        let mut w = worker(&id, launch(true, 1));
        let p = env.provider();
        for _ in 0..stop_after {
            tokio::time::sleep(until(time::OffsetDateTime::now_utc(), w.next_check_at)).await;
            if let Ok(s) = p.step(&w).await {
                apply_step(&mut w, &s, time::OffsetDateTime::now_utc());
            }
        }
        // The next step's answer is lost (it had time to see the pending
        // operation end and PUT the next resource), then removal is asked for.
        tokio::time::sleep(until(time::OffsetDateTime::now_utc(), w.next_check_at)).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        let _ = env.provider().step(&w).await;
        w.desired = DesiredState::Removed;
        w.next_check_at = time::OffsetDateTime::now_utc();
        walk(&env, &mut w, &[], false).await;
        assert_eq!(w.phase, Phase::Stopped, "{id}: {:?}", w.last_error);
    }
    // Deletes of implicit disks may still be finishing.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(env.ours().await.is_empty(), "{:#?}", env.ours().await);
}
