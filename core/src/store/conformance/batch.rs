//! Conformance cases of batched worker updates
//! ([`WorkerStore::update_workers`]): per-worker outcomes, versions bumped
//! only where written, and batches larger than one SQL transaction.

use super::{t0, worker, StorePair};
use crate::error::ErrorKind;
use crate::model::{Phase, Worker};
use crate::store::WorkerStore;

/// The kind of each answer: `"ok"` or the error kind's name.
fn kinds(answers: &[crate::Result<Worker>]) -> Vec<String> {
    answers
        .iter()
        .map(|a| match a {
            Ok(_) => "ok".to_string(),
            Err(e) => e.kind().name().to_string(),
        })
        .collect()
}

async fn stored(s: &dyn WorkerStore, id: &str) -> Worker {
    s.get_worker(id)
        .await
        .expect("get")
        .unwrap_or_else(|| panic!("batched updates: {id} must exist"))
}

/// A batch of fresh, stale and missing workers (and one worker twice):
/// each gets its own outcome, in order; only the fresh ones are written,
/// with their bodies and a bumped version; the others are left as they
/// were. An empty batch answers an empty list.
pub(super) async fn mixed_outcomes((s, other): StorePair) {
    let empty = s.update_workers(&[]).await.expect("empty batch");
    assert!(empty.is_empty(), "batched updates: empty in, empty out");

    let mut created = Vec::new();
    for id in ["w-ba", "w-bb", "w-bc"] {
        created.push(
            s.create_worker(&worker(id, "p", "aws", t0()))
                .await
                .expect("create"),
        );
    }
    // Another replica moves w-bb on: our copy is stale.
    let mut theirs = created[1].clone();
    theirs.phase = Phase::Stopping;
    let theirs = other.update_worker(&theirs).await.expect("their update");

    let mut a = created[0].clone();
    a.phase = Phase::Running;
    a.provider_state = serde_json::json!({"instance": "i-a"});
    let mut b = created[1].clone();
    b.phase = Phase::Failed;
    let mut missing = worker("w-bgone", "p", "aws", t0());
    missing.version = 1;
    let mut c = created[2].clone();
    c.phase = Phase::Running;
    c.lease_owner = Some("replica-1".into());
    c.lease_expires_at = Some(t0() + std::time::Duration::from_secs(60));
    // w-ba again at the version it had: the first write moved it.
    let mut a_again = created[0].clone();
    a_again.phase = Phase::Stopped;
    let batch = vec![a.clone(), b, missing, c.clone(), a_again];

    let answers = s.update_workers(&batch).await.expect("batch");
    assert_eq!(
        kinds(&answers),
        ["ok", "conflict", "not_found", "ok", "conflict"],
        "batched updates: one outcome per worker, in order"
    );
    let written_a = answers[0].as_ref().expect("w-ba written");
    let written_c = answers[3].as_ref().expect("w-bc written");
    assert_eq!(written_a.version, 2, "batched updates: version bumped");
    assert_eq!(written_c.version, 2, "batched updates: version bumped");
    let mut want_a = a.clone();
    want_a.version = 2;
    assert_eq!(written_a, &want_a, "batched updates: the record as sent");

    // What the other replica reads: the written bodies, the rest untouched.
    let got_a = stored(other.as_ref(), "w-ba").await;
    assert_eq!(got_a, want_a, "batched updates: w-ba's body persisted");
    let got_c = stored(other.as_ref(), "w-bc").await;
    assert_eq!(got_c.phase, Phase::Running);
    assert_eq!(got_c.lease_owner.as_deref(), Some("replica-1"));
    assert_eq!(got_c.lease_expires_at, c.lease_expires_at);
    assert_eq!(
        stored(other.as_ref(), "w-bb").await,
        theirs,
        "batched updates: the stale write wrote nothing"
    );
    assert!(
        other.get_worker("w-bgone").await.expect("get").is_none(),
        "batched updates: a missing worker is not created"
    );

    // The answers carry versions the next batch can build on.
    let next = vec![written_c.clone(), written_a.clone()];
    let again = s.update_workers(&next).await.expect("second batch");
    assert_eq!(kinds(&again), ["ok", "ok"]);
    assert_eq!(stored(other.as_ref(), "w-ba").await.version, 3);
    assert_eq!(stored(other.as_ref(), "w-bc").await.version, 3);
}

/// A batch of 510 workers (more than a SQL store's 500 per transaction)
/// with one stale worker in each part: every other worker is written once.
pub(super) async fn large_batches((s, other): StorePair) {
    const N: usize = 510;
    let mut batch = Vec::with_capacity(N);
    for i in 0..N {
        let w = s
            .create_worker(&worker(&format!("w-big{i:04}"), "p", "aws", t0()))
            .await
            .expect("create");
        batch.push(w);
    }
    for i in [7, 505] {
        let mut moved = batch[i].clone();
        moved.phase = Phase::Stopping;
        other.update_worker(&moved).await.expect("their update");
    }
    for w in &mut batch {
        w.phase = Phase::Running;
    }
    let answers = s.update_workers(&batch).await.expect("large batch");
    assert_eq!(answers.len(), N, "large batch: one answer per worker");
    for (i, a) in answers.iter().enumerate() {
        match a {
            Ok(w) => {
                assert!(i != 7 && i != 505, "large batch: stale {i} was written");
                assert_eq!((w.id(), w.version), (batch[i].id(), 2));
            }
            Err(e) => {
                assert!(i == 7 || i == 505, "large batch: {i} failed: {e}");
                assert_eq!(e.kind(), &ErrorKind::Conflict, "large batch: {e}");
            }
        }
    }
    let running = other
        .list_workers(&crate::store::WorkerFilter::pool("p").with_phases(&[Phase::Running]))
        .await
        .expect("list");
    assert_eq!(running.len(), N - 2, "large batch: all fresh ones stored");
    assert!(running.iter().all(|w| w.version == 2));
}
