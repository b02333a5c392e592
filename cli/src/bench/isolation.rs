//! `skyfleet bench isolation`: pools on all three mock clouds, every Azure
//! call hung in the second run; the AWS and GCP time to running with and
//! without it, and what becomes of the Azure workers.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use skyfleet_core::fleet::FixedDemand;
use skyfleet_core::store::{WorkerFilter, WorkerStore};
use skyfleet_mock::MockCloud;
use tokio_util::sync::CancellationToken;

use super::harness::{fast_fleet, BenchError, Report};
use super::stats::Distribution;
use crate::mock_clouds::{self, DemoCloud};
use crate::{mockctl, wait};

async fn workers_of(store: &Arc<dyn WorkerStore>, pool: &str) -> Vec<skyfleet_core::Worker> {
    store
        .list_workers(&WorkerFilter::pool(pool))
        .await
        .unwrap_or_default()
}

/// Whether every pool's workers satisfy `pred`; a store error is an error,
/// not an empty (and so trivially satisfied) pool.
async fn every_pool(
    store: &Arc<dyn WorkerStore>,
    pools: &[&DemoCloud],
    pred: impl Fn(&[skyfleet_core::Worker]) -> bool,
) -> Result<bool, String> {
    for c in pools {
        let ws = store
            .list_workers(&WorkerFilter::pool(&c.pool.pool_id))
            .await
            .map_err(|e| format!("listing pool {}: {e}", c.pool.pool_id))?;
        if !pred(&ws) {
            return Ok(false);
        }
    }
    Ok(true)
}

/// The removal reason of a worker past its provisioning deadline.
const DEADLINE_REASON: &str = "provisioning deadline exceeded";

/// One isolation run: time to running of the non-Azure pools.
async fn isolation_run(workers: u32, hang_azure: bool) -> Result<serde_json::Value, String> {
    let mock = MockCloud::builder()
        .tls(true)
        .time_scale(mock_clouds::DEMO_TIME_SCALE)
        .start()
        .await
        .map_err(|e| format!("mock: {e}"))?;
    let mut demo = mock_clouds::demo_clouds(&mock, workers).await?;
    let deadline = Duration::from_secs(15);
    for c in demo.iter_mut() {
        if c.mock_cloud == "azure" {
            c.pool.lifecycle.provisioning_deadline = deadline;
        }
    }
    if hang_azure {
        mockctl::set_faults(
            &mock,
            &json!([{"cloud": "azure", "operation": "*", "effect": {"kind": "hang"}}]),
        )
        .await?;
    }
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let store =
        skyfleet_core::store::open(&format!("sqlite:{}", dir.path().join("iso.db").display()))
            .await
            .map_err(|e| e.to_string())?;
    let demand = FixedDemand::new();
    let fleet = mock_clouds::fleet(&demo, store.clone(), &demand)
        .config(fast_fleet("bench-isolation"))
        .build()
        .map_err(|e| e.to_string())?;
    let cancel = CancellationToken::new();
    let runner = tokio::spawn({
        let (f, c) = (fleet.clone(), cancel.clone());
        async move { f.run(c).await }
    });
    let others: Vec<&DemoCloud> = demo.iter().filter(|c| c.mock_cloud != "azure").collect();
    for c in &demo {
        demand.set_pending(&c.pool.pool_id, workers as u64);
    }
    wait::until(Duration::from_secs(120), Duration::from_millis(50), || {
        every_pool(&store, &others, |ws| {
            ws.iter().filter(|w| w.running_at.is_some()).count() >= workers as usize
        })
    })
    .await?;
    let mut ttr = Vec::new();
    for c in &others {
        for w in workers_of(&store, &c.pool.pool_id).await {
            if let Some(r) = w.running_at {
                ttr.push((r - w.created_at).as_seconds_f64());
            }
        }
    }
    let mut azure = json!(null);
    if hang_azure {
        // Wait past the deadline: every Azure worker must be marked removed.
        if let Some(azc) = demo.iter().find(|c| c.mock_cloud == "azure") {
            let (az, azure_pool) = (azc.pool.pool_id.clone(), [azc]);
            let every = Duration::from_millis(200);
            let at_deadline =
                |w: &&skyfleet_core::Worker| w.removal_reason.as_deref() == Some(DEADLINE_REASON);
            wait::until(deadline + Duration::from_secs(60), every, || {
                every_pool(&store, &azure_pool, |ws| {
                    ws.iter().filter(at_deadline).count() >= workers as usize
                })
            })
            .await?;
            // Lift the hang so teardown can finish, then drop all demand.
            mockctl::set_faults(&mock, &json!([])).await?;
            for c in &demo {
                demand.set_pending(&c.pool.pool_id, 0);
            }
            wait::until(Duration::from_secs(120), every, || {
                every_pool(&store, &azure_pool, |ws| {
                    ws.iter().all(|w| w.phase.is_final())
                })
            })
            .await?;
            let ws = workers_of(&store, &az).await;
            let removed_at_deadline = ws.iter().filter(at_deadline).count();
            azure = json!({
                "workers": ws.len(),
                "removed_at_provisioning_deadline": removed_at_deadline,
                "final": ws.iter().filter(|w| w.phase.is_final()).count(),
            });
        }
    }
    for c in &demo {
        demand.set_pending(&c.pool.pool_id, 0);
    }
    let all: Vec<&DemoCloud> = demo.iter().collect();
    wait::until(Duration::from_secs(120), Duration::from_millis(100), || {
        every_pool(&store, &all, |ws| ws.iter().all(|w| w.phase.is_final()))
    })
    .await?;
    cancel.cancel();
    let _ = runner.await;
    let leaked = mockctl::resources(&mock)
        .await?
        .iter()
        .filter(|r| mockctl::is_worker_resource(r))
        .count();
    Ok(json!({
        "p50": Distribution::new(ttr.clone()).median().unwrap_or(f64::NAN),
        "reached_running": ttr.len(),
        "azure": azure,
        "leaked_resources": leaked,
    }))
}

/// Runs `skyfleet bench isolation`.
pub async fn run(workers: u32) -> Result<Report, BenchError> {
    let base = isolation_run(workers, false).await?;
    let hung = isolation_run(workers, true).await?;
    let (b, h) = (
        base["p50"].as_f64().unwrap_or(f64::NAN),
        hung["p50"].as_f64().unwrap_or(f64::NAN),
    );
    let ratio = h / b;
    let leaked = base["leaked_resources"].as_u64().unwrap_or(0)
        + hung["leaked_resources"].as_u64().unwrap_or(0);
    let out = json!({
        "scenario": "isolation",
        "workers_per_pool": workers,
        "baseline_aws_gcp_time_to_running_p50": b,
        "with_azure_hanging_aws_gcp_time_to_running_p50": h,
        "ratio": ratio,
        "target_ratio_max": 1.1,
        "azure_with_hang": hung["azure"],
        "leaked_resources": leaked,
    });
    Ok(Report {
        ok: leaked == 0,
        ..Report::json(out)
    })
}
