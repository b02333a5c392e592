//! The orphan sweeper: deletes cloud resources carrying our ownership tags
//! that no live worker accounts for.
//!
//! Resumable steps leak nothing by construction, but resources can still
//! appear behind the fleet's back: a worker record deleted by hand, a
//! database restored from backup, another tool using our tags. The sweeper
//! lists what each provider holds with our manager id (`list_owned`), and
//! deletes what is older than a grace period and belongs to no live worker.
//! The grace period covers the window between a create call landing and its
//! worker record being readable.

use std::collections::HashMap;
use std::sync::Arc;

use time::OffsetDateTime;

use super::{events, Shared};
use crate::error::Result;
use crate::metrics_catalogue as names;
use crate::model::OwnershipScope;

/// What one sweep found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// Resources with our tags seen.
    pub seen: u64,
    /// Orphans deleted.
    pub deleted: u64,
    /// Orphans younger than the grace period, left for a later sweep.
    pub waiting: u64,
    /// Deletions that failed (retried next sweep).
    pub failed: u64,
}

/// Sweeps every provider once.
pub(super) async fn sweep(
    shared: &Arc<Shared>,
    first_seen: &mut HashMap<String, OffsetDateTime>,
) -> Result<SweepReport> {
    let mut report = SweepReport::default();
    let now = shared.clock.now();
    let grace = shared.config.sweep_grace;
    let mut still_there = std::collections::HashSet::new();
    for provider in shared.providers.values() {
        let scope = OwnershipScope {
            manager_id: shared.config.manager_id.clone(),
            provider_id: provider.id().to_string(),
        };
        let owned = match provider.list_owned(&scope).await {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(provider = provider.id(), error = %e, "orphan sweep: list failed");
                continue;
            }
        };
        for r in owned {
            report.seen += 1;
            let live = match &r.worker_id {
                Some(id) => shared
                    .store
                    .get_worker(id)
                    .await?
                    .is_some_and(|w| !w.phase.is_final()),
                None => false,
            };
            if live {
                continue;
            }
            let key = format!("{}/{}", provider.id(), r.id);
            still_there.insert(key.clone());
            let seen_at = *first_seen.entry(key).or_insert(now);
            let born = r.created_at.map_or(seen_at, |c| c.min(seen_at));
            if now - born < grace {
                report.waiting += 1;
                continue;
            }
            match provider.delete_owned(&r).await {
                Ok(()) => {
                    report.deleted += 1;
                    metrics::counter!(names::ORPHANS_DELETED, "provider" => provider.id().to_string())
                        .increment(1);
                    tracing::info!(
                        target: events::TARGET, event = "sweep.deleted", provider = provider.id(),
                        resource = %r.id, kind = %r.kind,
                        worker = r.worker_id.as_deref().unwrap_or("-"), "deleted orphan"
                    );
                }
                Err(e) => {
                    report.failed += 1;
                    tracing::warn!(provider = provider.id(), resource = %r.id, error = %e, "orphan delete failed");
                }
            }
        }
    }
    first_seen.retain(|k, _| still_there.contains(k));
    events::sweep(&report);
    Ok(report)
}
