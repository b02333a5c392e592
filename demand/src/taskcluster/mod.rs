//! [`TaskclusterDemand`]: demand from a Taskcluster deployment's queue
//! (endpoints, fallback and authentication are documented on the type).

mod credentials;
mod hawk;
#[cfg(test)]
mod tests;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use serde::Deserialize;
use skyfleet_core::fleet::{Demand, PoolDemand};
use skyfleet_core::{Error, ErrorKind, Result};
use url::Url;

pub use credentials::{TaskclusterCredentials, ACCESS_TOKEN_VAR, CERTIFICATE_VAR, CLIENT_ID_VAR};

use crate::fetch;

/// The environment variable [`TaskclusterDemand::from_env`] reads the
/// deployment's root URL from.
pub const ROOT_URL_VAR: &str = "TASKCLUSTER_ROOT_URL";

/// How long a deployment found without `taskQueueCounts` is asked only the
/// older `pendingTasks` endpoint before the newer one is tried again.
pub const LEGACY_RECHECK: Duration = Duration::from_secs(3600);

/// The longest provisioner id or worker type Taskcluster accepts.
const MAX_ID_PART: usize = 38;

/// Demand from Taskcluster's queue: a task queue's pending and claimed
/// counts. `Debug` shows the root URL and client id, never the access token.
///
/// # Endpoints
///
/// The pool id is the task queue id, `provisionerId/workerType` (each part
/// `[A-Za-z0-9_-]{1,38}`, the queue's own `taskQueueId` pattern).
///
/// - **Current**: `GET {root}/api/queue/v1/task-queues/<taskQueueId>/counts`
///   (`queue.taskQueueCounts`), answering `{"taskQueueId", "provisionerId",
///   "workerType", "pendingTasks", "claimedTasks"}` (all required by the
///   queue's `task-queue-counts-response` schema). It needs the scopes
///   `queue:pending-count:<taskQueueId>` and
///   `queue:claimed-count:<taskQueueId>`. Taskcluster's own worker-manager
///   estimator reads its counts from it. It is in current releases (its
///   claimed count was corrected in mid-2025, taskcluster issue #7856, DB
///   version 113); the queue UI calls the older `pendingTasks` deprecated in
///   its favour (taskcluster PR #9061). A batch form, `POST
///   .../task-queues/counts` (`taskQueueCountsBatch`, PR #9129), exists in
///   the newest releases; this source asks per pool and does not use it.
/// - **Older**: `GET {root}/api/queue/v1/pending/<taskQueueId>`
///   (`queue.pendingTasks`, scope `queue:pending-count:<taskQueueId>`),
///   answering `{"pendingTasks": N, ...}`: the only count endpoint of
///   deployments from before `taskQueueCounts`. It has no claimed count, so
///   on such a deployment `claimed` is reported as 0 (the estimator then
///   counts every running worker as idle capacity, which errs toward fewer
///   new workers, not more).
///
/// The source asks the current endpoint; if the deployment answers 404 and
/// the older one answers, it remembers that and asks only the older one,
/// re-probing the current one every [`LEGACY_RECHECK`] in case the
/// deployment was upgraded. Any other failure of the current endpoint (a
/// 403 for a missing `queue:claimed-count` scope included) is returned as
/// it is, not papered over with a pending-only count.
///
/// The `/` inside the task queue id is sent percent-encoded (`prov%2Flinux`),
/// as Taskcluster's generated Go client does (`url.QueryEscape(taskQueueId)`
/// in `tcqueue`); the queue's Express routes take the id as one parameter
/// (`/pending/:taskQueueId(*)`) and decode it back, and the Hawk MAC covers
/// the path exactly as sent.
///
/// # Authentication
///
/// With [`TaskclusterCredentials`] (given, or read from the environment by
/// [`from_env`](TaskclusterDemand::from_env) /
/// [`with_env_credentials`](TaskclusterDemand::with_env_credentials)), every
/// request carries a Hawk 1.x `Authorization` header (HMAC-SHA256 with the
/// access token over the request's method, path, host and port);
/// without, requests go unauthenticated, which public deployments accept
/// only if the `anonymous` role holds the count scopes.
#[derive(Debug, Clone)]
pub struct TaskclusterDemand {
    /// The root URL, without a trailing `/`.
    root_url: String,
    /// Host and port the requests go to, for the Hawk signature.
    host: String,
    port: u16,
    client: reqwest::Client,
    credentials: Option<TaskclusterCredentials>,
    /// Until when this deployment is asked only the older endpoint.
    legacy_until: Arc<Mutex<Option<Instant>>>,
}

impl TaskclusterDemand {
    /// An unauthenticated source for the deployment at `root_url` (a
    /// trailing `/` is ignored), with a 10 s timeout per request.
    ///
    /// A root URL that is not an `http`/`https` URL with a host is
    /// [`ErrorKind::InvalidConfig`] for `demand.root_url`.
    pub fn new(root_url: impl Into<String>) -> Result<Self> {
        let root_url = root_url.into().trim_end_matches('/').to_string();
        let invalid = |why: &str| Error::invalid_config("demand.root_url", why.to_string());
        let parsed = Url::parse(&root_url).map_err(|e| invalid(&format!("{e}")))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(invalid("the Taskcluster root URL must be http or https"));
        }
        if parsed.query().is_some() || !parsed.username().is_empty() {
            return Err(invalid(
                "the Taskcluster root URL must have no query or user-info",
            ));
        }
        let host = parsed
            .host_str()
            .ok_or_else(|| invalid("the Taskcluster root URL has no host"))?
            .to_string();
        let port = parsed
            .port_or_known_default()
            .ok_or_else(|| invalid("the Taskcluster root URL has no port"))?;
        Ok(TaskclusterDemand {
            root_url,
            host,
            port,
            client: fetch::client(fetch::TIMEOUT)?,
            credentials: None,
            legacy_until: Arc::new(Mutex::new(None)),
        })
    }

    /// A source configured as Taskcluster's clients are: the root URL from
    /// `TASKCLUSTER_ROOT_URL`, credentials from `TASKCLUSTER_CLIENT_ID`,
    /// `TASKCLUSTER_ACCESS_TOKEN` and `TASKCLUSTER_CERTIFICATE` when set
    /// (see [`TaskclusterCredentials::from_env`]).
    pub fn from_env() -> Result<Self> {
        let root = std::env::var(ROOT_URL_VAR)
            .ok()
            .filter(|v| !v.is_empty())
            .ok_or_else(|| {
                Error::invalid_config(ROOT_URL_VAR, format!("{ROOT_URL_VAR} is not set"))
            })?;
        Self::new(root)?.with_env_credentials()
    }

    /// The same source, signing its requests with `credentials`.
    pub fn with_credentials(mut self, credentials: TaskclusterCredentials) -> Self {
        self.credentials = Some(credentials);
        self
    }

    /// The same source, signing with the environment's credentials when
    /// they are set (unchanged when none are).
    pub fn with_env_credentials(mut self) -> Result<Self> {
        if let Some(c) = TaskclusterCredentials::from_env()? {
            self.credentials = Some(c);
        }
        Ok(self)
    }

    /// The same source with each request bounded by `timeout` instead of
    /// 10 s.
    pub fn with_timeout(mut self, timeout: Duration) -> Result<Self> {
        self.client = fetch::client(timeout)?;
        Ok(self)
    }

    /// `GET {root}/api/queue/v1/{path}`, signed when there are credentials.
    async fn get<T: serde::de::DeserializeOwned>(&self, path: &str) -> Result<T> {
        let url = Url::parse(&format!("{}/api/queue/v1/{path}", self.root_url))
            .map_err(|e| Error::internal(format!("demand: taskcluster: building a URL: {e}")))?;
        let auth = match &self.credentials {
            None => None,
            Some(c) => {
                let resource = match url.query() {
                    Some(q) => format!("{}?{q}", url.path()),
                    None => url.path().to_string(),
                };
                let ts = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_err(|_| Error::internal("demand: taskcluster: the clock is before 1970"))?
                    .as_secs();
                Some(c.authorization("GET", &resource, &self.host, self.port, ts)?)
            }
        };
        fetch::get_json(&self.client, &url, auth.as_deref()).await
    }

    /// Whether to ask only the older endpoint now.
    fn use_legacy(&self) -> bool {
        let until = *self.legacy_until.lock().unwrap_or_else(|p| p.into_inner());
        until.is_some_and(|t| Instant::now() < t)
    }

    fn set_legacy(&self, on: bool) {
        *self.legacy_until.lock().unwrap_or_else(|p| p.into_inner()) =
            on.then(|| Instant::now() + LEGACY_RECHECK);
    }

    /// The older endpoint's pending count, claimed 0.
    async fn legacy(&self, id: &str) -> Result<PoolDemand> {
        let c: PendingCount = self.get(&format!("pending/{id}")).await?;
        Ok(PoolDemand {
            pending: c.pending_tasks,
            claimed: 0,
        })
    }
}

/// `queue.taskQueueCounts`' answer (other fields ignored).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct QueueCounts {
    pending_tasks: u64,
    claimed_tasks: u64,
}

/// `queue.pendingTasks`' answer (other fields ignored).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PendingCount {
    pending_tasks: u64,
}

/// `pool_id` as it goes in a queue URL path (`prov%2Flinux`), if it is a
/// task queue id; else [`ErrorKind::InvalidConfig`] for `pool_id`.
fn task_queue_path(pool_id: &str) -> Result<String> {
    let part_ok = |p: &str| {
        !p.is_empty()
            && p.len() <= MAX_ID_PART
            && p.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    };
    match pool_id.split_once('/') {
        Some((prov, wt)) if part_ok(prov) && part_ok(wt) => Ok(format!("{prov}%2F{wt}")),
        _ => Err(Error::invalid_config(
            "pool_id",
            format!(
                "`{}` is not a Taskcluster task queue id (provisionerId/workerType, each [A-Za-z0-9_-]{{1,38}})",
                pool_id.escape_debug()
            ),
        )),
    }
}

#[async_trait]
impl Demand for TaskclusterDemand {
    async fn demand(&self, pool_id: &str) -> Result<PoolDemand> {
        let id = task_queue_path(pool_id)?;
        if self.use_legacy() {
            return self.legacy(&id).await;
        }
        match self
            .get::<QueueCounts>(&format!("task-queues/{id}/counts"))
            .await
        {
            Ok(c) => {
                self.set_legacy(false);
                Ok(PoolDemand {
                    pending: c.pending_tasks,
                    claimed: c.claimed_tasks,
                })
            }
            Err(e) if matches!(e.kind(), ErrorKind::NotFound) => {
                let d = self.legacy(&id).await?;
                self.set_legacy(true);
                Ok(d)
            }
            Err(e) => Err(e),
        }
    }
}
