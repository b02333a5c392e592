//! `skyfleet sweep`: one orphan sweep of a fleet config's providers, by
//! hand, printing every resource seen and what became of it.
//!
//! Without flags it is one real sweep (the guards of the periodic sweeps
//! apply: own store's resources only, grace period, young store, cap).
//! `--dry-run` changes nothing; `--adopt` tags unclaimed resources of this
//! store's live workers with the store's id and deletes nothing.

use std::path::Path;
use std::process::ExitCode;

use skyfleet_core::fleet::{SweepOptions, SweepReport, SweptResource, Verdict};

use crate::run;

/// Runs one sweep of the fleet `path` describes and prints it. Exit 2 on a
/// bad config or store, 1 when a listing, deletion or adoption failed.
pub async fn run(path: &Path, store: Option<String>, dry_run: bool, adopt: bool) -> ExitCode {
    let (fleet, _url) = match run::build(path, store).await {
        Ok(f) => f,
        Err(e) => {
            eprintln!("skyfleet sweep: {e}");
            return ExitCode::from(2);
        }
    };
    let identity = match fleet.store().store_identity().await {
        Ok(i) => i,
        Err(e) => {
            eprintln!("skyfleet sweep: reading the store's identity: {e}");
            return ExitCode::from(2);
        }
    };
    let report = match fleet.sweep_with(SweepOptions { dry_run, adopt }).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("skyfleet sweep: {e}");
            return ExitCode::FAILURE;
        }
    };
    let created = identity
        .created_at
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| identity.created_at.to_string());
    println!("store {} (created {created})", identity.id);
    print!("{}", render(&report));
    for (provider, error) in &report.list_errors {
        eprintln!("skyfleet sweep: listing provider `{provider}` failed: {error}");
    }
    if report.list_errors.is_empty() && report.failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// The table of resources (provider, kind, id, worker, verdict) and the
/// summary line.
pub fn render(r: &SweepReport) -> String {
    let header = ["PROVIDER", "KIND", "RESOURCE", "WORKER", "VERDICT"];
    let rows: Vec<[String; 5]> = r.resources.iter().map(row).collect();
    let mut widths = header.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let mut out = String::new();
    if !rows.is_empty() {
        let header = header.map(str::to_string);
        for row in std::iter::once(&header).chain(&rows) {
            let cells: Vec<String> = row
                .iter()
                .zip(widths)
                .map(|(c, w)| format!("{c:<w$}"))
                .collect();
            out.push_str(cells.join("  ").trim_end());
            out.push('\n');
        }
    }
    out.push_str(&summary(r));
    out.push('\n');
    out
}

fn row(s: &SweptResource) -> [String; 5] {
    [
        s.provider.clone(),
        s.kind.clone(),
        s.id.clone(),
        s.worker.clone().unwrap_or_else(|| "-".into()),
        s.verdict.to_string(),
    ]
}

/// `seen N: ...` with every non-zero count.
fn summary(r: &SweepReport) -> String {
    let live = r
        .resources
        .iter()
        .filter(|x| x.verdict == Verdict::Live)
        .count() as u64;
    let counts = [
        ("live", live),
        ("foreign", r.foreign),
        ("unclaimed", r.unclaimed),
        ("adopted", r.adopted),
        ("deleted", r.deleted),
        ("would delete", r.would_delete),
        ("waiting", r.waiting),
        ("held back", r.held_back),
        ("failed", r.failed),
    ];
    let parts: Vec<String> = counts
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(what, n)| format!("{n} {what}"))
        .collect();
    let mut s = format!("seen {}", r.seen);
    if !parts.is_empty() {
        s.push_str(": ");
        s.push_str(&parts.join(", "));
    }
    if !r.list_errors.is_empty() {
        let providers: Vec<&str> = r.list_errors.iter().map(|(p, _)| p.as_str()).collect();
        s.push_str(&format!("; listing failed: {}", providers.join(", ")));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use skyfleet_core::fleet::HoldReason;

    fn res(id: &str, worker: Option<&str>, verdict: Verdict) -> SweptResource {
        SweptResource {
            provider: "aws".into(),
            kind: "instance".into(),
            id: id.into(),
            worker: worker.map(str::to_string),
            store: None,
            verdict,
        }
    }

    #[test]
    fn the_table_has_one_aligned_line_per_resource_and_a_summary() {
        let mut r = SweepReport {
            seen: 3,
            ..SweepReport::default()
        };
        for x in [
            res("i-1", Some("w-1"), Verdict::Unclaimed),
            res("i-22", None, Verdict::HeldBack(HoldReason::StoreTooYoung)),
            res("i-333", Some("w-3"), Verdict::Foreign),
        ] {
            r.record(x);
        }
        let out = render(&r);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 5, "{out}");
        assert!(
            lines[0].starts_with("PROVIDER  KIND      RESOURCE  WORKER  VERDICT"),
            "{out}"
        );
        assert_eq!(lines[1], "aws       instance  i-1       w-1     unclaimed");
        assert_eq!(
            lines[2],
            "aws       instance  i-22      -       held back (store too young)"
        );
        assert_eq!(
            lines[4], "seen 3: 1 foreign, 1 unclaimed, 1 held back",
            "{out}"
        );
    }

    #[test]
    fn an_empty_sweep_is_one_summary_line_naming_failed_listings() {
        let mut r = SweepReport::default();
        assert_eq!(render(&r), "seen 0\n");
        r.list_errors.push(("gcp".into(), "boom".into()));
        assert_eq!(render(&r), "seen 0; listing failed: gcp\n");
    }
}
