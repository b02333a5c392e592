//! The memory phase: resident-memory growth while the mock stores 10,000
//! more of each kind of resource.

use super::*;

/// Resident set size of this process, in bytes.
pub(crate) fn rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Runs `make(i)` for `i in 0..n` over 16 connections; fails on any
/// answer that is not `ok`.
pub(crate) async fn bulk(
    addr: SocketAddr,
    n: usize,
    ok: fn(StatusCode) -> bool,
    make: Arc<dyn Fn(usize) -> Template + Send + Sync>,
) -> Result<(), BoxError> {
    const LANES: usize = 16;
    let mut tasks = Vec::new();
    for lane in 0..LANES {
        let make = Arc::clone(&make);
        tasks.push(tokio::spawn(async move {
            let mut conn = Conn::open(addr).await?;
            let mut i = lane;
            while i < n {
                let (status, _, body) = conn.send(&make(i)).await?;
                if !ok(status) {
                    return Err::<(), BoxError>(
                        format!("{status}: {}", String::from_utf8_lossy(&body)).into(),
                    );
                }
                i += LANES;
            }
            Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(())
}

/// Issue 19's bound on the memory one stored resource of any kind takes.
pub(crate) const MEMORY_TARGET_BYTES: u64 = 4096;

pub(crate) async fn memory(addr: SocketAddr, n: usize) -> Value {
    let mut out = serde_json::Map::new();
    if n == 0 {
        return Value::Object(out);
    }
    let mut record = |key: &str, before: Option<u64>, result: Result<(), BoxError>| {
        let value = match (result, before, rss_bytes()) {
            (Ok(()), Some(b), Some(a)) => {
                let per = a.saturating_sub(b) / n as u64;
                json!({"count": n, "rss_delta_bytes": a.saturating_sub(b), "bytes_per_resource": per,
                       "under_target": per < MEMORY_TARGET_BYTES})
            }
            (Err(e), _, _) => json!({"error": e.to_string()}),
            _ => json!({"error": "VmRSS unavailable"}),
        };
        out.insert(key.to_string(), value);
    };

    let before = rss_bytes();
    let r = bulk(
        addr,
        n,
        |s| s == StatusCode::OK,
        Arc::new(|i| gce_insert("loadgen-memory", &format!("vm-{i}"))),
    )
    .await;
    record("gce_instance", before, r);

    let before = rss_bytes();
    let batches = n.div_ceil(1000);
    let r = bulk(
        addr,
        batches,
        |s| s == StatusCode::OK,
        Arc::new(move |i| run_instances(EC2_AUTH_MEM, (n - i * 1000).min(1000), "memory")),
    )
    .await;
    record("ec2_instance", before, r);

    let before = rss_bytes();
    let r = bulk(
        addr,
        n,
        |s| s == StatusCode::OK,
        Arc::new(|_| {
            ec2(
                EC2_AUTH_MEM,
                "Action=CreateVolume&AvailabilityZone=us-east-1a&Size=8&VolumeType=gp3",
            )
        }),
    )
    .await;
    record("ec2_volume", before, r);

    let before = rss_bytes();
    let r = bulk(
        addr,
        n,
        |s| s == StatusCode::OK,
        Arc::new(|i| {
            ec2(
                EC2_AUTH_MEM,
                &format!(
                    "Action=CreateLaunchTemplate&LaunchTemplateName=lt-{i}\
                     &LaunchTemplateData.ImageId=ami-0abcdef1234567890&LaunchTemplateData.InstanceType=t3.micro"
                ),
            )
        }),
    )
    .await;
    record("ec2_launch_template", before, r);

    let sub = "00000000-0000-0000-0000-00000000a002";
    let rg = format!("/subscriptions/{sub}/resourceGroups/memory");
    let vnet = format!("{rg}/providers/Microsoft.Network/virtualNetworks/vnet");
    let setup = async {
        arm_put(addr, &rg, json!({"location": "eastus"})).await?;
        arm_put(
            addr,
            &vnet,
            json!({"location": "eastus", "properties": {"addressSpace": {"addressPrefixes": ["10.0.0.0/8"]},
                "subnets": [{"name": "default", "properties": {"addressPrefix": "10.0.0.0/9"}}]}}),
        )
        .await
    }
    .await;
    if let Err(e) = setup {
        out.insert("arm".to_string(), json!({"error": e.to_string()}));
        return Value::Object(out);
    }
    let arm_bulk = |make: Arc<dyn Fn(usize) -> Template + Send + Sync>| {
        bulk(addr, n, |s: StatusCode| s.is_success(), make)
    };

    let before = rss_bytes();
    let group = rg.clone();
    let r = arm_bulk(Arc::new(move |i| {
        arm(
            Method::PUT,
            &format!("{group}/providers/Microsoft.Network/publicIPAddresses/pip-{i}"),
            Some(json!({"location": "eastus", "sku": {"name": "Standard"},
                        "properties": {"publicIPAllocationMethod": "Static"}})),
        )
    }))
    .await;
    record("arm_public_ip", before, r);

    let before = rss_bytes();
    let (group, subnet) = (rg.clone(), format!("{vnet}/subnets/default"));
    let r = arm_bulk(Arc::new(move |i| {
        arm(
            Method::PUT,
            &format!("{group}/providers/Microsoft.Network/networkInterfaces/nic-{i}"),
            Some(json!({"location": "eastus", "properties": {"ipConfigurations": [{"name": "ipconfig1",
                "properties": {"privateIPAllocationMethod": "Dynamic", "subnet": {"id": subnet}}}]}})),
        )
    }))
    .await;
    record("arm_network_interface", before, r);

    let before = rss_bytes();
    let group = rg.clone();
    let r = arm_bulk(Arc::new(move |i| {
        arm(
            Method::PUT,
            &format!("{group}/providers/Microsoft.Compute/disks/disk-{i}"),
            Some(json!({"location": "eastus", "sku": {"name": "Premium_LRS"},
                        "properties": {"creationData": {"createOption": "Empty"}, "diskSizeGB": 32}})),
        )
    }))
    .await;
    record("arm_disk", before, r);

    let before = rss_bytes();
    let group = rg.clone();
    let r = arm_bulk(Arc::new(move |i| {
        let nic = format!("{group}/providers/Microsoft.Network/networkInterfaces/nic-{i}");
        arm(
            Method::PUT,
            &format!("{group}/providers/Microsoft.Compute/virtualMachines/vm-{i}"),
            Some(json!({"location": "eastus", "properties": {
                "hardwareProfile": {"vmSize": "Standard_D2s_v5"},
                "storageProfile": {"imageReference": {"publisher": "Canonical", "offer": "ubuntu-24_04-lts", "sku": "server", "version": "latest"},
                                   "osDisk": {"createOption": "FromImage", "deleteOption": "Delete"}},
                "osProfile": {"computerName": format!("vm-{i}"), "adminUsername": "azureuser", "adminPassword": "S3cret-pass!"},
                "networkProfile": {"networkInterfaces": [{"id": nic}]}}})),
        )
    }))
    .await;
    record("arm_virtual_machine", before, r);

    let before = rss_bytes();
    let group = rg.clone();
    let r = arm_bulk(Arc::new(move |i| {
        arm(
            Method::PUT,
            &format!("{group}/providers/Microsoft.Network/virtualNetworks/net-{i}"),
            Some(json!({"location": "eastus", "properties": {"addressSpace": {"addressPrefixes": ["10.1.0.0/16"]},
                "subnets": [{"name": "default", "properties": {"addressPrefix": "10.1.0.0/24"}}]}})),
        )
    }))
    .await;
    record("arm_virtual_network", before, r);
    Value::Object(out)
}
