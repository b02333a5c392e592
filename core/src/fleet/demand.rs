//! Where demand comes from: the [`Demand`] trait and the fixed source.
//!
//! Sources that poll a service (a JSON endpoint, Taskcluster's queue) live in
//! the `skyfleet-demand` crate.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::estimator::PoolDemand;
use crate::error::Result;
use async_trait::async_trait;

/// Pending and claimed work per pool.
#[async_trait]
pub trait Demand: Send + Sync + std::fmt::Debug {
    /// The current demand of `pool_id`.
    async fn demand(&self, pool_id: &str) -> Result<PoolDemand>;
}

/// A fixed demand per pool, changeable at run time (tests, demos, and
/// callers that compute demand themselves).
#[derive(Debug, Clone, Default)]
pub struct FixedDemand {
    pools: Arc<Mutex<HashMap<String, PoolDemand>>>,
}

impl FixedDemand {
    /// No demand for any pool.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets `pool_id`'s pending work (claimed stays 0).
    pub fn set_pending(&self, pool_id: &str, pending: u64) {
        self.set(
            pool_id,
            PoolDemand {
                pending,
                claimed: 0,
            },
        );
    }

    /// Sets `pool_id`'s demand.
    pub fn set(&self, pool_id: &str, demand: PoolDemand) {
        self.pools
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(pool_id.to_string(), demand);
    }
}

#[async_trait]
impl Demand for FixedDemand {
    async fn demand(&self, pool_id: &str) -> Result<PoolDemand> {
        Ok(self
            .pools
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(pool_id)
            .copied()
            .unwrap_or_default())
    }
}
