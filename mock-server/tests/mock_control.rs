//! The framework and control API over real sockets: health, faults and
//! config validation, resources, stats, the journal, resets, body limits,
//! unknown paths, TLS, connection drops, shutdown and the binary's flags.

use std::time::Duration;

use serde_json::{json, Value};
use skyfleet_mock::{MockCloud, MockError};

const AUTH_A: &str =
    "AWS4-HMAC-SHA256 Credential=AKIDCONTROLA/20260101/us-east-1/ec2/aws4_request, SignedHeaders=host, Signature=0";
const AUTH_B: &str =
    "AWS4-HMAC-SHA256 Credential=AKIDCONTROLB/20260101/us-east-1/ec2/aws4_request, SignedHeaders=host, Signature=0";

async fn start() -> MockCloud {
    MockCloud::builder()
        .time_scale(0.001)
        .start()
        .await
        .unwrap()
}

async fn ec2(http: &reqwest::Client, mock: &MockCloud, auth: &str, form: &str) -> (u16, String) {
    let r = http
        .post(format!("{}/", mock.url()))
        .header("authorization", auth)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("Version=2016-11-15&{form}"))
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

async fn get_json(http: &reqwest::Client, url: String) -> Value {
    let r = http.get(url).send().await.unwrap();
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

#[tokio::test]
async fn health_resources_stats_journal_reset() {
    let mock = start().await;
    let http = reqwest::Client::new();
    let health = get_json(&http, format!("{}/_mock/health", mock.url())).await;
    assert_eq!(health["status"], "ok");

    let run = "Action=RunInstances&ImageId=ami-12345678&MinCount=2&MaxCount=2\
        &TagSpecification.1.ResourceType=instance&TagSpecification.1.Tag.1.Key=owner&TagSpecification.1.Tag.1.Value=ci";
    let (status, body) = ec2(&http, &mock, AUTH_A, run).await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = ec2(&http, &mock, AUTH_B, run).await;
    assert_eq!(status, 200);
    let (status, _) = ec2(&http, &mock, AUTH_A, "Action=NoSuchAction").await;
    assert_eq!(status, 400);

    let all = get_json(&http, format!("{}/_mock/resources?cloud=aws", mock.url())).await;
    let all = all.as_array().unwrap();
    assert_eq!(all.len(), 4);
    let a = skyfleet_mock::ec2::account_for_access_key("AKIDCONTROLA");
    let first = all.iter().find(|r| r["partition"] == a.as_str()).unwrap();
    assert_eq!(first["cloud"], "aws");
    assert_eq!(first["kind"], "instance");
    assert_eq!(first["tags"]["owner"], "ci");
    assert!(first["id"].as_str().unwrap().starts_with("i-"));
    assert!(first["created"].as_str().unwrap().ends_with('Z'));

    let stats = get_json(&http, format!("{}/_mock/stats", mock.url())).await;
    assert_eq!(stats["by_cloud"]["aws"], 3);
    let rows = stats["operations"].as_array().unwrap();
    assert!(rows
        .iter()
        .any(|r| r["operation"] == "RunInstances" && r["status"] == 200 && r["count"] == 2));
    assert!(rows
        .iter()
        .any(|r| r["operation"] == "InvalidAction" && r["status"] == 400));

    let journal = get_json(&http, format!("{}/_mock/requests", mock.url())).await;
    let entries = journal.as_array().unwrap();
    assert_eq!(entries.len(), 3);
    assert_eq!(entries[0]["method"], "POST");
    assert_eq!(entries[0]["path"], "/");
    assert_eq!(entries[0]["cloud"], "aws");
    assert_eq!(entries[0]["operation"], "RunInstances");
    let last = entries[2]["seq"].as_u64().unwrap();
    let later = get_json(&http, format!("{}/_mock/requests?since={last}", mock.url())).await;
    assert!(later.as_array().unwrap().is_empty());
    let r = http
        .get(format!("{}/_mock/requests?since=x", mock.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);

    // Reset one account by its account id, then everything.
    let r = http
        .post(format!("{}/_mock/reset?scope={a}", mock.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let left = get_json(&http, format!("{}/_mock/resources", mock.url())).await;
    assert_eq!(left.as_array().unwrap().len(), 2);
    let r = http
        .post(format!("{}/_mock/reset?scope=", mock.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    http.post(format!("{}/_mock/reset", mock.url()))
        .send()
        .await
        .unwrap();
    let left = get_json(&http, format!("{}/_mock/resources", mock.url())).await;
    assert!(left.as_array().unwrap().is_empty());
}

#[tokio::test]
async fn faults_are_validated_with_messages() {
    let mock = start().await;
    let http = reqwest::Client::new();
    let url = format!("{}/_mock/faults", mock.url());
    let put = |body: String| http.put(&url).body(body).send();

    let r = put("not json".into()).await.unwrap();
    assert_eq!(r.status(), 400);
    let msg = r.json::<Value>().await.unwrap()["error"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(msg.contains("JSON array"), "{msg}");

    let r =
        put(json!([{"cloud": "aws", "operation": "*", "effect": {"kind": "explode"}}]).to_string())
            .await
            .unwrap();
    assert_eq!(r.status(), 400);
    let msg = r.json::<Value>().await.unwrap()["error"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(msg.contains("rule 0") && msg.contains("explode"), "{msg}");

    let r = put(
        json!([{"cloud": "aws", "operation": "*", "probability": 2.0, "effect": {"kind": "hang"}}])
            .to_string(),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 400);
    let msg = r.json::<Value>().await.unwrap()["error"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(msg.contains("probability"), "{msg}");

    let r =
        put(json!([{"cloud": "mars", "operation": "*", "effect": {"kind": "reset"}}]).to_string())
            .await
            .unwrap();
    assert_eq!(r.status(), 400);

    let rules = json!([
        {"cloud": "aws", "operation": "DescribeRegions", "count": 1,
         "effect": {"kind": "error", "status": 500, "code": "InternalError", "message": "injected"}},
        {"cloud": "aws", "operation": "*", "resource": "i-*", "probability": 0.5,
         "effect": {"kind": "latency", "ms": 1}}
    ]);
    let r = put(rules.to_string()).await.unwrap();
    assert_eq!(r.status(), 200);
    let got = get_json(&http, url.clone()).await;
    assert_eq!(got.as_array().unwrap().len(), 2);
    assert_eq!(got[0]["effect"]["code"], "InternalError");

    let (status, body) = ec2(&http, &mock, AUTH_A, "Action=DescribeRegions").await;
    assert_eq!(status, 500);
    assert!(body.contains("<Code>InternalError</Code>"), "{body}");
    let got = get_json(&http, url.clone()).await;
    assert_eq!(got[0]["count"], 0);

    let r = http.delete(&url).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let got = get_json(&http, url.clone()).await;
    assert!(got.as_array().unwrap().is_empty());
}

#[tokio::test]
async fn config_get_put_and_errors() {
    let mock = start().await;
    let http = reqwest::Client::new();
    let url = format!("{}/_mock/config", mock.url());
    let cfg = get_json(&http, url.clone()).await;
    assert_eq!(cfg["time_scale"], 0.001);
    assert_eq!(cfg["aws"]["launch_ms"], 5000);
    assert_eq!(cfg["aws"]["throttle"]["enabled"], false);
    assert_eq!(cfg["aws"]["throttle"]["run_instances"]["capacity"], 5.0);
    assert!(cfg.get("azure").is_some() && cfg.get("gcp").is_some());

    let r = http
        .put(&url)
        .body(json!({"time_scale": 0.5, "max_hang_ms": 1000, "aws": {"launch_ms": 10}}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let cfg: Value = r.json().await.unwrap();
    assert_eq!(cfg["time_scale"], 0.5);
    assert_eq!(cfg["max_hang_ms"], 1000);
    assert_eq!(cfg["aws"]["launch_ms"], 10);
    assert_eq!(mock.ctx().time_scale(), 0.5);

    for (body, needle) in [
        (json!({"aws": {"launch_ms": "soon"}}), "aws.launch_ms"),
        (
            json!({"aws": {"throttle": {"mutating": {"capacity": 0, "refill_per_s": 1}}}}),
            "throttle.mutating.capacity",
        ),
        (json!({"time_scale": -1}), "time_scale"),
        (json!({"bogus": 1}), "bogus"),
    ] {
        let r = http.put(&url).body(body.to_string()).send().await.unwrap();
        assert_eq!(r.status(), 400, "{body}");
        let msg = r.json::<Value>().await.unwrap()["error"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(msg.contains(needle), "{msg} should name {needle}");
    }
    // Nothing changed on error.
    assert_eq!(mock.ctx().time_scale(), 0.5);
}

#[tokio::test]
async fn body_limit_and_unknown_paths_answer_in_the_cloud_format() {
    let mock = start().await;
    let http = reqwest::Client::new();
    let big = vec![b'a'; 2 * 1024 * 1024];

    let r = http
        .post(format!("{}/", mock.url()))
        .body(big.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    let body = r.text().await.unwrap();
    assert!(
        body.contains("<Response><Errors><Error><Code>RequestEntityTooLarge</Code>"),
        "{body}"
    );
    assert!(body.contains("<RequestID>"));

    for path in [
        "/subscriptions/s1/resourceGroups/rg?api-version=2021-04-01",
        "/compute/v1/projects/p/zones/z/instances",
    ] {
        let r = http
            .put(format!("{}{path}", mock.url()))
            .header("authorization", "Bearer x")
            .body(big.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 413, "{path}");
        assert!(!r.text().await.unwrap().contains("<Response>"), "{path}");
    }

    let r = http
        .get(format!("{}/no/such/thing", mock.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert!(r.text().await.unwrap().contains("<Code>NotFound</Code>"));
    let r = http
        .get(format!("{}/_mock/nothing", mock.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let v: Value = r.json().await.unwrap();
    assert!(v["error"].is_string());
    let r = http
        .delete(format!("{}/", mock.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("<Code>MethodNotAllowed</Code>"));
}

#[tokio::test]
async fn tls_serves_the_generated_certificate() {
    let mock = MockCloud::builder().tls(true).start().await.unwrap();
    assert!(mock.url().starts_with("https://127.0.0.1:"));
    let pem = mock.cert_pem().unwrap();
    let cert = reqwest::Certificate::from_pem(pem.as_bytes()).unwrap();
    let http = reqwest::Client::builder()
        .add_root_certificate(cert)
        .build()
        .unwrap();
    let v = get_json(&http, format!("{}/_mock/health", mock.url())).await;
    assert_eq!(v["status"], "ok");
    let localhost = mock.url().replace("127.0.0.1", "localhost");
    let v = get_json(&http, format!("{localhost}/_mock/health")).await;
    assert_eq!(v["status"], "ok");
    // A client that does not trust it fails the handshake.
    let strict = reqwest::Client::new();
    assert!(strict
        .get(format!("{}/_mock/health", mock.url()))
        .send()
        .await
        .is_err());
}

#[tokio::test]
async fn reset_fault_drops_the_connection_and_drop_stops_the_server() {
    let mock = start().await;
    let http = reqwest::Client::new();
    mock.ctx()
        .set_faults(vec![skyfleet_mock::ctx::FaultRule {
            cloud: skyfleet_mock::ctx::Cloud::Aws,
            operation: "DescribeRegions".into(),
            resource: None,
            count: Some(1),
            probability: None,
            effect: skyfleet_mock::ctx::FaultEffect::Reset,
        }])
        .unwrap();
    let err = http
        .post(format!("{}/", mock.url()))
        .header("authorization", AUTH_A)
        .body("Action=DescribeRegions&Version=2016-11-15")
        .send()
        .await
        .unwrap_err();
    assert!(!err.is_status(), "{err:?}");
    let stats = get_json(&http, format!("{}/_mock/stats", mock.url())).await;
    assert!(stats["operations"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["operation"] == "DescribeRegions" && r["status"] == 0));

    let url = mock.url().to_string();
    drop(mock);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let fresh = reqwest::Client::new();
    assert!(fresh
        .get(format!("{url}/_mock/health"))
        .send()
        .await
        .is_err());
}

#[tokio::test]
async fn non_loopback_needs_permission() {
    let err = MockCloud::builder()
        .listen("0.0.0.0:0".parse().unwrap())
        .start()
        .await
        .err()
        .unwrap();
    assert!(matches!(err, MockError::NonLoopback(_)), "{err}");
}

#[test]
fn binary_refuses_non_loopback_and_bad_config() {
    let exe = env!("CARGO_BIN_EXE_skyfleet-mock");
    let out = std::process::Command::new(exe)
        .args(["--listen", "0.0.0.0:0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--allow-non-loopback"), "{stderr}");

    let dir = std::env::temp_dir().join(format!("skyfleet-mock-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("bad.json");
    std::fs::write(&file, r#"{"aws": {"terminate_ms": -5}}"#).unwrap();
    let out = std::process::Command::new(exe)
        .args(["--listen", "127.0.0.1:0", "--config"])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("bad.json") && stderr.contains("aws.terminate_ms"),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn binary_starts_and_prints_its_url() {
    use std::io::{BufRead, BufReader};
    let exe = env!("CARGO_BIN_EXE_skyfleet-mock");
    let dir = std::env::temp_dir().join(format!("skyfleet-mock-bin-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cert = dir.join("cert.pem");
    let cfg = dir.join("cfg.json");
    std::fs::write(&cfg, r#"{"time_scale": 0.01, "aws": {"launch_ms": 100}}"#).unwrap();
    let mut child = std::process::Command::new(exe)
        .args([
            "--listen",
            "127.0.0.1:0",
            "--tls",
            "--seed",
            "3",
            "--cert-out",
        ])
        .arg(&cert)
        .arg("--config")
        .arg(&cfg)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert!(line.trim().starts_with("https://127.0.0.1:"), "{line}");
    let pem = std::fs::read_to_string(&cert).unwrap();
    assert!(pem.contains("BEGIN CERTIFICATE"));
    let _ = std::fs::remove_dir_all(&dir);
}
