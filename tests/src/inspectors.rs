//! The cloud inspectors the suite ships: of the in-memory [`TestingCloud`],
//! of a `skyfleet-mock` cloud (its `/_mock/resources` and fault rules), and
//! of static workers.

use super::*;

/// The inspector of a [`TestingCloud`].
#[derive(Debug, Clone)]
pub struct TestingInspector {
    /// The cloud.
    pub cloud: TestingCloud,
}

#[async_trait]
impl CloudInspector for TestingInspector {
    async fn resources(&self) -> Result<Vec<CloudResource>> {
        Ok(self
            .cloud
            .instance_names()
            .into_iter()
            .map(|n| CloudResource {
                worker_id: n.strip_suffix("-vm").map(str::to_string),
                id: n,
                kind: "instance".into(),
            })
            .collect())
    }

    async fn inject(&self, fault: Fault) -> Result<bool> {
        let (n, err) = match fault {
            Fault::Throttle { times } => (
                times,
                Error::new(
                    ErrorKind::Throttled { retry_after: None },
                    "injected throttle",
                ),
            ),
            Fault::Transient { times } => (times, Error::new(ErrorKind::Transient, "injected 503")),
            Fault::Capacity { .. } => (
                1,
                Error::new(ErrorKind::CapacityOrQuota, "injected stockout")
                    .with_code("InsufficientCapacity"),
            ),
        };
        for _ in 0..n {
            self.cloud.inject(
                CallKind::Create,
                Error::new(err.kind().clone(), err.message().to_string())
                    .with_code(err.code().unwrap_or("Injected").to_string()),
            );
        }
        Ok(true)
    }

    async fn clear_faults(&self) -> Result<()> {
        // Injected errors are consumed by the calls they fail.
        Ok(())
    }
}

/// Which cloud of the mock, and how its create call and capacity failures
/// look there.
#[derive(Debug, Clone)]
pub struct MockCloudKind {
    /// `aws`, `azure` or `gcp` (the mock's cloud names).
    pub cloud: &'static str,
    /// The operation name of the create call in fault rules.
    pub create_operation: &'static str,
    /// The fault effect of a capacity failure.
    pub capacity_effect: Value,
    /// The fault effect of a transient failure.
    pub transient_effect: Value,
    /// Whether fault rules may match the worker's resource by name
    /// (`{worker id}*`).
    pub match_by_name: bool,
}

impl MockCloudKind {
    /// Compute Engine: a failed insert operation.
    pub fn gcp() -> Self {
        MockCloudKind {
            cloud: "gcp",
            create_operation: "compute.instances.insert",
            capacity_effect: json!({"kind": "fail_operation", "code": "ZONE_RESOURCE_POOL_EXHAUSTED",
                "message": "The zone does not have enough resources available to fulfill the request."}),
            transient_effect: json!({"kind": "error", "status": 503, "code": "backendError",
                "message": "Backend error"}),
            match_by_name: true,
        }
    }

    /// EC2: `InsufficientInstanceCapacity` on `RunInstances`.
    pub fn aws() -> Self {
        MockCloudKind {
            cloud: "aws",
            create_operation: "RunInstances",
            capacity_effect: json!({"kind": "error", "status": 500, "code": "InsufficientInstanceCapacity",
                "message": "We currently do not have sufficient capacity in the Availability Zone you requested."}),
            transient_effect: json!({"kind": "error", "status": 503, "code": "Unavailable",
                "message": "The server is overloaded"}),
            match_by_name: false,
        }
    }
}

impl MockCloudKind {
    /// Azure Resource Manager: a VM create whose operation fails with
    /// `AllocationFailed`.
    pub fn azure() -> Self {
        MockCloudKind {
            cloud: "azure",
            create_operation: "VirtualMachines_CreateOrUpdate",
            capacity_effect: json!({"kind": "fail_operation", "code": "AllocationFailed",
                "message": "Allocation failed. We do not have sufficient capacity for the requested VM size in this region."}),
            transient_effect: json!({"kind": "error", "status": 503, "code": "ServiceUnavailable",
                "message": "The service is temporarily unavailable"}),
            match_by_name: true,
        }
    }
}

/// The inspector of one cloud of a running `skyfleet-mock`, through its
/// control API; it sees the resources tagged with one manager id.
#[derive(Debug, Clone)]
pub struct MockInspector {
    url: String,
    manager_id: String,
    kind: MockCloudKind,
    http: reqwest::Client,
}

fn http_err(e: impl std::fmt::Display) -> Error {
    Error::new(ErrorKind::Transient, format!("mock control API: {e}"))
}

impl MockInspector {
    /// An inspector of `kind` at the mock's base `url`, for resources of
    /// `manager_id`.
    pub fn new(url: &str, manager_id: &str, kind: MockCloudKind) -> Self {
        MockInspector {
            url: url.trim_end_matches('/').to_string(),
            manager_id: manager_id.to_string(),
            kind,
            http: reqwest::Client::new(),
        }
    }

    /// Uses `client` for the control API (one trusting the mock's TLS
    /// certificate, when it serves HTTPS).
    pub fn with_client(mut self, client: reqwest::Client) -> Self {
        self.http = client;
        self
    }

    async fn rules(&self) -> Result<Vec<Value>> {
        self.get_array("/_mock/faults").await
    }

    /// A control-API listing: an error unless the mock answered 2xx with a
    /// JSON array, so a refused or garbled answer never reads as "nothing".
    async fn get_array(&self, path: &str) -> Result<Vec<Value>> {
        let r = self
            .http
            .get(format!("{}{path}", self.url))
            .send()
            .await
            .map_err(http_err)?;
        let status = r.status();
        if !status.is_success() {
            let body = r.text().await.unwrap_or_default();
            return Err(Error::internal(format!(
                "mock control API: GET {path}: HTTP {status}: {body}"
            )));
        }
        match r.json::<Value>().await.map_err(http_err)? {
            Value::Array(v) => Ok(v),
            other => Err(Error::internal(format!(
                "mock control API: GET {path}: expected an array, got {other}"
            ))),
        }
    }

    async fn add_rule(&self, rule: Value) -> Result<()> {
        let mut rules = self.rules().await?;
        rules.push(rule);
        let r = self
            .http
            .put(format!("{}/_mock/faults", self.url))
            .json(&rules)
            .send()
            .await
            .map_err(http_err)?;
        if !r.status().is_success() {
            let body = r.text().await.unwrap_or_default();
            return Err(Error::internal(format!("mock refused fault rule: {body}")));
        }
        Ok(())
    }
}

#[async_trait]
impl CloudInspector for MockInspector {
    async fn resources(&self) -> Result<Vec<CloudResource>> {
        let listed = self
            .get_array(&format!("/_mock/resources?cloud={}", self.kind.cloud))
            .await?;
        let manager = skyfleet_core::model::tag::MANAGER;
        let worker = skyfleet_core::model::tag::WORKER;
        let mut out = Vec::new();
        for r in listed
            .iter()
            .filter(|r| r["tags"][manager] == self.manager_id.as_str())
        {
            let field = |k: &str| {
                r[k].as_str().map(str::to_string).ok_or_else(|| {
                    Error::internal(format!("mock control API: a resource without `{k}`: {r}"))
                })
            };
            out.push(CloudResource {
                id: field("id")?,
                kind: field("kind")?,
                worker_id: r["tags"][worker].as_str().map(str::to_string),
            });
        }
        Ok(out)
    }

    async fn inject(&self, fault: Fault) -> Result<bool> {
        let op = self.kind.create_operation;
        let cloud = self.kind.cloud;
        let rule = match fault {
            Fault::Throttle { times } => json!({"cloud": cloud, "operation": op, "count": times,
                "effect": {"kind": "throttle", "retry_after_s": 1}}),
            Fault::Transient { times } => json!({"cloud": cloud, "operation": op, "count": times,
                "effect": self.kind.transient_effect}),
            Fault::Capacity { worker_id } => {
                // Once: the transport does not retry a stockout (even EC2's,
                // answered with a 500), so one answer must reach the provider.
                let mut r = json!({"cloud": cloud, "operation": op, "count": 1,
                    "effect": self.kind.capacity_effect});
                if self.kind.match_by_name {
                    r["resource"] = Value::from(format!("*{worker_id}*"));
                }
                r
            }
        };
        self.add_rule(rule).await?;
        Ok(true)
    }

    async fn clear_faults(&self) -> Result<()> {
        self.http
            .delete(format!("{}/_mock/faults", self.url))
            .send()
            .await
            .map_err(http_err)?;
        Ok(())
    }
}

/// The inspector of static machines: they are not cloud resources, and the
/// "machine" registers itself with the secret the provider hands out.
#[derive(Debug, Clone)]
pub struct StaticInspector {
    /// A clone of the provider under test (clones share their secrets).
    pub provider: StaticProvider,
}

#[async_trait]
impl CloudInspector for StaticInspector {
    async fn resources(&self) -> Result<Vec<CloudResource>> {
        Ok(Vec::new())
    }

    async fn inject(&self, _fault: Fault) -> Result<bool> {
        Ok(false)
    }

    async fn clear_faults(&self) -> Result<()> {
        Ok(())
    }

    async fn after_step(&self, worker: &mut Worker) -> Result<()> {
        if worker.phase != Phase::Requested || worker.desired != DesiredState::Running {
            return Ok(());
        }
        if let Some(secret) = self.provider.take_secret(worker.id()) {
            let step = self.provider.register(worker, secret.expose())?;
            apply_step(worker, &step, SystemClock.now());
        }
        Ok(())
    }
}
