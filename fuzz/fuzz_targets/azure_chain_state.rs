//! The Azure chain's persisted state (`ChainState`, read from
//! `worker.provider_state`) from arbitrary bytes.
//!
//! Bytes that are JSON become a worker's provider state. A state that
//! reads must survive a serialize/read round trip unchanged, also after
//! `begin_teardown`; then the worker is stepped against a fresh in-process
//! mock ARM (time scale 0, so operations end at their first poll), with the
//! clock advanced to each next check: 8 steps as wanted, then 12 as
//! removed. No state may panic the chain, and every state a step writes must
//! read back.
#![no_main]

use libfuzzer_sys::fuzz_target;
use skyfleet_azure::testing::ChainState;
use skyfleet_fuzz::{
    azure_launch, azure_network, azure_provider, drive, mock_router, runtime, worker, Backend,
    ManualClock,
};

fn roundtrip(st: &ChainState) {
    let v = serde_json::to_value(st).expect("a ChainState serializes");
    let back: ChainState = serde_json::from_value(v.clone())
        .unwrap_or_else(|e| panic!("a written state does not read back ({e}): {v}"));
    assert_eq!(&back, st, "the state changed in a round trip: {v}");
}

fn now(clock: &ManualClock) -> time::OffsetDateTime {
    skyfleet_core::clock::Clock::now(clock)
}

fuzz_target!(|data: &[u8]| {
    // The typed deserializer on raw bytes.
    let _ = serde_json::from_slice::<ChainState>(data);
    let Ok(state) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    let clock = ManualClock::new();
    let probe = worker("azure", azure_launch(), state.clone(), false, now(&clock));
    match ChainState::from_worker(&probe) {
        // A new worker: its first steps are stepped below.
        Ok(None) => {}
        Ok(Some(parsed)) => {
            roundtrip(&parsed);
            let mut torn = parsed.clone();
            torn.begin_teardown("fuzz");
            roundtrip(&torn);
            assert!(torn.teardown.is_some());
        }
        Err(e) => {
            assert_eq!(e.code(), Some("InvalidProviderState"), "{e:?}");
            return;
        }
    }

    runtime().block_on(async {
        let router = mock_router();
        azure_network(&router).await;
        let p = azure_provider(Backend::Mock(router), clock.clone());
        let mut w = worker("azure", azure_launch(), state, false, now(&clock));
        let check = |w: &skyfleet_core::Worker| {
            if let Err(e) = ChainState::from_worker(w) {
                panic!(
                    "a state the chain wrote does not read back: {e}: {}",
                    w.provider_state
                );
            }
        };
        drive(&p, &mut w, &clock, 8, check).await;
        w.desired = skyfleet_core::DesiredState::Removed;
        drive(&p, &mut w, &clock, 12, check).await;
    });
});
