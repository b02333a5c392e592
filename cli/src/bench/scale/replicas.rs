//! The runtime under test as one or more replicas in this process, each on
//! a tokio runtime of its own with its own store connections and cloud
//! clients, as separate processes would have. Killing one shuts its
//! runtime down on the spot: its tasks stop at their next await, nothing
//! is released and no lease is given back, as with `kill -9`; the others
//! must wait for its leases to expire.

use std::sync::Arc;
use std::time::Instant;

use skyfleet_core::fleet::{FixedDemand, FleetConfig};
use skyfleet_core::WorkerStore;
use tokio::runtime::Runtime;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use super::witness::{StepLog, Witness};
use super::MANAGER;
use crate::bench::harness::BenchError;
use crate::mock_clouds;

/// Worker threads of each replica's runtime: the machine's two cores.
const THREADS: usize = 2;

/// Where the replicas keep their state.
#[derive(Debug, Clone)]
pub enum StoreAt {
    /// A SQLite file or any URL [`skyfleet_core::store::open`] takes.
    Url(String),
    /// A PostgreSQL database, in a schema of this run's own.
    Postgres {
        /// The database.
        url: String,
        /// The run's schema (created on first use).
        schema: String,
    },
}

impl StoreAt {
    /// Opens a connection pool of its own.
    pub async fn open(&self) -> Result<Arc<dyn WorkerStore>, BenchError> {
        match self {
            StoreAt::Url(u) => Ok(skyfleet_core::store::open(u).await?),
            StoreAt::Postgres { url, schema } => Ok(Arc::new(
                skyfleet_core::store::PostgresStore::connect_in_schema(url, Some(schema)).await?,
            )),
        }
    }

    /// Drops the run's PostgreSQL schema (nothing for other stores).
    pub async fn clean_up(&self) {
        if let StoreAt::Postgres { url, schema } = self {
            if let Ok(mut c) = <sqlx::PgConnection as sqlx::Connection>::connect(url).await {
                let drop = format!("DROP SCHEMA IF EXISTS {schema} CASCADE");
                if let Err(e) = sqlx::query(&drop).execute(&mut c).await {
                    eprintln!("bench scale: could not drop schema {schema}: {e}");
                }
            }
        }
    }
}

/// One replica: its runtime (until killed) and how to stop it cleanly.
struct Replica {
    owner: String,
    rt: Option<Runtime>,
    cancel: CancellationToken,
    stopped: Option<oneshot::Receiver<()>>,
}

/// The replicas of a run.
pub struct Replicas {
    list: Vec<Replica>,
    /// The step log, when the run keeps one (several replicas).
    pub log: Option<StepLog>,
}

/// What every replica is built from.
pub struct Setup<'a> {
    /// The mock's URL and certificate.
    pub mock: (&'a str, &'a str),
    /// The store.
    pub store: &'a StoreAt,
    /// The fleet settings (the owner is set per replica).
    pub config: FleetConfig,
    /// The demand all replicas read.
    pub demand: &'a FixedDemand,
}

impl Replicas {
    /// Starts `n` replicas; with more than one, their steps are logged.
    pub async fn start(n: usize, setup: Setup<'_>) -> Result<Replicas, BenchError> {
        let log = (n > 1).then(StepLog::default);
        let mut list = Vec::with_capacity(n);
        for i in 0..n {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(THREADS)
                .thread_name(format!("replica-{i}"))
                .enable_all()
                .build()?;
            let owner = format!("{MANAGER}-replica-{i}");
            let cancel = CancellationToken::new();
            let (ready_tx, ready_rx) = oneshot::channel::<Result<(), String>>();
            let (stopped_tx, stopped_rx) = oneshot::channel();
            let (url, ca) = (setup.mock.0.to_string(), setup.mock.1.to_string());
            let (store_at, demand, log) = (setup.store.clone(), setup.demand.clone(), log.clone());
            let config = setup.config.clone();
            let (c, o) = (cancel.clone(), owner.clone());
            rt.spawn(async move {
                let built = async {
                    let mut demo = mock_clouds::demo_clouds_at(&url, &ca).await?;
                    if let Some(log) = &log {
                        for d in &mut demo {
                            d.provider = Witness::wrap(d.provider.clone(), i, log.clone());
                        }
                    }
                    let store = store_at.open().await.map_err(|e| match e {
                        BenchError::Usage(m) | BenchError::Failed(m) => m,
                    })?;
                    mock_clouds::fleet(&demo, store, &demand)
                        .config(config)
                        .owner(o)
                        .build()
                        .map_err(|e| e.to_string())
                }
                .await;
                match built {
                    Ok(fleet) => {
                        let _ = ready_tx.send(Ok(()));
                        if let Err(e) = fleet.run(c).await {
                            eprintln!("bench scale: replica {i} stopped: {e}");
                        }
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                    }
                }
                let _ = stopped_tx.send(());
            });
            match ready_rx.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(BenchError::Failed(format!("replica {i}: {e}"))),
                Err(_) => return Err(BenchError::Failed(format!("replica {i} did not start"))),
            }
            list.push(Replica {
                owner,
                rt: Some(rt),
                cancel,
                stopped: Some(stopped_rx),
            });
        }
        Ok(Replicas { list, log })
    }

    /// How many were started.
    pub fn len(&self) -> usize {
        self.list.len()
    }

    /// The lease owner id of replica `i`.
    pub fn owner(&self, i: usize) -> Option<&str> {
        self.list.get(i).map(|r| r.owner.as_str())
    }

    /// Kills replica `i` at once (see the module doc); when.
    pub fn kill(&mut self, i: usize) -> Instant {
        let at = Instant::now();
        if let Some(r) = self.list.get_mut(i) {
            if let Some(rt) = r.rt.take() {
                rt.shutdown_background();
            }
            r.stopped = None;
        }
        if let Some(log) = &self.log {
            log.cut(i, at);
        }
        at
    }

    /// Stops every live replica cleanly (leases released), then drops the
    /// runtimes.
    pub async fn stop(mut self) {
        for r in &self.list {
            r.cancel.cancel();
        }
        for r in &mut self.list {
            if let Some(rx) = r.stopped.take() {
                let _ = tokio::time::timeout(std::time::Duration::from_secs(30), rx).await;
            }
        }
        for r in &mut self.list {
            if let Some(rt) = r.rt.take() {
                rt.shutdown_background();
            }
        }
    }
}
