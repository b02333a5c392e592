//! What every scenario shares: its report and how it is printed, the bench
//! worker fixture, the fleet settings of fleet scenarios, and a mock served
//! from its own thread.

use std::process::ExitCode;
use std::time::Duration;

use serde_json::Value;

use skyfleet_core::fleet::FleetConfig;
use skyfleet_core::Worker;
use skyfleet_mock::{MockCloud, MockCloudBuilder};

/// The manager id of the provider benchmarks' workers.
pub const MANAGER: &str = "bench";

/// Why a scenario did not produce a report.
#[derive(Debug)]
pub enum BenchError {
    /// Bad arguments (exit 2).
    Usage(String),
    /// The run failed (exit 1).
    Failed(String),
}

impl<E: std::fmt::Display> From<E> for BenchError {
    fn from(e: E) -> Self {
        BenchError::Failed(e.to_string())
    }
}

/// What a scenario measured.
pub struct Report {
    /// The JSON object `--json` prints (BENCHMARKS.md and the tests read it).
    pub value: Value,
    /// Whether the run met its own checks (exit 0), or not (exit 1).
    pub ok: bool,
    /// The human form printed without `--json` (`None`: always JSON).
    pub text: Option<String>,
}

impl Report {
    /// A report whose run met its checks, printed as JSON either way.
    pub fn json(value: Value) -> Self {
        Report {
            value,
            ok: true,
            text: None,
        }
    }

    /// Printed pretty without `--json`.
    pub fn pretty(value: Value) -> Self {
        let text = serde_json::to_string_pretty(&value).ok();
        Report {
            value,
            ok: true,
            text,
        }
    }

    /// Prints it (one JSON line with `json`) and gives the exit code.
    pub fn print(&self, json: bool) -> ExitCode {
        match (&self.text, json) {
            (Some(text), false) => println!("{text}"),
            _ => println!("{}", self.value),
        }
        if self.ok {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        }
    }
}

/// A worker of the provider benchmarks, created now.
pub fn worker(id: &str, pool: &str, provider: &str, launch: Value) -> Worker {
    skyfleet_core::testing::fixtures::worker(id)
        .pool(pool)
        .provider(provider)
        .manager(MANAGER)
        .launch(launch)
        .build_now()
}

/// The fleet settings of the fleet scenarios: short intervals, so a run
/// measures convergence rather than waits.
pub fn fast_fleet(manager: &str) -> FleetConfig {
    FleetConfig {
        manager_id: manager.into(),
        scan_interval: Duration::from_millis(50),
        provision_interval: Duration::from_millis(300),
        step_timeout: Duration::from_secs(5),
        lease: Duration::from_secs(15),
        error_backoff_min: Duration::from_millis(200),
        error_backoff_max: Duration::from_secs(3),
        ..FleetConfig::default()
    }
}

/// A mock served from a thread of its own (named `mock-rt`), so that CPU
/// time read per thread separates the mock's work from the benchmark's.
/// The one place a benchmark runs a second runtime: a current-thread one,
/// on that thread.
pub struct MockThread {
    mock: MockCloud,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl MockThread {
    /// Starts `builder`'s mock on its own thread.
    pub async fn start(builder: MockCloudBuilder) -> Result<MockThread, String> {
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("mock-rt".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .thread_name("mock-rt")
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e.to_string()));
                        return;
                    }
                };
                rt.block_on(async move {
                    match builder.start().await {
                        Ok(mock) => {
                            let _ = ready_tx.send(Ok(mock));
                            // Serve until stopped (or the handle is gone).
                            let _ = stop_rx.await;
                        }
                        Err(e) => {
                            let _ = ready_tx.send(Err(e.to_string()));
                        }
                    }
                });
            })
            .map_err(|e| format!("mock thread: {e}"))?;
        let mock = ready_rx
            .await
            .map_err(|_| "the mock thread ended before the mock started".to_string())??;
        Ok(MockThread {
            mock,
            stop: Some(stop_tx),
            thread: Some(thread),
        })
    }

    /// The mock.
    pub fn mock(&self) -> &MockCloud {
        &self.mock
    }
}

impl Drop for MockThread {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
