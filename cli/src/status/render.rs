//! `skyfleet status` as text: one table per pool, then the metrics tables.

use std::fmt::Write;

use super::report::{MetricsPart, PoolRow, Report};
use crate::inspect::timestamp;

fn opt(v: Option<u64>) -> String {
    v.map_or_else(|| "-".into(), |n| n.to_string())
}

/// A duration in seconds, short (`42s`, `12m05s`, `3h07m`).
pub fn human(secs: f64) -> String {
    let neg = secs < 0.0;
    let s = secs.abs().round() as u64;
    let body = if s < 60 {
        format!("{s}s")
    } else if s < 3600 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{}h{:02}m", s / 3600, (s % 3600) / 60)
    };
    if neg {
        format!("-{body}")
    } else {
        body
    }
}

fn pool(out: &mut String, p: &PoolRow) {
    let provider = p.provider_id.as_deref().unwrap_or("?");
    let decided = match (&p.decided_at, &p.decided_by) {
        (Some(t), Some(by)) => format!("target decided {} by {by}", timestamp(Some(*t))),
        _ => "no fleet has decided for it yet".into(),
    };
    let _ = writeln!(out, "pool {}  (provider {provider}; {decided})", p.pool_id);
    let _ = writeln!(
        out,
        "  {:>5} {:>5} {:>7} {:>10} {:>8} {:>11} {:>5} {:>5} {:>9} {:>9}",
        "min",
        "max",
        "target",
        "requested",
        "running",
        "registered",
        "idle",
        "busy",
        "draining",
        "stopping"
    );
    let _ = writeln!(
        out,
        "  {:>5} {:>5} {:>7} {:>10} {:>8} {:>11} {:>5} {:>5} {:>9} {:>9}",
        opt(p.min),
        opt(p.max),
        opt(p.target),
        p.requested,
        p.running,
        p.registered,
        opt(p.idle),
        opt(p.busy),
        opt(p.draining),
        p.stopping
    );
    if let Some(o) = &p.oldest_requested {
        let _ = writeln!(
            out,
            "  oldest requested: {} waiting {} (provisioning deadline in {})",
            o.worker_id,
            human(o.waiting_s),
            human(o.deadline_in_s)
        );
    }
    let errors = if p.errors_last_hour.is_empty() {
        "none".to_string()
    } else {
        p.errors_last_hour
            .iter()
            .map(|k| format!("{} {}", k.kind, k.count))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let _ = writeln!(out, "  errors in the last hour: {errors}");
    for u in &p.unavailable {
        let _ = writeln!(
            out,
            "  unavailable: offering {} until {} ({}{}: {})",
            u.offering,
            timestamp(Some(u.until)),
            u.class,
            u.code
                .as_deref()
                .map(|c| format!(" {c}"))
                .unwrap_or_default(),
            u.message
        );
    }
}

fn metrics(out: &mut String, m: &MetricsPart) {
    let _ = writeln!(
        out,
        "from {} metrics endpoint(s), over the last {}:",
        m.endpoints.len(),
        human(m.window_s)
    );
    for e in &m.unreachable {
        let _ = writeln!(out, "  unreachable: {e}");
    }
    let _ = writeln!(
        out,
        "  {:<16} {:<20} {:>10} {:>8}",
        "provider", "partition", "lag p99", "claims"
    );
    if m.scanners.is_empty() {
        let _ = writeln!(out, "  (no scanner series)");
    }
    for s in &m.scanners {
        let lag = s
            .lag_p99_s
            .map_or_else(|| "-".into(), |v| format!("{v:.3}s"));
        let _ = writeln!(
            out,
            "  {:<16} {:<20} {:>10} {:>8}",
            s.provider, s.partition, lag, s.claims
        );
    }
    let _ = writeln!(
        out,
        "  {:<16} {:<20} {:<7} {:>10} {:>14}",
        "api provider", "region", "class", "calls/min", "throttled/min"
    );
    if m.api_calls.is_empty() {
        let _ = writeln!(out, "  (no API calls)");
    }
    for a in &m.api_calls {
        let _ = writeln!(
            out,
            "  {:<16} {:<20} {:<7} {:>10.1} {:>14.1}",
            a.provider, a.region, a.class, a.per_minute, a.throttled_per_minute
        );
    }
}

/// The whole report as text.
pub fn text(r: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "skyfleet status at {} (store {})",
        timestamp(Some(r.generated_at)),
        r.store
    );
    if r.pools.is_empty() {
        let _ = writeln!(out, "\nno pools in this store yet");
    }
    for p in &r.pools {
        out.push('\n');
        pool(&mut out, p);
    }
    if let Some(m) = &r.metrics {
        out.push('\n');
        metrics(&mut out, m);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_short() {
        assert_eq!(human(0.4), "0s");
        assert_eq!(human(42.0), "42s");
        assert_eq!(human(725.0), "12m05s");
        assert_eq!(human(11_220.0), "3h07m");
        assert_eq!(human(-30.0), "-30s");
    }
}
