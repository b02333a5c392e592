//! `instances.bulkInsert` over loopback HTTP (reqwest): names from a
//! `###` pattern (numbered after the names in use) and from
//! `perInstanceProperties`, one operation for the batch, instances that
//! boot as inserted ones do; stockouts; bad input.

mod gce_support;

use std::time::{Duration, Instant};

use gce_support::*;
use serde_json::{json, Value};
use skyfleet_mock::gce::Gce;

struct Api {
    client: reqwest::Client,
    base: String,
    gce: std::sync::Arc<Gce>,
    ctx: skyfleet_mock::ctx::Ctx,
}

impl Api {
    async fn new() -> Api {
        let (ctx, gce, router) = gce(0.01);
        gce.set_config(quick_config());
        let base = serve(router).await;
        Api {
            client: reqwest::Client::new(),
            base,
            gce,
            ctx,
        }
    }

    fn url(&self, p: &str, rest: &str) -> String {
        format!(
            "{}/compute/v1/projects/{p}/zones/{ZONE}/instances{rest}",
            self.base
        )
    }

    async fn bulk(&self, p: &str, body: Value) -> (u16, Value) {
        let resp = self
            .client
            .post(self.url(p, "/bulkInsert"))
            .bearer_auth("t")
            .json(&body)
            .send()
            .await
            .unwrap();
        let s = resp.status().as_u16();
        (s, resp.json().await.unwrap_or(Value::Null))
    }

    /// Waits (`zoneOperations.wait`) until the operation is DONE.
    async fn follow(&self, op: &Value) -> Value {
        gce_support::follow(&self.client, op).await
    }

    /// The names of the zone's live instances whose status is `status`.
    async fn names(&self, p: &str, status: &str) -> Vec<String> {
        let v: Value = self
            .client
            .get(self.url(p, ""))
            .query(&[("filter", format!("status = {status}"))])
            .bearer_auth("t")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        v["items"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|i| i["name"].as_str().unwrap().to_string())
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// The shared properties of a bulk insert: the insert body without its
/// name, with a bare machine type name as `InstanceProperties` takes it.
fn properties(labels: Value) -> Value {
    let mut v = vm("unused", labels);
    v.as_object_mut().unwrap().remove("name");
    v["machineType"] = json!("e2-small");
    v
}

#[tokio::test]
async fn bulk_insert_names_and_boots_every_instance_under_one_operation() {
    let api = Api::new().await;
    // An instance the pattern already names: numbering goes on after it.
    let resp = api
        .client
        .post(api.url("bk", ""))
        .bearer_auth("t")
        .json(&vm("w-005", json!({})))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let (s, op) = api
        .bulk(
            "bk",
            json!({
                "count": "4",
                "minCount": 2,
                "namePattern": "w-###",
                "perInstanceProperties": {"named-1": {}},
                "instanceProperties": properties(json!({"pool": "bulk"})),
            }),
        )
        .await;
    assert_eq!(s, 200, "{op}");
    assert_eq!(op["kind"], "compute#operation");
    assert_eq!(op["operationType"], "bulkInsert");
    assert_eq!(
        op["targetLink"],
        format!("{}/compute/v1/projects/bk/zones/{ZONE}", api.base)
    );
    let done = api.follow(&op).await;
    assert!(done.get("error").is_none(), "{done}");

    let deadline = Instant::now() + Duration::from_secs(20);
    let want = ["named-1", "w-005", "w-006", "w-007", "w-008"];
    loop {
        let running = api.names("bk", "RUNNING").await;
        if running == want {
            break;
        }
        assert!(Instant::now() < deadline, "{running:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let inst: Value = api
        .client
        .get(api.url("bk", "/w-007"))
        .bearer_auth("t")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(inst["labels"]["pool"], "bulk");
    assert!(inst["machineType"]
        .as_str()
        .unwrap()
        .ends_with(&format!("/zones/{ZONE}/machineTypes/e2-small")));
    assert_eq!(api.gce.resources().len(), 5);

    // A name given twice is a conflict, and nothing is created.
    let (s, v) = api
        .bulk(
            "bk",
            json!({"count": 2, "namePattern": "z-#",
                   "perInstanceProperties": {"named-1": {}},
                   "instanceProperties": properties(json!({}))}),
        )
        .await;
    assert_eq!(s, 409, "{v}");
    assert_eq!(v["error"]["errors"][0]["reason"], "alreadyExists");
    assert_eq!(api.gce.resources().len(), 5);
    // A pattern whose digits run out: `w-###` is at 008; 991 more fit.
    let (s, v) = api
        .bulk(
            "bk",
            json!({"count": 993, "namePattern": "w-###",
                   "instanceProperties": properties(json!({}))}),
        )
        .await;
    assert_eq!(s, 400, "{v}");
    assert_eq!(v["error"]["errors"][0]["reason"], "invalid");
}

#[tokio::test]
async fn bulk_insert_in_a_stocked_out_zone_fails_and_leaves_nothing() {
    let api = Api::new().await;
    api.ctx
        .capacity()
        .set_stockouts(vec![skyfleet_mock::capacity::Stockout {
            cloud: skyfleet_mock::ctx::Cloud::Gcp,
            location: ZONE.to_string(),
            instance_type: "e2-*".to_string(),
            capacity_type: Default::default(),
            code: None,
        }])
        .unwrap();
    let (s, op) = api
        .bulk(
            "so",
            json!({"count": 3, "namePattern": "s-#",
                   "instanceProperties": properties(json!({}))}),
        )
        .await;
    assert_eq!(s, 200, "{op}");
    let done = api.follow(&op).await;
    assert_eq!(
        done["error"]["errors"][0]["code"], "ZONE_RESOURCE_POOL_EXHAUSTED",
        "{done}"
    );
    assert_eq!(done["httpErrorStatusCode"], 503);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !api.gce.resources().is_empty() {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn bulk_insert_refuses_bad_bodies() {
    let api = Api::new().await;
    let p = properties(json!({}));
    for (body, status, reason) in [
        (json!("x"), 400, "invalid"),
        (
            json!({"namePattern": "a-#", "instanceProperties": p}),
            400,
            "required",
        ),
        (
            json!({"count": 0, "namePattern": "a-#", "instanceProperties": p}),
            400,
            "invalid",
        ),
        (
            json!({"count": 1001, "namePattern": "a-#", "instanceProperties": p}),
            400,
            "invalid",
        ),
        (
            json!({"count": 2, "minCount": 3, "namePattern": "a-#", "instanceProperties": p}),
            400,
            "invalid",
        ),
        (
            json!({"count": 2, "instanceProperties": p}),
            400,
            "required",
        ),
        (
            json!({"count": 2, "namePattern": "a-#-#", "instanceProperties": p}),
            400,
            "invalid",
        ),
        (
            json!({"count": 2, "namePattern": "A-#", "instanceProperties": p}),
            400,
            "invalid",
        ),
        (json!({"count": 2, "namePattern": "a-#"}), 400, "required"),
        (
            json!({"count": 2, "namePattern": "a-#", "instanceProperties": []}),
            400,
            "invalid",
        ),
        (
            json!({"count": 1, "perInstanceProperties": {"Bad": {}}, "instanceProperties": p}),
            400,
            "invalid",
        ),
        (
            json!({"count": 1, "perInstanceProperties": {"a": {}, "b": {}}, "instanceProperties": p}),
            400,
            "invalid",
        ),
        (
            json!({"count": 1, "namePattern": "a-#", "sourceInstanceTemplate": "global/instanceTemplates/t"}),
            404,
            "notFound",
        ),
        // The shared properties are validated as an insert body.
        (
            json!({"count": 1, "namePattern": "a-#", "instanceProperties": {"machineType": "e2-small"}}),
            400,
            "invalid",
        ),
    ] {
        let (s, v) = api.bulk("bad", body.clone()).await;
        assert_eq!(s, status, "{body}: {v}");
        assert_eq!(v["error"]["code"], status, "{body}: {v}");
        assert_eq!(v["error"]["errors"][0]["reason"], reason, "{body}: {v}");
    }
    let resp = api
        .client
        .post(api.url("bad", "/bulkInsert"))
        .bearer_auth("t")
        .body("{")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["errors"][0]["reason"], "parseError");
    assert!(api.gce.resources().is_empty());
}
