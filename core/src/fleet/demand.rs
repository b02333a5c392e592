//! Where demand comes from: the [`Demand`] trait and its sources.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use serde::Deserialize;

use super::estimator::PoolDemand;
use crate::error::{Error, ErrorKind, Result};

/// Pending and claimed work per pool.
#[async_trait]
pub trait Demand: Send + Sync + std::fmt::Debug {
    /// The current demand of `pool_id`.
    async fn demand(&self, pool_id: &str) -> Result<PoolDemand>;
}

/// A fixed demand per pool, changeable at run time (tests, demos, and
/// callers that compute demand themselves).
#[derive(Debug, Clone, Default)]
pub struct FixedDemand {
    pools: Arc<Mutex<HashMap<String, PoolDemand>>>,
}

impl FixedDemand {
    /// No demand for any pool.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets `pool_id`'s pending work (claimed stays 0).
    pub fn set_pending(&self, pool_id: &str, pending: u64) {
        self.set(
            pool_id,
            PoolDemand {
                pending,
                claimed: 0,
            },
        );
    }

    /// Sets `pool_id`'s demand.
    pub fn set(&self, pool_id: &str, demand: PoolDemand) {
        self.pools
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(pool_id.to_string(), demand);
    }
}

#[async_trait]
impl Demand for FixedDemand {
    async fn demand(&self, pool_id: &str) -> Result<PoolDemand> {
        Ok(self
            .pools
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(pool_id)
            .copied()
            .unwrap_or_default())
    }
}

fn http_client(timeout: Duration) -> Result<reqwest::Client> {
    reqwest::Client::builder()
        .timeout(timeout)
        .build()
        .map_err(|e| Error::internal(format!("demand: building HTTP client: {e}")))
}

async fn get_json<T: serde::de::DeserializeOwned>(
    client: &reqwest::Client,
    url: &str,
) -> Result<T> {
    let resp = client.get(url).send().await.map_err(|e| {
        let kind = if e.is_timeout() {
            ErrorKind::Timeout
        } else {
            ErrorKind::Transient
        };
        Error::new(kind, format!("demand: GET {url}: {e}"))
    })?;
    let status = resp.status();
    if !status.is_success() {
        return Err(Error::new(
            if status.is_server_error() {
                ErrorKind::Transient
            } else {
                ErrorKind::Internal
            },
            format!("demand: GET {url}: HTTP {status}"),
        ));
    }
    let body = resp
        .bytes()
        .await
        .map_err(|e| Error::new(ErrorKind::Transient, format!("demand: GET {url}: {e}")))?;
    serde_json::from_slice(&body)
        .map_err(|e| Error::internal(format!("demand: GET {url}: unexpected body: {e}")))
}

/// Demand from a JSON endpoint: `GET {url}?pool={pool_id}` answering
/// `{"pending": N, "claimed": M}`.
#[derive(Debug, Clone)]
pub struct HttpDemand {
    url: String,
    client: reqwest::Client,
}

impl HttpDemand {
    /// A source polling `url` with a 10 s timeout.
    pub fn new(url: impl Into<String>) -> Result<Self> {
        Ok(HttpDemand {
            url: url.into(),
            client: http_client(Duration::from_secs(10))?,
        })
    }
}

#[derive(Deserialize)]
struct HttpAnswer {
    pending: u64,
    #[serde(default)]
    claimed: u64,
}

#[async_trait]
impl Demand for HttpDemand {
    async fn demand(&self, pool_id: &str) -> Result<PoolDemand> {
        let mut url = url::Url::parse(&self.url)
            .map_err(|e| Error::invalid_config("demand.url", format!("{e}")))?;
        url.query_pairs_mut().append_pair("pool", pool_id);
        let a: HttpAnswer = get_json(&self.client, url.as_str()).await?;
        Ok(PoolDemand {
            pending: a.pending,
            claimed: a.claimed,
        })
    }
}

/// Demand from Taskcluster's queue: the task queue's pending and claimed
/// counts (`GET {root_url}/api/queue/v1/task-queues/{id}/counts`). The task
/// queue id is the pool id (`provisionerId/workerType`), as in Taskcluster.
#[derive(Debug, Clone)]
pub struct TaskclusterDemand {
    root_url: String,
    client: reqwest::Client,
}

impl TaskclusterDemand {
    /// A source for the deployment at `root_url`.
    pub fn new(root_url: impl Into<String>) -> Result<Self> {
        Ok(TaskclusterDemand {
            root_url: root_url.into().trim_end_matches('/').to_string(),
            client: http_client(Duration::from_secs(10))?,
        })
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct QueueCounts {
    pending_tasks: u64,
    #[serde(default)]
    claimed_tasks: u64,
}

#[async_trait]
impl Demand for TaskclusterDemand {
    async fn demand(&self, pool_id: &str) -> Result<PoolDemand> {
        let id = pool_id.replace('/', "%2F");
        let url = format!("{}/api/queue/v1/task-queues/{id}/counts", self.root_url);
        let c: QueueCounts = get_json(&self.client, &url).await?;
        Ok(PoolDemand {
            pending: c.pending_tasks,
            claimed: c.claimed_tasks,
        })
    }
}
