//! A metrics recorder for `bench scale`: it keeps, per provider, the
//! scanner's lag samples (`skyfleet_scanner_lag_seconds`: time from a
//! worker falling due to its claim), each with when it was taken, and the
//! steps served (`skyfleet_steps_total`), while recording is on; and it
//! counts the store's statements (`skyfleet_store_statements_total`)
//! always. Everything else the runtime emits is dropped.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use metrics::{
    Counter, CounterFn, Gauge, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder,
    SharedString, Unit,
};
use skyfleet_core::metrics_catalogue as names;

/// What was captured.
#[derive(Debug, Default)]
struct Captured {
    lag: Mutex<BTreeMap<String, Vec<(Instant, f64)>>>,
    steps: Mutex<BTreeMap<String, u64>>,
    statements: AtomicU64,
}

/// The recorder, and the handle the benchmark reads it through.
#[derive(Debug, Clone, Default)]
pub struct Capture {
    on: Arc<AtomicBool>,
    data: Arc<Captured>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Every update under these locks is a single push or add.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Capture {
    /// Installs a new capture as the process's recorder; `None` if another
    /// recorder was installed first.
    pub fn install() -> Option<Capture> {
        let c = Capture::default();
        metrics::set_global_recorder(c.clone()).ok()?;
        Some(c)
    }

    /// Starts recording, forgetting what was captured before.
    pub fn start(&self) {
        lock(&self.data.lag).clear();
        lock(&self.data.steps).clear();
        self.on.store(true, Ordering::SeqCst);
    }

    /// Stops recording.
    pub fn stop(&self) {
        self.on.store(false, Ordering::SeqCst);
    }

    /// The lag samples per provider since [`start`](Self::start), of
    /// those taken at times `when` accepts.
    pub fn lag_when(&self, when: impl Fn(Instant) -> bool) -> BTreeMap<String, Vec<f64>> {
        lock(&self.data.lag)
            .iter()
            .map(|(p, v)| {
                let kept = v.iter().filter(|(t, _)| when(*t)).map(|(_, x)| *x);
                (p.clone(), kept.collect())
            })
            .collect()
    }

    /// Store statements executed since the recorder was installed.
    pub fn statements(&self) -> u64 {
        self.data.statements.load(Ordering::Relaxed)
    }

    /// The steps per provider since [`start`](Self::start).
    pub fn steps(&self) -> BTreeMap<String, u64> {
        lock(&self.data.steps).clone()
    }
}

fn provider_of(key: &Key) -> String {
    key.labels()
        .find(|l| l.key() == "provider")
        .map(|l| l.value().to_string())
        .unwrap_or_default()
}

struct LagFn {
    provider: String,
    on: Arc<AtomicBool>,
    data: Arc<Captured>,
}

impl HistogramFn for LagFn {
    fn record(&self, value: f64) {
        if self.on.load(Ordering::Relaxed) {
            lock(&self.data.lag)
                .entry(self.provider.clone())
                .or_default()
                .push((Instant::now(), value));
        }
    }
}

struct StepsFn {
    provider: String,
    on: Arc<AtomicBool>,
    data: Arc<Captured>,
    total: AtomicU64,
}

impl CounterFn for StepsFn {
    fn increment(&self, value: u64) {
        self.total.fetch_add(value, Ordering::Relaxed);
        if self.on.load(Ordering::Relaxed) {
            *lock(&self.data.steps)
                .entry(self.provider.clone())
                .or_default() += value;
        }
    }

    fn absolute(&self, value: u64) {
        self.total.store(value, Ordering::Relaxed);
    }
}

/// Adds to the statement count.
struct Statements(Arc<Captured>);

impl CounterFn for Statements {
    fn increment(&self, value: u64) {
        self.0.statements.fetch_add(value, Ordering::Relaxed);
    }

    fn absolute(&self, _: u64) {}
}

impl Recorder for Capture {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        if key.name() == names::STORE_STATEMENTS {
            return Counter::from_arc(Arc::new(Statements(self.data.clone())));
        }
        if key.name() != names::STEPS {
            return Counter::noop();
        }
        Counter::from_arc(Arc::new(StepsFn {
            provider: provider_of(key),
            on: self.on.clone(),
            data: self.data.clone(),
            total: AtomicU64::new(0),
        }))
    }

    fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::noop()
    }

    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        if key.name() != names::SCANNER_LAG {
            return Histogram::noop();
        }
        Histogram::from_arc(Arc::new(LagFn {
            provider: provider_of(key),
            on: self.on.clone(),
            data: self.data.clone(),
        }))
    }
}
