//! The Compute Engine surface of issue #19 over loopback HTTP (reqwest):
//! `instances.aggregatedList` across zones with filters and pages; stop,
//! start, suspend and resume through their operations and the real
//! lifecycle; `setLabels` guarded by the label fingerprint; bad input.

mod gce_support;

use std::time::{Duration, Instant};

use gce_support::*;
use reqwest::Method;
use serde_json::{json, Value};
use skyfleet_mock::gce::{Gce, GceConfig};

/// A loopback Compute Engine and a client with a bearer token.
struct Api {
    client: reqwest::Client,
    base: String,
    gce: std::sync::Arc<Gce>,
}

/// Durations (ms before scaling) long enough at scale 0.01 that the
/// transitional statuses are seen on the first read after a call (200 ms of
/// STOPPING and SUSPENDING), short enough for a quick test.
fn surface_config() -> GceConfig {
    GceConfig {
        provisioning_ms: 5_000,
        staging_ms: 5_000,
        stopping_ms: 20_000,
        suspending_ms: 20_000,
        deleting_ms: 1_000,
        operation_pending_ms: 0,
        insert_operation_ms: 1_000,
        start_operation_ms: 1_000,
        stop_operation_ms: 1_000,
        delete_operation_ms: 1_000,
        suspend_operation_ms: 1_000,
        resume_operation_ms: 1_000,
        ..GceConfig::default()
    }
}

impl Api {
    async fn new() -> Api {
        let (_ctx, gce, router) = gce(0.01);
        gce.set_config(surface_config());
        let base = serve(router).await;
        Api {
            client: reqwest::Client::new(),
            base,
            gce,
        }
    }

    /// Status and JSON body of `method path` (path from `/compute/v1/`).
    async fn send(&self, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = self
            .client
            .request(method, format!("{}/compute/v1/{path}", self.base))
            .bearer_auth("t");
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    /// `zones/{zone}/instances` of project `p`, plus `rest`.
    fn instances(p: &str, zone: &str, rest: &str) -> String {
        format!("projects/{p}/zones/{zone}/instances{rest}")
    }

    /// Inserts `name` in `zone` and waits for its operation.
    async fn insert(&self, p: &str, zone: &str, name: &str, labels: Value) {
        let mut body = vm(name, labels);
        body["machineType"] = json!(format!("zones/{zone}/machineTypes/e2-small"));
        let (s, op) = self
            .send(Method::POST, &Api::instances(p, zone, ""), Some(body))
            .await;
        assert_eq!(s, 200, "{op}");
        self.follow(&op).await;
    }

    /// Waits (`zoneOperations.wait`) until the operation is DONE.
    async fn follow(&self, op: &Value) -> Value {
        gce_support::follow(&self.client, op).await
    }

    /// The instance's status now.
    async fn status(&self, p: &str, zone: &str, name: &str) -> String {
        let (s, v) = self
            .send(
                Method::GET,
                &Api::instances(p, zone, &format!("/{name}")),
                None,
            )
            .await;
        assert_eq!(s, 200, "{v}");
        v["status"].as_str().unwrap().to_string()
    }

    /// The statuses the instance goes through (each once, in order) until
    /// it is `last`.
    async fn statuses_until(&self, p: &str, zone: &str, name: &str, last: &str) -> Vec<String> {
        let mut seen: Vec<String> = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            let st = self.status(p, zone, name).await;
            if seen.last() != Some(&st) {
                seen.push(st.clone());
            }
            if st == last {
                return seen;
            }
            tokio::time::sleep(Duration::from_millis(3)).await;
        }
        panic!("{name} never got {last}: {seen:?}");
    }

    /// A power method (`stop`, `suspend`...) on `name`.
    async fn power(&self, p: &str, name: &str, verb: &str) -> (u16, Value) {
        let path = Api::instances(p, ZONE, &format!("/{name}/{verb}"));
        self.send(Method::POST, &path, None).await
    }
}

/// The names in an aggregated page, by scope; and the scopes with a
/// `NO_RESULTS_ON_PAGE` warning.
fn page(v: &Value) -> (Vec<(String, Vec<String>)>, Vec<String>) {
    let mut found = Vec::new();
    let mut empty = Vec::new();
    for (scope, entry) in v["items"].as_object().unwrap() {
        match entry["instances"].as_array() {
            Some(list) => found.push((
                scope.clone(),
                list.iter()
                    .map(|i| i["name"].as_str().unwrap().to_string())
                    .collect(),
            )),
            None => {
                assert_eq!(entry["warning"]["code"], "NO_RESULTS_ON_PAGE", "{entry}");
                assert_eq!(entry["warning"]["data"][0]["key"], "scope", "{entry}");
                assert_eq!(entry["warning"]["data"][0]["value"], scope.as_str());
                assert!(entry["warning"]["message"].is_string());
                empty.push(scope.clone());
            }
        }
    }
    (found, empty)
}

fn names(scope: &str, list: &[&str]) -> (String, Vec<String>) {
    (
        scope.to_string(),
        list.iter().map(|s| s.to_string()).collect(),
    )
}

#[tokio::test]
async fn aggregated_list_spans_zones_with_filters_and_pages() {
    let api = Api::new().await;
    let (a, b, c) = ("us-central1-a", "us-central1-b", "europe-west1-b");
    for (zone, name, pool) in [
        (a, "vm-a2", "x"),
        (a, "vm-a1", "x"),
        (b, "vm-b1", "x"),
        (b, "vm-b2", "y"),
        (c, "vm-c1", "y"),
    ] {
        api.insert("agg", zone, name, json!({"pool": pool})).await;
        api.statuses_until("agg", zone, name, "RUNNING").await;
    }
    let agg = "projects/agg/aggregated/instances";

    // Everything, one page: zones in order, names in order.
    let (s, v) = api.send(Method::GET, agg, None).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["kind"], "compute#instanceAggregatedList");
    assert_eq!(v["id"], agg);
    assert_eq!(v["selfLink"], format!("{}/compute/v1/{agg}", api.base));
    assert!(v.get("nextPageToken").is_none());
    let (found, empty) = page(&v);
    assert_eq!(
        found,
        vec![
            names("zones/europe-west1-b", &["vm-c1"]),
            names("zones/us-central1-a", &["vm-a1", "vm-a2"]),
            names("zones/us-central1-b", &["vm-b1", "vm-b2"]),
        ]
    );
    assert!(empty.is_empty());
    let first = &v["items"]["zones/us-central1-a"]["instances"][0];
    assert_eq!(first["kind"], "compute#instance");
    assert_eq!(
        first["zone"],
        format!("{}/compute/v1/projects/agg/zones/{a}", api.base)
    );

    // A filter and pages of two, across zones; the zones with nothing on a
    // page carry the warning.
    let q = |token: Option<&str>| {
        let mut path = format!(
            "{agg}?filter={}&maxResults=2&returnPartialSuccess=true",
            urlencode("labels.pool = \"x\" AND status = RUNNING")
        );
        if let Some(t) = token {
            path.push_str(&format!("&pageToken={t}"));
        }
        path
    };
    let (s, p1) = api.send(Method::GET, &q(None), None).await;
    assert_eq!(s, 200, "{p1}");
    let (found, empty) = page(&p1);
    assert_eq!(
        found,
        vec![names("zones/us-central1-a", &["vm-a1", "vm-a2"])]
    );
    assert_eq!(empty, ["zones/europe-west1-b", "zones/us-central1-b"]);
    let token = p1["nextPageToken"].as_str().unwrap().to_string();
    let (s, p2) = api.send(Method::GET, &q(Some(&token)), None).await;
    assert_eq!(s, 200, "{p2}");
    let (found, empty) = page(&p2);
    assert_eq!(found, vec![names("zones/us-central1-b", &["vm-b1"])]);
    assert_eq!(empty, ["zones/europe-west1-b", "zones/us-central1-a"]);
    assert!(p2.get("nextPageToken").is_none(), "{p2}");

    // A filter on the zone, as instances.list takes it.
    let path = format!("{agg}?filter={}", urlencode("zone = europe-*"));
    let (_, v) = api.send(Method::GET, &path, None).await;
    assert_eq!(page(&v).0, vec![names("zones/europe-west1-b", &["vm-c1"])]);

    // A stopped instance leaves a status filter; a deleted one every list.
    let (s, op) = api.power("agg", "vm-a1", "stop").await;
    assert_eq!(s, 200, "{op}");
    let (s, op) = api
        .send(Method::DELETE, &Api::instances("agg", a, "/vm-a2"), None)
        .await;
    assert_eq!(s, 200, "{op}");
    api.follow(&op).await;
    api.statuses_until("agg", a, "vm-a1", "TERMINATED").await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let path = format!("{agg}?filter={}", urlencode("status = RUNNING"));
        let (_, v) = api.send(Method::GET, &path, None).await;
        let (found, empty) = page(&v);
        if empty == ["zones/us-central1-a"] {
            assert_eq!(found.len(), 2, "{v}");
            break;
        }
        assert!(Instant::now() < deadline, "{v}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // A project without instances has no items.
    let (s, v) = api
        .send(Method::GET, "projects/empty/aggregated/instances", None)
        .await;
    assert_eq!(s, 200, "{v}");
    assert!(v.get("items").is_none(), "{v}");
}

/// Percent-encodes a query value.
fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test]
async fn aggregated_list_refuses_bad_parameters() {
    let api = Api::new().await;
    api.insert("bad", ZONE, "vm-1", json!({})).await;
    let agg = "projects/bad/aggregated/instances";
    for (query, reason) in [
        ("maxResults=501", "invalid"),
        ("maxResults=-1", "invalid"),
        ("maxResults=ten", "invalid"),
        ("pageToken=%21%21not-base64", "invalid"),
        // Valid base64 of a key without a zone.
        ("pageToken=dm0tMQ", "invalid"),
        ("filter=nosuchfield%20%3D%201", "invalid"),
        ("filter=name%20%3D", "invalid"),
        ("returnPartialSuccess=maybe", "invalid"),
        ("includeAllScopes=2", "invalid"),
    ] {
        let (s, v) = api.send(Method::GET, &format!("{agg}?{query}"), None).await;
        assert_eq!(s, 400, "{query}: {v}");
        assert_eq!(v["error"]["code"], 400, "{query}: {v}");
        assert_eq!(v["error"]["errors"][0]["reason"], reason, "{query}: {v}");
        assert!(v["error"]["message"].is_string());
    }
    // A bad project in the path.
    let (s, v) = api
        .send(
            Method::GET,
            "projects/Bad_Project/aggregated/instances",
            None,
        )
        .await;
    assert_eq!(s, 400, "{v}");
    assert_eq!(v["error"]["errors"][0]["reason"], "invalidParameter");
    // Only GET.
    let (s, v) = api.send(Method::POST, agg, Some(json!({}))).await;
    assert_eq!(s, 404, "{v}");
    assert_eq!(v["error"]["errors"][0]["reason"], "notFound");
}

#[tokio::test]
async fn stop_then_start_follow_the_lifecycle_through_operations() {
    let api = Api::new().await;
    api.insert("ss", ZONE, "vm-s", json!({})).await;
    api.statuses_until("ss", ZONE, "vm-s", "RUNNING").await;

    let (s, op) = api.power("ss", "vm-s", "stop").await;
    assert_eq!(s, 200, "{op}");
    assert_eq!(op["operationType"], "stop");
    assert!(op["targetLink"]
        .as_str()
        .unwrap()
        .ends_with("/instances/vm-s"));
    let seen = api.statuses_until("ss", ZONE, "vm-s", "TERMINATED").await;
    assert_eq!(seen, ["STOPPING", "TERMINATED"]);
    let done = api.follow(&op).await;
    assert!(done.get("error").is_none(), "{done}");
    assert_eq!(done["progress"], 100);
    // Stopping a stopped instance changes nothing and still succeeds.
    let (s, again) = api.power("ss", "vm-s", "stop").await;
    assert_eq!(s, 200, "{again}");
    assert_ne!(again["name"], op["name"]);
    assert_eq!(api.status("ss", ZONE, "vm-s").await, "TERMINATED");
    // A stopped instance cannot be suspended or resumed.
    for verb in ["suspend", "resume"] {
        let (s, v) = api.power("ss", "vm-s", verb).await;
        assert_eq!(s, 400, "{verb}: {v}");
        assert_eq!(v["error"]["errors"][0]["reason"], "invalidResourceUsage");
    }

    let (s, op) = api.power("ss", "vm-s", "start").await;
    assert_eq!(s, 200, "{op}");
    assert_eq!(op["operationType"], "start");
    let seen = api.statuses_until("ss", ZONE, "vm-s", "RUNNING").await;
    assert!(
        seen == ["PROVISIONING", "STAGING", "RUNNING"] || seen == ["STAGING", "RUNNING"],
        "{seen:?}"
    );
    assert!(api.follow(&op).await.get("error").is_none());
    let (_, inst) = api
        .send(Method::GET, &Api::instances("ss", ZONE, "/vm-s"), None)
        .await;
    assert!(inst["lastStartTimestamp"].is_string(), "{inst}");
}

#[tokio::test]
async fn suspend_then_resume_follow_the_lifecycle_through_operations() {
    let api = Api::new().await;
    api.insert("sr", ZONE, "vm-r", json!({})).await;
    api.statuses_until("sr", ZONE, "vm-r", "RUNNING").await;

    // Resume of a RUNNING instance: 400, as Compute answers.
    let (s, v) = api.power("sr", "vm-r", "resume").await;
    assert_eq!(s, 400, "{v}");
    assert_eq!(v["error"]["code"], 400);
    assert_eq!(v["error"]["errors"][0]["reason"], "invalidResourceUsage");
    assert!(v["error"]["message"].as_str().unwrap().contains("RUNNING"));

    let (s, op) = api.power("sr", "vm-r", "suspend").await;
    assert_eq!(s, 200, "{op}");
    assert_eq!(op["operationType"], "suspend");
    // While it is suspending, a resume is premature.
    let (s, v) = api.power("sr", "vm-r", "resume").await;
    assert_eq!(s, 400, "{v}");
    assert_eq!(v["error"]["errors"][0]["reason"], "resourceNotReady");
    let seen = api.statuses_until("sr", ZONE, "vm-r", "SUSPENDED").await;
    assert_eq!(seen, ["SUSPENDING", "SUSPENDED"]);
    let done = api.follow(&op).await;
    assert!(done.get("error").is_none(), "{done}");
    let (_, inst) = api
        .send(Method::GET, &Api::instances("sr", ZONE, "/vm-r"), None)
        .await;
    assert!(inst["lastSuspendedTimestamp"].is_string(), "{inst}");
    let views = api.gce.resources();
    assert_eq!(views.len(), 1);
    assert_eq!(views[0].state, "SUSPENDED");
    // A suspended instance is resumed, not started; suspending it again
    // changes nothing.
    let (s, v) = api.power("sr", "vm-r", "start").await;
    assert_eq!(s, 400, "{v}");
    assert_eq!(v["error"]["errors"][0]["reason"], "invalidResourceUsage");
    let (s, v) = api.power("sr", "vm-r", "suspend").await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(api.status("sr", ZONE, "vm-r").await, "SUSPENDED");

    let (s, op) = api.power("sr", "vm-r", "resume").await;
    assert_eq!(s, 200, "{op}");
    assert_eq!(op["operationType"], "resume");
    let seen = api.statuses_until("sr", ZONE, "vm-r", "RUNNING").await;
    assert_eq!(seen, ["STAGING", "RUNNING"]);
    assert!(api.follow(&op).await.get("error").is_none());

    // The zone's operations list them by type.
    let path = format!(
        "projects/sr/zones/{ZONE}/operations?filter={}",
        urlencode("operationType = \"suspend\"")
    );
    let (_, ops) = api.send(Method::GET, &path, None).await;
    assert_eq!(ops["items"].as_array().unwrap().len(), 2, "{ops}");

    // A suspended instance can be stopped.
    let (s, _) = api.power("sr", "vm-r", "suspend").await;
    assert_eq!(s, 200);
    api.statuses_until("sr", ZONE, "vm-r", "SUSPENDED").await;
    let (s, _) = api.power("sr", "vm-r", "stop").await;
    assert_eq!(s, 200);
    api.statuses_until("sr", ZONE, "vm-r", "TERMINATED").await;
}

#[tokio::test]
async fn power_methods_refuse_unknown_instances_and_bad_input() {
    let api = Api::new().await;
    api.insert("pw", ZONE, "vm-p", json!({})).await;
    for verb in ["stop", "start", "suspend", "resume"] {
        let (s, v) = api.power("pw", "nosuch", verb).await;
        assert_eq!(s, 404, "{verb}: {v}");
        assert_eq!(v["error"]["errors"][0]["reason"], "notFound", "{verb}");
        assert!(v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("instances/nosuch"));
        // A request id must be a UUID.
        let path = Api::instances("pw", ZONE, &format!("/vm-p/{verb}?requestId=x"));
        let (s, v) = api.send(Method::POST, &path, None).await;
        assert_eq!(s, 400, "{verb}: {v}");
        assert_eq!(v["error"]["errors"][0]["reason"], "invalid", "{verb}");
        // Only POST.
        let path = Api::instances("pw", ZONE, &format!("/vm-p/{verb}"));
        let (s, _) = api.send(Method::GET, &path, None).await;
        assert_eq!(s, 404, "{verb}");
        // A bad instance name in the path.
        let path = Api::instances("pw", ZONE, &format!("/VM_P/{verb}"));
        let (s, v) = api.send(Method::POST, &path, None).await;
        assert_eq!(s, 400, "{verb}: {v}");
        assert_eq!(v["error"]["errors"][0]["reason"], "invalidParameter");
    }
    // Suspend while the instance boots is premature; nothing changes.
    let (s, op) = api
        .send(
            Method::POST,
            &Api::instances("pw", ZONE, ""),
            Some(vm("vm-q", json!({}))),
        )
        .await;
    assert_eq!(s, 200, "{op}");
    let (s, v) = api.power("pw", "vm-q", "suspend").await;
    assert_eq!(s, 400, "{v}");
    assert_eq!(v["error"]["errors"][0]["reason"], "resourceNotReady");
    api.statuses_until("pw", ZONE, "vm-q", "RUNNING").await;
    // A requestId replays the same suspend operation.
    let path = Api::instances(
        "pw",
        ZONE,
        "/vm-q/suspend?requestId=3f0e3c0a-6f5e-4b8e-9a57-3c1d2b4a5e6f",
    );
    let (_, o1) = api.send(Method::POST, &path, None).await;
    let (_, o2) = api.send(Method::POST, &path, None).await;
    assert_eq!(o1["name"], o2["name"]);
    assert_eq!(o1["operationType"], "suspend");
}

#[tokio::test]
async fn set_labels_needs_the_current_fingerprint() {
    let api = &Api::new().await;
    api.insert("lb", ZONE, "vm-l", json!({"pool": "a"})).await;
    let get = || async {
        api.send(Method::GET, &Api::instances("lb", ZONE, "/vm-l"), None)
            .await
            .1
    };
    let set = |body: Value| async move {
        api.send(
            Method::POST,
            &Api::instances("lb", ZONE, "/vm-l/setLabels"),
            Some(body),
        )
        .await
    };
    let fp0 = get().await["labelFingerprint"]
        .as_str()
        .unwrap()
        .to_string();

    // No fingerprint: 412, as for a stale one; nothing changes.
    let (s, v) = set(json!({"labels": {"pool": "b"}})).await;
    assert_eq!(s, 412, "{v}");
    assert_eq!(v["error"]["code"], 412);
    assert_eq!(v["error"]["errors"][0]["reason"], "conditionNotMet");
    let (s, v) = set(json!({"labels": {"pool": "b"}, "labelFingerprint": "AAAAAAAAAAA="})).await;
    assert_eq!(s, 412, "{v}");
    assert_eq!(v["error"]["errors"][0]["reason"], "conditionNotMet");
    assert_eq!(get().await["labels"], json!({"pool": "a"}));

    // The current one: an operation, then new labels and a new fingerprint.
    let (s, op) = set(json!({"labels": {"pool": "b"}, "labelFingerprint": fp0})).await;
    assert_eq!(s, 200, "{op}");
    assert_eq!(op["operationType"], "setLabels");
    assert!(api.follow(&op).await.get("error").is_none());
    let after = get().await;
    assert_eq!(after["labels"], json!({"pool": "b"}));
    let fp1 = after["labelFingerprint"].as_str().unwrap().to_string();
    assert_ne!(fp1, fp0);

    // Back to the first labels: yet another fingerprint, so the first one
    // stays stale.
    let (s, _) = set(json!({"labels": {"pool": "a"}, "labelFingerprint": fp1})).await;
    assert_eq!(s, 200);
    let fp2 = get().await["labelFingerprint"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(fp2 != fp0 && fp2 != fp1, "{fp0} {fp1} {fp2}");
    let (s, v) = set(json!({"labels": {"pool": "c"}, "labelFingerprint": fp0})).await;
    assert_eq!(s, 412, "{v}");
    let (s, v) = set(json!({"labels": {"pool": "c"}, "labelFingerprint": fp1})).await;
    assert_eq!(s, 412, "{v}");
    assert_eq!(get().await["labels"], json!({"pool": "a"}));

    // Bad input: a fingerprint that is not a string, bad labels, not JSON,
    // an unknown instance.
    let (s, v) = set(json!({"labels": {}, "labelFingerprint": 7})).await;
    assert_eq!(s, 400, "{v}");
    assert_eq!(v["error"]["errors"][0]["reason"], "invalid");
    let (s, v) = set(json!({"labels": {"Bad Key": "x"}, "labelFingerprint": fp2})).await;
    assert_eq!(s, 400, "{v}");
    assert_eq!(v["error"]["errors"][0]["reason"], "invalid");
    let resp = api
        .client
        .post(format!(
            "{}/compute/v1/{}",
            api.base,
            Api::instances("lb", ZONE, "/vm-l/setLabels")
        ))
        .bearer_auth("t")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["errors"][0]["reason"], "parseError");
    let (s, v) = api
        .send(
            Method::POST,
            &Api::instances("lb", ZONE, "/nosuch/setLabels"),
            Some(json!({"labels": {}, "labelFingerprint": fp2})),
        )
        .await;
    assert_eq!(s, 404, "{v}");
    assert_eq!(v["error"]["errors"][0]["reason"], "notFound");
}
