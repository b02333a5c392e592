//! What a fleet knows about itself as it starts: its providers with the
//! partitions its pools target (for the startup line), and every metric
//! series registered at zero so dashboards and alerts see them before the
//! first event.

use std::collections::BTreeSet;

use super::events::Transition;
use super::lifecycle::RemovalReason;
use super::{Fleet, Shared};
use crate::error::ErrorKind;
use crate::metrics_catalogue as m;
use crate::model::{Phase, Worker};
use crate::offering::{CapacityClass, Offering};
use crate::provider::names;
use crate::transport::ApiClass;

/// The partition label of a worker without a partition.
pub(crate) const NO_PARTITION: &str = "-";

/// One provider of a fleet, as its startup line shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderSummary {
    /// The provider id.
    pub id: String,
    /// Its kind (`aws`, `gcp`, ...).
    pub kind: &'static str,
    /// The partitions (regions, zones) its pools' launch configs place
    /// workers in, sorted; empty for a provider without partitions.
    pub partitions: Vec<String>,
}

impl Fleet {
    /// Each provider with the partitions its pools' launch configs target
    /// (as [`Provider::partition`](crate::Provider::partition) places a new
    /// worker of each), in provider id order.
    pub fn provider_summaries(&self) -> Vec<ProviderSummary> {
        summaries(&self.shared)
    }
}

fn summaries(shared: &Shared) -> Vec<ProviderSummary> {
    let now = shared.clock.now();
    shared
        .providers
        .values()
        .map(|p| {
            let mut partitions = BTreeSet::new();
            for pool in shared
                .pools
                .iter()
                .filter(|pool| pool.provider_id == p.id())
            {
                for lc in &pool.launch_configs {
                    let probe = Worker::new(
                        pool.worker_spec(lc, "probe".into(), &shared.config.manager_id),
                        now,
                    );
                    if let Some(part) = p.partition(&probe) {
                        partitions.insert(part);
                    }
                }
            }
            ProviderSummary {
                id: p.id().to_string(),
                kind: p.kind(),
                partitions: partitions.into_iter().collect(),
            }
        })
        .collect()
}

/// Describes every metric and registers each series the fleet can name now
/// at zero (adding zero: a series another fleet of this process already
/// moved keeps its value): per pool (phases, transitions, removal reasons, error kinds),
/// per provider (steps, scanners, orphans), per provider and partition
/// (scanner lag), per SQL store method (statements, transactions), and per cloud provider kind and API class (transport;
/// its `account`, `region` and `status` labels come with the first call).
pub(super) fn register_metrics(shared: &Shared) {
    m::describe();
    for pool in &shared.pools {
        let id = pool.pool_id.clone();
        for phase in Phase::ALL {
            metrics::gauge!(m::WORKERS, "pool" => id.clone(), "phase" => phase.as_str())
                .increment(0.0);
        }
        for name in [
            m::POOL_DESIRED,
            m::POOL_PENDING,
            m::OLDEST_REQUESTED,
            m::REQUESTED_PAST_HALF_DEADLINE,
        ] {
            metrics::gauge!(name, "pool" => id.clone()).increment(0.0);
        }
        for t in Transition::LABELS {
            metrics::counter!(m::WORKER_TRANSITIONS, "pool" => id.clone(), "transition" => t)
                .increment(0);
        }
        for r in RemovalReason::ALL {
            metrics::counter!(m::WORKER_REMOVALS, "pool" => id.clone(), "reason" => r.label())
                .increment(0);
        }
        for r in crate::model::DrainReason::ALL {
            metrics::counter!(m::WORKER_DRAINS, "pool" => id.clone(), "reason" => r.as_str())
                .increment(0);
        }
        metrics::counter!(m::TASK_PANICS, "task" => format!("provisioner/{id}")).increment(0);
        for kind in ErrorKind::NAMES {
            metrics::counter!(m::ERRORS, "pool" => id.clone(), "kind" => kind).increment(0);
        }
    }
    metrics::counter!(m::TASK_PANICS, "task" => "sweeper").increment(0);
    let mut kinds = BTreeSet::new();
    for p in summaries(shared) {
        let id = p.id.clone();
        metrics::counter!(m::STEPS, "provider" => id.clone(), "outcome" => "ok").increment(0);
        let _ = metrics::histogram!(m::STEP_SECONDS, "provider" => id.clone());
        metrics::gauge!(m::SCANNERS, "provider" => id.clone()).increment(0.0);
        metrics::counter!(m::STEP_PANICS, "provider" => id.clone()).increment(0);
        for task in ["scanners", "scanner"] {
            metrics::counter!(m::TASK_PANICS, "task" => format!("{task}/{id}")).increment(0);
        }
        metrics::counter!(m::ORPHANS_DELETED, "provider" => id.clone()).increment(0);
        for why in super::sweeper::HoldReason::ALL {
            metrics::counter!(m::ORPHANS_HELD_BACK, "provider" => id.clone(),
                "reason" => why.as_str())
            .increment(0);
        }
        let partitions = if p.partitions.is_empty() {
            vec![NO_PARTITION.to_string()]
        } else {
            p.partitions
        };
        for part in partitions {
            let _ =
                metrics::histogram!(m::SCANNER_LAG, "provider" => id.clone(), "partition" => part);
        }
        if [names::AWS, names::AZURE, names::GCP].contains(&p.kind) {
            kinds.insert(p.kind);
        }
    }
    register_offering_metrics(shared);
    for op in crate::store::SQL_OPS {
        metrics::counter!(m::STORE_STATEMENTS, "op" => *op).increment(0);
        metrics::counter!(m::STORE_TRANSACTIONS, "op" => *op).increment(0);
    }
    for kind in kinds {
        for class in ApiClass::ALL {
            let l = [("provider", kind), ("class", class.as_str())];
            for name in [
                m::TRANSPORT_CALLS,
                m::TRANSPORT_ATTEMPTS,
                m::TRANSPORT_RETRIES,
                m::TRANSPORT_THROTTLES,
                m::TRANSPORT_TIMEOUTS,
                m::TRANSPORT_BUDGET_EXHAUSTED,
            ] {
                metrics::counter!(name, &l).increment(0);
            }
            for name in [m::TRANSPORT_CALL_SECONDS, m::TRANSPORT_ATTEMPT_SECONDS] {
                let _ = metrics::histogram!(name, &l);
            }
        }
    }
}

/// The offering metrics at zero: the unavailable gauge per provider and
/// class, and per offering of every pool the marks (per class) and the
/// interruptions (per source).
fn register_offering_metrics(shared: &Shared) {
    let classes = [
        CapacityClass::Capacity,
        CapacityClass::Quota,
        CapacityClass::Interruption,
    ];
    for provider in shared.providers.keys() {
        for class in classes {
            metrics::gauge!(m::OFFERINGS_UNAVAILABLE, "provider" => provider.clone(),
                "class" => class.as_str())
            .increment(0.0);
        }
    }
    let offerings: BTreeSet<&Offering> = shared.offerings.values().flatten().collect();
    for o in offerings {
        let (provider, key) = (o.provider_id.clone(), o.key());
        for class in classes {
            metrics::counter!(m::OFFERING_MARKS, "provider" => provider.clone(),
                "offering" => key.clone(), "class" => class.as_str())
            .increment(0);
        }
        for source in ["provider", "agent"] {
            metrics::counter!(m::INTERRUPTIONS, "provider" => provider.clone(),
                "offering" => key.clone(), "source" => source)
            .increment(0);
        }
    }
}
