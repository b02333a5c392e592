//! Persisted chain states stay readable: `fixtures/chain_states.json` holds
//! the provider states the chain wrote before it became a folder (every step
//! of four workers: a public IP and a data disk with and without cascade, an
//! explicit OS disk, and a VM whose creation failed), with the mock's
//! endpoint replaced by `https://ENDPOINT`.
//!
//! Each state is resumed by today's code against a cloud brought to the
//! shape the state describes (what it records as created exists, what it
//! records as gone does not; in-flight operation URLs are unknown to this
//! mock and answer 404, so they are recovered by name), and must reach the
//! phase the old code was heading for, with one VM at most and nothing of
//! ours left after removal.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};
use skyfleet_core::provider::apply_step;
use skyfleet_core::{DesiredState, Phase, Provider, Worker};

const FIXTURE: &str = include_str!("fixtures/chain_states.json");

fn arm_url(env: &Env, ty: &str, name: &str) -> String {
    let (arm, version) = match ty {
        "public_ip" => ("Microsoft.Network/publicIPAddresses", "2024-05-01"),
        "nic" => ("Microsoft.Network/networkInterfaces", "2024-05-01"),
        "disk" => ("Microsoft.Compute/disks", "2024-03-02"),
        "vm" => ("Microsoft.Compute/virtualMachines", "2024-07-01"),
        other => panic!("unknown resource type {other}"),
    };
    format!(
        "{}/subscriptions/{SUB}/resourceGroups/{RG}/providers/{arm}/{name}?api-version={version}",
        env.mock.url().trim_end_matches('/')
    )
}

/// Deletes one resource and waits until it is gone.
async fn delete_and_wait(env: &Env, ty: &str, name: &str) {
    let url = arm_url(env, ty, name);
    let give_up = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        assert!(std::time::Instant::now() < give_up, "{name} never went");
        let get = env.http.get(&url).bearer_auth("test").send().await.unwrap();
        if get.status() == 404 {
            return;
        }
        let _ = env.http.delete(&url).bearer_auth("test").send().await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The resources of worker `id` still in the cloud.
async fn left_of(env: &Env, id: &str) -> Vec<Value> {
    let stem = format!("sf-{id}-");
    env.ours()
        .await
        .into_iter()
        .filter(|r| r["name"].as_str().is_some_and(|n| n.starts_with(&stem)))
        .collect()
}

fn worker_of(env: &Env, entry: &Value) -> Worker {
    let id = entry["label"]
        .as_str()
        .and_then(|l| l.split("-create").next())
        .and_then(|l| l.split("-remove").next())
        .unwrap()
        .to_string();
    let mut w = worker(&id, entry["launch"].clone());
    let text = entry["state"]
        .to_string()
        .replace("https://ENDPOINT", env.mock.url().trim_end_matches('/'));
    w.provider_state = serde_json::from_str(&text).unwrap();
    w.phase = serde_json::from_value(entry["phase"].clone()).unwrap();
    w.desired = serde_json::from_value(entry["desired"].clone()).unwrap();
    w
}

async fn resume(env: &Env, p: &dyn Provider, entry: &Value) {
    let label = entry["label"].as_str().unwrap();
    let mut w = worker_of(env, entry);
    // Bring the cloud to the state's shape: everything exists (created by
    // today's code under the same names), then what it records as gone goes.
    let mut fresh = worker(w.id(), entry["launch"].clone());
    drive(p, &mut fresh, &[Phase::Running]).await;
    assert_eq!(
        fresh.phase,
        Phase::Running,
        "{label}: {:?}",
        fresh.last_error
    );
    if let Some(targets) = w.provider_state["teardown"]["targets"].as_array() {
        for t in targets.iter().filter(|t| t["gone"] == json!(true)) {
            delete_and_wait(env, t["ty"].as_str().unwrap(), t["name"].as_str().unwrap()).await;
        }
    }
    let old_phase = w.phase;
    w.next_check_at = time::OffsetDateTime::now_utc();
    if w.phase.is_final() {
        // A final state is stepped once more: it must stay final and report
        // its recorded failure again.
        let s = p.step(&w).await.unwrap();
        apply_step(&mut w, &s, time::OffsetDateTime::now_utc());
    }
    drive(p, &mut w, &[Phase::Running]).await;
    let failed_before = !w.provider_state["failure"].is_null();
    match old_phase {
        Phase::Requested | Phase::Running => {
            assert_eq!(w.phase, Phase::Running, "{label}: {:?}", w.last_error);
            let vm = format!("sf-{}-vm", w.id());
            let vms = env
                .ours()
                .await
                .iter()
                .filter(|r| r["kind"] == "virtualMachine" && r["name"] == json!(vm))
                .count();
            assert_eq!(vms, 1, "{label}: exactly one VM");
            w.desired = DesiredState::Removed;
            w.next_check_at = time::OffsetDateTime::now_utc();
            drive(p, &mut w, &[]).await;
            assert_eq!(w.phase, Phase::Stopped, "{label}: {:?}", w.last_error);
        }
        _ if failed_before => {
            assert_eq!(w.phase, Phase::Failed, "{label}");
            assert_eq!(
                w.last_error.as_ref().and_then(|e| e.code.as_deref()),
                Some("AllocationFailed"),
                "{label}"
            );
        }
        _ => assert_eq!(w.phase, Phase::Stopped, "{label}: {:?}", w.last_error),
    }
    // Deletes of implicit disks may still be finishing.
    let give_up = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let left = left_of(env, w.id()).await;
        if left.is_empty() {
            break;
        }
        assert!(
            std::time::Instant::now() < give_up,
            "{label}: left {left:#?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn states_written_before_the_split_are_resumed() {
    let entries: Vec<Value> = serde_json::from_str(FIXTURE).unwrap();
    assert!(entries.len() >= 30, "{}", entries.len());
    let env = Env::start().await;
    let p = env.provider();
    // The four workers' entries run side by side, each worker's in order.
    let group = |prefix: &'static str| {
        let (env, p, entries) = (&env, &p, &entries);
        async move {
            for entry in entries
                .iter()
                .filter(|e| e["label"].as_str().is_some_and(|l| l.starts_with(prefix)))
            {
                resume(env, p, entry).await;
            }
        }
    };
    tokio::join!(
        group("fx-full-"),
        group("fx-nocascade-"),
        group("fx-os-"),
        group("fx-fail-")
    );
}
