//! A `metrics` recorder for tests that counts the store's statements and
//! transactions: counters kept by series, gauges and histograms dropped.
//! Installed on one thread (`metrics::set_default_local_recorder`), so
//! tests running in parallel do not see each other's counts.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use metrics::{Counter, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit};

/// Counters by series, `name{label=value,...}`.
#[derive(Debug, Default)]
pub(crate) struct Counters(Mutex<HashMap<String, Arc<AtomicU64>>>);

impl Counters {
    /// The value of counter `name{op=<op>}` (0 if never recorded).
    pub(crate) fn get(&self, name: &str, op: &str) -> u64 {
        let series = format!("{name}{{op={op}}}");
        self.0
            .lock()
            .expect("counters")
            .get(&series)
            .map_or(0, |c| c.load(Ordering::SeqCst))
    }

    /// The `op` label of every series of counter `name` recorded.
    pub(crate) fn ops(&self, name: &str) -> std::collections::BTreeSet<String> {
        let prefix = format!("{name}{{op=");
        self.0
            .lock()
            .expect("counters")
            .keys()
            .filter_map(|k| k.strip_prefix(&prefix)?.strip_suffix('}'))
            .map(str::to_string)
            .collect()
    }
}

impl Recorder for Counters {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        let labels: Vec<String> = key
            .labels()
            .map(|l| format!("{}={}", l.key(), l.value()))
            .collect();
        let series = format!("{}{{{}}}", key.name(), labels.join(","));
        let mut g = self.0.lock().expect("counters");
        Counter::from_arc(g.entry(series).or_default().clone())
    }
    fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::noop()
    }
    fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::noop()
    }
}
