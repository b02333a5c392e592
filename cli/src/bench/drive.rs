//! The one drive loop of the provider benchmarks: steps workers as a
//! scanner would, applies each answer as a store would persist it, and can
//! replay a step whose answer a crash lost.

use std::time::{Duration, Instant};

use skyfleet_core::clock::{until, Clock, SystemClock};
use skyfleet_core::provider::apply_step;
use skyfleet_core::{Phase, Provider, Worker};

/// Decides which steps a simulated crash loses.
pub trait Crashes {
    /// Whether the step of `workers[i]` (about to be taken) is lost: it is
    /// run once and its answer thrown away, as if the process had died
    /// before persisting it, then run again from the same record.
    fn lost(&mut self, i: usize, worker: &Worker) -> bool;
}

/// No crash.
pub struct NoCrash;

impl Crashes for NoCrash {
    fn lost(&mut self, _: usize, _: &Worker) -> bool {
        false
    }
}

/// How to drive a set of workers.
#[derive(Debug, Clone)]
pub struct Drive {
    /// Phases that end the drive of a worker (final phases always do).
    pub until: Vec<Phase>,
    /// Largest batch handed to `step_many`.
    pub batch: usize,
    /// Give up (an error) when workers are still pending after this long.
    pub deadline: Duration,
    /// Wait after a failed step without a `Retry-After`.
    pub backoff: Duration,
    /// Failed steps after which one worker is given up.
    pub max_errors: u32,
}

/// What a drive did.
#[derive(Debug, Default, Clone, Copy)]
pub struct Driven {
    /// Steps lost to simulated crashes (and replayed).
    pub crashes: u64,
    /// Failed steps.
    pub errors: u32,
    /// Workers given up after `max_errors` failed steps.
    pub given_up: usize,
}

impl Drive {
    /// Steps every due worker not yet in `until` (batched), until none is
    /// pending; `crashes` picks the steps to lose and replay.
    pub async fn run<P: Provider + ?Sized>(
        &self,
        p: &P,
        ws: &mut [Worker],
        crashes: &mut impl Crashes,
    ) -> Result<Driven, String> {
        let start = Instant::now();
        let mut out = Driven::default();
        let mut errors = vec![0u32; ws.len()];
        let pending = |w: &Worker, e: u32| {
            !self.until.contains(&w.phase) && !w.phase.is_final() && e <= self.max_errors
        };
        loop {
            let now = SystemClock.now();
            let waiting: Vec<usize> = (0..ws.len())
                .filter(|&i| pending(&ws[i], errors[i]))
                .collect();
            if waiting.is_empty() {
                out.given_up = errors.iter().filter(|&&e| e > self.max_errors).count();
                return Ok(out);
            }
            if start.elapsed() > self.deadline {
                return Err(format!(
                    "{} workers did not reach {:?} in time",
                    waiting.len(),
                    self.until
                ));
            }
            let due: Vec<usize> = waiting
                .iter()
                .copied()
                .filter(|&i| ws[i].next_check_at <= now)
                .collect();
            if due.is_empty() {
                let next = waiting.iter().map(|&i| ws[i].next_check_at).min();
                let wait = next.map_or(Duration::ZERO, |t| until(now, t));
                tokio::time::sleep(wait.max(Duration::from_millis(1))).await;
                continue;
            }
            for chunk in due.chunks(self.batch.max(1)) {
                let lost: Vec<Worker> = chunk
                    .iter()
                    .filter(|&&i| crashes.lost(i, &ws[i]))
                    .map(|&i| ws[i].clone())
                    .collect();
                if !lost.is_empty() {
                    out.crashes += lost.len() as u64;
                    let _thrown_away = p.step_many(&lost).await;
                }
                let batch: Vec<Worker> = chunk.iter().map(|&i| ws[i].clone()).collect();
                let answers = p.step_many(&batch).await;
                let now = SystemClock.now();
                for (&i, answer) in chunk.iter().zip(answers) {
                    match answer {
                        Ok(step) => apply_step(&mut ws[i], &step, now),
                        Err(e) => {
                            // As the runtime would: keep the state, retry later.
                            out.errors += 1;
                            errors[i] += 1;
                            if errors[i] > self.max_errors {
                                eprintln!("worker {}: giving up: {e}", ws[i].id());
                            }
                            ws[i].next_check_at = now + e.retry_after().unwrap_or(self.backoff);
                        }
                    }
                }
            }
        }
    }
}

/// Steps every worker at once, `rounds` times, in batches of `batch`: the
/// checks of running workers. A failed check is an error.
pub async fn check_all<P: Provider + ?Sized>(
    p: &P,
    ws: &mut [Worker],
    batch: usize,
    rounds: usize,
) -> Result<(), String> {
    for _ in 0..rounds {
        for chunk in ws.chunks_mut(batch.max(1)) {
            let answers = p.step_many(chunk).await;
            let now = SystemClock.now();
            for (w, answer) in chunk.iter_mut().zip(answers) {
                let step = answer.map_err(|e| format!("check of {}: {e}", w.id()))?;
                apply_step(w, &step, now);
            }
        }
    }
    Ok(())
}
