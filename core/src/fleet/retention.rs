//! Retention: what the store forgets. Final (stopped or failed) workers
//! are deleted, with their registrations, once they finished longer than
//! [`FleetConfig::retention`](super::FleetConfig::retention) ago; pool
//! errors keep the latest
//! [`FleetConfig::pool_errors_kept`](super::FleetConfig::pool_errors_kept)
//! per pool and age out after the same retention; offering marks are
//! deleted once past their `until`. Run beside each orphan
//! sweep; every replica may run it (deletes are idempotent).

use time::OffsetDateTime;

use super::{events, Shared};
use crate::error::Result;

/// Finished workers deleted per store statement.
const DELETE_BATCH: usize = 1000;

/// Statements per pass at most: a pass deletes at most 100,000 workers, the
/// rest at the next.
const MAX_BATCHES: usize = 100;

/// What one retention pass deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetentionReport {
    /// Final workers deleted (with their registrations).
    pub workers: u64,
    /// Pool errors deleted.
    pub pool_errors: u64,
    /// Offering marks past their `until` deleted.
    pub offering_marks: u64,
}

/// The time before which finished workers and pool errors are forgotten:
/// `now - retention`, or the earliest time when that is out of range.
fn cutoff(now: OffsetDateTime, retention: std::time::Duration) -> OffsetDateTime {
    time::Duration::try_from(retention)
        .ok()
        .and_then(|d| now.checked_sub(d))
        .unwrap_or(time::PrimitiveDateTime::MIN.assume_utc())
}

/// One retention pass.
pub(super) async fn prune(shared: &Shared) -> Result<RetentionReport> {
    let before = cutoff(shared.clock.now(), shared.config.retention);
    let mut report = RetentionReport::default();
    for _ in 0..MAX_BATCHES {
        let n = shared
            .store
            .delete_finished_workers(before, DELETE_BATCH)
            .await?;
        report.workers += n;
        if n < DELETE_BATCH as u64 {
            break;
        }
    }
    report.pool_errors = shared
        .store
        .prune_pool_errors(before, shared.config.pool_errors_kept)
        .await?;
    report.offering_marks = shared
        .store
        .delete_expired_offering_marks(shared.clock.now())
        .await?;
    if report != RetentionReport::default() {
        tracing::info!(
            target: events::TARGET, event = "retention",
            workers = report.workers, pool_errors = report.pool_errors,
            offering_marks = report.offering_marks,
            "finished workers, old pool errors and expired offering marks deleted"
        );
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn the_cutoff_is_the_retention_before_now_and_never_overflows() {
        let now = OffsetDateTime::UNIX_EPOCH + Duration::from_secs(30 * 24 * 3600);
        assert_eq!(
            cutoff(now, Duration::from_secs(7 * 24 * 3600)),
            OffsetDateTime::UNIX_EPOCH + Duration::from_secs(23 * 24 * 3600)
        );
        assert_eq!(
            cutoff(now, Duration::MAX),
            time::PrimitiveDateTime::MIN.assume_utc()
        );
    }
}
