//! Property test of the step discipline on the testing provider: any
//! sequence of step outcomes (success, transient error, throttle, crash
//! before the answer is persisted, removal requested at any point) ends with
//! the worker running on exactly one instance, or torn down with none;
//! never with an instance nothing tracks.

use std::time::Duration;

use proptest::prelude::*;
use skyfleet_core::clock::{Clock, TokioClock};
use skyfleet_core::provider::apply_step;
use skyfleet_core::store::conformance::worker;
use skyfleet_core::testing::{CallKind, TestingCloud, TestingConfig, TestingProvider};
use skyfleet_core::{DesiredState, Error, ErrorKind, Phase, Provider};

#[derive(Debug, Clone, Copy)]
enum Outcome {
    Ok,
    Transient,
    Throttle,
    /// The step runs but its answer is lost (the process died before
    /// persisting it); the next step starts from the last persisted state.
    Crash,
    /// Removal is requested before this step.
    Remove,
}

fn outcome() -> impl Strategy<Value = Outcome> {
    prop_oneof![
        4 => Just(Outcome::Ok),
        2 => Just(Outcome::Transient),
        1 => Just(Outcome::Throttle),
        2 => Just(Outcome::Crash),
        1 => Just(Outcome::Remove),
    ]
}

fn inject(cloud: &TestingCloud, kind: ErrorKind, message: &str) {
    for k in [CallKind::Create, CallKind::Get, CallKind::Delete] {
        cloud.inject(k, Error::new(kind.clone(), message));
    }
}

async fn run(outcomes: Vec<Outcome>) -> Result<(), TestCaseError> {
    let cloud = TestingCloud::new(TestingConfig {
        boot_time: Duration::from_millis(30),
        delete_time: Duration::from_millis(10),
        ..TestingConfig::default()
    });
    let p = TestingProvider::new("testing", cloud.clone());
    let clock = TokioClock::new();
    let mut w = worker("w-prop", "p", "testing", clock.now());
    let mut removing = false;
    // The scripted prefix, then a bounded drive to a settled state.
    for o in outcomes
        .iter()
        .copied()
        .chain(std::iter::repeat_n(Outcome::Ok, 200))
    {
        let settled = w.phase.is_final() || (!removing && w.phase == Phase::Running);
        if settled && matches!(o, Outcome::Ok) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(15)).await;
        match o {
            Outcome::Remove => {
                removing = true;
                w.desired = DesiredState::Removed;
                continue;
            }
            Outcome::Transient => inject(&cloud, ErrorKind::Transient, "503"),
            Outcome::Throttle => inject(
                &cloud,
                ErrorKind::Throttled {
                    retry_after: Some(Duration::from_millis(5)),
                },
                "429",
            ),
            _ => {}
        }
        let r = p.step(&w).await;
        match (o, r) {
            (Outcome::Crash, _) => {} // answer lost
            (_, Ok(step)) => apply_step(&mut w, &step, clock.now()),
            (_, Err(e)) => prop_assert!(e.is_retryable(), "unexpected error {e}"),
        }
    }
    // Let any delete finish, then compare the record with the cloud.
    tokio::time::sleep(Duration::from_millis(50)).await;
    prop_assert!(cloud.creates_accepted() <= 1, "duplicate instance");
    if removing {
        prop_assert!(w.phase.is_final(), "removal did not finish: {:?}", w.phase);
        prop_assert_eq!(cloud.instance_count(), 0, "instance leaked after teardown");
    } else {
        prop_assert_eq!(w.phase, Phase::Running);
        prop_assert_eq!(cloud.instance_count(), 1);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]
    #[test]
    fn any_outcome_sequence_converges_without_leaks(outcomes in proptest::collection::vec(outcome(), 0..30)) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap();
        rt.block_on(run(outcomes))?;
    }
}
