//! Compute Engine through the whole mock (`MockCloud` on loopback): the
//! control API sees GCE instances, config applies, and the `reset` fault
//! really drops the connection.

mod gce_support;

use gce_support::*;
use serde_json::{json, Value};
use skyfleet_mock::{MockCloud, MockConfig};

#[tokio::test]
async fn gce_through_the_mock_cloud() {
    let cfg = MockConfig::from_json(
        r#"{"time_scale": 0.001, "gcp": {"provisioning_ms": 1000, "staging_ms": 1000}}"#,
    )
    .unwrap();
    let mock = MockCloud::builder().config(cfg).start().await.unwrap();
    let client = reqwest::Client::new();
    let url = format!("{}{}/instances", mock.url(), zone_url("mc"));
    let op: Value = client
        .post(&url)
        .bearer_auth("t")
        .json(&vm("vm-1", json!({"pool": "x"})))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(op["selfLink"].as_str().unwrap().starts_with(mock.url()));
    let done: Value = client
        .post(format!("{}/wait", op["selfLink"].as_str().unwrap()))
        .bearer_auth("t")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(done["status"], "DONE");

    let resources: Value = client
        .get(format!("{}/_mock/resources", mock.url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let text = resources.to_string();
    assert!(text.contains("\"gcp\"") && text.contains("vm-1"), "{text}");

    let rules = json!([{"cloud": "gcp", "operation": "compute.instances.get", "count": 1, "effect": {"kind": "reset"}}]);
    let r = client
        .put(format!("{}/_mock/faults", mock.url()))
        .json(&rules)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    let get = format!("{url}/vm-1");
    assert!(
        client.get(&get).bearer_auth("t").send().await.is_err(),
        "connection dropped"
    );
    let s = client
        .get(&get)
        .bearer_auth("t")
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(s, 200);
}

#[tokio::test]
async fn links_over_tls_name_https() {
    let mock = MockCloud::builder().tls(true).start().await.unwrap();
    assert!(mock.url().starts_with("https://"));
    let cert = reqwest::Certificate::from_pem(mock.cert_pem().unwrap().as_bytes()).unwrap();
    let client = reqwest::Client::builder()
        .add_root_certificate(cert)
        .build()
        .unwrap();
    let url = format!("{}{}/instances", mock.url(), zone_url("tls"));
    let op: Value = client
        .post(&url)
        .bearer_auth("t")
        .json(&vm("vm-tls", json!({})))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for link in ["selfLink", "targetLink", "zone"] {
        let l = op[link].as_str().unwrap_or_default();
        assert!(l.starts_with(mock.url()), "{link} = {l}");
    }
}
