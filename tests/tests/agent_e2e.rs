//! The agent end to end with the mock cloud: the AWS provider creates a VM
//! on the mock, whose user data names a stub manager; the agent library
//! reads the bootstrap and the signed identity document from the mock's
//! IMDS for that VM and registers; the stub manager verifies the proof with
//! the provider's `verify_identity` (trusting only what `/_mock/trust`
//! publishes), answers, and tells the agent to terminate. A proof
//! presented for another worker is refused, and the agent stops with the
//! 401. (The real manager API, crate skyfleet-api, over a real fleet is
//! exercised on all three clouds by `skyfleet demo`, whose agents are this
//! library: see `cli/src/demo/agents.rs` and the demo test in
//! `cli/tests/cli.rs`.)

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::json;
use skyfleet_agent::{
    Agent, AgentConfig, AgentError, Cloud, MetadataSource, Outcome, Registration, RetryPolicy,
    WorkError, WorkSource, WorkStatus,
};
use skyfleet_aws::{AwsBuilder, AwsProvider, Timings};
use skyfleet_core::clock::SystemClock;
use skyfleet_core::protocol::{
    paths, Action, ErrorBody, ErrorCode, HeartbeatRequest, HeartbeatResponse, RegisterRequest,
    RegisterResponse,
};
use skyfleet_core::provider::support::Secret;
use skyfleet_core::testing::fixtures;
use skyfleet_core::transport::{ApiClass, Limit, Transport, TransportConfig};
use skyfleet_core::{Phase, Provider, ProviderExt, Worker};
use skyfleet_identity::aws::{AwsTrust, SignatureForm};
use skyfleet_mock::MockCloud;
use time::OffsetDateTime;

const REGION: &str = "us-east-1";
const SECRET: &str = "e2e-worker-secret-7c1a";

/// The stub manager's state: the workers it knows (by id) and the
/// provider that verifies their proofs.
struct Manager {
    provider: Arc<AwsProvider>,
    workers: Mutex<HashMap<String, Worker>>,
    verified: Mutex<Vec<(String, Option<String>)>>,
    heartbeats: Mutex<Vec<HeartbeatRequest>>,
}

fn refused() -> Response {
    let body = ErrorBody {
        code: ErrorCode::Unauthorized,
        message: "signature validation error".into(),
    };
    (StatusCode::UNAUTHORIZED, Json(body)).into_response()
}

async fn register(State(m): State<Arc<Manager>>, Json(req): Json<RegisterRequest>) -> Response {
    let worker = m.workers.lock().unwrap().get(&req.worker_id).cloned();
    let Some(worker) = worker else {
        return refused();
    };
    match m.provider.verify_identity(&worker, &req.proof).await {
        Ok(v) => {
            m.verified
                .lock()
                .unwrap()
                .push((v.worker_id.clone(), v.instance_id.clone()));
            Json(RegisterResponse {
                worker_config: json!({"from": "stub"}),
                secret: Secret::new(SECRET),
                expires: OffsetDateTime::now_utc() + time::Duration::hours(1),
                heartbeat_interval_secs: 1,
            })
            .into_response()
        }
        Err(_) => refused(),
    }
}

async fn heartbeat(
    State(m): State<Arc<Manager>>,
    headers: HeaderMap,
    Json(req): Json<HeartbeatRequest>,
) -> Response {
    let auth = headers.get("authorization").and_then(|v| v.to_str().ok());
    if auth != Some(&format!("Bearer {SECRET}")) {
        return refused();
    }
    m.heartbeats.lock().unwrap().push(req);
    Json(HeartbeatResponse {
        action: Action::Terminate,
        heartbeat_interval_secs: 1,
        expires: OffsetDateTime::now_utc() + time::Duration::hours(1),
    })
    .into_response()
}

/// A work source that records what it was given.
#[derive(Default)]
struct Recorder {
    started: Arc<Mutex<Option<Registration>>>,
    stopped: Arc<Mutex<bool>>,
}

impl WorkSource for Recorder {
    async fn start(&mut self, r: &Registration) -> Result<(), WorkError> {
        *self.started.lock().unwrap() = Some(r.clone());
        Ok(())
    }
    async fn rotated(&mut self, _: &Registration) -> Result<(), WorkError> {
        Ok(())
    }
    async fn status(&mut self) -> WorkStatus {
        WorkStatus::busy(1, 0)
    }
    async fn stop(&mut self, _: Duration) {
        *self.stopped.lock().unwrap() = true;
    }
}

fn transport() -> Transport {
    let fast = Limit::per_second(10_000, 10_000);
    let mut config = TransportConfig::default()
        .with_operation_limit("aws", "RunInstances", fast)
        .with_backoff(Duration::from_millis(5), Duration::from_millis(50));
    for class in ApiClass::ALL {
        config = config.with_limit("aws", class, fast);
    }
    Transport::builder().config(config).build().unwrap()
}

async fn trust(mock: &MockCloud) -> AwsTrust {
    let t: serde_json::Value = reqwest::get(format!("{}/_mock/trust", mock.url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let pem = t["aws"]["certificate_pem"]
        .as_str()
        .expect("AWS certificate");
    AwsTrust::empty()
        .with_certificate(SignatureForm::Rsa, REGION, pem)
        .expect("the mock's certificate parses")
}

async fn created(p: &AwsProvider, id: &str) -> (Worker, String) {
    let mut w = fixtures::worker(id)
        .pool("proj/agents")
        .provider("aws-e2e")
        .launch_config("lc-1")
        .launch(json!({"region": REGION, "ImageId": "ami-0123456789abcdef0",
            "InstanceType": "t3.micro", "workerConfig": {"capacity": 1}}))
        .build_now();
    p.create(&mut w, &SystemClock, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(w.phase, Phase::Running);
    let instance = AwsProvider::instance_id(&w).expect("instance id");
    (w, instance)
}

fn agent_for(mock: &MockCloud, instance: &str) -> Agent {
    let base = format!("{}/_imds/aws/{instance}", mock.imds_url());
    Agent::new(AgentConfig {
        source: Some(MetadataSource::for_cloud(Cloud::Aws, Some(&base)).unwrap()),
        retry: RetryPolicy {
            initial: Duration::from_millis(20),
            max_delay: Duration::from_millis(200),
            max_attempts: 5,
            max_elapsed: Duration::from_secs(10),
        },
        ..AgentConfig::default()
    })
}

#[tokio::test]
async fn the_agent_registers_with_its_vms_verified_identity() {
    let mock = MockCloud::builder().time_scale(0.01).start().await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let root_url = format!("http://{}", listener.local_addr().unwrap());
    let provider = AwsBuilder::new()
        .with_id("aws-e2e")
        .with_regions([REGION])
        .with_endpoint_url(mock.url())
        .with_static_credentials("AKIDSKYFLEETTEST", "not-a-real-secret", None)
        .with_timings(Timings {
            poll_interval: Duration::from_millis(20),
            check_interval: Duration::from_secs(5),
            not_found_grace: Duration::from_millis(800),
        })
        .with_transport(transport())
        .with_root_url(&root_url)
        .with_identity_trust(trust(&mock).await)
        .build()
        .await
        .unwrap();
    let provider = Arc::new(provider);
    let (w1, i1) = created(&provider, "w-agent-e2e-1").await;
    let (w2, i2) = created(&provider, "w-agent-e2e-2").await;
    let manager = Arc::new(Manager {
        provider: provider.clone(),
        workers: Mutex::new(HashMap::from([(w1.spec.worker_id.clone(), w1.clone())])),
        verified: Mutex::new(vec![]),
        heartbeats: Mutex::new(vec![]),
    });
    let app = Router::new()
        .route(paths::REGISTER, post(register))
        .route(paths::HEARTBEAT, post(heartbeat))
        .with_state(manager.clone());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });

    // The agent on VM 1 finds who it is and registers; the proof holds.
    let agent = agent_for(&mock, &i1);
    let id = agent.identity().await.unwrap();
    assert_eq!(id.bootstrap.worker_id, "w-agent-e2e-1");
    assert_eq!(id.bootstrap.root_url, root_url);
    assert_eq!(id.proof.kind(), "aws_document");
    let work = Recorder::default();
    let (started, stopped) = (work.started.clone(), work.stopped.clone());
    let outcome = tokio::time::timeout(Duration::from_secs(30), agent.run(work))
        .await
        .expect("the agent ends")
        .expect("the agent runs");
    assert_eq!(outcome, Outcome::Terminated);
    assert_eq!(
        manager.verified.lock().unwrap().as_slice(),
        &[("w-agent-e2e-1".to_string(), Some(i1.clone()))]
    );
    let reg = started.lock().unwrap().clone().expect("the work started");
    assert_eq!(reg.worker_config, json!({"from": "stub"}));
    assert_eq!(reg.secret.expose(), SECRET);
    assert_eq!(reg.worker_pool_id, "proj/agents");
    assert!(*stopped.lock().unwrap(), "terminate stopped the work");
    assert_eq!(manager.heartbeats.lock().unwrap().len(), 1);

    // The agent on VM 2 presents its proof for a worker record that is VM
    // 1's: the provider refuses it and the agent stops with the 401.
    manager
        .workers
        .lock()
        .unwrap()
        .insert(w2.spec.worker_id.clone(), w1.clone());
    let e = agent_for(&mock, &i2)
        .run(Recorder::default())
        .await
        .unwrap_err();
    assert!(
        matches!(&e, AgentError::Manager(c) if c.is_unauthorized()),
        "{e}"
    );
    assert_eq!(e.exit_code(), 3);
    assert_eq!(
        manager.verified.lock().unwrap().len(),
        1,
        "no second verification"
    );
    mock.shutdown().await;
}
