//! Request bodies of the chain's PUTs, built from the launch config, the
//! persisted names and the ownership tags.
//!
//! Every resource carries the ownership tags (plus the launch config's extra
//! tags) so that `list_owned` and the orphan sweeper find it. When
//! `delete_with_vm` is on, every dependent is referenced by the VM with
//! `deleteOption: Delete`, so teardown is one VM delete.

use std::collections::BTreeMap;

use base64::Engine as _;
use serde_json::{json, Map, Value};

use crate::launch::AzureLaunch;

/// The tags of every resource of a worker: the launch config's extras, then
/// the ownership tags (which win).
pub fn tags(launch: &AzureLaunch, ownership: &BTreeMap<String, String>) -> Value {
    let mut m = Map::new();
    for (k, v) in launch.tags.iter().chain(ownership.iter()) {
        m.insert(k.clone(), Value::String(v.clone()));
    }
    Value::Object(m)
}

fn delete_option(launch: &AzureLaunch) -> &'static str {
    if launch.delete_with_vm {
        "Delete"
    } else {
        "Detach"
    }
}

/// A Static, Standard SKU public IP (Standard requires Static).
pub fn public_ip(launch: &AzureLaunch, tags: &Value) -> Value {
    json!({
        "location": launch.location(),
        "tags": tags,
        "sku": {"name": "Standard", "tier": "Regional"},
        "properties": {
            "publicIPAllocationMethod": "Static",
            "publicIPAddressVersion": "IPv4",
        }
    })
}

/// The NIC in the launch config's subnet, with the public IP if any.
pub fn nic(launch: &AzureLaunch, tags: &Value, public_ip_id: Option<&str>) -> Value {
    let mut ipcfg = json!({
        "privateIPAllocationMethod": "Dynamic",
        "subnet": {"id": launch.subnet_id()},
    });
    if let Some(id) = public_ip_id {
        ipcfg["publicIPAddress"] = json!({
            "id": id,
            "properties": {"deleteOption": delete_option(launch)},
        });
    }
    json!({
        "location": launch.location(),
        "tags": tags,
        "properties": {
            "ipConfigurations": [{"name": "ipconfig1", "properties": ipcfg}],
        }
    })
}

/// Data disk `index` of the launch config, empty, or `None` if the launch
/// config has no such disk.
pub fn data_disk(launch: &AzureLaunch, tags: &Value, index: usize) -> Option<Value> {
    let d = launch.data_disks.get(index)?;
    let mut body = json!({
        "location": launch.location(),
        "tags": tags,
        "sku": {"name": d.sku.as_deref().unwrap_or("Standard_LRS")},
        "properties": {
            "creationData": {"createOption": "Empty"},
            "diskSizeGB": d.size_gb,
        }
    });
    if !launch.zones.is_empty() {
        body["zones"] = json!(launch.zones);
    }
    Some(body)
}

/// An OS disk created from the image, for a VM to attach (explicit OS disk).
pub fn os_disk(launch: &AzureLaunch, tags: &Value, subscription: &str) -> Value {
    let mut props = json!({
        "osType": "Linux",
        "creationData": {
            "createOption": "FromImage",
            "imageReference": {"id": launch.image.disk_image_id(subscription, launch.location())},
        },
    });
    if let Some(size) = launch.os_disk.size_gb {
        props["diskSizeGB"] = json!(size);
    }
    let mut body = json!({
        "location": launch.location(),
        "tags": tags,
        "sku": {"name": launch.os_disk.sku.as_deref().unwrap_or("Standard_LRS")},
        "properties": props,
    });
    if !launch.zones.is_empty() {
        body["zones"] = json!(launch.zones);
    }
    body
}

/// The VM: OS disk from the image (named, so teardown can find it) or the
/// explicit OS disk attached, data disks attached, the NIC, custom data
/// (base64, in `osProfile`; an attached OS disk takes no `osProfile`, and
/// [`AzureLaunch::user_data`] carries it instead) and an SSH key. The
/// caller adds the worker's bootstrap document as `userData`
/// ([`with_user_data`]).
pub fn vm(
    launch: &AzureLaunch,
    tags: &Value,
    vm_name: &str,
    os_disk_name: &str,
    nic_id: &str,
    data_disk_ids: &[String],
    explicit_os_disk_id: Option<&str>,
) -> Value {
    let del = delete_option(launch);
    let mut os_disk = json!({
        "name": os_disk_name,
        "createOption": "FromImage",
        "deleteOption": del,
        "osType": "Linux",
    });
    if let Some(size) = launch.os_disk.size_gb {
        os_disk["diskSizeGB"] = json!(size);
    }
    if let Some(sku) = &launch.os_disk.sku {
        os_disk["managedDisk"] = json!({"storageAccountType": sku});
    }
    let data: Vec<Value> = data_disk_ids
        .iter()
        .enumerate()
        .map(|(lun, id)| {
            json!({
                "lun": lun,
                "createOption": "Attach",
                "deleteOption": del,
                "managedDisk": {"id": id},
            })
        })
        .collect();
    let mut os_profile = json!({
        "computerName": vm_name,
        "adminUsername": launch.admin_username,
    });
    if let Some(cd) = &launch.custom_data {
        os_profile["customData"] =
            json!(base64::engine::general_purpose::STANDARD.encode(cd.as_bytes()));
    }
    if let Some(key) = &launch.ssh_public_key {
        os_profile["linuxConfiguration"] = json!({
            "disablePasswordAuthentication": true,
            "ssh": {"publicKeys": [{
                "path": format!("/home/{}/.ssh/authorized_keys", launch.admin_username),
                "keyData": key,
            }]},
        });
    }
    let mut body = json!({
        "location": launch.location(),
        "tags": tags,
        "properties": {
            "hardwareProfile": {"vmSize": launch.vm_size()},
            "storageProfile": {
                "imageReference": launch.image.to_json(),
                "osDisk": os_disk,
                "dataDisks": data,
            },
            "osProfile": os_profile,
            "networkProfile": {"networkInterfaces": [{
                "id": nic_id,
                "properties": {"primary": true, "deleteOption": del},
            }]},
        }
    });
    if let (Some(spot), Some(props)) =
        (launch.spot_properties(), body["properties"].as_object_mut())
    {
        if let Some(spot) = spot.as_object() {
            props.extend(spot.clone());
        }
    }
    if let Some(os_disk_id) = explicit_os_disk_id {
        let props = &mut body["properties"];
        if let Some(o) = props.as_object_mut() {
            o.remove("osProfile");
        }
        if let Some(sp) = props["storageProfile"].as_object_mut() {
            sp.remove("imageReference");
        }
        props["storageProfile"]["osDisk"] = json!({
            "createOption": "Attach",
            "deleteOption": del,
            "osType": "Linux",
            "managedDisk": {"id": os_disk_id},
        });
    }
    if !launch.zones.is_empty() {
        body["zones"] = json!(launch.zones);
    }
    body
}

/// `vm` with `userData` (base64, from [`AzureLaunch::user_data`]): the
/// worker's bootstrap document, which Azure's metadata service serves at
/// `/metadata/instance/compute/userData`.
pub fn with_user_data(mut vm: Value, user_data: &str) -> Value {
    vm["properties"]["userData"] = json!(user_data);
    vm
}
