//! Who stepped which worker, and when: a [`Provider`] wrapper that logs
//! each step's span (worker, replica, start, end), so `bench scale
//! --replicas` can check that no two replicas ever stepped one worker at
//! the same time, count each replica's share of the steps, and time how
//! long a killed replica's workers waited for another.
//!
//! Every call is passed through unchanged; only `step` and `step_many` are
//! timed. A span is a few dozen bytes: at 10,000 workers checked every
//! 30 to 60 s, a ten-minute run logs a few hundred thousand, some tens of
//! MB, which is why only runs with several replicas keep a log.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use async_trait::async_trait;
use skyfleet_core::model::{LaunchConfig, OwnedResource, OwnershipScope};
use skyfleet_core::offering::Offering;
use skyfleet_core::provider::{IdentityProof, VerifiedIdentity};
use skyfleet_core::{DynProvider, Provider, Result, Step, Worker};

/// One step of one worker by one replica; `end` is `None` while it runs.
#[derive(Debug, Clone)]
struct Span {
    worker: u32,
    replica: usize,
    start: Instant,
    end: Option<Instant>,
}

#[derive(Debug, Default)]
struct Inner {
    ids: HashMap<String, u32>,
    spans: Vec<Span>,
}

/// The spans of every replica's steps.
#[derive(Debug, Default, Clone)]
pub struct StepLog {
    inner: Arc<Mutex<Inner>>,
}

fn lock(m: &Mutex<Inner>) -> std::sync::MutexGuard<'_, Inner> {
    // Every update under this lock is a push or a field write.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl StepLog {
    fn begin(&self, replica: usize, workers: &[Worker]) -> Vec<usize> {
        let mut g = lock(&self.inner);
        let now = Instant::now();
        let mut out = Vec::with_capacity(workers.len());
        for w in workers {
            let next = g.ids.len() as u32;
            let worker = *g.ids.entry(w.id().to_string()).or_insert(next);
            out.push(g.spans.len());
            g.spans.push(Span {
                worker,
                replica,
                start: now,
                end: None,
            });
        }
        out
    }

    fn end(&self, at: &[usize]) {
        let mut g = lock(&self.inner);
        let now = Instant::now();
        for &i in at {
            if let Some(s) = g.spans.get_mut(i) {
                s.end = Some(now);
            }
        }
    }

    /// Ends, at `at`, every span of `replica` still open: a killed
    /// replica's steps stopped when it did.
    pub fn cut(&self, replica: usize, at: Instant) {
        let mut g = lock(&self.inner);
        for s in g.spans.iter_mut().filter(|s| s.replica == replica) {
            if s.end.is_none() {
                s.end = Some(at);
            }
        }
    }

    /// Pairs of spans of one worker that overlap in time, by different
    /// replicas.
    pub fn overlaps(&self) -> usize {
        let g = lock(&self.inner);
        let now = Instant::now();
        let mut per: BTreeMap<u32, Vec<(Instant, Instant, usize)>> = BTreeMap::new();
        for s in &g.spans {
            per.entry(s.worker)
                .or_default()
                .push((s.start, s.end.unwrap_or(now), s.replica));
        }
        let mut n = 0;
        for spans in per.values_mut() {
            spans.sort();
            // Pairwise: a worker has a few dozen spans in a run. Sorted by
            // start, a later span overlaps an earlier one if it starts
            // before that one ends.
            for (i, &(_, end_i, rep_i)) in spans.iter().enumerate() {
                for &(start_j, _, rep_j) in &spans[i + 1..] {
                    if start_j >= end_i {
                        break;
                    }
                    if rep_j != rep_i {
                        n += 1;
                    }
                }
            }
        }
        n
    }

    /// Worker steps each replica started within `[from, to)`.
    pub fn steps_by_replica(&self, replicas: usize, from: Instant, to: Instant) -> Vec<u64> {
        let g = lock(&self.inner);
        let mut out = vec![0; replicas];
        for s in g.spans.iter().filter(|s| s.start >= from && s.start < to) {
            if let Some(c) = out.get_mut(s.replica) {
                *c += 1;
            }
        }
        out
    }

    /// For each of `workers`, seconds from `from` to the first step another
    /// replica than `dead` started on it; `None` for a worker none did.
    pub fn taken_over(&self, workers: &[String], dead: usize, from: Instant) -> Vec<Option<f64>> {
        let g = lock(&self.inner);
        let mut first: HashMap<u32, Instant> = HashMap::new();
        for s in g
            .spans
            .iter()
            .filter(|s| s.replica != dead && s.start >= from)
        {
            first
                .entry(s.worker)
                .and_modify(|t| *t = (*t).min(s.start))
                .or_insert(s.start);
        }
        workers
            .iter()
            .map(|w| {
                g.ids
                    .get(w)
                    .and_then(|i| first.get(i))
                    .map(|t| t.duration_since(from).as_secs_f64())
            })
            .collect()
    }
}

/// A provider whose steps are logged in a [`StepLog`] under a replica's
/// number.
#[derive(Debug)]
pub struct Witness {
    inner: DynProvider,
    replica: usize,
    log: StepLog,
}

impl Witness {
    /// Wraps `inner` for `replica`.
    pub fn wrap(inner: DynProvider, replica: usize, log: StepLog) -> DynProvider {
        Arc::new(Witness {
            inner,
            replica,
            log,
        })
    }
}

#[async_trait]
impl Provider for Witness {
    fn id(&self) -> &str {
        self.inner.id()
    }

    fn kind(&self) -> &'static str {
        self.inner.kind()
    }

    fn validate(&self, launch: &serde_json::Value) -> Result<()> {
        self.inner.validate(launch)
    }

    fn partition(&self, worker: &Worker) -> Option<String> {
        self.inner.partition(worker)
    }

    fn offering(&self, lc: &LaunchConfig) -> Result<Offering> {
        self.inner.offering(lc)
    }

    async fn step(&self, worker: &Worker) -> Result<Step> {
        let at = self.log.begin(self.replica, std::slice::from_ref(worker));
        let r = self.inner.step(worker).await;
        self.log.end(&at);
        r
    }

    fn batch_limit(&self) -> usize {
        self.inner.batch_limit()
    }

    async fn step_many(&self, workers: &[Worker]) -> Vec<Result<Step>> {
        let at = self.log.begin(self.replica, workers);
        let r = self.inner.step_many(workers).await;
        self.log.end(&at);
        r
    }

    async fn list_owned(&self, scope: &OwnershipScope) -> Result<Vec<OwnedResource>> {
        self.inner.list_owned(scope).await
    }

    async fn delete_owned(&self, resource: &OwnedResource) -> Result<()> {
        self.inner.delete_owned(resource).await
    }

    async fn tag_owned(
        &self,
        resource: &OwnedResource,
        tags: &BTreeMap<String, String>,
    ) -> Result<()> {
        self.inner.tag_owned(resource, tags).await
    }

    async fn verify_identity(
        &self,
        worker: &Worker,
        proof: &IdentityProof,
    ) -> Result<VerifiedIdentity> {
        self.inner.verify_identity(worker, proof).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn log_of(spans: &[(u32, usize, u64, u64)]) -> (StepLog, Instant) {
        let t0 = Instant::now();
        let log = StepLog::default();
        {
            let mut g = lock(&log.inner);
            for &(worker, replica, s, e) in spans {
                g.ids.insert(format!("w{worker}"), worker);
                g.spans.push(Span {
                    worker,
                    replica,
                    start: t0 + Duration::from_millis(s),
                    end: Some(t0 + Duration::from_millis(e)),
                });
            }
        }
        (log, t0)
    }

    #[test]
    fn overlapping_steps_of_one_worker_by_two_replicas_are_counted() {
        // w1: replica 0 then 1, back to back: fine. w2: 0 and 1 at once.
        // w3: one replica twice at once (not a replica overlap).
        let (log, t0) = log_of(&[
            (1, 0, 0, 10),
            (1, 1, 10, 20),
            (2, 0, 0, 10),
            (2, 1, 5, 15),
            (3, 2, 0, 10),
            (3, 2, 5, 15),
        ]);
        assert_eq!(log.overlaps(), 1);
        assert_eq!(
            log.steps_by_replica(3, t0, t0 + Duration::from_secs(1)),
            vec![2, 2, 2]
        );
    }

    #[test]
    fn a_dead_replicas_workers_are_timed_to_their_next_step_elsewhere() {
        let (log, t0) = log_of(&[(1, 0, 0, 10), (1, 1, 500, 510), (2, 0, 0, 10)]);
        let got = log.taken_over(&["w1".into(), "w2".into()], 0, t0);
        assert!(
            matches!(got[0], Some(s) if (s - 0.5).abs() < 1e-6),
            "{got:?}"
        );
        assert_eq!(got[1], None);
    }
}
