//! `skyfleet bench soak`: the demo under the mixed fault mix; leaks,
//! duplicates, unconverged workers and panics, and whether the work
//! happened (every worker reached running), so a run where every create
//! fails cannot pass (`--faults broken` proves it).

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::json;

use super::harness::{BenchError, Report};

static PANICS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Runs `skyfleet bench soak`.
pub async fn run(workers: u32, faults: &str, timeout_s: u64) -> Result<Report, BenchError> {
    let preset = match faults {
        "mixed" => crate::demo::Faults::Mixed,
        "broken" => crate::demo::Faults::Broken,
        _ => {
            return Err(BenchError::Usage(format!(
                "--faults `{faults}`: soaks run `mixed` (or `broken`, where every create fails)"
            )))
        }
    };
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        PANICS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        default_hook(info);
    }));
    let summary = crate::demo::run(crate::demo::DemoArgs {
        workers,
        faults: preset,
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
    let reached_running: BTreeMap<&str, usize> = summary
        .providers
        .iter()
        .map(|p| (p.provider.as_str(), p.reached_running))
        .collect();
    // `failures` covers leaks, duplicates, unconverged workers, timed-out
    // phases and workers that never reached running.
    let failures = summary.failures();
    let ok = failures.is_none() && panics == 0;
    let out = json!({
        "scenario": "soak",
        "faults": faults,
        "reached_running": reached_running,
        "failures": failures,
        "timed_out_phases": summary.timed_out_phases,
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
