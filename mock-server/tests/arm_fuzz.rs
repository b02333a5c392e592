//! Property test: random methods, paths, queries and JSON (or non-JSON)
//! bodies thrown at the ARM router never panic it, and every error is ARM's
//! well-formed error JSON with a request id.

mod arm_support;

use arm_support::*;
use http::{Method, StatusCode};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{json, Map, Value};

const KEYS: &[&str] = &[
    "location",
    "properties",
    "ipConfigurations",
    "subnet",
    "id",
    "publicIPAddress",
    "storageProfile",
    "osDisk",
    "dataDisks",
    "managedDisk",
    "networkProfile",
    "networkInterfaces",
    "createOption",
    "creationData",
    "name",
    "subnets",
    "addressPrefix",
    "deleteOption",
    "osProfile",
    "customData",
    "tags",
    "sku",
    "diskSizeGB",
    "publicIPAllocationMethod",
    "privateIPAllocationMethod",
    "privateIPAddress",
    "userData",
    "zones",
];

const SEGMENTS: &[&str] = &[
    "subscriptions",
    "s1",
    "resourceGroups",
    "rg",
    "providers",
    "Microsoft.Network",
    "Microsoft.Compute",
    "publicIPAddresses",
    "networkInterfaces",
    "disks",
    "virtualMachines",
    "virtualNetworks",
    "vnet",
    "subnets",
    "default",
    "instanceView",
    "locations",
    "eastus",
    "operations",
    "operationResults",
    "DiskOperations",
    "x",
    "",
    "%41",
    "..",
    "%00",
    "p1",
    "n1",
    "d1",
    "v1",
];

fn strings() -> impl Strategy<Value = Value> {
    prop_oneof![
        "[a-zA-Z0-9 ./_-]{0,12}".prop_map(Value::from),
        Just(Value::from(subnet_id("s1"))),
        Just(Value::from(res_path(
            "s1",
            "Microsoft.Network/publicIPAddresses",
            "p1"
        ))),
        Just(Value::from(res_path(
            "s1",
            "Microsoft.Network/networkInterfaces",
            "n1"
        ))),
        Just(Value::from(res_path("s1", "Microsoft.Compute/disks", "d1"))),
        Just(Value::from("Delete")),
        Just(Value::from("Attach")),
        Just(Value::from("FromImage")),
        Just(Value::from("Empty")),
        Just(Value::from("eastus")),
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        strings(),
    ];
    leaf.prop_recursive(5, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((prop::sample::select(KEYS), inner), 0..6).prop_map(|kv| {
                Value::Object(
                    kv.into_iter()
                        .map(|(k, v)| (k.to_string(), v))
                        .collect::<Map<_, _>>(),
                )
            }),
        ]
    })
}

fn method() -> impl Strategy<Value = Method> {
    prop::sample::select(vec![
        Method::GET,
        Method::PUT,
        Method::DELETE,
        Method::POST,
        Method::PATCH,
        Method::HEAD,
    ])
}

fn path() -> impl Strategy<Value = String> {
    let seg = prop_oneof![
        4 => prop::sample::select(SEGMENTS).prop_map(str::to_string),
        1 => "[a-zA-Z0-9._~-]{1,10}",
    ];
    (prop::collection::vec(seg, 0..11), any::<bool>()).prop_map(|(segs, canonical)| {
        if canonical && segs.len() >= 2 {
            format!("/subscriptions/s1/{}", segs[2..].join("/"))
        } else {
            format!("/subscriptions/{}", segs.join("/"))
        }
    })
}

fn query() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just(format!("?{API}")),
        Just(format!("?{API}&$expand=instanceView")),
        Just("?api-version=".to_string()),
        "\\?[a-zA-Z0-9=&$%-]{0,20}",
    ]
}

fn body() -> impl Strategy<Value = Option<Vec<u8>>> {
    prop_oneof![
        Just(None),
        json_value().prop_map(|v| Some(v.to_string().into_bytes())),
        json_value().prop_map(|v| Some(
            json!({"location": "eastus", "properties": v})
                .to_string()
                .into_bytes()
        )),
        prop::collection::vec(any::<u8>(), 0..64).prop_map(Some),
    ]
}

#[test]
fn random_requests_get_well_formed_answers() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (_ctx, _arm, r) = arm(0.0, 1.0);
    // Something to hit: a group, a vnet, a public IP, a NIC and a disk.
    rt.block_on(async {
        network(&r, "s1").await;
        put_done(
            &r,
            &res_path("s1", "Microsoft.Network/publicIPAddresses", "p1"),
            pip_body(),
        )
        .await;
        put_done(
            &r,
            &res_path("s1", "Microsoft.Network/networkInterfaces", "n1"),
            nic_body("s1", None, false),
        )
        .await;
        put_done(
            &r,
            &res_path("s1", "Microsoft.Compute/disks", "d1"),
            disk_body(),
        )
        .await;
    });
    let mut runner = TestRunner::new(Config {
        cases: 600,
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(&(method(), path(), query(), body()), |(m, p, q, b)| {
            let uri = format!("{p}{q}");
            let head = m == Method::HEAD;
            let a = rt.block_on(send_raw(&r, m.clone(), &uri, b, true));
            prop_assert!(
                a.header("x-ms-request-id").is_some(),
                "{m} {uri}: no request id"
            );
            let s = a.status;
            prop_assert!(
                s.is_success() || s.is_client_error() || s.is_server_error(),
                "{m} {uri}: {s}"
            );
            prop_assert_ne!(
                s,
                StatusCode::INTERNAL_SERVER_ERROR,
                "{} {}: {:?}",
                m,
                uri,
                a.body
            );
            if s.is_client_error() && !head {
                let code = a.body["error"]["code"].as_str().unwrap_or("");
                let msg = a.body["error"]["message"].as_str();
                prop_assert!(
                    !code.is_empty() && msg.is_some(),
                    "{m} {uri}: {s} {:?}",
                    String::from_utf8_lossy(&a.raw)
                );
            }
            Ok(())
        })
        .unwrap();
}
