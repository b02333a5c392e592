//! Helpers shared by the ARM tests: an `Arm` with its own context, in-process
//! calls through its router, and request bodies for the chain.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::Router;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use skyfleet_mock::arm::{Arm, ArmConfig, ArmDurations};
use skyfleet_mock::ctx::Ctx;
use tower::ServiceExt;

/// The api-version every test sends.
pub const API: &str = "api-version=2024-07-01";

/// A fresh ARM at time scale `scale` with every duration `secs`.
pub fn arm(scale: f64, secs: f64) -> (Ctx, Arc<Arm>, Router) {
    let ctx = Ctx::new(7);
    ctx.set_time_scale(scale).unwrap();
    let arm = Arm::new(ctx.clone());
    arm.set_config(config(secs));
    let router = arm.router();
    (ctx, arm, router)
}

/// Config with every duration `secs`.
pub fn config(secs: f64) -> ArmConfig {
    ArmConfig {
        durations: ArmDurations {
            public_ip_s: secs,
            network_interface_s: secs,
            virtual_network_s: secs,
            disk_s: secs,
            vm_create_s: secs,
            vm_update_s: secs,
            vm_delete_s: secs,
            delete_s: secs,
        },
        ..ArmConfig::default()
    }
}

/// One answer.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
    pub raw: Vec<u8>,
    pub dropped: bool,
}

impl Answer {
    /// A header as a string.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
    /// `error.code` of an ARM error body.
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }
    /// `properties.provisioningState`.
    pub fn state(&self) -> &str {
        self.body["properties"]["provisioningState"]
            .as_str()
            .unwrap_or("")
    }
}

/// Sends a request with a bearer token.
pub async fn send(router: &Router, method: Method, uri: &str, body: Option<Value>) -> Answer {
    send_raw(
        router,
        method,
        uri,
        body.map(|b| b.to_string().into_bytes()),
        true,
    )
    .await
}

/// Sends a request with a raw body, with or without a bearer token.
pub async fn send_raw(
    router: &Router,
    method: Method,
    uri: &str,
    body: Option<Vec<u8>>,
    bearer: bool,
) -> Answer {
    let mut b = Request::builder()
        .method(method)
        .uri(uri)
        .header("host", "mock.test:8443");
    if bearer {
        b = b.header("authorization", "Bearer x.y.z");
    }
    let req = b
        .header("content-type", "application/json")
        .body(body.map(Body::from).unwrap_or_else(Body::empty))
        .unwrap();
    let res = router.clone().oneshot(req).await.unwrap();
    let dropped = res
        .extensions()
        .get::<skyfleet_mock::ctx::DropConnection>()
        .is_some();
    assert!(
        res.extensions()
            .get::<skyfleet_mock::ctx::OperationName>()
            .is_some(),
        "every ARM answer names its operation"
    );
    let status = res.status();
    let headers = res.headers().clone();
    let raw = res.into_body().collect().await.unwrap().to_bytes().to_vec();
    let body = serde_json::from_slice(&raw).unwrap_or(Value::Null);
    Answer {
        status,
        headers,
        body,
        raw,
        dropped,
    }
}

/// `path?api-version=...`.
pub fn u(path: &str) -> String {
    if path.contains('?') {
        format!("{path}&{API}")
    } else {
        format!("{path}?{API}")
    }
}

/// The path and query of an absolute URL.
pub fn path_of(url: &str) -> String {
    let rest = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
    rest.find('/')
        .map(|i| rest[i..].to_string())
        .unwrap_or_default()
}

/// `/subscriptions/{sub}/resourceGroups/rg`.
pub fn rg_path(sub: &str) -> String {
    format!("/subscriptions/{sub}/resourceGroups/rg")
}

/// A resource path in `rg`.
pub fn res_path(sub: &str, ty: &str, name: &str) -> String {
    format!("{}/providers/{ty}/{name}", rg_path(sub))
}

/// The id of subnet `default` of `vnet`.
pub fn subnet_id(sub: &str) -> String {
    format!(
        "{}/subnets/default",
        res_path(sub, "Microsoft.Network/virtualNetworks", "vnet")
    )
}

/// Polls an `Azure-AsyncOperation` URL until it is terminal; returns the body.
pub async fn wait_op(router: &Router, url: &str) -> Value {
    for _ in 0..500 {
        let a = send(router, Method::GET, &path_of(url), None).await;
        assert_eq!(
            a.status,
            StatusCode::OK,
            "status URLs always answer 200: {:?}",
            a.body
        );
        let s = a.body["status"].as_str().unwrap().to_string();
        if s != "InProgress" {
            return a.body;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("operation did not finish");
}

/// PUTs and waits for the operation; returns the final GET.
pub async fn put_done(router: &Router, path: &str, body: Value) -> Answer {
    let a = send(router, Method::PUT, &u(path), Some(body)).await;
    assert!(
        a.status.is_success(),
        "PUT {path}: {} {:?}",
        a.status,
        a.body
    );
    if let Some(op) = a.header("azure-asyncoperation") {
        let done = wait_op(router, op).await;
        assert_eq!(done["status"], "Succeeded", "{done}");
    }
    send(router, Method::GET, &u(path), None).await
}

/// Resource group, vnet with subnet `default`.
pub async fn network(router: &Router, sub: &str) {
    let a = send(
        router,
        Method::PUT,
        &u(&rg_path(sub)),
        Some(json!({"location": "eastus"})),
    )
    .await;
    assert!(
        a.status == StatusCode::CREATED || a.status == StatusCode::OK,
        "{:?}",
        a.body
    );
    put_done(
        router,
        &res_path(sub, "Microsoft.Network/virtualNetworks", "vnet"),
        json!({"location": "eastus", "properties": {"addressSpace": {"addressPrefixes": ["10.0.0.0/16"]},
            "subnets": [{"name": "default", "properties": {"addressPrefix": "10.0.1.0/24"}}]}}),
    )
    .await;
}

/// A Standard static public IP.
pub fn pip_body() -> Value {
    json!({"location": "eastus", "sku": {"name": "Standard", "tier": "Regional"},
           "properties": {"publicIPAllocationMethod": "Static", "publicIPAddressVersion": "IPv4"}})
}

/// A NIC in subnet `default`, with public IP `pip` (an id) if given.
pub fn nic_body(sub: &str, pip: Option<&str>, pip_delete: bool) -> Value {
    let mut props =
        json!({"privateIPAllocationMethod": "Dynamic", "subnet": {"id": subnet_id(sub)}});
    if let Some(p) = pip {
        props["publicIPAddress"] = json!({"id": p, "properties": {"deleteOption": if pip_delete { "Delete" } else { "Detach" }}});
    }
    json!({"location": "eastus", "tags": {"owner": "skyfleet"},
           "properties": {"ipConfigurations": [{"name": "ipconfig1", "properties": props}]}})
}

/// An OS disk from a platform image.
pub fn disk_body() -> Value {
    json!({"location": "eastus", "sku": {"name": "Premium_LRS"}, "properties": {"osType": "Linux",
        "creationData": {"createOption": "FromImage", "imageReference": {"id": "/Subscriptions/s/Providers/Microsoft.Compute/Locations/eastus/Publishers/Canonical/ArtifactTypes/VMImage/Offers/o/Skus/s/Versions/latest"}},
        "diskSizeGB": 30}})
}

/// A VM attaching `disk` and `nic` (ids), each with `deleteOption`.
pub fn vm_attach_body(disk: &str, nic: &str, delete: bool) -> Value {
    let opt = if delete { "Delete" } else { "Detach" };
    json!({"location": "eastus", "tags": {"worker": "w1"}, "properties": {
        "hardwareProfile": {"vmSize": "Standard_D2s_v5"},
        "storageProfile": {"osDisk": {"osType": "Linux", "createOption": "Attach", "deleteOption": opt, "managedDisk": {"id": disk}}},
        "networkProfile": {"networkInterfaces": [{"id": nic, "properties": {"primary": true, "deleteOption": opt}}]}}})
}

/// A VM from an image with customData, OS disk made by the VM.
pub fn vm_image_body(nic: &str, delete: bool) -> Value {
    let opt = if delete { "Delete" } else { "Detach" };
    json!({"location": "eastus", "tags": {"worker": "w2"}, "properties": {
        "hardwareProfile": {"vmSize": "Standard_D2s_v5"},
        "storageProfile": {"imageReference": {"publisher": "Canonical", "offer": "o", "sku": "s", "version": "latest"},
                           "osDisk": {"createOption": "FromImage", "deleteOption": opt}},
        "osProfile": {"computerName": "w2", "adminUsername": "azureuser", "adminPassword": "S3cret!",
                      "customData": "IyEvYmluL3NoCmVjaG8gaGk="},
        "networkProfile": {"networkInterfaces": [{"id": nic, "properties": {"deleteOption": opt}}]}}})
}
