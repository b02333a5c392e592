//! Offerings of the testing provider, and the faults tests inject on them:
//! stockouts per offering (a create answered with a capacity or quota
//! error) and interruptions per worker (the next step of a running worker
//! reports one).
//!
//! A testing launch config's offering is (provider, `launch.region` or
//! empty, `launch.size` or the launch config's id, `launch.capacity_type`
//! (`spot` or `on_demand`, default on demand)), drawing on the quota
//! `launch.quota_scope` if given.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use crate::error::{Error, Result};
use crate::offering::{CapacityType, Offering};

/// The offering of a testing launch (`lc_id`: the launch config's id, the
/// instance type when the launch names no size).
pub(super) fn of_launch(provider_id: &str, lc_id: &str, launch: &serde_json::Value) -> Offering {
    let text = |k: &str| launch.get(k).and_then(|v| v.as_str());
    Offering {
        provider_id: provider_id.to_string(),
        location: text("region").unwrap_or_default().to_string(),
        instance_type: text("size").unwrap_or(lc_id).to_string(),
        capacity_type: text("capacity_type")
            .and_then(CapacityType::from_name)
            .unwrap_or(CapacityType::OnDemand),
        quota_scope: text("quota_scope").map(str::to_string),
    }
}

/// Checks `launch.capacity_type`, naming the key and the accepted values.
pub(super) fn validate(launch: &serde_json::Value) -> Result<()> {
    match launch.get("capacity_type") {
        None => Ok(()),
        Some(v) if v.as_str().and_then(CapacityType::from_name).is_some() => Ok(()),
        Some(v) => Err(Error::invalid_config(
            "launch.capacity_type",
            format!("expected `spot` or `on_demand`, found {v}"),
        )),
    }
}

/// The faults injected on a testing provider's offerings, shared by its
/// clones.
#[derive(Debug, Clone, Default)]
pub(super) struct Faults {
    inner: Arc<Mutex<Inner>>,
}

#[derive(Debug, Default)]
struct Inner {
    /// Offering key -> the error code its creates fail with.
    stockouts: BTreeMap<String, String>,
    /// Workers whose next step reports an interruption.
    interrupted: BTreeSet<String>,
    /// Every create attempt, by offering key, in order.
    creates: Vec<String>,
}

impl Faults {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // Each operation is one map or list change: a poisoned lock still
        // guards consistent data.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn stock_out(&self, key: &str, code: &str) {
        self.lock().stockouts.insert(key.into(), code.into());
    }

    pub(super) fn restock(&self, key: &str) {
        self.lock().stockouts.remove(key);
    }

    pub(super) fn interrupt(&self, worker_id: &str) {
        self.lock().interrupted.insert(worker_id.into());
    }

    pub(super) fn is_interrupted(&self, worker_id: &str) -> bool {
        self.lock().interrupted.contains(worker_id)
    }

    /// Records a create attempt on `key`; the stockout code if it fails.
    pub(super) fn create(&self, key: &str) -> Option<String> {
        let mut g = self.lock();
        g.creates.push(key.into());
        g.stockouts.get(key).cloned()
    }

    pub(super) fn creates(&self) -> Vec<String> {
        self.lock().creates.clone()
    }
}
