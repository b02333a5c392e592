//! [`TaskclusterDemand`]: demand from a Taskcluster deployment's queue.

use async_trait::async_trait;
use serde::Deserialize;
use skyfleet_core::fleet::{Demand, PoolDemand};
use skyfleet_core::Result;

use crate::fetch;

/// Demand from Taskcluster's queue: the task queue's pending and claimed
/// counts (`GET {root_url}/api/queue/v1/task-queues/{id}/counts`). The task
/// queue id is the pool id (`provisionerId/workerType`), as in Taskcluster.
#[derive(Debug, Clone)]
pub struct TaskclusterDemand {
    root_url: String,
    client: reqwest::Client,
}

impl TaskclusterDemand {
    /// A source for the deployment at `root_url` (a trailing `/` is ignored),
    /// with a 10 s timeout.
    pub fn new(root_url: impl Into<String>) -> Result<Self> {
        Ok(TaskclusterDemand {
            root_url: root_url.into().trim_end_matches('/').to_string(),
            client: fetch::client(fetch::TIMEOUT)?,
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
        let c: QueueCounts = fetch::get_json(&self.client, &url).await?;
        Ok(PoolDemand {
            pending: c.pending_tasks,
            claimed: c.claimed_tasks,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fetch::test_server::serve;

    #[tokio::test]
    async fn reads_the_task_queue_counts() {
        let s = serve(
            200,
            r#"{"taskQueueId": "prov/linux", "pendingTasks": 5, "claimedTasks": 1}"#,
        )
        .await;
        let d = TaskclusterDemand::new(format!("{}/", s.base)).unwrap();
        let got = d.demand("prov/linux").await.unwrap();
        assert_eq!(
            got,
            PoolDemand {
                pending: 5,
                claimed: 1
            }
        );
        let lines = s.requests.lock().unwrap().clone();
        assert_eq!(
            lines,
            vec!["GET /api/queue/v1/task-queues/prov%2Flinux/counts HTTP/1.1"]
        );
    }
}
