//! Every metric skyfleet records: name, type, labels and meaning.
//!
//! The code records through the `metrics` crate facade under the names
//! below (constants, so a typo is a compile error); export them with any
//! `metrics` recorder (`skyfleet run --metrics-listen` serves Prometheus
//! text on `/metrics`). [`describe`] gives each its help text, and the
//! fleet runtime registers each at zero when it starts
//! ([`Fleet::run`](crate::fleet::Fleet::run)), with the label values it
//! knows then (pools, providers, phases, reasons), so a dashboard or alert
//! sees every series before its first event. The README's metrics table
//! lists this catalogue; a test keeps the two equal.

/// The type of a metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricType {
    /// Only goes up (`_total`).
    Counter,
    /// A value that goes up and down.
    Gauge,
    /// A distribution of observations (seconds).
    Histogram,
}

impl MetricType {
    /// The Prometheus name of the type.
    pub fn as_str(self) -> &'static str {
        match self {
            MetricType::Counter => "counter",
            MetricType::Gauge => "gauge",
            MetricType::Histogram => "histogram",
        }
    }
}

/// One metric of the catalogue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetricInfo {
    /// Its name.
    pub name: &'static str,
    /// Its type.
    pub kind: MetricType,
    /// Its labels.
    pub labels: &'static [&'static str],
    /// What it means.
    pub help: &'static str,
}

/// Workers of a pool by phase (gauge; `pool`, `phase`).
pub const WORKERS: &str = "skyfleet_workers";
/// A pool's desired capacity as last decided (gauge; `pool`).
pub const POOL_DESIRED: &str = "skyfleet_pool_desired_capacity";
/// Tasks waiting for a pool, as last seen (gauge; `pool`).
pub const POOL_PENDING: &str = "skyfleet_pool_pending_tasks";
/// Age of a pool's oldest requested worker (gauge; `pool`).
pub const OLDEST_REQUESTED: &str = "skyfleet_oldest_requested_seconds";
/// Requested workers past half their provisioning deadline (gauge; `pool`).
pub const REQUESTED_PAST_HALF_DEADLINE: &str = "skyfleet_workers_requested_past_half_deadline";
/// Worker transitions (counter; `pool`, `transition`).
pub const WORKER_TRANSITIONS: &str = "skyfleet_worker_transitions_total";
/// Workers marked for removal, by reason (counter; `pool`, `reason`).
pub const WORKER_REMOVALS: &str = "skyfleet_worker_removals_total";
/// Workers asked to drain, by reason (counter; `pool`, `reason`).
pub const WORKER_DRAINS: &str = "skyfleet_worker_drains_total";
/// Errors reported against pools (counter; `pool`, `kind`).
pub const ERRORS: &str = "skyfleet_errors_total";
/// Offerings marked unavailable now, as the last provisioning pass read the
/// shared cache (gauge; `provider`, `class`).
pub const OFFERINGS_UNAVAILABLE: &str = "skyfleet_offerings_unavailable";
/// Marks of offerings as unavailable by this replica (counter; `provider`,
/// `offering`, `class`).
pub const OFFERING_MARKS: &str = "skyfleet_offering_marks_total";
/// Interruptions of workers recorded by this replica (counter; `provider`,
/// `offering`, `source`).
pub const INTERRUPTIONS: &str = "skyfleet_interruptions_total";
/// Steps taken (counter; `provider`, `outcome`).
pub const STEPS: &str = "skyfleet_steps_total";
/// Step latency (histogram; `provider`).
pub const STEP_SECONDS: &str = "skyfleet_step_seconds";
/// Live scanners (gauge; `provider`).
pub const SCANNERS: &str = "skyfleet_scanners";
/// How late workers are stepped (histogram; `provider`, `partition`).
pub const SCANNER_LAG: &str = "skyfleet_scanner_lag_seconds";
/// Orphans deleted by the sweeper (counter; `provider`).
pub const ORPHANS_DELETED: &str = "skyfleet_orphans_deleted_total";
/// Orphans the sweeper held back instead of deleting (counter; `provider`,
/// `reason`).
pub const ORPHANS_HELD_BACK: &str = "skyfleet_orphans_held_back_total";
/// Panics of a fleet task, each followed by a restart (counter; `task`).
pub const TASK_PANICS: &str = "skyfleet_task_panics_total";
/// Provider steps that panicked (counter; `provider`).
pub const STEP_PANICS: &str = "skyfleet_step_panics_total";
/// Cloud API calls (counter; transport labels and `status`).
pub const TRANSPORT_CALLS: &str = "skyfleet_transport_calls_total";
/// Cloud API call latency (histogram; transport labels and `status`).
pub const TRANSPORT_CALL_SECONDS: &str = "skyfleet_transport_call_seconds";
/// HTTP exchanges (counter; transport labels and `status`).
pub const TRANSPORT_ATTEMPTS: &str = "skyfleet_transport_attempts_total";
/// HTTP exchange latency (histogram; transport labels and `status`).
pub const TRANSPORT_ATTEMPT_SECONDS: &str = "skyfleet_transport_attempt_seconds";
/// Retries (counter; transport labels).
pub const TRANSPORT_RETRIES: &str = "skyfleet_transport_retries_total";
/// Throttle answers (counter; transport labels).
pub const TRANSPORT_THROTTLES: &str = "skyfleet_transport_throttles_total";
/// Timeouts (counter; transport labels and `scope`).
pub const TRANSPORT_TIMEOUTS: &str = "skyfleet_transport_timeouts_total";
/// Retries refused by the retry budget (counter; transport labels).
pub const TRANSPORT_BUDGET_EXHAUSTED: &str = "skyfleet_transport_retry_budget_exhausted_total";
/// SQL statements the SQL stores executed (counter; `op`, the store method).
pub const STORE_STATEMENTS: &str = "skyfleet_store_statements_total";
/// Transactions of the SQL stores, explicit or one statement's implicit one
/// (counter; `op`, the store method).
pub const STORE_TRANSACTIONS: &str = "skyfleet_store_transactions_total";

/// The labels of every transport metric: the [`Key`](crate::transport::Key)
/// a call draws its limits from.
const TRANSPORT: &[&str] = &["provider", "account", "region", "class"];
const TRANSPORT_STATUS: &[&str] = &["provider", "account", "region", "class", "status"];

/// Every metric, in the README's order.
pub const CATALOGUE: &[MetricInfo] = &[
    MetricInfo {
        name: WORKERS,
        kind: MetricType::Gauge,
        labels: &["pool", "phase"],
        help: "Workers of the pool in each phase (requested, running, stopping), counted at each provisioning pass.",
    },
    MetricInfo {
        name: POOL_DESIRED,
        kind: MetricType::Gauge,
        labels: &["pool"],
        help: "The pool's desired capacity from the estimator's last decision (within min and max).",
    },
    MetricInfo {
        name: POOL_PENDING,
        kind: MetricType::Gauge,
        labels: &["pool"],
        help: "Tasks waiting for the pool, as the demand source last answered.",
    },
    MetricInfo {
        name: OLDEST_REQUESTED,
        kind: MetricType::Gauge,
        labels: &["pool"],
        help: "Seconds the pool's oldest worker still in `requested` has waited (0 when none).",
    },
    MetricInfo {
        name: REQUESTED_PAST_HALF_DEADLINE,
        kind: MetricType::Gauge,
        labels: &["pool"],
        help: "Workers still requested after half their provisioning deadline: stuck provisioning.",
    },
    MetricInfo {
        name: WORKER_TRANSITIONS,
        kind: MetricType::Counter,
        labels: &["pool", "transition"],
        help: "Worker transitions: requested, running, registered, removed, stopping, stopped, failed.",
    },
    MetricInfo {
        name: WORKER_REMOVALS,
        kind: MetricType::Counter,
        labels: &["pool", "reason"],
        help: "Workers marked for removal, by reason: provisioning_deadline, registration_timeout, reregistration_timeout, inactivity_timeout, scale_down, operator, heartbeat_timeout, drain_timeout, drained, interruption.",
    },
    MetricInfo {
        name: WORKER_DRAINS,
        kind: MetricType::Counter,
        labels: &["pool", "reason"],
        help: "Registered workers asked to drain (they finish their work, confirm, then go), by reason: scale_in, idle_timeout, max_tasks, max_lifetime.",
    },
    MetricInfo {
        name: ERRORS,
        kind: MetricType::Counter,
        labels: &["pool", "kind"],
        help: "Errors reported against the pool (what `skyfleet errors` lists), by error kind.",
    },
    MetricInfo {
        name: OFFERINGS_UNAVAILABLE,
        kind: MetricType::Gauge,
        labels: &["provider", "class"],
        help: "Offerings marked unavailable in the shared cache now, by class: capacity, quota, interruption.",
    },
    MetricInfo {
        name: OFFERING_MARKS,
        kind: MetricType::Counter,
        labels: &["provider", "offering", "class"],
        help: "Offerings this replica marked unavailable (or whose mark it extended), by offering key and class.",
    },
    MetricInfo {
        name: INTERRUPTIONS,
        kind: MetricType::Counter,
        labels: &["provider", "offering", "source"],
        help: "Workers interrupted (spot reclaimed, preempted, evicted), by offering and by who noticed first: provider or agent.",
    },
    MetricInfo {
        name: STEPS,
        kind: MetricType::Counter,
        labels: &["provider", "outcome"],
        help: "Provider steps taken; outcome `ok` or the error kind of a failed step.",
    },
    MetricInfo {
        name: STEP_SECONDS,
        kind: MetricType::Histogram,
        labels: &["provider"],
        help: "Seconds per provider step (a batched step's time shared by its workers).",
    },
    MetricInfo {
        name: SCANNERS,
        kind: MetricType::Gauge,
        labels: &["provider"],
        help: "Scanner tasks of the provider: one per partition (region, zone) with live workers.",
    },
    MetricInfo {
        name: SCANNER_LAG,
        kind: MetricType::Histogram,
        labels: &["provider", "partition"],
        help: "Seconds between a worker falling due and its scanner claiming it: a scanner falling behind.",
    },
    MetricInfo {
        name: ORPHANS_DELETED,
        kind: MetricType::Counter,
        labels: &["provider"],
        help: "Cloud resources with our ownership tags and no live worker, deleted by the orphan sweeper.",
    },
    MetricInfo {
        name: ORPHANS_HELD_BACK,
        kind: MetricType::Counter,
        labels: &["provider", "reason"],
        help: "Orphans old enough to delete that the sweeper held back (counted at each sweep that holds one back), by reason: store_too_young (the store is younger than sweep_grace), over_cap (the sweep reached sweep_max_delete).",
    },
    MetricInfo {
        name: TASK_PANICS,
        kind: MetricType::Counter,
        labels: &["task"],
        help: "Panics of a fleet task (task `provisioner/<pool>`, `scanners/<provider>`, `scanner/<provider>`, `sweeper`); each is logged and the task restarted after a backoff (1 s doubling to 60 s).",
    },
    MetricInfo {
        name: STEP_PANICS,
        kind: MetricType::Counter,
        labels: &["provider"],
        help: "Provider steps that panicked; each of the step's workers gets a step error and is retried with backoff.",
    },
    MetricInfo {
        name: TRANSPORT_CALLS,
        kind: MetricType::Counter,
        labels: TRANSPORT_STATUS,
        help: "Cloud API calls (each may take several attempts); status is the final HTTP status or error kind; class is read, write, delete or poll.",
    },
    MetricInfo {
        name: TRANSPORT_CALL_SECONDS,
        kind: MetricType::Histogram,
        labels: TRANSPORT_STATUS,
        help: "Seconds per cloud API call, retries and waits included.",
    },
    MetricInfo {
        name: TRANSPORT_ATTEMPTS,
        kind: MetricType::Counter,
        labels: TRANSPORT_STATUS,
        help: "HTTP exchanges with the cloud; status is the HTTP status or `error`.",
    },
    MetricInfo {
        name: TRANSPORT_ATTEMPT_SECONDS,
        kind: MetricType::Histogram,
        labels: TRANSPORT_STATUS,
        help: "Seconds per HTTP exchange.",
    },
    MetricInfo {
        name: TRANSPORT_RETRIES,
        kind: MetricType::Counter,
        labels: TRANSPORT,
        help: "Retries started by the retry policy.",
    },
    MetricInfo {
        name: TRANSPORT_THROTTLES,
        kind: MetricType::Counter,
        labels: TRANSPORT,
        help: "Throttle answers from the cloud; each pauses its key for the clamped Retry-After.",
    },
    MetricInfo {
        name: TRANSPORT_TIMEOUTS,
        kind: MetricType::Counter,
        labels: &["provider", "account", "region", "class", "scope"],
        help: "Attempts (scope `attempt`) or whole calls (scope `overall`) cut by their timeout.",
    },
    MetricInfo {
        name: TRANSPORT_BUDGET_EXHAUSTED,
        kind: MetricType::Counter,
        labels: TRANSPORT,
        help: "Retries refused because the key's retry budget was empty.",
    },
    MetricInfo {
        name: STORE_STATEMENTS,
        kind: MetricType::Counter,
        labels: &["op"],
        help: "SQL statements executed by the SQLite or PostgreSQL store (BEGIN and COMMIT not counted), by store method (`update_workers`, `claim_due`, ...).",
    },
    MetricInfo {
        name: STORE_TRANSACTIONS,
        kind: MetricType::Counter,
        labels: &["op"],
        help: "Transactions of the SQLite or PostgreSQL store, by store method: each explicit transaction, and each statement run on its own (its implicit transaction).",
    },
];

/// Gives every metric of the [`CATALOGUE`] its help text (and unit) in the
/// installed recorder. Idempotent.
pub fn describe() {
    for m in CATALOGUE {
        match m.kind {
            MetricType::Counter => metrics::describe_counter!(m.name, m.help),
            MetricType::Gauge => metrics::describe_gauge!(m.name, m.help),
            MetricType::Histogram => {
                metrics::describe_histogram!(m.name, metrics::Unit::Seconds, m.help)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_prometheus_names_with_the_right_suffix() {
        let mut seen = std::collections::HashSet::new();
        for m in CATALOGUE {
            assert!(seen.insert(m.name), "{} twice", m.name);
            assert!(
                m.name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
                    && m.name.starts_with("skyfleet_"),
                "{}",
                m.name
            );
            assert_eq!(
                m.name.ends_with("_total"),
                m.kind == MetricType::Counter,
                "{}: counters and only counters end in _total",
                m.name
            );
            assert!(
                m.kind != MetricType::Histogram || m.name.ends_with("_seconds"),
                "{}: histograms are in seconds",
                m.name
            );
            assert!(!m.help.is_empty() && !m.labels.is_empty(), "{}", m.name);
        }
    }

    /// The README's metrics table lists the catalogue exactly: each metric
    /// with its type and labels.
    #[test]
    fn the_readme_lists_every_metric() {
        let readme = include_str!("../../README.md");
        let rows: Vec<&str> = readme
            .lines()
            .filter(|l| l.starts_with("| `skyfleet_"))
            .collect();
        assert_eq!(rows.len(), CATALOGUE.len(), "one README row per metric");
        for m in CATALOGUE {
            let row = rows
                .iter()
                .find(|r| r.starts_with(&format!("| `{}` |", m.name)))
                .unwrap_or_else(|| panic!("{} is not in the README's metrics table", m.name));
            assert!(row.contains(&format!("| {} |", m.kind.as_str())), "{row}");
            let labels = m
                .labels
                .iter()
                .map(|l| format!("`{l}`"))
                .collect::<Vec<_>>()
                .join(", ");
            assert!(row.contains(&labels), "{row}: labels {labels}");
        }
    }
}
