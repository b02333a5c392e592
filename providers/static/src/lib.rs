//! skyfleet provider for static, pre-existing machines that register
//! themselves.
//!
//! Nothing is created in a cloud: "create" and "remove" only change the
//! worker's record, with the same phases as the cloud providers. A new
//! worker gets a **per-worker secret**, generated at its first step and
//! handed to the caller once ([`StaticProvider::take_secret`], or
//! [`StaticProvider::prepare`] to get it directly); the record keeps only a
//! SHA-256 digest of it. The machine proves it is that worker by presenting
//! the secret to [`StaticProvider::register`], which compares digests in
//! constant time and moves the worker from `Requested` to `Running`.
//! Removing a worker (`Stopped`) revokes its secret.
//!
//! Secrets never appear in `Debug` output or logs: [`WorkerSecret`] prints
//! as `WorkerSecret(****)`.
//!
//! ```
//! # async fn demo() -> skyfleet_core::Result<()> {
//! use skyfleet_core::provider::apply_step;
//! use skyfleet_static::StaticProvider;
//! # let mut worker = skyfleet_static::example_worker("w-1");
//! let provider = StaticProvider::new("static");
//! let secret = provider.prepare(&mut worker)?;   // give this to the machine
//! // ... later, the machine calls in with it:
//! let step = provider.register(&worker, secret.expose())?;
//! apply_step(&mut worker, &step, time::OffsetDateTime::now_utc());
//! assert_eq!(worker.phase, skyfleet_core::Phase::Running);
//! # Ok(()) }
//! ```
#![warn(missing_docs)]

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use skyfleet_core::clock::{until, Clock, SystemClock};
use skyfleet_core::{
    DesiredState, Error, ErrorKind, OwnedResource, OwnershipScope, Phase, Provider, Result, Step,
    Worker,
};
use subtle::ConstantTimeEq;
use time::OffsetDateTime;

/// A worker's registration secret, shown to the caller once. `Debug` and
/// `Display` never show it; [`WorkerSecret::expose`] does.
#[derive(Clone, PartialEq, Eq)]
pub struct WorkerSecret(String);

impl WorkerSecret {
    /// The secret text, to hand to the machine.
    pub fn expose(&self) -> &str {
        &self.0
    }

    fn generate() -> Self {
        let mut bytes = [0u8; 32];
        // ThreadRng is a CSPRNG seeded from the operating system.
        rand::rng().fill_bytes(&mut bytes);
        WorkerSecret(URL_SAFE_NO_PAD.encode(bytes))
    }
}

impl fmt::Debug for WorkerSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WorkerSecret(****)")
    }
}

impl fmt::Display for WorkerSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("****")
    }
}

/// What the provider keeps on a worker's record.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaticState {
    /// SHA-256 of the secret (bound to the worker id), hex; `None` once
    /// revoked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_sha256: Option<String>,
    /// When the machine last registered.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub registered_at: Option<OffsetDateTime>,
    /// How many times it registered.
    #[serde(default)]
    pub registrations: u32,
}

impl StaticState {
    fn of(worker: &Worker) -> Result<StaticState> {
        if worker.provider_state.is_null() {
            return Ok(StaticState::default());
        }
        serde_json::from_value(worker.provider_state.clone()).map_err(|e| {
            Error::internal(format!(
                "worker {}: unreadable static provider state: {e}",
                worker.id()
            ))
            .with_code("InvalidProviderState")
        })
    }
}

fn digest(worker_id: &str, secret: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"skyfleet-static/v1\0");
    h.update(worker_id.as_bytes());
    h.update(b"\0");
    h.update(secret.as_bytes());
    h.finalize().into()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// The provider for static machines.
#[derive(Clone)]
pub struct StaticProvider {
    id: String,
    clock: Arc<dyn Clock>,
    check_interval: Duration,
    outbox: Arc<Mutex<HashMap<String, WorkerSecret>>>,
}

impl fmt::Debug for StaticProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let pending = self.outbox.lock().map(|o| o.len()).unwrap_or(0);
        f.debug_struct("StaticProvider")
            .field("id", &self.id)
            .field("check_interval", &self.check_interval)
            .field("secrets_not_taken", &pending)
            .finish()
    }
}

impl StaticProvider {
    /// A provider with id `id` on the system clock.
    pub fn new(id: impl Into<String>) -> Self {
        StaticProvider {
            id: id.into(),
            clock: Arc::new(SystemClock),
            check_interval: Duration::from_secs(60),
            outbox: Arc::default(),
        }
    }

    /// Uses `clock` for deadlines and registration times.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// How long until a registered worker is stepped again (default 60 s).
    pub fn with_check_interval(mut self, interval: Duration) -> Self {
        self.check_interval = interval;
        self
    }

    fn outbox(&self) -> std::sync::MutexGuard<'_, HashMap<String, WorkerSecret>> {
        // A poisoned lock only means a panic elsewhere; the map is intact.
        self.outbox.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Gives `worker` a secret now, writing its digest into the record, and
    /// returns the secret (the only time it is seen). Fails with
    /// `AlreadyExists` if the worker has one.
    pub fn prepare(&self, worker: &mut Worker) -> Result<WorkerSecret> {
        let mut st = StaticState::of(worker)?;
        if st.secret_sha256.is_some() {
            return Err(Error::new(
                ErrorKind::AlreadyExists,
                format!("worker {} already has a secret", worker.id()),
            ));
        }
        let secret = WorkerSecret::generate();
        st.secret_sha256 = Some(hex(&digest(worker.id(), secret.expose())));
        worker.provider_state = serde_json::to_value(&st)?;
        Ok(secret)
    }

    /// The secret generated by the step that created `worker_id`'s record,
    /// once: later calls answer `None`. Take it after persisting that step.
    pub fn take_secret(&self, worker_id: &str) -> Option<WorkerSecret> {
        self.outbox().remove(worker_id)
    }

    /// Verifies a machine's `secret` for `worker` and answers the step that
    /// records the registration (phase `Running`), for the caller to apply
    /// and persist. A wrong secret is `Unauthenticated`; a worker being or
    /// already removed is `PermissionDenied`.
    pub fn register(&self, worker: &Worker, secret: &str) -> Result<Step> {
        let mut st = StaticState::of(worker)?;
        if worker.desired == DesiredState::Removed || worker.phase.is_final() {
            return Err(Error::new(
                ErrorKind::PermissionDenied,
                format!("worker {} is removed; it cannot register", worker.id()),
            )
            .with_code("WorkerRemoved"));
        }
        let stored = st.secret_sha256.as_deref().and_then(unhex);
        let given = digest(worker.id(), secret);
        let ok = match &stored {
            Some(s) => bool::from(s.as_slice().ct_eq(&given)),
            None => false,
        };
        if !ok {
            return Err(Error::new(
                ErrorKind::Unauthenticated,
                format!("worker {}: secret validation failed", worker.id()),
            )
            .with_code("InvalidSecret"));
        }
        st.registered_at = Some(self.clock.now());
        st.registrations = st.registrations.saturating_add(1);
        Ok(Step::new(
            serde_json::to_value(&st)?,
            Phase::Running,
            self.check_interval,
        ))
    }
}

#[async_trait]
impl Provider for StaticProvider {
    fn id(&self) -> &str {
        &self.id
    }

    fn kind(&self) -> &'static str {
        "static"
    }

    fn validate(&self, launch: &serde_json::Value) -> Result<()> {
        match launch {
            serde_json::Value::Object(_) | serde_json::Value::Null => Ok(()),
            _ => Err(Error::invalid_config("launch", "must be a JSON object")),
        }
    }

    async fn step(&self, worker: &Worker) -> Result<Step> {
        let mut st = StaticState::of(worker)?;
        let now = self.clock.now();
        if worker.desired == DesiredState::Removed {
            // Revoke: the machine can no longer register as this worker.
            st.secret_sha256 = None;
            self.outbox().remove(worker.id());
            return Ok(Step::new(
                serde_json::to_value(&st)?,
                Phase::Stopped,
                Duration::ZERO,
            ));
        }
        if st.secret_sha256.is_none() {
            let secret = WorkerSecret::generate();
            st.secret_sha256 = Some(hex(&digest(worker.id(), secret.expose())));
            self.outbox().insert(worker.id().to_string(), secret);
        }
        if st.registered_at.is_some() {
            return Ok(Step::new(
                serde_json::to_value(&st)?,
                Phase::Running,
                self.check_interval,
            ));
        }
        let deadline = worker.provisioning_deadline();
        if now >= deadline {
            st.secret_sha256 = None;
            self.outbox().remove(worker.id());
            let e = Error::new(
                ErrorKind::Timeout,
                format!(
                    "static worker {} did not register within its provisioning deadline",
                    worker.id()
                ),
            )
            .with_code("RegistrationTimeout");
            return Ok(
                Step::new(serde_json::to_value(&st)?, Phase::Failed, Duration::ZERO).with_error(&e),
            );
        }
        Ok(Step::new(
            serde_json::to_value(&st)?,
            Phase::Requested,
            until(now, deadline).min(self.check_interval),
        ))
    }

    async fn list_owned(&self, _scope: &OwnershipScope) -> Result<Vec<OwnedResource>> {
        // Static machines are not cloud resources skyfleet created.
        Ok(Vec::new())
    }

    async fn delete_owned(&self, _resource: &OwnedResource) -> Result<()> {
        Ok(())
    }
}

/// A worker record for examples and tests of static workers.
#[doc(hidden)]
pub fn example_worker(id: &str) -> Worker {
    use skyfleet_core::{Lifecycle, OwnershipTags, WorkerSpec};
    Worker::new(
        WorkerSpec {
            worker_id: id.into(),
            pool_id: "pool".into(),
            provider_id: "static".into(),
            launch_config_id: "lc".into(),
            launch: serde_json::json!({}),
            capacity: 1,
            lifecycle: Lifecycle::default(),
            tags: OwnershipTags {
                manager_id: "mgr".into(),
                pool_id: "pool".into(),
                worker_id: id.into(),
                provider_id: "static".into(),
                extra: Default::default(),
            },
        },
        OffsetDateTime::now_utc(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use skyfleet_core::provider::apply_step;

    #[tokio::test]
    async fn create_register_remove() {
        let p = StaticProvider::new("static");
        let mut w = example_worker("w-1");
        let s = p.step(&w).await.unwrap();
        apply_step(&mut w, &s, OffsetDateTime::now_utc());
        assert_eq!(w.phase, Phase::Requested);
        let secret = p.take_secret("w-1").unwrap();
        assert!(p.take_secret("w-1").is_none(), "the secret is given once");
        // The record holds a digest, not the secret.
        assert!(!w.provider_state.to_string().contains(secret.expose()));
        let e = p.register(&w, "wrong").unwrap_err();
        assert_eq!(e.kind(), &ErrorKind::Unauthenticated);
        let s = p.register(&w, secret.expose()).unwrap();
        apply_step(&mut w, &s, OffsetDateTime::now_utc());
        assert_eq!(w.phase, Phase::Running);
        let s = p.step(&w).await.unwrap();
        assert_eq!(s.phase, Phase::Running);
        w.desired = DesiredState::Removed;
        let s = p.step(&w).await.unwrap();
        apply_step(&mut w, &s, OffsetDateTime::now_utc());
        assert_eq!(w.phase, Phase::Stopped);
        let e = p.register(&w, secret.expose()).unwrap_err();
        assert_eq!(e.kind(), &ErrorKind::PermissionDenied);
    }

    #[test]
    fn secrets_stay_out_of_debug_and_bind_to_the_worker() {
        let p = StaticProvider::new("static");
        let mut w = example_worker("w-2");
        let secret = p.prepare(&mut w).unwrap();
        let shown = format!("{secret:?} {secret} {p:?} {w:?}");
        assert!(!shown.contains(secret.expose()), "{shown}");
        assert!(p.prepare(&mut w).is_err());
        // The same secret does not register another worker.
        let mut other = example_worker("w-3");
        other.provider_state = w.provider_state.clone();
        assert!(p.register(&other, secret.expose()).is_err());
        assert!(p.register(&w, secret.expose()).is_ok());
    }

    #[tokio::test]
    async fn unregistered_worker_fails_at_its_deadline() {
        let p = StaticProvider::new("static");
        let mut w = example_worker("w-4");
        w.spec.lifecycle.provisioning_deadline = Duration::from_millis(1);
        w.created_at -= time::Duration::seconds(1);
        let s = p.step(&w).await.unwrap();
        assert_eq!(s.phase, Phase::Failed);
        assert_eq!(s.error.unwrap().kind, "timeout");
        assert!(p.validate(&serde_json::json!([])).is_err());
    }
}
