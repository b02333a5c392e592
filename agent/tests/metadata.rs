//! The metadata sources against stub services that check what each cloud
//! checks (IMDSv2 token, `Metadata-Flavor: Google`, `Metadata: true` and
//! `api-version`), and cloud detection.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use axum::Router;
use base64::Engine as _;
use serde_json::json;
use skyfleet_agent::{Cloud, MetadataError, MetadataSource, RetryPolicy};
use skyfleet_core::provider::IdentityProof;

const ROOT: &str = "https://manager.example/api";

fn bootstrap(worker: &str) -> String {
    json!({"rootUrl": ROOT, "workerPoolId": "ci/linux", "providerId": "p",
        "workerGroup": "g", "workerId": worker, "launchConfigId": "lc",
        "workerConfig": {"x": 1}})
    .to_string()
}

#[derive(Default)]
struct Counters {
    user_data: AtomicU32,
}

type Shared = State<Arc<Counters>>;

fn has(headers: &HeaderMap, name: &str, value: &str) -> bool {
    headers
        .get(name)
        .is_some_and(|v| v.as_bytes() == value.as_bytes())
}

async fn aws_token(headers: HeaderMap) -> Response {
    if !headers.contains_key("x-aws-ec2-metadata-token-ttl-seconds") {
        return StatusCode::BAD_REQUEST.into_response();
    }
    "tok-123".into_response()
}

async fn aws_user_data(State(c): Shared, headers: HeaderMap) -> Response {
    if !has(&headers, "x-aws-ec2-metadata-token", "tok-123") {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    // The first read fails as a busy service does: it is retried.
    if c.user_data.fetch_add(1, Ordering::SeqCst) == 0 {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    bootstrap("w-aws").into_response()
}

async fn aws_leaf(headers: HeaderMap, body: &'static str) -> Response {
    if !has(&headers, "x-aws-ec2-metadata-token", "tok-123") {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    body.into_response()
}

fn google(body: String) -> Response {
    ([("metadata-flavor", "Google")], body).into_response()
}

async fn gcp_root(headers: HeaderMap) -> Response {
    if !has(&headers, "metadata-flavor", "Google") {
        return StatusCode::FORBIDDEN.into_response();
    }
    google("instance/\nproject/\n".into())
}

async fn gcp_attr(headers: HeaderMap) -> Response {
    if !has(&headers, "metadata-flavor", "Google") {
        return StatusCode::FORBIDDEN.into_response();
    }
    google(bootstrap("w-gcp"))
}

async fn gcp_identity(headers: HeaderMap, Query(q): Query<HashMap<String, String>>) -> Response {
    if !has(&headers, "metadata-flavor", "Google") {
        return StatusCode::FORBIDDEN.into_response();
    }
    if q.get("audience").map(String::as_str) != Some(ROOT)
        || q.get("format").map(String::as_str) != Some("full")
    {
        return StatusCode::BAD_REQUEST.into_response();
    }
    google("eyJh.eyJw.c2ln".into())
}

fn azure_ok(headers: &HeaderMap, q: &HashMap<String, String>) -> bool {
    has(headers, "metadata", "true") && q.contains_key("api-version")
}

async fn azure_instance(headers: HeaderMap, Query(q): Query<HashMap<String, String>>) -> Response {
    if !azure_ok(&headers, &q) {
        return StatusCode::BAD_REQUEST.into_response();
    }
    axum::Json(json!({"compute": {"vmId": "v-1"}, "network": {}})).into_response()
}

async fn azure_user_data(headers: HeaderMap, Query(q): Query<HashMap<String, String>>) -> Response {
    if !azure_ok(&headers, &q) || q.get("format").map(String::as_str) != Some("text") {
        return StatusCode::BAD_REQUEST.into_response();
    }
    base64::engine::general_purpose::STANDARD
        .encode(bootstrap("w-azure"))
        .into_response()
}

async fn azure_attested(headers: HeaderMap, Query(q): Query<HashMap<String, String>>) -> Response {
    if !azure_ok(&headers, &q) {
        return StatusCode::BAD_REQUEST.into_response();
    }
    axum::Json(json!({"encoding": "pkcs7", "signature": "MIIBsig"})).into_response()
}

/// The three clouds' stubs under `/aws`, `/gcp`, `/azure`; `/empty` serves
/// an EC2 with no user data.
async fn stubs() -> (String, Arc<Counters>) {
    let counters = Arc::new(Counters::default());
    let app = Router::new()
        .route("/aws/latest/api/token", put(aws_token))
        .route("/aws/latest/user-data", get(aws_user_data))
        .route(
            "/aws/latest/dynamic/instance-identity/document",
            get(|h: HeaderMap| aws_leaf(h, "{\"instanceId\":\"i-1\"}")),
        )
        .route(
            "/aws/latest/dynamic/instance-identity/signature",
            get(|h: HeaderMap| aws_leaf(h, "c2lnbmF0dXJl\n")),
        )
        .route("/empty/latest/api/token", put(aws_token))
        .route("/gcp/computeMetadata/v1/", get(gcp_root))
        .route(
            "/gcp/computeMetadata/v1/instance/attributes/taskcluster",
            get(gcp_attr),
        )
        .route(
            "/gcp/computeMetadata/v1/instance/service-accounts/default/identity",
            get(gcp_identity),
        )
        .route("/azure/metadata/instance", get(azure_instance))
        .route(
            "/azure/metadata/instance/compute/userData",
            get(azure_user_data),
        )
        .route("/azure/metadata/attested/document", get(azure_attested))
        .with_state(counters.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (url, counters)
}

fn fast() -> RetryPolicy {
    RetryPolicy {
        initial: Duration::from_millis(20),
        max_delay: Duration::from_millis(100),
        max_attempts: 4,
        max_elapsed: Duration::from_secs(5),
    }
}

#[tokio::test]
async fn each_cloud_gives_its_bootstrap_and_proof() {
    let (url, counters) = stubs().await;
    let timeout = Duration::from_secs(2);
    let aws = MetadataSource::for_cloud(Cloud::Aws, Some(&format!("{url}/aws/")))
        .unwrap()
        .identity(fast(), timeout)
        .await
        .unwrap();
    assert_eq!(aws.bootstrap.worker_id, "w-aws");
    assert_eq!(aws.bootstrap.root_url, ROOT);
    assert_eq!(
        aws.proof,
        IdentityProof::AwsDocument {
            document: "{\"instanceId\":\"i-1\"}".into(),
            signature: "c2lnbmF0dXJl".into()
        }
    );
    assert_eq!(
        counters.user_data.load(Ordering::SeqCst),
        2,
        "a 503 is retried"
    );

    let gcp = MetadataSource::for_cloud(Cloud::Gcp, Some(&format!("{url}/gcp")))
        .unwrap()
        .identity(fast(), timeout)
        .await
        .unwrap();
    assert_eq!(gcp.bootstrap.worker_id, "w-gcp");
    assert_eq!(
        gcp.proof,
        IdentityProof::GcpToken {
            jwt: "eyJh.eyJw.c2ln".into()
        }
    );

    let azure = MetadataSource::for_cloud(Cloud::Azure, Some(&format!("{url}/azure")))
        .unwrap()
        .identity(fast(), timeout)
        .await
        .unwrap();
    assert_eq!(azure.bootstrap.worker_id, "w-azure");
    assert_eq!(
        azure.proof,
        IdentityProof::AzureAttested {
            signature: "MIIBsig".into(),
            nonce: None
        }
    );
    // No proof material in Debug.
    for id in [&aws, &gcp, &azure] {
        let d = format!("{id:?}");
        assert!(
            !d.contains("c2lnbmF0dXJl") && !d.contains("eyJh") && !d.contains("MIIBsig"),
            "{d}"
        );
    }
}

#[tokio::test]
async fn the_cloud_is_detected_and_nothing_is_named() {
    let (url, _) = stubs().await;
    for (prefix, cloud) in [
        ("aws", Cloud::Aws),
        ("gcp", Cloud::Gcp),
        ("azure", Cloud::Azure),
    ] {
        let s = MetadataSource::detect(Some(&format!("{url}/{prefix}")))
            .await
            .unwrap();
        assert_eq!(s.cloud(), cloud, "{prefix}");
    }
    // Nothing listens: every probe gives up within its timeout.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let start = Instant::now();
    let e = MetadataSource::detect(Some(&format!("http://{dead}")))
        .await
        .unwrap_err();
    assert!(matches!(e, MetadataError::NoCloudDetected { .. }), "{e}");
    assert!(e.to_string().contains(&dead.to_string()), "{e}");
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "{:?}",
        start.elapsed()
    );
}

#[tokio::test]
async fn a_missing_document_is_final_and_named() {
    let (url, _) = stubs().await;
    let start = Instant::now();
    let e = MetadataSource::for_cloud(Cloud::Aws, Some(&format!("{url}/empty")))
        .unwrap()
        .identity(RetryPolicy::default(), Duration::from_secs(2))
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            MetadataError::Status {
                status: 404,
                what: "user data",
                ..
            }
        ),
        "{e}"
    );
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "a 404 is not retried"
    );
    // Static: a missing secret file is named.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("b.json"), bootstrap("w-s")).unwrap();
    let e = MetadataSource::Static {
        bootstrap: dir.path().join("b.json"),
        secret: dir.path().join("nope"),
    }
    .identity(fast(), Duration::from_secs(1))
    .await
    .unwrap_err();
    assert!(
        e.to_string().contains("secret") && e.to_string().contains("nope"),
        "{e}"
    );
}
