//! Worker records written by the code before the provider redesign
//! (`tests/data/state_fixture.json`) are read, written back unchanged, and
//! stepped and registered correctly by the current code.

use std::collections::BTreeMap;

use serde_json::Value;
use skyfleet_core::provider::apply_step;
use skyfleet_core::{DesiredState, ErrorKind, Phase, Provider, Worker};
use skyfleet_static::{example_worker, StaticBuilder, StaticState};

/// One captured record and the secret it was given.
struct Entry {
    worker: Worker,
    state: Value,
    secret: String,
}

fn fixture() -> BTreeMap<String, Entry> {
    let all: Vec<Value> = serde_json::from_str(include_str!("data/state_fixture.json")).unwrap();
    all.into_iter()
        .map(|e| {
            let mut worker = example_worker(e["worker_id"].as_str().unwrap());
            worker.phase = serde_json::from_value(e["phase"].clone()).unwrap();
            worker.desired = serde_json::from_value(e["desired"].clone()).unwrap();
            worker.provider_state = e["state"].clone();
            let entry = Entry {
                worker,
                state: e["state"].clone(),
                secret: e["secret"].as_str().unwrap().to_string(),
            };
            (e["label"].as_str().unwrap().to_string(), entry)
        })
        .collect()
}

fn now() -> time::OffsetDateTime {
    time::OffsetDateTime::now_utc()
}

#[test]
fn every_captured_state_reads_and_writes_back_unchanged() {
    let all = fixture();
    assert_eq!(all.len(), 3);
    for (label, e) in &all {
        let st: StaticState = serde_json::from_value(e.state.clone()).unwrap();
        assert_eq!(serde_json::to_value(&st).unwrap(), e.state, "{label}");
    }
}

#[tokio::test]
async fn captured_states_step_and_register() {
    let p = StaticBuilder::new("static").build();
    let all = fixture();

    // Requested: still waiting, no new secret; the old secret registers it.
    let e = &all["requested"];
    let s = p.step(&e.worker).await.unwrap();
    assert_eq!(s.phase, Phase::Requested);
    assert_eq!(s.state, e.state);
    assert!(p.take_secret(e.worker.id()).is_none());
    let wrong = p.register(&e.worker, "not-the-secret").unwrap_err();
    assert_eq!(wrong.kind(), &ErrorKind::Unauthenticated);
    let mut w = e.worker.clone();
    let s = p.register(&w, &e.secret).unwrap();
    apply_step(&mut w, &s, now());
    assert_eq!(w.phase, Phase::Running);
    assert_eq!(w.provider_state["registrations"], 1);

    // Running stays running.
    let e = &all["running"];
    let s = p.step(&e.worker).await.unwrap();
    assert_eq!(s.phase, Phase::Running);
    assert_eq!(s.state, e.state);

    // Removing revokes the secret.
    let mut w = e.worker.clone();
    w.desired = DesiredState::Removed;
    let s = p.step(&w).await.unwrap();
    apply_step(&mut w, &s, now());
    assert_eq!(w.phase, Phase::Stopped);
    assert!(w.provider_state.get("secret_sha256").is_none());

    // Stopped: the secret no longer registers.
    let e = &all["stopped"];
    let refused = p.register(&e.worker, &e.secret).unwrap_err();
    assert_eq!(refused.kind(), &ErrorKind::PermissionDenied);
}
