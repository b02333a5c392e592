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
//! Secrets never appear in `Debug` output or logs: they are core's
//! [`Secret`], which prints as `Secret([redacted])` (re-exported here).
//!
//! Modules: `builder` ([`StaticBuilder`]), `credential` (the secret),
//! `state` ([`StaticState`]), `step` (the step logic, pure), `identity`
//! ([`Provider::verify_identity`](skyfleet_core::Provider::verify_identity)
//! with an `IdentityProof::StaticSecret`) and `provider` ([`StaticProvider`]).
//!
//! ```
//! # async fn demo() -> skyfleet_core::Result<()> {
//! use skyfleet_core::provider::apply_step;
//! use skyfleet_static::StaticBuilder;
//! # let mut worker = skyfleet_static::example_worker("w-1");
//! let provider = StaticBuilder::new("static").build();
//! let secret = provider.prepare(&mut worker)?;   // give this to the machine
//! // ... later, the machine calls in with it:
//! let step = provider.register(&worker, secret.expose())?;
//! apply_step(&mut worker, &step, time::OffsetDateTime::now_utc());
//! assert_eq!(worker.phase, skyfleet_core::Phase::Running);
//! # Ok(()) }
//! ```
#![warn(missing_docs)]

mod builder;
mod credential;
mod identity;
mod provider;
mod state;
mod step;

pub use builder::StaticBuilder;
pub use provider::StaticProvider;
/// The per-worker secret type: core's one `Secret`.
pub use skyfleet_core::provider::support::Secret;
pub use state::StaticState;

use skyfleet_core::Worker;
use time::OffsetDateTime;

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
                store_id: None,
                extra: Default::default(),
            },
        },
        OffsetDateTime::now_utc(),
    )
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use skyfleet_core::provider::apply_step;
    use skyfleet_core::{DesiredState, ErrorKind, Phase, Provider};
    use time::OffsetDateTime;

    use crate::{example_worker, StaticBuilder};

    #[tokio::test]
    async fn create_register_remove() {
        let p = StaticBuilder::new("static").build();
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
        let p = StaticBuilder::new("static").build();
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
        let p = StaticBuilder::new("static").build();
        let mut w = example_worker("w-4");
        w.spec.lifecycle.provisioning_deadline = Duration::from_millis(1);
        w.created_at -= time::Duration::seconds(1);
        let s = p.step(&w).await.unwrap();
        assert_eq!(s.phase, Phase::Failed);
        assert_eq!(s.error.unwrap().kind, "timeout");
        assert!(p.validate(&serde_json::json!([])).is_err());
    }
}
