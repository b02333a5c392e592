//! Raw calls to the mock's cloud APIs, as a provisioner's client would make
//! them (the mock checks no signatures, so a well-formed SigV4
//! `Authorization` header is enough for EC2, and any bearer token for ARM
//! and Compute Engine).

use std::time::Duration;

use serde_json::{json, Value};

/// The Compute Engine zone the helpers use.
pub const GCE_ZONE: &str = "us-central1-a";
/// The ARM api-version the helpers send.
pub const ARM_API: &str = "api-version=2024-07-01";

/// An HTTP client with a short timeout, for loopback calls.
pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap_or_else(|_| reqwest::Client::new())
}

/// The `Authorization` header of an EC2 call signed by `access_key_id`.
pub fn ec2_authorization(access_key_id: &str) -> String {
    format!(
        "AWS4-HMAC-SHA256 Credential={access_key_id}/20260101/us-east-1/ec2/aws4_request, \
         SignedHeaders=host, Signature=0"
    )
}

/// One EC2 Query call; answers the status and the body.
pub async fn ec2(
    http: &reqwest::Client,
    base: &str,
    access_key_id: &str,
    form: &str,
) -> Result<(u16, String), String> {
    let r = http
        .post(format!("{base}/"))
        .header("authorization", ec2_authorization(access_key_id))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("Version=2016-11-15&{form}"))
        .send()
        .await
        .map_err(|e| format!("EC2 call: {e}"))?;
    let status = r.status().as_u16();
    let body = r.text().await.map_err(|e| format!("EC2 body: {e}"))?;
    Ok((status, body))
}

/// RunInstances for one instance tagged `Name=name`; answers its id.
pub async fn ec2_run_instance(
    http: &reqwest::Client,
    base: &str,
    access_key_id: &str,
    name: &str,
) -> Result<String, String> {
    let form = format!(
        "Action=RunInstances&ImageId=ami-12345678&MinCount=1&MaxCount=1&InstanceType=m5.large\
         &TagSpecification.1.ResourceType=instance&TagSpecification.1.Tag.1.Key=Name\
         &TagSpecification.1.Tag.1.Value={name}"
    );
    let (status, body) = ec2(http, base, access_key_id, &form).await?;
    if status != 200 {
        return Err(format!("RunInstances answered {status}: {body}"));
    }
    xml_text(&body, "instanceId").ok_or_else(|| format!("no instanceId in {body}"))
}

/// The text of the first `<tag>` element.
pub fn xml_text(xml: &str, tag: &str) -> Option<String> {
    let open = format!("<{tag}>");
    let start = xml.find(&open)? + open.len();
    let end = xml[start..].find(&format!("</{tag}>"))? + start;
    Some(xml[start..end].to_string())
}

/// Inserts a Compute Engine instance (labels `pool=dashboard`).
pub async fn gce_insert(
    http: &reqwest::Client,
    base: &str,
    project: &str,
    name: &str,
    token: &str,
) -> Result<(), String> {
    let body = json!({
        "name": name,
        "machineType": format!("zones/{GCE_ZONE}/machineTypes/e2-small"),
        "disks": [{"boot": true, "autoDelete": true,
                   "initializeParams": {"sourceImage": "projects/debian-cloud/global/images/family/debian-12"}}],
        "networkInterfaces": [{"network": "global/networks/default"}],
        "labels": {"pool": "dashboard"},
    });
    let url = format!("{base}/compute/v1/projects/{project}/zones/{GCE_ZONE}/instances");
    let r = http
        .post(url)
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .map_err(|e| format!("GCE insert: {e}"))?;
    let status = r.status().as_u16();
    if status != 200 {
        let text = r.text().await.unwrap_or_default();
        return Err(format!("GCE insert answered {status}: {text}"));
    }
    Ok(())
}

/// Creates resource group `rg` and a public IP `name` in it.
pub async fn azure_public_ip(
    http: &reqwest::Client,
    base: &str,
    subscription: &str,
    name: &str,
    token: &str,
) -> Result<(), String> {
    let rg = format!("{base}/subscriptions/{subscription}/resourceGroups/rg");
    arm_put(
        http,
        &format!("{rg}?{ARM_API}"),
        json!({"location": "eastus"}),
        token,
    )
    .await?;
    let ip = format!("{rg}/providers/Microsoft.Network/publicIPAddresses/{name}?{ARM_API}");
    let body = json!({"location": "eastus", "tags": {"pool": "dashboard"},
        "sku": {"name": "Standard", "tier": "Regional"},
        "properties": {"publicIPAllocationMethod": "Static", "publicIPAddressVersion": "IPv4"}});
    arm_put(http, &ip, body, token).await
}

async fn arm_put(
    http: &reqwest::Client,
    url: &str,
    body: Value,
    token: &str,
) -> Result<(), String> {
    let r = http
        .put(url)
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .map_err(|e| format!("ARM PUT: {e}"))?;
    let status = r.status().as_u16();
    if !(200..300).contains(&status) {
        let text = r.text().await.unwrap_or_default();
        return Err(format!("ARM PUT {url} answered {status}: {text}"));
    }
    Ok(())
}

/// `n` cloud requests over 8 connections, mixed across clouds and
/// statuses: half EC2 DescribeRegions (200), a quarter Compute Engine GETs
/// of missing instances (404), a quarter ARM GETs of missing resource
/// groups (404).
pub async fn mixed_traffic(base: &str, access_key_id: &str, n: usize) -> Result<(), String> {
    let http = http();
    let mut tasks = tokio::task::JoinSet::new();
    for worker in 0..8 {
        let (http, base, akid) = (http.clone(), base.to_string(), access_key_id.to_string());
        tasks.spawn(async move {
            for i in (worker..n).step_by(8) {
                let url = match i % 4 {
                    0 | 1 => {
                        ec2(&http, &base, &akid, "Action=DescribeRegions").await?;
                        continue;
                    }
                    2 => {
                        format!("{base}/compute/v1/projects/p/zones/{GCE_ZONE}/instances/nope-{i}")
                    }
                    _ => format!("{base}/subscriptions/s/resourceGroups/rg{i}?{ARM_API}"),
                };
                http.get(url)
                    .bearer_auth("t")
                    .send()
                    .await
                    .map_err(|e| format!("cloud call: {e}"))?;
            }
            Ok::<(), String>(())
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.map_err(|e| format!("traffic task: {e}"))??;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn xml_text_finds_the_first_element() {
        let xml = "<a><instanceId>i-1</instanceId><instanceId>i-2</instanceId></a>";
        assert_eq!(super::xml_text(xml, "instanceId").as_deref(), Some("i-1"));
        assert_eq!(super::xml_text(xml, "nope"), None);
    }
}
