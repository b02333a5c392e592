//! How much a scanner claims, when it looks again, and what it does with a
//! claimed chunk whose lease ran short: claims never exceed the free step
//! slots, an idle scanner sleeps a jittered interval, and a chunk is
//! stepped only while its lease still covers a whole step.

use std::time::{Duration, Instant};

use super::super::{FleetConfig, Shared};
use super::step_chunk;
use crate::model::Worker;
use crate::provider::DynProvider;

/// How many workers a scanner claims: at most `claim_batch`, and no more
/// than its `free_slots` step slots start at once (`chunk_size` workers per
/// slot), so no claimed worker waits for a slot while its lease runs out.
pub(super) fn claim_limit(claim_batch: usize, free_slots: usize, chunk_size: usize) -> usize {
    claim_batch.min(free_slots.saturating_mul(chunk_size.max(1)))
}

/// How long a scanner that found nothing due sleeps: `interval` times a
/// factor drawn uniformly from [0.5, 1.5] (the mean stays `interval`).
///
/// Why jitter: replicas sharing a store each poll every partition, and the
/// first poll after workers fall due claims them all. With a fixed sleep
/// the replicas' polls keep the phases their start times gave them (an
/// empty claim takes about a millisecond of a 250 ms tick), so the replica
/// whose poll follows the longest gap wins that gap's workers tick after
/// tick: three replicas on PostgreSQL at 10,000 workers served 28, 30 and
/// 43 % of the steps. A jittered sleep moves every phase by up to half an
/// interval each tick, so over many ticks each replica follows every gap
/// equally often; it adds at most half an interval (125 ms by default) to
/// the due-check lag.
pub(super) fn idle_sleep(interval: Duration) -> Duration {
    use rand::Rng;
    interval.mul_f64(rand::rng().random_range(0.5..=1.5))
}

/// Whether a lease of `lease` taken `held_for` ago still covers a whole
/// step (`step_timeout`). A fresh lease also covers the write of the answer
/// ([`FleetConfig::lease_margin`], checked by [`FleetConfig::validate`]);
/// what waited a little may spend that margin, not more.
pub(super) fn lease_covers_step(held_for: Duration, config: &FleetConfig) -> bool {
    held_for.saturating_add(config.step_timeout) <= config.lease
}

/// Steps a chunk claimed at `claimed_at` if its lease still covers the
/// step; otherwise releases its workers unstepped (they are claimed again,
/// with a fresh lease, at the next claim). Returns how many were stepped.
/// Measured on the monotonic clock: the lease's expiry is the store's, and
/// only the time since the claim matters.
pub(super) async fn step_or_release(
    shared: &Shared,
    provider: &DynProvider,
    chunk: Vec<Worker>,
    claimed_at: Instant,
) -> usize {
    if lease_covers_step(claimed_at.elapsed(), &shared.config) {
        let n = chunk.len();
        step_chunk(shared, provider, chunk).await;
        return n;
    }
    tracing::debug!(
        provider = provider.id(),
        workers = chunk.len(),
        "released claimed workers whose lease no longer covers a step"
    );
    for w in &chunk {
        if let Err(e) = shared.store.release(w.id(), &shared.owner).await {
            tracing::warn!(worker = w.id(), error = %e, "could not release a worker");
        }
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_claim_takes_no_more_workers_than_the_free_step_slots_start() {
        // The case: claim_batch 200, 32 slots, one worker per step.
        assert_eq!(claim_limit(200, 32, 1), 32);
        assert_eq!(claim_limit(200, 5, 1), 5, "27 slots busy");
        assert_eq!(claim_limit(200, 0, 1), 0, "every slot busy");
        // Batched steps: each slot steps a chunk.
        assert_eq!(claim_limit(200, 2, 50), 100);
        assert_eq!(claim_limit(200, 32, 50), 200, "never above claim_batch");
        assert_eq!(claim_limit(10, 3, 0), 3, "a zero chunk size counts as 1");
    }

    #[test]
    fn idle_sleeps_vary_around_the_interval() {
        let interval = Duration::from_millis(250);
        let sleeps: Vec<Duration> = (0..2_000).map(|_| idle_sleep(interval)).collect();
        assert!(sleeps
            .iter()
            .all(|d| (interval / 2..=interval * 3 / 2).contains(d)));
        let mean = sleeps.iter().sum::<Duration>() / sleeps.len() as u32;
        assert!(
            (Duration::from_millis(235)..=Duration::from_millis(265)).contains(&mean),
            "{mean:?}"
        );
        let (lo, hi) = (sleeps.iter().min().unwrap(), sleeps.iter().max().unwrap());
        assert!(
            *hi - *lo > interval / 2,
            "the sleeps spread: {lo:?}..{hi:?}"
        );
        assert_eq!(idle_sleep(Duration::ZERO), Duration::ZERO);
    }

    #[test]
    fn a_chunk_whose_remaining_lease_is_shorter_than_a_step_is_not_stepped() {
        let config = FleetConfig {
            lease: Duration::from_secs(120),
            step_timeout: Duration::from_secs(60),
            ..FleetConfig::default()
        };
        assert!(lease_covers_step(Duration::ZERO, &config));
        let last_ok = Duration::from_secs(60);
        assert!(lease_covers_step(last_ok, &config));
        assert!(!lease_covers_step(
            last_ok + Duration::from_millis(1),
            &config
        ));
        assert!(!lease_covers_step(Duration::from_secs(119), &config));
        assert!(!lease_covers_step(Duration::MAX, &config), "no overflow");
        // The tightest valid setting (the crash bench's): a chunk that
        // waited a moment is still stepped.
        let tight = FleetConfig {
            lease: Duration::from_secs(6),
            step_timeout: Duration::from_secs(5),
            ..FleetConfig::default()
        };
        assert!(tight.validate().is_ok());
        assert!(lease_covers_step(Duration::from_millis(500), &tight));
    }
}
