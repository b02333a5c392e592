//! Offerings in the runtime: each launch config's offering (resolved once
//! per pool when the fleet is built), marks in the shared cache when a
//! cloud says no or takes capacity back, and interruptions.
//!
//! - A step error of kind [`ErrorKind::CapacityOrQuota`] marks the worker's
//!   offering unavailable for its class's TTL
//!   ([`CapacityClass::of_code`]; a quota mark covers every offering of the
//!   quota scope) and wakes the pool's provisioner at once, so the
//!   replacement is requested now on the next available offering.
//! - An interruption, from the provider's step ([`Step::interruption`]) or
//!   the agent's heartbeat, marks the worker removed
//!   ([`RemovalReason::Interrupted`]), marks its offering (class
//!   interruption), counts it per offering and wakes the provisioner. It
//!   is recorded once per worker, by whichever side writes the removal
//!   first: a worker already being removed (for any reason) is left alone.
//!   A worker the cloud already ended is recorded too (the provider may
//!   only notice then).
//! - A step that fails with `CapacityOrQuota` as an error (rather than a
//!   failed step) marks the offering too, but the worker keeps retrying
//!   with backoff: providers answer a refused create with a failed step,
//!   which finishes the worker so its replacement is requested at once.
//!
//! [`Step::interruption`]: crate::provider::Step::interruption

use std::collections::HashMap;
use std::time::Duration;

use super::events::{self, Transition};
use super::lifecycle::{mark_removed, RemovalReason};
use super::Shared;
use crate::error::{Error, ErrorKind, Result};
use crate::metrics_catalogue as names;
use crate::model::{DesiredState, PoolConfig, Worker};
use crate::offering::{CapacityClass, Interruption, InterruptionSource, Offering};
use crate::provider::DynProvider;
use crate::store::OfferingMark;

/// The default TTL of a capacity mark.
pub(crate) const DEFAULT_TTL_CAPACITY: Duration = Duration::from_secs(180);
/// The default TTL of a quota mark.
pub(crate) const DEFAULT_TTL_QUOTA: Duration = Duration::from_secs(900);
/// The default TTL of an interruption mark.
pub(crate) const DEFAULT_TTL_INTERRUPTION: Duration = Duration::from_secs(180);

/// Store round trips an interruption retries when the record changes.
const ATTEMPTS: usize = 5;

/// Each pool's launch configs' offerings, in launch config order, from
/// their providers. An error names the launch config.
pub(super) fn resolve(
    pools: &[PoolConfig],
    providers: &std::collections::BTreeMap<String, DynProvider>,
) -> Result<HashMap<String, Vec<Offering>>> {
    let mut out = HashMap::new();
    for (i, pool) in pools.iter().enumerate() {
        let Some(provider) = providers.get(&pool.provider_id) else {
            continue;
        };
        let mut offerings = Vec::with_capacity(pool.launch_configs.len());
        for (j, lc) in pool.launch_configs.iter().enumerate() {
            offerings.push(provider.offering(lc).map_err(|e| match e.kind() {
                ErrorKind::InvalidConfig { field } => Error::invalid_config(
                    format!("pools[{i}].launch_configs[{j}].{field}"),
                    format!("pool `{}`: {}", pool.pool_id, e.message()),
                ),
                _ => e,
            })?);
        }
        out.insert(pool.pool_id.clone(), offerings);
    }
    Ok(out)
}

/// Whether `offering` is made unavailable by one of `marks`.
pub(super) fn is_marked(offering: &Offering, marks: &[OfferingMark]) -> bool {
    marks.iter().any(|m| m.blocks(offering))
}

impl Shared {
    /// The offering of `w`: as recorded on it, else its launch config's.
    pub(super) fn offering_of(&self, w: &Worker) -> Option<Offering> {
        if let Some(o) = &w.offering {
            return Some(o.clone());
        }
        let pool = self.pools.iter().find(|p| p.pool_id == w.spec.pool_id)?;
        let i = pool
            .launch_configs
            .iter()
            .position(|lc| lc.id == w.spec.launch_config_id)?;
        self.offerings.get(&pool.pool_id)?.get(i).cloned()
    }

    /// Wakes `pool_id`'s provisioner now (or at the end of its current
    /// pass), instead of at its next interval.
    pub(super) fn wake_pool(&self, pool_id: &str) {
        if let Some(n) = self.pool_wakes.get(pool_id) {
            n.notify_one();
        }
    }

    /// Marks `w`'s offering unavailable for `class` (its TTL from the
    /// config), counts the mark and wakes the pool. A store error is
    /// logged: the mark is an optimisation, never a reason to fail a step.
    pub(super) async fn mark_offering(
        &self,
        w: &Worker,
        class: CapacityClass,
        code: Option<&str>,
        message: &str,
    ) {
        let Some(offering) = self.offering_of(w) else {
            self.wake_pool(&w.spec.pool_id);
            return;
        };
        let now = self.clock.now();
        let mark = OfferingMark {
            class,
            code: code.map(str::to_string),
            message: crate::failure::truncate_message(message),
            marked_at: now,
            until: now + self.config.offering_ttl(class),
            marked_by: self.owner.clone(),
            offering,
        };
        let key = mark.key();
        match self.store.mark_offering(&mark).await {
            Ok(stored) => {
                metrics::counter!(names::OFFERING_MARKS,
                    "provider" => stored.offering.provider_id.clone(),
                    "offering" => key.clone(), "class" => class.as_str())
                .increment(1);
                if let Some(held_back) = self.warnings.admit(&format!("offering/{key}/{class}")) {
                    tracing::warn!(
                        target: events::TARGET, event = "offering.marked",
                        pool = w.spec.pool_id.as_str(), worker = w.id(), offering = key.as_str(),
                        class = class.as_str(), code = code.unwrap_or("-"),
                        until = %stored.until, held_back,
                        "offering marked unavailable (one line per offering and class per minute)"
                    );
                }
            }
            Err(e) => tracing::warn!(
                target: events::TARGET, offering = key.as_str(), error = %e,
                "could not mark the offering unavailable"
            ),
        }
        self.wake_pool(&w.spec.pool_id);
    }

    /// Records an interruption of worker `worker_id`: marks it removed
    /// ([`RemovalReason::Interrupted`]), then its offering, counts it and
    /// wakes its pool. `Ok(false)` (nothing done) when the worker is gone
    /// or already being removed (for this or another reason), so the
    /// provider and the agent reporting one interruption record it once.
    pub(super) async fn interrupt(
        &self,
        worker_id: &str,
        interruption: &Interruption,
    ) -> Result<bool> {
        for _ in 0..ATTEMPTS {
            let Some(mut w) = self.store.get_worker(worker_id).await? else {
                return Ok(false);
            };
            // A worker the cloud already ended (the provider may notice the
            // interruption only then) is still recorded: the removal is
            // the fence that makes the record happen once.
            if w.desired != DesiredState::Running {
                return Ok(false);
            }
            let now = self.clock.now();
            mark_removed(&mut w, RemovalReason::Interrupted, now);
            match self.store.update_worker(&w).await {
                Ok(stored) => {
                    events::emit(
                        &stored,
                        &Transition::Removed {
                            reason: RemovalReason::Interrupted,
                            scale: None,
                        },
                    );
                    self.count_interruption(&stored, interruption).await;
                    return Ok(true);
                }
                Err(e) if e.kind() == &ErrorKind::Conflict => continue,
                Err(e) => return Err(e),
            }
        }
        Err(Error::new(
            ErrorKind::Conflict,
            format!("worker {worker_id} kept changing; interruption not recorded"),
        ))
    }

    /// The offering side of an interruption: marked, counted, logged.
    async fn count_interruption(&self, w: &Worker, interruption: &Interruption) {
        let source = match interruption.source {
            InterruptionSource::Provider => "provider",
            InterruptionSource::Agent => "agent",
        };
        let offering = self.offering_of(w);
        let key = offering.as_ref().map_or("-".to_string(), Offering::key);
        tracing::warn!(
            target: events::TARGET, event = "worker.interrupted",
            pool = w.spec.pool_id.as_str(), worker = w.id(), offering = key.as_str(),
            source, detail = interruption.detail.as_str(),
            "worker interrupted: replacing it now"
        );
        metrics::counter!(names::INTERRUPTIONS,
            "provider" => w.spec.provider_id.clone(), "offering" => key.clone(), "source" => source)
        .increment(1);
        if let Some(o) = &offering {
            if let Err(e) = self.store.record_interruption(o, self.clock.now()).await {
                tracing::warn!(offering = key.as_str(), error = %e, "could not count an interruption");
            }
        }
        self.mark_offering(
            w,
            CapacityClass::Interruption,
            None,
            &format!("interrupted ({source}): {}", interruption.detail),
        )
        .await;
    }

    /// Sets the unavailable-offerings gauge of every provider from `marks`.
    pub(super) fn record_mark_gauges(&self, marks: &[OfferingMark]) {
        for provider in self.providers.keys() {
            for class in [
                CapacityClass::Capacity,
                CapacityClass::Quota,
                CapacityClass::Interruption,
            ] {
                let n = marks
                    .iter()
                    .filter(|m| &m.offering.provider_id == provider && m.class == class)
                    .count();
                metrics::gauge!(names::OFFERINGS_UNAVAILABLE,
                    "provider" => provider.clone(), "class" => class.as_str())
                .set(n as f64);
            }
        }
    }
}
