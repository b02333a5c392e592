//! `skyfleet bench soak`: the demo under the mixed fault mix; leaks,
//! duplicates, unconverged workers and panics.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::json;

use super::harness::{BenchError, Report};

static PANICS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Runs `skyfleet bench soak`.
pub async fn run(workers: u32, faults: &str, timeout_s: u64) -> Result<Report, BenchError> {
    if faults != "mixed" {
        return Err(BenchError::Usage(format!(
            "--faults `{faults}`: only `mixed` is defined for soaks"
        )));
    }
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        PANICS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        default_hook(info);
    }));
    let summary = crate::demo::run(crate::demo::DemoArgs {
        workers,
        faults: crate::demo::Faults::Mixed,
        json: true,
        store: None,
        timeout: Duration::from_secs(timeout_s),
    })
    .await?;
    let panics = PANICS.load(std::sync::atomic::Ordering::SeqCst);
    let mut errors: BTreeMap<String, u64> = BTreeMap::new();
    for p in &summary.providers {
        for (k, v) in &p.errors_by_kind {
            *errors.entry(k.clone()).or_default() += v;
        }
    }
    let ok = summary.leaked_resources == 0
        && summary.duplicate_vms == 0
        && summary.unconverged_workers == 0
        && panics == 0;
    let out = json!({
        "scenario": "soak",
        "faults": "mixed",
        "workers_per_cloud": workers,
        "leaked_resources": summary.leaked_resources,
        "duplicate_vms": summary.duplicate_vms,
        "unconverged_workers": summary.unconverged_workers,
        "panics": panics,
        "errors_by_kind": errors,
        "providers": summary.providers,
        "seconds": summary.seconds,
    });
    Ok(Report {
        ok,
        ..Report::json(out)
    })
}
