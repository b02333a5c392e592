//! The requests loadgen sends to each cloud, and the seeding of what its
//! scenarios read.

use super::*;

// ---------------------------------------------------------------- EC2

pub(crate) const EC2_AUTH_LOAD: &str = "AWS4-HMAC-SHA256 Credential=AKIDLOADGEN000000001/20260101/us-east-1/ec2/aws4_request, SignedHeaders=host;x-amz-date, Signature=00";
pub(crate) const EC2_AUTH_MEM: &str = "AWS4-HMAC-SHA256 Credential=AKIDLOADGENMEMORY001/20260101/us-east-1/ec2/aws4_request, SignedHeaders=host;x-amz-date, Signature=00";

pub(crate) fn ec2(auth: &str, form: &str) -> Template {
    Template::new(Method::POST, "/")
        .header(
            "content-type",
            "application/x-www-form-urlencoded; charset=utf-8",
        )
        .header("authorization", auth)
        .body(format!("Version=2016-11-15&{form}"))
}

pub(crate) fn run_instances(auth: &str, count: usize, pool: &str) -> Template {
    ec2(
        auth,
        &format!(
            "Action=RunInstances&ImageId=ami-0abcdef1234567890&InstanceType=t3.micro&MinCount={count}&MaxCount={count}\
             &TagSpecification.1.ResourceType=instance&TagSpecification.1.Tag.1.Key=pool&TagSpecification.1.Tag.1.Value={pool}"
        ),
    )
}

pub(crate) fn instance_ids(xml: &str) -> Vec<String> {
    xml.split("<instanceId>")
        .skip(1)
        .filter_map(|s| s.split_once("</instanceId>").map(|(id, _)| id.to_string()))
        .collect()
}

/// Seeds 1,000 instances (200 tagged `pool=target`); returns one id.
pub(crate) async fn seed_ec2(addr: SocketAddr) -> Result<String, BoxError> {
    let (s, _, body) = once(addr, &run_instances(EC2_AUTH_LOAD, 200, "target")).await?;
    if s != StatusCode::OK {
        return Err(format!("RunInstances: {s} {}", String::from_utf8_lossy(&body)).into());
    }
    let ids = instance_ids(&String::from_utf8_lossy(&body));
    let (s, _, body) = once(addr, &run_instances(EC2_AUTH_LOAD, 800, "other")).await?;
    if s != StatusCode::OK {
        return Err(format!("RunInstances: {s} {}", String::from_utf8_lossy(&body)).into());
    }
    ids.into_iter()
        .next()
        .ok_or_else(|| "RunInstances returned no instance".into())
}

pub(crate) fn describe_tag() -> Template {
    ec2(
        EC2_AUTH_LOAD,
        "Action=DescribeInstances&Filter.1.Name=tag%3Apool&Filter.1.Value.1=target",
    )
}

// ---------------------------------------------------------------- ARM

pub(crate) const ARM_API: &str = "api-version=2024-07-01";

pub(crate) fn arm(method: Method, path: &str, body: Option<Value>) -> Template {
    let sep = if path.contains('?') { '&' } else { '?' };
    let t = Template::new(method, format!("{path}{sep}{ARM_API}"))
        .header("authorization", "Bearer loadgen");
    match body {
        Some(b) => t
            .header("content-type", "application/json")
            .body(b.to_string()),
        None => t,
    }
}

/// The path and query of an absolute URL.
pub(crate) fn path_of(url: &str) -> String {
    let rest = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
    rest.find('/')
        .map(|i| rest[i..].to_string())
        .unwrap_or_default()
}

/// PUTs, then polls `Azure-AsyncOperation` until terminal; returns the
/// operation URL's path.
pub(crate) async fn arm_put(
    addr: SocketAddr,
    path: &str,
    body: Value,
) -> Result<Option<String>, BoxError> {
    let (s, h, b) = once(addr, &arm(Method::PUT, path, Some(body))).await?;
    if !s.is_success() {
        return Err(format!("PUT {path}: {s} {}", String::from_utf8_lossy(&b)).into());
    }
    let Some(op) = h.get("azure-asyncoperation").and_then(|v| v.to_str().ok()) else {
        return Ok(None);
    };
    let op = path_of(op);
    for _ in 0..2000 {
        let (_, _, b) = once(
            addr,
            &Template::new(Method::GET, op.clone()).header("authorization", "Bearer loadgen"),
        )
        .await?;
        let v: Value = serde_json::from_slice(&b)?;
        match v["status"].as_str() {
            Some("InProgress") | None => tokio::time::sleep(Duration::from_millis(2)).await,
            Some("Succeeded") => return Ok(Some(op)),
            Some(other) => return Err(format!("PUT {path}: operation {other}: {v}").into()),
        }
    }
    Err(format!("PUT {path}: operation never finished").into())
}

/// Seeds a resource group, network, NIC and VM; returns (VM path, its
/// creation's operation-status path).
pub(crate) async fn seed_arm(addr: SocketAddr) -> Result<(String, String), BoxError> {
    let sub = "00000000-0000-0000-0000-00000000a001";
    let rg = format!("/subscriptions/{sub}/resourceGroups/loadgen");
    arm_put(addr, &rg, json!({"location": "eastus"})).await?;
    let vnet = format!("{rg}/providers/Microsoft.Network/virtualNetworks/vnet");
    arm_put(
        addr,
        &vnet,
        json!({"location": "eastus", "properties": {"addressSpace": {"addressPrefixes": ["10.0.0.0/16"]},
            "subnets": [{"name": "default", "properties": {"addressPrefix": "10.0.1.0/24"}}]}}),
    )
    .await?;
    let nic = format!("{rg}/providers/Microsoft.Network/networkInterfaces/nic-1");
    arm_put(
        addr,
        &nic,
        json!({"location": "eastus", "properties": {"ipConfigurations": [{"name": "ipconfig1",
            "properties": {"privateIPAllocationMethod": "Dynamic", "subnet": {"id": format!("{vnet}/subnets/default")}}}]}}),
    )
    .await?;
    let vm = format!("{rg}/providers/Microsoft.Compute/virtualMachines/vm-1");
    let op = arm_put(
        addr,
        &vm,
        json!({"location": "eastus", "tags": {"pool": "loadgen"}, "properties": {
            "hardwareProfile": {"vmSize": "Standard_D2s_v5"},
            "storageProfile": {"imageReference": {"publisher": "Canonical", "offer": "ubuntu-24_04-lts", "sku": "server", "version": "latest"},
                               "osDisk": {"createOption": "FromImage", "deleteOption": "Delete"}},
            "osProfile": {"computerName": "vm-1", "adminUsername": "azureuser", "adminPassword": "S3cret-pass!"},
            "networkProfile": {"networkInterfaces": [{"id": nic, "properties": {"deleteOption": "Delete"}}]}}}),
    )
    .await?
    .ok_or("VM PUT returned no Azure-AsyncOperation")?;
    Ok((vm, op))
}

// ---------------------------------------------------------------- GCE

pub(crate) const GCE_ZONE: &str = "us-central1-a";

pub(crate) fn gce_instances(project: &str) -> String {
    format!("/compute/v1/projects/{project}/zones/{GCE_ZONE}/instances")
}

pub(crate) fn gce_insert(project: &str, name: &str) -> Template {
    let body = json!({
        "name": name,
        "machineType": format!("zones/{GCE_ZONE}/machineTypes/e2-small"),
        "disks": [{"boot": true, "autoDelete": true, "initializeParams": {"sourceImage": "projects/debian-cloud/global/images/family/debian-12"}}],
        "networkInterfaces": [{"network": "global/networks/default"}],
        "labels": {"pool": "loadgen"},
    });
    Template::new(Method::POST, gce_instances(project))
        .header("authorization", "Bearer loadgen")
        .header("content-type", "application/json")
        .body(body.to_string())
}

pub(crate) fn gce_get(project: &str, name: &str) -> Template {
    Template::new(Method::GET, format!("{}/{name}", gce_instances(project)))
        .header("authorization", "Bearer loadgen")
}
