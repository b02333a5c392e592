//! Worker records, specs and ownership tags for tests, built one way.
//!
//! ```
//! use skyfleet_core::testing::fixtures;
//! let now = time::OffsetDateTime::now_utc();
//! let w = fixtures::worker("w-1")
//!     .pool("ci/linux")
//!     .provider(skyfleet_core::provider::names::AWS)
//!     .launch(serde_json::json!({"region": "us-east-1"}))
//!     .build(now);
//! assert_eq!(w.spec.tags.pool_id, "ci/linux");
//! assert_eq!(w.spec.tags.worker_id, "w-1");
//! ```

use std::collections::BTreeMap;

use time::OffsetDateTime;

use crate::model::{Lifecycle, OwnershipTags, Worker, WorkerSpec};
use crate::provider::names;

/// A worker fixture with every field defaulted: pool `pool`, provider
/// `testing`, manager `mgr`, launch config `lc`, launch `{}`, capacity 1.
pub fn worker(worker_id: impl Into<String>) -> WorkerFixture {
    WorkerFixture {
        worker_id: worker_id.into(),
        pool_id: "pool".into(),
        provider_id: names::TESTING.into(),
        manager_id: "mgr".into(),
        launch_config_id: "lc".into(),
        launch: serde_json::json!({}),
        store_id: None,
    }
}

/// Builds a [`Worker`], its [`WorkerSpec`] or its [`OwnershipTags`]; the
/// tags always agree with the spec (same worker, pool and provider).
#[derive(Debug, Clone, PartialEq)]
pub struct WorkerFixture {
    worker_id: String,
    pool_id: String,
    provider_id: String,
    manager_id: String,
    launch_config_id: String,
    launch: serde_json::Value,
    store_id: Option<String>,
}

impl WorkerFixture {
    /// Sets the pool.
    pub fn pool(mut self, pool_id: impl Into<String>) -> Self {
        self.pool_id = pool_id.into();
        self
    }

    /// Sets the provider.
    pub fn provider(mut self, provider_id: impl Into<String>) -> Self {
        self.provider_id = provider_id.into();
        self
    }

    /// Sets the manager the ownership tags name.
    pub fn manager(mut self, manager_id: impl Into<String>) -> Self {
        self.manager_id = manager_id.into();
        self
    }

    /// Sets the store id the ownership tags carry (none by default).
    pub fn store(mut self, store_id: impl Into<String>) -> Self {
        self.store_id = Some(store_id.into());
        self
    }

    /// Sets the launch config id.
    pub fn launch_config(mut self, launch_config_id: impl Into<String>) -> Self {
        self.launch_config_id = launch_config_id.into();
        self
    }

    /// Sets the launch config body.
    pub fn launch(mut self, launch: serde_json::Value) -> Self {
        self.launch = launch;
        self
    }

    /// The ownership tags.
    pub fn tags(&self) -> OwnershipTags {
        OwnershipTags {
            manager_id: self.manager_id.clone(),
            pool_id: self.pool_id.clone(),
            worker_id: self.worker_id.clone(),
            provider_id: self.provider_id.clone(),
            store_id: self.store_id.clone(),
            extra: BTreeMap::new(),
        }
    }

    /// The spec (capacity 1, default lifecycle).
    pub fn spec(&self) -> WorkerSpec {
        WorkerSpec {
            worker_id: self.worker_id.clone(),
            pool_id: self.pool_id.clone(),
            provider_id: self.provider_id.clone(),
            launch_config_id: self.launch_config_id.clone(),
            launch: self.launch.clone(),
            capacity: 1,
            lifecycle: Lifecycle::default(),
            tags: self.tags(),
        }
    }

    /// A new worker record created at `now`.
    pub fn build(&self, now: OffsetDateTime) -> Worker {
        Worker::new(self.spec(), now)
    }

    /// A new worker record created now (the system clock).
    pub fn build_now(&self) -> Worker {
        self.build(OffsetDateTime::now_utc())
    }
}
