//! The testing provider: drives workers through a [`TestingCloud`] one step
//! at a time, obeying the [`Provider`] rules.

use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::cloud::{InstanceStatus, TestingCloud};
use super::offerings::{self, Faults};
use crate::error::{Error, ErrorKind, Result};
use crate::model::{tag, DesiredState, LaunchConfig, OwnedResource, OwnershipScope, Phase, Worker};
use crate::offering::{Interruption, InterruptionSource, Offering};
use crate::provider::identity::{self, IdentityProof, VerifiedIdentity};
use crate::provider::{names, Provider, Step};

/// The resumable state the testing provider keeps on each worker.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestingState {
    /// The instance name, derived from the worker id and persisted before
    /// the create call.
    #[serde(default)]
    pub name: Option<String>,
    /// Whether the create call was sent (it may or may not have landed).
    #[serde(default)]
    pub create_sent: bool,
    /// Whether the delete call was sent.
    #[serde(default)]
    pub delete_sent: bool,
}

/// The testing provider, over a [`TestingCloud`].
#[derive(Debug, Clone)]
pub struct TestingProvider {
    id: String,
    cloud: TestingCloud,
    poll: Duration,
    faults: Faults,
}

impl TestingProvider {
    /// A provider with id `id` over `cloud`.
    pub fn new(id: impl Into<String>, cloud: TestingCloud) -> Self {
        TestingProvider {
            id: id.into(),
            cloud,
            poll: Duration::from_millis(20),
            faults: Faults::default(),
        }
    }

    /// Makes every create on the offering `key` ([`Offering::key`]) fail
    /// with a capacity-or-quota error of `code` (the worker fails), until
    /// [`restock`](Self::restock).
    pub fn stock_out(&self, key: &str, code: &str) {
        self.faults.stock_out(key, code);
    }

    /// Ends a [`stock_out`](Self::stock_out).
    pub fn restock(&self, key: &str) {
        self.faults.restock(key);
    }

    /// Interrupts a worker: each of its next steps while it runs reports an
    /// interruption ([`Step::interruption`], source provider).
    pub fn interrupt(&self, worker_id: &str) {
        self.faults.interrupt(worker_id);
    }

    /// Every create attempt so far, by offering key, in order (stocked out
    /// or not).
    pub fn create_attempts(&self) -> Vec<String> {
        self.faults.creates()
    }

    /// The offering a worker is launched on: as recorded on it, else its
    /// launch's.
    fn worker_offering(&self, worker: &Worker) -> Offering {
        worker.offering.clone().unwrap_or_else(|| {
            offerings::of_launch(&self.id, &worker.spec.launch_config_id, &worker.spec.launch)
        })
    }

    /// The cloud behind it.
    pub fn cloud(&self) -> &TestingCloud {
        &self.cloud
    }

    /// The instance name of a worker: a pure function of its id.
    pub fn instance_name(worker_id: &str) -> String {
        format!("{worker_id}-vm")
    }

    fn parse_state(worker: &Worker) -> Result<TestingState> {
        if worker.provider_state.is_null() {
            return Ok(TestingState::default());
        }
        serde_json::from_value(worker.provider_state.clone()).map_err(|e| {
            Error::internal(format!(
                "worker {}: unreadable testing provider state: {e}",
                worker.id()
            ))
            .with_code("InvalidProviderState")
        })
    }

    /// The worker's region (`launch.region`), if its launch config names one.
    fn region(worker: &Worker) -> Option<&str> {
        worker.spec.launch.get("region").and_then(|r| r.as_str())
    }

    fn step_to(state: &TestingState, phase: Phase, next: Duration) -> Result<Step> {
        Ok(Step::new(serde_json::to_value(state)?, phase, next))
    }
}

#[async_trait]
impl Provider for TestingProvider {
    fn id(&self) -> &str {
        &self.id
    }

    fn kind(&self) -> &'static str {
        names::TESTING
    }

    fn partition(&self, worker: &Worker) -> Option<String> {
        Self::region(worker).map(str::to_string)
    }

    fn validate(&self, launch: &serde_json::Value) -> Result<()> {
        match launch {
            serde_json::Value::Object(m) => {
                for key in ["size", "region"] {
                    if m.get(key).is_some_and(|v| !v.is_string()) {
                        return Err(Error::invalid_config(
                            format!("launch.{key}"),
                            "must be a string",
                        ));
                    }
                }
                offerings::validate(launch)
            }
            _ => Err(Error::invalid_config("launch", "must be an object")),
        }
    }

    fn offering(&self, lc: &LaunchConfig) -> Result<Offering> {
        Ok(offerings::of_launch(&self.id, &lc.id, &lc.launch))
    }

    /// Accepts a [`IdentityProof::StaticSecret`] equal to what
    /// [`TestingCloud::identity_of`] hands the worker's instance. As on
    /// EC2, whose instance id arrives with the create's answer, a record
    /// that does not show the create as sent knows no instance to match:
    /// [`identity::UNKNOWN_WORKER`].
    async fn verify_identity(
        &self,
        worker: &Worker,
        proof: &IdentityProof,
    ) -> Result<VerifiedIdentity> {
        let IdentityProof::StaticSecret { secret } = proof else {
            return Err(identity::rejected(
                &self.id,
                worker,
                identity::WRONG_PROOF_TYPE,
            ));
        };
        if !Self::parse_state(worker)?.create_sent {
            return Err(identity::rejected(
                &self.id,
                worker,
                identity::UNKNOWN_WORKER,
            ));
        }
        let name = Self::instance_name(worker.id());
        match self.cloud.identity_of(&name) {
            Some(expected) if expected.expose() == secret.expose() => {
                Ok(VerifiedIdentity::new(worker, &self.id).with_instance(name))
            }
            _ => Err(identity::rejected(&self.id, worker, "bad_signature")),
        }
    }

    async fn step(&self, worker: &Worker) -> Result<Step> {
        let mut st = Self::parse_state(worker)?;
        let region = Self::region(worker);
        let now = self.cloud.clock.now();
        let provisioning_overdue =
            worker.phase == Phase::Requested && now >= worker.provisioning_deadline();
        let removing = worker.desired == DesiredState::Removed || provisioning_overdue;
        let Some(name) = st.name.clone() else {
            if removing {
                // Nothing was ever created.
                return Self::step_to(&st, Phase::Stopped, Duration::ZERO);
            }
            // Persist the name before any call that uses it.
            st.name = Some(Self::instance_name(worker.id()));
            return Self::step_to(&st, Phase::Requested, Duration::ZERO);
        };
        if removing {
            if !st.delete_sent {
                if st.create_sent {
                    self.cloud.delete(&name, region).await?;
                }
                st.delete_sent = true;
                return Self::step_to(&st, Phase::Stopping, self.poll);
            }
            return match self.cloud.get(&name, region).await? {
                None => {
                    let phase = if provisioning_overdue && worker.desired == DesiredState::Running {
                        Phase::Failed
                    } else {
                        Phase::Stopped
                    };
                    let s = Self::step_to(&st, phase, Duration::ZERO)?;
                    Ok(if phase == Phase::Failed {
                        s.with_error(&Error::new(
                            ErrorKind::Timeout,
                            "provisioning deadline passed; resources removed",
                        ))
                    } else {
                        s
                    })
                }
                Some(InstanceStatus::Deleting) => Self::step_to(&st, Phase::Stopping, self.poll),
                // Still there and not deleting: the delete was lost; send it again.
                Some(_) => {
                    self.cloud.delete(&name, region).await?;
                    Self::step_to(&st, Phase::Stopping, self.poll)
                }
            };
        }
        if !st.create_sent {
            if let Some(code) = self.faults.create(&self.worker_offering(worker).key()) {
                // No capacity: nothing was created, the worker is finished.
                let err = Error::new(ErrorKind::CapacityOrQuota, format!("no capacity ({code})"))
                    .with_code(code);
                return Ok(Self::step_to(&st, Phase::Failed, Duration::ZERO)?.with_error(&err));
            }
            // Mark the call as sent in the same step that makes it: if we
            // crash before this is persisted, the retry is idempotent by name.
            self.cloud
                .create(&name, region, worker.spec.tags.to_map())
                .await?;
            st.create_sent = true;
            return Self::step_to(&st, Phase::Requested, self.poll);
        }
        match self.cloud.get(&name, region).await? {
            Some(InstanceStatus::Running) if self.faults.is_interrupted(worker.id()) => Ok(
                Self::step_to(&st, Phase::Running, Duration::from_secs(60))?.with_interruption(
                    Interruption {
                        source: InterruptionSource::Provider,
                        detail: "testing.interrupted".into(),
                        not_before: None,
                    },
                ),
            ),
            Some(InstanceStatus::Running) => {
                Self::step_to(&st, Phase::Running, Duration::from_secs(60))
            }
            Some(InstanceStatus::Pending(left)) => {
                // Look again when it should be up, or at the provisioning
                // deadline if that comes first.
                let deadline = crate::clock::until(now, worker.provisioning_deadline());
                let next = left.min(deadline).max(Duration::from_millis(1));
                Self::step_to(&st, Phase::Requested, next)
            }
            Some(InstanceStatus::Deleting) | None => {
                // It vanished: the cloud lost it. Mark it for recreation.
                st.create_sent = false;
                let err = Error::new(ErrorKind::NotFound, format!("instance {name} disappeared"));
                Ok(Self::step_to(&st, Phase::Requested, Duration::ZERO)?.with_error(&err))
            }
        }
    }

    async fn list_owned(&self, scope: &OwnershipScope) -> Result<Vec<OwnedResource>> {
        let mut v = self.cloud.list(&scope.manager_id).await?;
        v.retain(|r| r.tags.get(tag::PROVIDER) == Some(&scope.provider_id));
        Ok(v)
    }

    async fn delete_owned(&self, resource: &OwnedResource) -> Result<()> {
        self.cloud.delete(&resource.id, None).await
    }

    async fn tag_owned(
        &self,
        resource: &OwnedResource,
        tags: &std::collections::BTreeMap<String, String>,
    ) -> Result<()> {
        self.cloud.tag(&resource.id, tags).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{Clock, TokioClock};
    use crate::provider::ProviderExt;
    use crate::testing::{fixtures, CallKind, TestingConfig};
    use time::OffsetDateTime;

    fn worker(id: &str, now: OffsetDateTime) -> Worker {
        fixtures::worker(id).build(now)
    }

    #[tokio::test(start_paused = true)]
    async fn create_then_remove_leaves_nothing() {
        let cloud = TestingCloud::new(TestingConfig::default());
        let p = TestingProvider::new(names::TESTING, cloud.clone());
        let clock = TokioClock::new();
        let mut w = worker("w-1", clock.now());
        p.create(&mut w, &clock, Duration::from_secs(10))
            .await
            .unwrap();
        assert_eq!(w.phase, Phase::Running);
        assert_eq!(cloud.instance_count(), 1);
        let owned = p
            .list_owned(&OwnershipScope {
                manager_id: "mgr".into(),
                provider_id: names::TESTING.into(),
            })
            .await
            .unwrap();
        assert_eq!(owned.len(), 1);
        assert_eq!(owned[0].worker_id.as_deref(), Some("w-1"));
        p.remove(&mut w, &clock, Duration::from_secs(10))
            .await
            .unwrap();
        assert_eq!(w.phase, Phase::Stopped);
        assert_eq!(cloud.instance_count(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_replayed_step_creates_nothing_new() {
        let cloud = TestingCloud::new(TestingConfig::default());
        let p = TestingProvider::new(names::TESTING, cloud.clone());
        let clock = TokioClock::new();
        let mut w = worker("w-2", clock.now());
        // Step 1 persists the name; step 2 sends the create.
        let s1 = p.step(&w).await.unwrap();
        crate::provider::apply_step(&mut w, &s1, clock.now());
        let before_create = w.clone();
        let _lost = p.step(&w).await.unwrap(); // crash: answer never persisted
        let s2 = p.step(&before_create).await.unwrap(); // the next process replays
        crate::provider::apply_step(&mut w, &s2, clock.now());
        assert_eq!(cloud.creates_accepted(), 1);
        assert_eq!(cloud.calls(CallKind::Create), 2);
        p.create(&mut w, &clock, Duration::from_secs(10))
            .await
            .unwrap();
        assert_eq!(cloud.instance_count(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn injected_failure_is_returned_and_retried() {
        let cloud = TestingCloud::new(TestingConfig::default());
        let p = TestingProvider::new(names::TESTING, cloud.clone());
        cloud.inject(CallKind::Create, Error::new(ErrorKind::Transient, "boom"));
        let clock = TokioClock::new();
        let mut w = worker("w-3", clock.now());
        p.create(&mut w, &clock, Duration::from_secs(10))
            .await
            .unwrap();
        assert_eq!(cloud.calls(CallKind::Create), 2);
        assert_eq!(cloud.creates_accepted(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn provisioning_deadline_tears_down() {
        let cloud = TestingCloud::new(TestingConfig {
            boot_time: Duration::from_secs(3600),
            ..TestingConfig::default()
        });
        let p = TestingProvider::new(names::TESTING, cloud.clone());
        let clock = TokioClock::new();
        let mut w = worker("w-4", clock.now());
        w.spec.lifecycle.provisioning_deadline = Duration::from_secs(5);
        p.drive(
            &mut w,
            &[Phase::Running],
            &clock,
            Duration::from_secs(60),
            5,
        )
        .await
        .unwrap();
        assert_eq!(w.phase, Phase::Failed);
        assert_eq!(w.last_error.as_ref().unwrap().kind, "timeout");
        assert_eq!(cloud.instance_count(), 0);
    }

    #[tokio::test]
    async fn garbled_state_is_an_error_for_that_worker() {
        let cloud = TestingCloud::new(TestingConfig::default());
        let p = TestingProvider::new(names::TESTING, cloud);
        let mut w = worker("w-5", OffsetDateTime::now_utc());
        w.provider_state = serde_json::json!({"name": 7});
        let e = p.step(&w).await.unwrap_err();
        assert_eq!(e.code(), Some("InvalidProviderState"));
        assert!(p.validate(&serde_json::json!([])).is_err());
    }
}
