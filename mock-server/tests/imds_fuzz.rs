//! Property tests of the metadata services' request parsers: random
//! methods, paths, queries and headers thrown at `/_imds/...` never panic
//! and always get the cloud's answer shape (EC2's HTML page, Google's
//! `Metadata-Flavor` header, Azure's JSON error), never a 5xx; and the
//! token TTL, nonce and api-version parsers accept exactly their documented
//! sets.

use axum::body::Body;
use http_body_util::BodyExt;
use proptest::prelude::*;
use serde_json::{json, Value};
use skyfleet_mock::app::{self, Shared};
use skyfleet_mock::imds;
use skyfleet_mock::Ctx;
use std::sync::Arc;
use tower::ServiceExt;

const ZONE: &str = "europe-west1-b";
const SUB: &str = "0b1f6471-1bf0-4dda-aec3-cb9272f09590";

async fn send(
    router: &axum::Router,
    method: &str,
    uri: &str,
    headers: &[(&str, String)],
    body: Body,
) -> (u16, http::HeaderMap, Vec<u8>) {
    let mut req = http::Request::builder().method(method).uri(uri);
    for (k, v) in headers {
        req = req.header(*k, v.as_str());
    }
    let resp = router
        .clone()
        .oneshot(req.body(body).unwrap())
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    (
        status,
        headers,
        resp.into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec(),
    )
}

/// A router with one running VM in each cloud (time scale 0: at once);
/// answers the router, the EC2 instance id and the Azure vmId.
async fn world() -> (axum::Router, String, String) {
    let ctx = Ctx::new(1);
    ctx.set_time_scale(0.0).unwrap();
    let shared: Arc<Shared> = Shared::new(ctx);
    let router = app::router(shared);
    let bearer = || {
        vec![
            ("authorization", "Bearer t".to_string()),
            ("content-type", "application/json".to_string()),
        ]
    };
    let form = "Action=RunInstances&Version=2016-11-15&ImageId=ami-12345678&MinCount=1&MaxCount=1&UserData=aGk%3D";
    let (_, _, body) = send(
        &router,
        "POST",
        "/",
        &[("content-type", "application/x-www-form-urlencoded".into())],
        Body::from(form),
    )
    .await;
    let body = String::from_utf8(body).unwrap();
    let start = body.find("<instanceId>").unwrap() + "<instanceId>".len();
    let id = body[start..start + 19].to_string();
    let vm = json!({"name": "vm-1", "machineType": format!("zones/{ZONE}/machineTypes/e2-small"),
        "disks": [{"boot": true, "initializeParams": {"sourceImage": "projects/debian-cloud/global/images/family/debian-12"}}],
        "networkInterfaces": [{"network": "global/networks/default"}],
        "metadata": {"items": [{"key": "k", "value": "v"}]},
        "serviceAccounts": [{"email": "default", "scopes": []}]});
    let (s, _, _) = send(
        &router,
        "POST",
        &format!("/compute/v1/projects/p/zones/{ZONE}/instances"),
        &bearer(),
        Body::from(vm.to_string()),
    )
    .await;
    assert_eq!(s, 200);
    let rg = format!("/subscriptions/{SUB}/resourceGroups/rg");
    let api = "?api-version=2024-07-01";
    let puts = [
        (rg.clone(), json!({"location": "westeurope"})),
        (
            format!("{rg}/providers/Microsoft.Network/virtualNetworks/vnet"),
            json!({"location": "westeurope", "properties": {"addressSpace": {"addressPrefixes": ["10.0.0.0/16"]}, "subnets": [{"name": "default", "properties": {"addressPrefix": "10.0.1.0/24"}}]}}),
        ),
        (
            format!("{rg}/providers/Microsoft.Network/networkInterfaces/nic"),
            json!({"location": "westeurope", "properties": {"ipConfigurations": [{"name": "ip", "properties": {"subnet": {"id": format!("{rg}/providers/Microsoft.Network/virtualNetworks/vnet/subnets/default")}}}]}}),
        ),
        (
            format!("{rg}/providers/Microsoft.Compute/virtualMachines/vm"),
            json!({"location": "westeurope", "properties": {"hardwareProfile": {"vmSize": "Standard_D2s_v5"},
            "storageProfile": {"osDisk": {"createOption": "FromImage"}}, "userData": "aGk=",
            "networkProfile": {"networkInterfaces": [{"id": format!("{rg}/providers/Microsoft.Network/networkInterfaces/nic")}]}}}),
        ),
    ];
    let mut vm_id = String::new();
    for (path, body) in puts {
        let (s, _, b) = send(
            &router,
            "PUT",
            &format!("{path}{api}"),
            &bearer(),
            Body::from(body.to_string()),
        )
        .await;
        assert!(s < 300, "{path}: {s} {}", String::from_utf8_lossy(&b));
        let v: Value = serde_json::from_slice(&b).unwrap();
        if let Some(id) = v["properties"]["vmId"].as_str() {
            vm_id = id.to_string();
        }
    }
    (router, id, vm_id)
}

fn segment() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("latest".to_string()),
        Just("meta-data".to_string()),
        Just("dynamic".to_string()),
        Just("instance-identity".to_string()),
        Just("document".to_string()),
        Just("rsa2048".to_string()),
        Just("api".to_string()),
        Just("token".to_string()),
        Just("computeMetadata".to_string()),
        Just("v1".to_string()),
        Just("instance".to_string()),
        Just("service-accounts".to_string()),
        Just("default".to_string()),
        Just("identity".to_string()),
        Just("attributes".to_string()),
        Just("metadata".to_string()),
        Just("attested".to_string()),
        Just("compute".to_string()),
        Just("network".to_string()),
        Just("0".to_string()),
        "[a-zA-Z0-9%._~-]{0,10}",
    ]
}

fn query() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just("?api-version=2021-02-01".to_string()),
        Just("?api-version=2021-02-01&format=text".to_string()),
        Just("?api-version=2020-09-01&nonce=123".to_string()),
        Just("?api-version=2020-09-01&nonce=99999999999".to_string()),
        Just("?audience=a&format=full".to_string()),
        Just("?recursive=true".to_string()),
        Just("?alt=json".to_string()),
        "\\?[a-z-]{1,12}=[a-zA-Z0-9%]{0,12}(&[a-z]{1,6}=[^&#]{0,6})?",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn random_metadata_requests_get_the_clouds_shapes(
        cloud in 0..3usize,
        real_vm in any::<bool>(),
        method in prop_oneof![Just("GET"), Just("PUT"), Just("POST"), Just("HEAD"), Just("DELETE")],
        segs in proptest::collection::vec(segment(), 0..7),
        query in query(),
        ttl in prop_oneof![Just(None), Just(Some("60".to_string())), "[0-9a-z-]{0,8}".prop_map(Some)],
        flavor in any::<bool>(),
        forwarded in any::<bool>(),
        token in prop_oneof![Just(None), "[A-Za-z0-9_-]{0,40}".prop_map(Some)],
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let (router, ec2_id, vm_id) = world().await;
            let prefix = match (cloud, real_vm) {
                (0, true) => format!("/_imds/aws/{ec2_id}"),
                (0, false) => "/_imds/aws/i-0000".to_string(),
                (1, true) => format!("/_imds/gcp/p/{ZONE}/vm-1"),
                (1, false) => format!("/_imds/gcp/p/{ZONE}/vm-9"),
                (_, true) => format!("/_imds/azure/{vm_id}"),
                (_, false) => "/_imds/azure/nope".to_string(),
            };
            let mut path = prefix;
            for s in &segs {
                path.push('/');
                path.push_str(s);
            }
            path.push_str(&query);
            if path.parse::<http::Uri>().is_err() {
                return;
            }
            let mut headers = Vec::new();
            if let Some(t) = &ttl { headers.push(("x-aws-ec2-metadata-token-ttl-seconds", t.clone())); }
            if let Some(t) = &token { headers.push(("x-aws-ec2-metadata-token", t.clone())); }
            if flavor { headers.push(("metadata-flavor", "Google".to_string())); headers.push(("metadata", "true".to_string())); }
            if forwarded { headers.push(("x-forwarded-for", "203.0.113.1".to_string())); }
            let (status, h, body) = send(&router, method, &path, &headers, Body::empty()).await;
            assert!(status < 500, "{method} {path}: {status} {}", String::from_utf8_lossy(&body));
            if forwarded {
                assert!(status == 403 || status == 400, "{path}: forwarded got {status}");
            }
            // HEAD answers carry no body to check.
            let body_checked = method != "HEAD";
            match cloud {
                0 if status >= 400 && body_checked => {
                    let text = String::from_utf8_lossy(&body);
                    assert!(text.contains(&format!("<h1>{status} - ")), "{path}: {text}");
                }
                1 => assert_eq!(h.get("metadata-flavor").map(|v| v.as_bytes()), Some(&b"Google"[..]), "{path}"),
                2 if status >= 400 && body_checked => {
                    let v: Value = serde_json::from_slice(&body).unwrap_or_else(|e| panic!("{path}: {e}"));
                    assert!(v["error"].is_string(), "{path}: {v}");
                }
                _ => {}
            }
        });
    }

    #[test]
    fn token_ttls_are_exactly_1_to_21600(s in "[ -~]{0,12}") {
        let parsed = imds::aws::parse_ttl(Some(s.as_bytes()));
        let want = s.trim().parse::<u64>().ok().filter(|t| (1..=21_600).contains(t) && s.trim().bytes().all(|b| b.is_ascii_digit()));
        prop_assert_eq!(parsed, want);
    }

    #[test]
    fn nonces_are_exactly_1_to_10_digits(s in "[0-9a-z]{0,12}|[ -~]{0,12}") {
        let now = time::OffsetDateTime::now_utc();
        let ok = (1..=10).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit());
        prop_assert_eq!(imds::attested::nonce(Some(&s), now).is_some(), ok);
    }

    #[test]
    fn api_versions_never_panic(s in "\\PC{0,12}|[0-9]{4}-[0-9]{2}-[0-9]{2}") {
        let _ = imds::azure::valid_api_version(&s);
    }
}
