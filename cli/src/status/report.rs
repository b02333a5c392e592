//! What `skyfleet status` shows, gathered from the store (pools, workers,
//! errors, decisions) and from the replicas' metrics (scanner lag, API
//! calls), as one serialisable report.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use skyfleet_core::metrics_catalogue as names;
use skyfleet_core::model::Registration;
use skyfleet_core::protocol::Activity;
use skyfleet_core::store::{OfferingMark, PoolDecision, PoolErrorGroup, WorkerFilter};
use skyfleet_core::{DesiredState, Phase, Worker, WorkerStore};
use time::OffsetDateTime;

use super::prom::{self, Round};
use crate::inspect::{counts_by_kind, KindCount, ERROR_WINDOW};

/// An offering of a pool marked unavailable in the shared offering cache.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Unavailable {
    /// The offering's key (`provider/location/type/capacity_type`).
    pub offering: String,
    /// Why: `capacity`, `quota` (every offering of the quota scope) or
    /// `interruption`.
    pub class: String,
    /// The cloud's error code, if any.
    pub code: Option<String>,
    /// The cloud's message.
    pub message: String,
    /// Until when new workers avoid it.
    #[serde(with = "time::serde::rfc3339")]
    pub until: OffsetDateTime,
    /// The replica that marked it.
    pub marked_by: String,
}

/// The live marks blocking one of `offerings` (the pool's launch configs'
/// offerings), one row per mark.
pub fn unavailable_of(
    offerings: &[skyfleet_core::offering::Offering],
    marks: &[OfferingMark],
) -> Vec<Unavailable> {
    marks
        .iter()
        .filter(|m| offerings.iter().any(|o| m.blocks(o)))
        .map(|m| Unavailable {
            offering: m.key(),
            class: m.class.as_str().to_string(),
            code: m.code.clone(),
            message: m.message.clone(),
            until: m.until,
            marked_by: m.marked_by.clone(),
        })
        .collect()
}

/// The pool's oldest worker still requested.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Oldest {
    /// Its id.
    pub worker_id: String,
    /// Seconds since it was requested.
    pub waiting_s: f64,
    /// Seconds until its provisioning deadline removes it (negative: due).
    pub deadline_in_s: f64,
}

/// One pool's row. Counts are capacity-free worker counts. `idle`, `busy`
/// and `draining` count running workers by what their agents last reported
/// (heartbeats and the drain handshake; a worker asked to drain counts as
/// draining from the moment it was asked), and are `null` in a pool whose
/// workers have no agent (none registered through the worker API); `min`,
/// `max` and `target` are `null` until a fleet has decided for the pool.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PoolRow {
    /// The pool.
    pub pool_id: String,
    /// Its provider, when known.
    pub provider_id: Option<String>,
    /// Minimum capacity.
    pub min: Option<u64>,
    /// Maximum capacity.
    pub max: Option<u64>,
    /// Desired capacity at the last decision.
    pub target: Option<u64>,
    /// Workers being provisioned.
    pub requested: u64,
    /// Workers running.
    pub running: u64,
    /// Running workers that registered.
    pub registered: u64,
    /// Registered workers without work.
    pub idle: Option<u64>,
    /// Registered workers with work.
    pub busy: Option<u64>,
    /// Workers asked to drain, finishing their work before removal.
    pub draining: Option<u64>,
    /// Workers being torn down.
    pub stopping: u64,
    /// When the target was decided, and by which replica.
    #[serde(with = "time::serde::rfc3339::option")]
    pub decided_at: Option<OffsetDateTime>,
    /// The replica that decided.
    pub decided_by: Option<String>,
    /// Errors in the last hour, by kind.
    pub errors_last_hour: Vec<KindCount>,
    /// The pool's offerings marked unavailable now, why and until when.
    pub unavailable: Vec<Unavailable>,
    /// The oldest requested worker.
    pub oldest_requested: Option<Oldest>,
}

/// Scanner lag of one provider partition.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScannerRow {
    /// The provider id.
    pub provider: String,
    /// The partition (`-`: none).
    pub partition: String,
    /// p99 seconds from due to claimed over the window (`null`: no claims).
    pub lag_p99_s: Option<f64>,
    /// Workers claimed in the window.
    pub claims: f64,
}

/// API calls of one provider region and class.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ApiRow {
    /// The provider kind (`aws`, `gcp`, `azure`).
    pub provider: String,
    /// The region or zone.
    pub region: String,
    /// `read`, `write`, `delete` or `poll`.
    pub class: String,
    /// Calls per minute over the window, summed over replicas.
    pub per_minute: f64,
    /// Of which throttled (per minute).
    pub throttled_per_minute: f64,
}

/// Figures from the replicas' metrics endpoints.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MetricsPart {
    /// The endpoints read.
    pub endpoints: Vec<String>,
    /// Endpoints that did not answer, with why.
    pub unreachable: Vec<String>,
    /// The window the figures cover, in seconds.
    pub window_s: f64,
    /// Per provider and partition.
    pub scanners: Vec<ScannerRow>,
    /// Per provider, region and class.
    pub api_calls: Vec<ApiRow>,
}

/// Everything `status` shows.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// When.
    #[serde(with = "time::serde::rfc3339")]
    pub generated_at: OffsetDateTime,
    /// The store (no password).
    pub store: String,
    /// Per pool.
    pub pools: Vec<PoolRow>,
    /// From `--metrics`, when given.
    pub metrics: Option<MetricsPart>,
}

fn secs(d: time::Duration) -> f64 {
    d.as_seconds_f64()
}

/// Running workers by what their agents last reported: (idle, busy,
/// draining); all `None` when none of `running` has a registration.
fn activity(
    running: &[&&Worker],
    regs: &[Registration],
) -> (Option<u64>, Option<u64>, Option<u64>) {
    let by_id: BTreeMap<&str, &Registration> =
        regs.iter().map(|r| (r.worker_id.as_str(), r)).collect();
    let mut seen = false;
    let (mut idle, mut busy, mut draining) = (0u64, 0u64, 0u64);
    for r in running.iter().filter_map(|w| by_id.get(w.id())) {
        seen = true;
        if r.drain.is_some() || r.activity == Activity::Draining {
            draining += 1;
        } else if r.activity == Activity::Busy {
            busy += 1;
        } else {
            idle += 1;
        }
    }
    if seen {
        (Some(idle), Some(busy), Some(draining))
    } else {
        (None, None, None)
    }
}

fn pool_row(
    pool_id: &str,
    workers: &[&Worker],
    regs: &[Registration],
    decision: Option<&PoolDecision>,
    groups: &[PoolErrorGroup],
    marks: &[OfferingMark],
    now: OffsetDateTime,
) -> PoolRow {
    let live = |w: &&&Worker| w.desired == DesiredState::Running;
    let requested: Vec<&&Worker> = workers
        .iter()
        .filter(live)
        .filter(|w| w.phase == Phase::Requested)
        .collect();
    let running: Vec<&&Worker> = workers
        .iter()
        .filter(live)
        .filter(|w| w.phase == Phase::Running)
        .collect();
    let stopping = workers
        .iter()
        .filter(|w| {
            !w.phase.is_final()
                && (w.desired == DesiredState::Removed || w.phase == Phase::Stopping)
        })
        .count() as u64;
    let oldest = requested
        .iter()
        .min_by_key(|w| w.created_at)
        .map(|w| Oldest {
            worker_id: w.id().to_string(),
            waiting_s: secs(now - w.created_at).max(0.0),
            deadline_in_s: secs(w.provisioning_deadline() - now),
        });
    let (idle, busy, draining) = activity(&running, regs);
    // The pool's offerings: its launch configs' (from the last decision)
    // and those its live workers run on.
    let mut offerings: Vec<skyfleet_core::offering::Offering> =
        decision.map(|d| d.offerings.clone()).unwrap_or_default();
    offerings.extend(workers.iter().filter_map(|w| w.offering.clone()));
    let unavailable = unavailable_of(&offerings, marks);
    PoolRow {
        pool_id: pool_id.to_string(),
        provider_id: decision
            .map(|d| d.provider_id.clone())
            .or_else(|| workers.first().map(|w| w.spec.provider_id.clone())),
        min: decision.map(|d| d.min_capacity),
        max: decision.map(|d| d.max_capacity),
        target: decision.map(|d| d.estimate.desired),
        requested: requested.len() as u64,
        running: running.len() as u64,
        registered: running.iter().filter(|w| w.registered_at.is_some()).count() as u64,
        idle,
        busy,
        draining,
        stopping,
        decided_at: decision.map(|d| d.decided_at),
        decided_by: decision.map(|d| d.owner.clone()),
        errors_last_hour: counts_by_kind(groups, pool_id),
        unavailable,
        oldest_requested: oldest,
    }
}

/// Reads the store's part of the report.
pub async fn from_store(
    store: &dyn WorkerStore,
    store_label: &str,
    now: OffsetDateTime,
) -> skyfleet_core::Result<Report> {
    let filter =
        WorkerFilter::default().with_phases(&[Phase::Requested, Phase::Running, Phase::Stopping]);
    let (workers, decisions, groups, marks) = tokio::try_join!(
        store.list_workers(&filter),
        store.list_pool_decisions(),
        store.pool_error_groups(now - ERROR_WINDOW),
        store.live_offering_marks(now),
    )?;
    let mut by_pool: BTreeMap<&str, Vec<&Worker>> = BTreeMap::new();
    for w in &workers {
        by_pool.entry(w.spec.pool_id.as_str()).or_default().push(w);
    }
    let pools: BTreeSet<&str> = by_pool
        .keys()
        .copied()
        .chain(decisions.iter().map(|d| d.pool_id.as_str()))
        .chain(groups.iter().map(|g| g.pool_id.as_str()))
        .collect();
    let mut rows = Vec::with_capacity(pools.len());
    for p in pools {
        let ws = by_pool.get(p).map(Vec::as_slice).unwrap_or(&[]);
        let d = decisions.iter().find(|d| d.pool_id == p);
        let regs = store.list_registrations(p).await?;
        rows.push(pool_row(p, ws, &regs, d, &groups, &marks, now));
    }
    Ok(Report {
        generated_at: now,
        store: store_label.to_string(),
        pools: rows,
        metrics: None,
    })
}

/// The metrics part from two rounds of scrapes of `endpoints`.
pub fn from_metrics(endpoints: &[String], before: &Round, after: &Round) -> MetricsPart {
    let window = after.at.saturating_duration_since(before.at);
    let per_minute = |n: f64| {
        if window.is_zero() {
            0.0
        } else {
            n * 60.0 / window.as_secs_f64()
        }
    };
    let unreachable = endpoints
        .iter()
        .zip(&after.scrapes)
        .filter(|(_, s)| s.is_none())
        .map(|(e, _)| e.clone())
        .collect();
    let growth = prom::summed_growth(before, after);
    let scanners = prom::histograms(&growth, names::SCANNER_LAG, &["provider", "partition"])
        .into_iter()
        .map(|(k, buckets)| ScannerRow {
            provider: k[0].clone(),
            partition: k[1].clone(),
            lag_p99_s: prom::quantile(0.99, &buckets),
            claims: buckets.last().map_or(0.0, |b| b.1),
        })
        .collect();
    let by = ["provider", "region", "class"];
    let calls = prom::sum_by(&growth, names::TRANSPORT_CALLS, &by);
    let throttles = prom::sum_by(&growth, names::TRANSPORT_THROTTLES, &by);
    let keys: BTreeSet<&Vec<String>> = calls.keys().chain(throttles.keys()).collect();
    let api_calls = keys
        .into_iter()
        // Series registered at zero carry no region: not a real key.
        .filter(|k| !k[1].is_empty())
        .map(|k| ApiRow {
            provider: k[0].clone(),
            region: k[1].clone(),
            class: k[2].clone(),
            per_minute: per_minute(calls.get(k).copied().unwrap_or(0.0)),
            throttled_per_minute: per_minute(throttles.get(k).copied().unwrap_or(0.0)),
        })
        .collect();
    MetricsPart {
        endpoints: endpoints.to_vec(),
        unreachable,
        window_s: window.as_secs_f64(),
        scanners,
        api_calls,
    }
}

/// Scrapes every endpoint once, concurrently; answers the round and the
/// errors of the endpoints that failed.
pub async fn round(client: &reqwest::Client, endpoints: &[String]) -> (Round, Vec<String>) {
    let at = std::time::Instant::now();
    let handles: Vec<_> = endpoints
        .iter()
        .map(|e| {
            let (client, e) = (client.clone(), e.clone());
            tokio::spawn(async move { prom::scrape(&client, &e).await })
        })
        .collect();
    let mut errors = Vec::new();
    let mut scrapes = Vec::with_capacity(handles.len());
    for h in handles {
        let r = h
            .await
            .unwrap_or_else(|e| Err(format!("scrape task failed: {e}")));
        scrapes.push(r.map_err(|e| errors.push(e)).ok());
    }
    (Round { at, scrapes }, errors)
}

#[cfg(test)]
mod tests {
    use super::*;
    use skyfleet_core::model::{Drain, DrainReason};

    fn running(id: &str) -> Worker {
        let mut w = skyfleet_core::testing::fixtures::worker(id).build_now();
        w.phase = Phase::Running;
        w
    }

    fn reg(id: &str, activity: Activity) -> Registration {
        let now = OffsetDateTime::now_utc();
        let mut r = Registration::new(id, "p", String::new(), now, now);
        r.activity = activity;
        r
    }

    #[test]
    fn idle_busy_and_draining_count_what_running_agents_reported() {
        let ws: Vec<Worker> = ["a", "b", "c", "d", "e"].map(running).into();
        let refs: Vec<&Worker> = ws.iter().collect();
        let running: Vec<&&Worker> = refs.iter().collect();
        let mut asked = reg("c", Activity::Busy);
        asked.drain = Some(Drain {
            reason: DrainReason::ScaleIn,
            requested_at: OffsetDateTime::now_utc(),
            deadline: None,
            drained_at: None,
        });
        let regs = vec![
            reg("a", Activity::Idle),
            reg("b", Activity::Busy),
            asked,
            reg("d", Activity::Draining),
            // Not running (gone): not counted.
            reg("zz", Activity::Busy),
        ];
        assert_eq!(activity(&running, &regs), (Some(1), Some(1), Some(2)));
        // No agent in the pool: unknown, not zero.
        assert_eq!(activity(&running, &[]), (None, None, None));
    }

    /// A pool shows the marks on its offerings: by key, and a quota mark on
    /// every offering of its scope; another pool's marks are not shown.
    #[test]
    fn a_pool_shows_the_marks_on_its_offerings() {
        use skyfleet_core::offering::{CapacityClass, CapacityType, Offering};
        let o = |zone: &str, ct, scope: &str| Offering {
            provider_id: "aws".into(),
            location: zone.into(),
            instance_type: "m5.large".into(),
            capacity_type: ct,
            quota_scope: Some(scope.into()),
        };
        let now = OffsetDateTime::now_utc();
        let mark = |offering: Offering, class| OfferingMark {
            offering,
            class,
            code: Some("X".into()),
            message: "m".into(),
            marked_at: now,
            until: now + time::Duration::minutes(3),
            marked_by: "r1".into(),
        };
        let ours = [
            o("a", CapacityType::Spot, "spot"),
            o("b", CapacityType::Spot, "spot"),
        ];
        let marks = [
            mark(o("a", CapacityType::Spot, "spot"), CapacityClass::Capacity),
            // Another zone, same quota: blocks ours too.
            mark(o("c", CapacityType::Spot, "spot"), CapacityClass::Quota),
            // Another pool's offering.
            mark(
                o("c", CapacityType::OnDemand, "od"),
                CapacityClass::Capacity,
            ),
        ];
        let shown = unavailable_of(&ours, &marks);
        let keys: Vec<(&str, &str)> = shown
            .iter()
            .map(|u| (u.offering.as_str(), u.class.as_str()))
            .collect();
        assert_eq!(
            keys,
            vec![
                ("aws/a/m5.large/spot", "capacity"),
                ("aws/c/m5.large/spot", "quota")
            ]
        );
        assert_eq!(shown[0].until, now + time::Duration::minutes(3));
    }

    /// The report read from a store carries the pool's marked offerings
    /// (from the decision's offerings), why and until when.
    #[tokio::test]
    async fn the_store_report_shows_marked_offerings_per_pool() {
        use skyfleet_core::offering::{CapacityClass, CapacityType, Offering};
        use skyfleet_core::store::MemoryStore;
        let store = MemoryStore::new();
        let now = OffsetDateTime::now_utc();
        let spot = Offering {
            provider_id: "aws".into(),
            location: "us-east-1a".into(),
            instance_type: "m5.large".into(),
            capacity_type: CapacityType::Spot,
            quota_scope: None,
        };
        store
            .put_pool_decision(&PoolDecision {
                pool_id: "p".into(),
                provider_id: "aws".into(),
                min_capacity: 0,
                max_capacity: 3,
                demand: Default::default(),
                have: Default::default(),
                estimate: Default::default(),
                created: 0,
                removed: 0,
                owner: "r1".into(),
                decided_at: now,
                offerings: vec![spot.clone()],
            })
            .await
            .unwrap();
        store
            .mark_offering(&OfferingMark {
                offering: spot,
                class: CapacityClass::Capacity,
                code: Some("InsufficientInstanceCapacity".into()),
                message: "no capacity".into(),
                marked_at: now,
                until: now + time::Duration::minutes(3),
                marked_by: "r1".into(),
            })
            .await
            .unwrap();
        let r = from_store(&store, "memory:", now).await.unwrap();
        let u = &r.pools[0].unavailable;
        assert_eq!(u.len(), 1, "{u:?}");
        assert_eq!(u[0].offering, "aws/us-east-1a/m5.large/spot");
        assert_eq!(u[0].code.as_deref(), Some("InsufficientInstanceCapacity"));
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["pools"][0]["unavailable"][0]["class"], "capacity");
        // Past its TTL it is no longer shown.
        let later = from_store(&store, "memory:", now + time::Duration::minutes(4))
            .await
            .unwrap();
        assert!(later.pools[0].unavailable.is_empty());
    }
}
