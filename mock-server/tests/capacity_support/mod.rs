//! Helpers shared by the capacity tests (spot shapes, stockouts,
//! interruptions): a mock on a socket, the control API, and VMs of each
//! cloud made through its own wire API with spot settings.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use skyfleet_mock::MockCloud;

use crate::imds_support::{call, client, Got, ACCOUNT, REGION, SUB, ZONE};

/// A mock whose durations are scaled by `scale`.
pub async fn mock(scale: f64) -> MockCloud {
    MockCloud::builder()
        .time_scale(scale)
        .seed(11)
        .start()
        .await
        .unwrap()
}

/// A mock at time scale `scale` whose GCE and ARM lifecycles take 1 s
/// (before scaling) each, so notices can be long while creates are quick.
pub async fn mock_quick(scale: f64) -> MockCloud {
    let cfg = skyfleet_mock::MockConfig::from_json(
        r#"{"gcp": {"provisioning_ms": 1000, "staging_ms": 1000, "stopping_ms": 1000,
                    "deleting_ms": 1000, "operation_pending_ms": 0, "insert_operation_ms": 1000,
                    "stop_operation_ms": 1000, "delete_operation_ms": 1000},
            "azure": {"durations": {"public_ip_s": 1, "network_interface_s": 1, "virtual_network_s": 1,
                      "disk_s": 1, "vm_create_s": 1, "vm_update_s": 1, "vm_delete_s": 1, "delete_s": 1}}}"#,
    )
    .unwrap();
    MockCloud::builder()
        .time_scale(scale)
        .seed(11)
        .config(cfg)
        .start()
        .await
        .unwrap()
}

/// Sends `method` to the control API path `path` with a JSON `body`.
pub async fn control(mock: &MockCloud, method: &str, path: &str, body: Option<Value>) -> Got {
    json_call(method, &format!("{}{path}", mock.url()), body).await
}

/// Sends a JSON request with a bearer token (GCE and ARM accept any).
pub async fn json_call(method: &str, url: &str, body: Option<Value>) -> Got {
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

/// Polls `f` every 10 ms until it answers `Some`, for at most `secs`.
pub async fn until<T, F, Fut>(secs: u64, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let started = Instant::now();
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            started.elapsed() < Duration::from_secs(secs),
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// One EC2 Query action, whatever its status: (status, body).
pub async fn ec2_raw(mock: &MockCloud, params: &[(&str, &str)]) -> (u16, String) {
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
    (resp.status().as_u16(), resp.text().await.unwrap())
}

/// The text between `open` and `close`.
pub fn between<'a>(text: &'a str, open: &str, close: &str) -> Option<&'a str> {
    let start = text.find(open)? + open.len();
    let end = text[start..].find(close)? + start;
    Some(&text[start..end])
}

/// DescribeInstances of one instance: the XML.
pub async fn ec2_describe(mock: &MockCloud, id: &str) -> String {
    let (status, body) = ec2_raw(
        mock,
        &[("Action", "DescribeInstances"), ("InstanceId.1", id)],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body
}

/// The spot market parameters of RunInstances.
pub const SPOT: [(&str, &str); 1] = [("InstanceMarketOptions.MarketType", "spot")];

/// The IMDS URL of EC2 instance `id` at `path` (under `latest/meta-data/`).
pub fn aws_imds(mock: &MockCloud, id: &str, path: &str) -> String {
    format!("{}/_imds/aws/{id}/latest/meta-data/{path}", mock.imds_url())
}

/// `.../projects/{project}/zones/{ZONE}/instances`.
pub fn gce_instances(mock: &MockCloud, project: &str) -> String {
    format!(
        "{}/compute/v1/projects/{project}/zones/{ZONE}/instances",
        mock.url()
    )
}

/// `.../projects/{project}/zones/{ZONE}/operations`.
pub fn gce_operations(mock: &MockCloud, project: &str) -> String {
    format!(
        "{}/compute/v1/projects/{project}/zones/{ZONE}/operations",
        mock.url()
    )
}

/// Inserts GCE instance `name` (machine type `machine`) with `scheduling`;
/// answers the insert's answer (200 with an operation, or an error).
pub async fn gce_insert(
    mock: &MockCloud,
    project: &str,
    name: &str,
    machine: &str,
    scheduling: Value,
) -> Got {
    let body = json!({
        "name": name,
        "machineType": format!("zones/{ZONE}/machineTypes/{machine}"),
        "disks": [{"boot": true, "autoDelete": true,
                   "initializeParams": {"sourceImage": "projects/debian-cloud/global/images/family/debian-12"}}],
        "networkInterfaces": [{"network": "global/networks/default"}],
        "scheduling": scheduling,
    });
    json_call("POST", &gce_instances(mock, project), Some(body)).await
}

/// `instances.get`.
pub async fn gce_get(mock: &MockCloud, project: &str, name: &str) -> Got {
    json_call(
        "GET",
        &format!("{}/{name}", gce_instances(mock, project)),
        None,
    )
    .await
}

/// Waits until GCE instance `name` has `status`; answers it.
pub async fn gce_wait_status(mock: &MockCloud, project: &str, name: &str, status: &str) -> Value {
    until(20, &format!("{name} {status}"), || async {
        let got = gce_get(mock, project, name).await;
        (got.status == 200 && got.json()["status"] == status).then(|| got.json())
    })
    .await
}

/// The GCE metadata URL of `instance/{path}`.
pub fn gce_imds(mock: &MockCloud, project: &str, name: &str, path: &str) -> String {
    format!(
        "{}/_imds/gcp/{project}/{ZONE}/{name}/computeMetadata/v1/instance/{path}",
        mock.imds_url()
    )
}

/// `.../subscriptions/{SUB}/resourceGroups/rg{path}?api-version=..`.
pub fn arm_url(mock: &MockCloud, path: &str) -> String {
    format!(
        "{}/subscriptions/{SUB}/resourceGroups/rg{path}?api-version=2024-07-01",
        mock.url()
    )
}

/// The path of VM `name` under the resource group.
pub fn vm_path(name: &str) -> String {
    format!("/providers/Microsoft.Compute/virtualMachines/{name}")
}

/// PUTs an ARM resource and waits until its provisioning ends; answers it.
pub async fn arm_put_done(mock: &MockCloud, path: &str, body: Value) -> Value {
    let url = arm_url(mock, path);
    let got = json_call("PUT", &url, Some(body)).await;
    assert!(
        got.status < 300,
        "PUT {path}: {} {}",
        got.status,
        got.text()
    );
    until(20, path, || async {
        let got = json_call("GET", &url, None).await;
        let state = got.json()["properties"]["provisioningState"].clone();
        (path.is_empty() || state == "Succeeded" || state == "Failed").then(|| got.json())
    })
    .await
}

/// A resource group, network and NIC for VM `name`; answers the NIC id.
pub async fn azure_network(mock: &MockCloud, name: &str) -> String {
    arm_put_done(mock, "", json!({"location": "westeurope"})).await;
    arm_put_done(
        mock,
        "/providers/Microsoft.Network/virtualNetworks/vnet",
        json!({"location": "westeurope", "properties": {"addressSpace": {"addressPrefixes": ["10.0.0.0/16"]},
            "subnets": [{"name": "default", "properties": {"addressPrefix": "10.0.1.0/24"}}]}}),
    )
    .await;
    let subnet = format!(
        "/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.Network/virtualNetworks/vnet/subnets/default"
    );
    let nic = arm_put_done(
        mock,
        &format!("/providers/Microsoft.Network/networkInterfaces/{name}-nic"),
        json!({"location": "westeurope", "properties": {"ipConfigurations": [{"name": "ip1",
            "properties": {"privateIPAllocationMethod": "Dynamic", "subnet": {"id": subnet}}}]}}),
    )
    .await;
    nic["id"].as_str().unwrap().to_string()
}

/// A VM body on `nic` with `spot` merged into its properties.
pub fn vm_body(name: &str, nic: &str, spot: Value) -> Value {
    let mut props = json!({
        "hardwareProfile": {"vmSize": "Standard_D2s_v5"},
        "storageProfile": {"imageReference": {"publisher": "Canonical", "offer": "ubuntu-24_04-lts", "sku": "server", "version": "latest"},
                           "osDisk": {"createOption": "FromImage", "deleteOption": "Delete"}},
        "osProfile": {"computerName": name, "adminUsername": "azureuser", "adminPassword": "S3cret!pass"},
        "networkProfile": {"networkInterfaces": [{"id": nic, "properties": {"deleteOption": "Delete"}}]},
    });
    if let (Some(p), Some(extra)) = (props.as_object_mut(), spot.as_object()) {
        for (k, v) in extra {
            p.insert(k.clone(), v.clone());
        }
    }
    json!({"location": "westeurope", "properties": props})
}

/// The Azure metadata URL of VM `vm_id` at `path` with an api-version.
pub fn azure_imds(mock: &MockCloud, vm_id: &str, path: &str) -> String {
    format!(
        "{}/_imds/azure/{vm_id}/metadata/{path}?api-version=2020-07-01",
        mock.imds_url()
    )
}

/// GET of the Azure metadata `path` with `Metadata: true`.
pub async fn azure_imds_get(mock: &MockCloud, vm_id: &str, path: &str) -> Got {
    call(
        "GET",
        &azure_imds(mock, vm_id, path),
        &[("Metadata", "true")],
    )
    .await
}

/// `POST /_mock/interrupt` naming `ids` of `cloud`; answers the list.
pub async fn interrupt(mock: &MockCloud, cloud: &str, ids: &[&str]) -> Vec<Value> {
    let got = control(
        mock,
        "POST",
        "/_mock/interrupt",
        Some(json!({"cloud": cloud, "instances": ids})),
    )
    .await;
    assert_eq!(got.status, 200, "{}", got.text());
    got.json()["interrupted"].as_array().unwrap().clone()
}

/// Parses an RFC 3339 time.
pub fn rfc3339(s: &str) -> time::OffsetDateTime {
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).unwrap()
}
