//! Retention through the fleet: `Fleet::prune_once` (what `run` does after
//! each orphan sweep) forgets stopped and failed workers older than
//! `FleetConfig::retention`, pool errors past `pool_errors_kept` and
//! offering marks past their `until`, on a
//! SQLite store; and the settings are validated by name.

use std::sync::Arc;
use std::time::Duration;

use skyfleet_core::fleet::{FixedDemand, Fleet, FleetConfig, RetentionReport};
use skyfleet_core::store::conformance::worker;
use skyfleet_core::store::{PoolError, SqliteStore, WorkerFilter, WorkerStore};
use skyfleet_core::testing::{TestingCloud, TestingConfig, TestingProvider};
use skyfleet_core::{ErrorKind, Phase, PoolConfig};
use time::OffsetDateTime;

const DAY: Duration = Duration::from_secs(24 * 3600);

fn fleet(store: Arc<dyn WorkerStore>, config: FleetConfig) -> skyfleet_core::Result<Fleet> {
    let pool: PoolConfig = serde_json::from_value(serde_json::json!({
        "pool_id": "p", "provider_id": "testing", "max_capacity": 5,
        "launch_configs": [{"id": "small", "launch": {"size": "small"}}]
    }))
    .unwrap();
    Fleet::builder()
        .config(config)
        .store(store)
        .provider(Arc::new(TestingProvider::new(
            "testing",
            TestingCloud::new(TestingConfig::default()),
        )))
        .pool(pool)
        .demand(Arc::new(FixedDemand::new()))
        .build()
}

#[tokio::test]
async fn finished_workers_older_than_the_retention_and_excess_pool_errors_are_forgotten() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn WorkerStore> = Arc::new(
        SqliteStore::open(dir.path().join("r.db").to_str().unwrap())
            .await
            .unwrap(),
    );
    let now = OffsetDateTime::now_utc();
    for (id, phase, age) in [
        ("w-stopped-8d", Phase::Stopped, 8 * DAY),
        ("w-failed-3d", Phase::Failed, 3 * DAY),
        ("w-stopped-1d", Phase::Stopped, DAY),
        ("w-running-9d", Phase::Running, 9 * DAY),
    ] {
        let mut w = worker(id, "p", "testing", now - 10 * DAY);
        w.phase = phase;
        w.transitioned_at = Some(now - age);
        store.create_worker(&w).await.unwrap();
    }
    // Offering marks: one expired a minute ago, one live for two more.
    for (zone, ends_in) in [("a", -60i64), ("b", 120)] {
        let until = now + time::Duration::seconds(ends_in);
        store
            .mark_offering(&skyfleet_core::store::OfferingMark {
                offering: skyfleet_core::store::conformance::offerings::offering(
                    zone,
                    skyfleet_core::offering::CapacityType::Spot,
                ),
                class: skyfleet_core::offering::CapacityClass::Capacity,
                code: None,
                message: "no capacity".into(),
                marked_at: until - time::Duration::minutes(3),
                until,
                marked_by: "r".into(),
            })
            .await
            .unwrap();
    }
    for i in 0..12 {
        store
            .record_pool_error(&PoolError {
                pool_id: "p".into(),
                kind: ErrorKind::Timeout,
                title: format!("e{i}"),
                message: "m".into(),
                launch_config_id: None,
                reported_at: now - Duration::from_secs(60 - i),
            })
            .await
            .unwrap();
    }
    let config = FleetConfig {
        manager_id: "m".into(),
        retention: 2 * DAY,
        pool_errors_kept: 10,
        ..FleetConfig::default()
    };
    let f = fleet(store.clone(), config).unwrap();
    assert_eq!(
        f.prune_once().await.unwrap(),
        RetentionReport {
            workers: 2,
            pool_errors: 2,
            offering_marks: 1,
        }
    );
    let left: Vec<String> = store
        .list_workers(&WorkerFilter::default())
        .await
        .unwrap()
        .iter()
        .map(|w| w.id().to_string())
        .collect();
    assert_eq!(left, vec!["w-running-9d", "w-stopped-1d"]);
    assert_eq!(store.list_pool_errors("p", 100).await.unwrap().len(), 10);
    assert_eq!(
        f.prune_once().await.unwrap(),
        RetentionReport::default(),
        "a second pass finds nothing"
    );
}

#[tokio::test]
async fn a_zero_retention_or_error_cap_is_refused_by_name() {
    let store: Arc<dyn WorkerStore> = Arc::new(skyfleet_core::store::MemoryStore::new());
    for (config, field) in [
        (
            FleetConfig {
                retention: Duration::ZERO,
                ..FleetConfig::default()
            },
            "fleet.retention",
        ),
        (
            FleetConfig {
                pool_errors_kept: 0,
                ..FleetConfig::default()
            },
            "fleet.pool_errors_kept",
        ),
    ] {
        let e = fleet(store.clone(), config).unwrap_err();
        assert!(
            matches!(e.kind(), ErrorKind::InvalidConfig { field: f } if f == field),
            "{e}"
        );
    }
}
