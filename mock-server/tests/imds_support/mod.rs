//! Helpers shared by the metadata-service tests: a mock on a socket, VMs
//! made in each cloud through its own wire API, and plain HTTP calls.
#![allow(dead_code)]

use std::time::Duration;

use base64::Engine;
use serde_json::{json, Value};
use skyfleet_mock::MockCloud;

/// The region EC2 requests are signed for.
pub const REGION: &str = "eu-west-1";
/// The access key id EC2 requests carry (a 12-digit key is the account).
pub const ACCOUNT: &str = "210987654321";
/// The GCE zone.
pub const ZONE: &str = "europe-west1-b";
/// The Azure subscription.
pub const SUB: &str = "0b1f6471-1bf0-4dda-aec3-cb9272f09590";

/// A mock with fast lifecycles.
pub async fn mock() -> MockCloud {
    MockCloud::builder()
        .time_scale(0.001)
        .start()
        .await
        .unwrap()
}

/// A plain client with a timeout.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// One answer: status, headers and body.
#[derive(Debug)]
pub struct Got {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Vec<u8>,
}

impl Got {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// Sends `method url` with `headers`.
pub async fn call(method: &str, url: &str, headers: &[(&str, &str)]) -> Got {
    let mut req = client().request(method.parse().unwrap(), url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp.bytes().await.unwrap().to_vec();
    Got {
        status,
        headers,
        body,
    }
}

/// GET with headers.
pub async fn get(url: &str, headers: &[(&str, &str)]) -> Got {
    call("GET", url, headers).await
}

fn between<'a>(text: &'a str, open: &str, close: &str) -> Option<&'a str> {
    let start = text.find(open)? + open.len();
    let end = text[start..].find(close)? + start;
    Some(&text[start..end])
}

/// Sends one EC2 Query action; answers the body.
pub async fn ec2(mock: &MockCloud, params: &[(&str, &str)]) -> String {
    let mut form: Vec<(&str, &str)> = vec![("Version", "2016-11-15")];
    form.extend_from_slice(params);
    let auth = format!(
        "AWS4-HMAC-SHA256 Credential={ACCOUNT}/20250101/{REGION}/ec2/aws4_request, SignedHeaders=host, Signature=00"
    );
    let resp = client()
        .post(mock.url())
        .header("authorization", auth)
        .form(&form)
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let body = resp.text().await.unwrap();
    assert!(status.is_success(), "{params:?}: {status} {body}");
    body
}

/// Launches one instance with `extra` RunInstances parameters and waits
/// until it runs; answers its id.
pub async fn run_instance(mock: &MockCloud, extra: &[(&str, &str)]) -> String {
    let mut params = vec![
        ("Action", "RunInstances"),
        ("ImageId", "ami-0abcdef1234567890"),
        ("InstanceType", "m5.large"),
        ("MinCount", "1"),
        ("MaxCount", "1"),
    ];
    params.extend_from_slice(extra);
    let body = ec2(mock, &params).await;
    let id = between(&body, "<instanceId>", "</instanceId>")
        .unwrap()
        .to_string();
    for _ in 0..500 {
        let body = ec2(
            mock,
            &[("Action", "DescribeInstances"), ("InstanceId.1", &id)],
        )
        .await;
        if body.contains("<name>running</name>") {
            return id;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{id} never ran");
}

/// Base64 of `text`.
pub fn b64(text: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(text)
}

async fn send_json(method: &str, url: &str, body: Option<Value>) -> Got {
    let mut req = client()
        .request(method.parse().unwrap(), url)
        .header("authorization", "Bearer t");
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    Got {
        status: resp.status().as_u16(),
        headers: resp.headers().clone(),
        body: resp.bytes().await.unwrap().to_vec(),
    }
}

/// Inserts GCE instance `name` in `project` with metadata `items` and
/// waits until it is RUNNING.
pub async fn gce_instance(mock: &MockCloud, project: &str, name: &str, items: Value) -> Value {
    let base = format!(
        "{}/compute/v1/projects/{project}/zones/{ZONE}/instances",
        mock.url()
    );
    let body = json!({
        "name": name,
        "machineType": format!("zones/{ZONE}/machineTypes/e2-small"),
        "disks": [{"boot": true, "autoDelete": true,
                   "initializeParams": {"sourceImage": "projects/debian-cloud/global/images/family/debian-12"}}],
        "networkInterfaces": [{"network": "global/networks/default"}],
        "metadata": {"items": items},
        "serviceAccounts": [{"email": "default", "scopes": ["https://www.googleapis.com/auth/cloud-platform"]}],
    });
    let got = send_json("POST", &base, Some(body)).await;
    assert_eq!(got.status, 200, "{}", got.text());
    for _ in 0..500 {
        let got = send_json("GET", &format!("{base}/{name}"), None).await;
        if got.status == 200 && got.json()["status"] == "RUNNING" {
            return got.json();
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{name} never ran");
}

/// Deletes GCE instance `name`.
pub async fn gce_delete(mock: &MockCloud, project: &str, name: &str) {
    let url = format!(
        "{}/compute/v1/projects/{project}/zones/{ZONE}/instances/{name}",
        mock.url()
    );
    let got = send_json("DELETE", &url, None).await;
    assert_eq!(got.status, 200, "{}", got.text());
}

/// `https://.../subscriptions/{SUB}/resourceGroups/rg{path}?api-version=..`.
fn arm_url(mock: &MockCloud, path: &str) -> String {
    format!(
        "{}/subscriptions/{SUB}/resourceGroups/rg{path}?api-version=2024-07-01",
        mock.url()
    )
}

/// PUTs an ARM resource and waits until it is provisioned.
async fn arm_put(mock: &MockCloud, path: &str, body: Value) -> Value {
    let url = arm_url(mock, path);
    let got = send_json("PUT", &url, Some(body)).await;
    assert!(
        got.status < 300,
        "PUT {path}: {} {}",
        got.status,
        got.text()
    );
    for _ in 0..500 {
        let got = send_json("GET", &url, None).await;
        let state = got.json()["properties"]["provisioningState"].clone();
        if path.is_empty() || state == "Succeeded" {
            return got.json();
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{path} never provisioned");
}

/// A resource group, network, NIC and VM `name` with `user_data` (base64);
/// answers the VM.
pub async fn azure_vm(mock: &MockCloud, name: &str, user_data: Option<&str>) -> Value {
    arm_put(mock, "", json!({"location": "westeurope"})).await;
    arm_put(
        mock,
        "/providers/Microsoft.Network/virtualNetworks/vnet",
        json!({"location": "westeurope", "properties": {"addressSpace": {"addressPrefixes": ["10.0.0.0/16"]},
            "subnets": [{"name": "default", "properties": {"addressPrefix": "10.0.1.0/24"}}]}}),
    )
    .await;
    let subnet = format!(
        "/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.Network/virtualNetworks/vnet/subnets/default"
    );
    let nic = arm_put(
        mock,
        &format!("/providers/Microsoft.Network/networkInterfaces/{name}-nic"),
        json!({"location": "westeurope", "properties": {"ipConfigurations": [{"name": "ip1",
            "properties": {"privateIPAllocationMethod": "Dynamic", "subnet": {"id": subnet}}}]}}),
    )
    .await;
    let mut props = json!({
        "hardwareProfile": {"vmSize": "Standard_D2s_v5"},
        "storageProfile": {"imageReference": {"publisher": "Canonical", "offer": "ubuntu-24_04-lts", "sku": "server", "version": "latest"},
                           "osDisk": {"createOption": "FromImage", "deleteOption": "Delete"}},
        "osProfile": {"computerName": name, "adminUsername": "azureuser", "adminPassword": "S3cret!pass"},
        "networkProfile": {"networkInterfaces": [{"id": nic["id"], "properties": {"deleteOption": "Delete"}}]},
    });
    if let Some(ud) = user_data {
        props["userData"] = json!(ud);
    }
    arm_put(
        mock,
        &format!("/providers/Microsoft.Compute/virtualMachines/{name}"),
        json!({"location": "westeurope", "tags": {"pool": "p1", "worker": name}, "properties": props}),
    )
    .await
}

/// Deletes Azure VM `name` and waits until it is gone.
pub async fn azure_delete(mock: &MockCloud, name: &str) {
    let url = arm_url(
        mock,
        &format!("/providers/Microsoft.Compute/virtualMachines/{name}"),
    );
    let got = send_json("DELETE", &url, None).await;
    assert!(got.status < 300, "{}", got.text());
    for _ in 0..500 {
        if send_json("GET", &url, None).await.status == 404 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{name} never went");
}

/// `GET /_mock/trust`.
pub async fn trust(mock: &MockCloud) -> Value {
    get(&format!("{}/_mock/trust", mock.url()), &[])
        .await
        .json()
}
