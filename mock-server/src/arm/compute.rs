//! `Microsoft.Compute`: managed disks and virtual machines: request
//! validation, attachment of NICs and disks, implicit disks, the instance
//! view, and what ARM never echoes (customData, adminPassword, userData).

use std::time::Instant;

use serde_json::{json, Map, Value};

use super::compact::Compact;
use super::error::ArmError;
use super::network::nic_user;
use super::resources::{obj, prop_str, ref_key, Prepared, PutCtx};
use super::store::{timestamp, Hidden, Kind, Links, OpKind, Partition, ResKey, Resource};
use super::view::ReadOpts;

fn tier_of(sku: &str) -> &'static str {
    let s = sku.to_ascii_lowercase();
    if s.starts_with("premium") {
        "Premium"
    } else if s.starts_with("ultra") {
        "Ultra"
    } else {
        "Standard"
    }
}

fn disk_sku(sku: Option<&Value>) -> Value {
    let name = sku
        .and_then(|s| s.get("name"))
        .and_then(Value::as_str)
        .unwrap_or("Standard_LRS");
    json!({"name": name, "tier": tier_of(name)})
}

/// Managed disk PUT.
pub fn prepare_disk(
    part: &Partition,
    pc: &PutCtx,
    body: &Map<String, Value>,
) -> Result<Prepared, ArmError> {
    let mut props = obj(body.get("properties"), "properties")?;
    for k in ["provisioningState", "diskState", "uniqueId", "timeCreated"] {
        props.remove(k);
    }
    let creation = props
        .get("creationData")
        .and_then(Value::as_object)
        .ok_or_else(|| {
            ArmError::bad_request(
                "InvalidParameter",
                "Required parameter 'creationData' is missing (null).",
            )
        })?;
    let option = creation
        .get("createOption")
        .and_then(Value::as_str)
        .ok_or_else(|| {
            ArmError::bad_request(
                "InvalidParameter",
                "Required parameter 'creationData.createOption' is missing (null).",
            )
        })?;
    if option.eq_ignore_ascii_case("Empty")
        && props.get("diskSizeGB").and_then(Value::as_u64).is_none()
    {
        return Err(ArmError::bad_request(
            "InvalidParameter",
            "Required parameter 'diskSizeGB' is missing (null).",
        ));
    }
    let vm = match part.peek(pc.key, pc.now).map(|r| &r.links) {
        Some(Links::Disk { vm }) => vm.clone(),
        _ => None,
    };
    let mut p = Prepared::new(props, Links::Disk { vm });
    p.sku = Some(disk_sku(body.get("sku")));
    Ok(p)
}

/// The live VM a disk is attached to, if that VM still references it.
pub fn disk_user<'a>(part: &'a Partition, r: &Resource, now: Instant) -> Option<&'a Resource> {
    let Links::Disk { vm: Some(vk) } = &r.links else {
        return None;
    };
    let me = ResKey::new(r.kind, &r.rg, &r.name);
    part.peek(vk, now).filter(
        |v| matches!(&v.links, Links::Vm { disks, .. } if disks.iter().any(|(k, _)| *k == me)),
    )
}

/// Computed properties of a disk.
pub fn disk_extra(r: &Resource, state: &'static str, attached: bool) -> Vec<(&'static str, Value)> {
    vec![
        ("provisioningState", Value::from(state)),
        ("uniqueId", Value::from(r.guid.as_str())),
        ("timeCreated", Value::from(timestamp(r.created))),
        (
            "diskState",
            Value::from(if attached { "Attached" } else { "Unattached" }),
        ),
    ]
}

fn is_delete(v: Option<&Value>) -> bool {
    v.and_then(Value::as_str)
        .is_some_and(|d| d.eq_ignore_ascii_case("Delete"))
}

/// Checks a referenced disk and returns its key.
fn attach_disk(part: &Partition, pc: &PutCtx, id: &str) -> Result<ResKey, ArmError> {
    let dk = ref_key(pc.sub, id)
        .filter(|k| k.kind == Kind::Disk)
        .ok_or_else(|| ArmError::bad_reference(id, pc.id))?;
    let disk = part
        .peek(&dk, pc.now)
        .filter(|d| d.op.kind != OpKind::Delete)
        .ok_or_else(|| ArmError::bad_reference(id, pc.id))?;
    if let Some(vm) = disk_user(part, disk, pc.now) {
        if vm.id != pc.id {
            return Err(ArmError::conflict(
                "OperationNotAllowed",
                format!("Disk {} is already attached to VM {}.", disk.name, vm.id),
            ));
        }
    }
    Ok(dk)
}

/// A disk the VM creates itself (`createOption: FromImage` OS disk or
/// `Empty` data disk).
fn implicit_disk(
    pc: &PutCtx,
    name: &str,
    size: Option<&Value>,
    os_type: Option<&Value>,
    sku: Option<&Value>,
) -> Resource {
    let mut props = Map::new();
    if let Some(t) = os_type {
        props.insert("osType".into(), t.clone());
    }
    props.insert(
        "creationData".into(),
        json!({"createOption": if os_type.is_some() { "FromImage" } else { "Empty" }}),
    );
    props.insert(
        "diskSizeGB".into(),
        size.cloned().unwrap_or_else(|| 30.into()),
    );
    Resource {
        kind: Kind::Disk,
        rg: pc.rg.to_string(),
        name: name.to_string(),
        id: format!(
            "/subscriptions/{}/resourceGroups/{}/providers/Microsoft.Compute/disks/{name}",
            pc.sub, pc.rg
        ),
        location: pc.location.to_string(),
        tags: Compact::empty(),
        sku: Some(Compact::of(&disk_sku(sku))),
        zones: None,
        props: Compact::object(props),
        guid: uuid::Uuid::new_v4().to_string(),
        created: pc.wall,
        op: pc.op.clone(),
        not_found_reads: 0,
        links: Links::Disk {
            vm: Some(ResKey::new(Kind::VirtualMachine, pc.rg, pc.name)),
        },
    }
}

/// Virtual machine PUT.
pub fn prepare_vm(
    part: &Partition,
    pc: &PutCtx,
    body: &Map<String, Value>,
) -> Result<Prepared, ArmError> {
    let mut props = obj(body.get("properties"), "properties")?;
    for k in ["provisioningState", "vmId", "instanceView", "timeCreated"] {
        props.remove(k);
    }
    super::spot::defaults(&mut props);
    let existing = part.peek(pc.key, pc.now);
    let mut implicit = Vec::new();
    // Network interfaces.
    let nic_list = props
        .get("networkProfile")
        .and_then(|n| n.get("networkInterfaces"))
        .and_then(Value::as_array)
        .filter(|a| !a.is_empty())
        .ok_or_else(|| {
            ArmError::bad_request(
                "InvalidParameter",
                "At least one network interface is required: properties.networkProfile.networkInterfaces.",
            )
        })?;
    let mut nics = Vec::new();
    for n in nic_list {
        let id = n.get("id").and_then(Value::as_str).ok_or_else(|| {
            ArmError::bad_request("InvalidParameter", "Every network interface needs an id.")
        })?;
        let nk = ref_key(pc.sub, id)
            .filter(|k| k.kind == Kind::NetworkInterface)
            .ok_or_else(|| ArmError::bad_reference(id, pc.id))?;
        let nic = part
            .peek(&nk, pc.now)
            .filter(|r| r.op.kind != OpKind::Delete)
            .ok_or_else(|| ArmError::bad_reference(id, pc.id))?;
        if let Some(vm) = nic_user(part, nic, pc.now) {
            if vm.id != pc.id {
                return Err(ArmError::bad_request(
                    "NicInUse",
                    format!(
                        "Network Interface {} is used by existing resource {}.",
                        nic.id, vm.id
                    ),
                ));
            }
        }
        nics.push((
            nk,
            is_delete(n.get("properties").and_then(|p| p.get("deleteOption"))),
        ));
    }
    // Disks.
    let mut storage = obj(props.get("storageProfile"), "properties.storageProfile")?;
    let mut os_disk = obj(storage.get("osDisk"), "properties.storageProfile.osDisk")?;
    let os_option = prop_str(&os_disk, "createOption")
        .unwrap_or("FromImage")
        .to_string();
    let mut disks = Vec::new();
    let os_delete = is_delete(os_disk.get("deleteOption"));
    if os_option.eq_ignore_ascii_case("Attach") {
        if props.contains_key("osProfile") {
            return Err(ArmError::bad_request(
                "InvalidParameter",
                "Parameter 'osProfile' is not allowed.",
            ));
        }
        let id = os_disk
            .get("managedDisk")
            .and_then(|m| m.get("id"))
            .and_then(Value::as_str)
            .ok_or_else(|| {
                ArmError::bad_request(
                    "InvalidParameter",
                    "Required parameter 'osDisk.managedDisk.id' is missing (null).",
                )
            })?;
        disks.push((attach_disk(part, pc, id)?, os_delete));
    } else {
        // The VM makes its OS disk; an update keeps the one made at create.
        let kept = existing.and_then(|r| match &r.links {
            Links::Vm { disks, .. } => disks.first().cloned(),
            _ => None,
        });
        let name = match (&kept, prop_str(&os_disk, "name")) {
            (Some((k, _)), _) => part
                .peek(k, pc.now)
                .map(|d| d.name.clone())
                .unwrap_or_else(|| k.name.clone()),
            (None, Some(n)) => n.to_string(),
            (None, None) => format!("{}_OsDisk_1_{}", pc.name, pc.guid.replace('-', "")),
        };
        let key = ResKey::new(Kind::Disk, pc.rg, &name);
        if kept.is_none() {
            if part.peek(&key, pc.now).is_some() {
                return Err(ArmError::conflict(
                    "ConflictingUserInput",
                    format!(
                        "A disk named {name} already exists in resource group {}.",
                        pc.rg
                    ),
                ));
            }
            let os_type = os_disk
                .get("osType")
                .cloned()
                .unwrap_or_else(|| "Linux".into());
            implicit.push(implicit_disk(
                pc,
                &name,
                os_disk.get("diskSizeGB"),
                Some(&os_type),
                os_disk
                    .get("managedDisk")
                    .and_then(|m| m.get("storageAccountType"))
                    .map(|s| json!({"name": s}))
                    .as_ref(),
            ));
        }
        let did = format!(
            "/subscriptions/{}/resourceGroups/{}/providers/Microsoft.Compute/disks/{name}",
            pc.sub, pc.rg
        );
        os_disk.insert("name".into(), name.into());
        let mut md = obj(os_disk.get("managedDisk"), "osDisk.managedDisk")?;
        md.insert("id".into(), did.into());
        os_disk.insert("managedDisk".into(), Value::Object(md));
        disks.push((key, os_delete));
    }
    os_disk.insert("createOption".into(), os_option.into());
    storage.insert("osDisk".into(), Value::Object(os_disk));
    if let Some(data) = storage.get("dataDisks").and_then(Value::as_array).cloned() {
        let mut out = Vec::new();
        for d in data {
            let mut dd = obj(Some(&d), "dataDisks[]")?;
            let option = prop_str(&dd, "createOption").unwrap_or("Empty").to_string();
            let del = is_delete(dd.get("deleteOption"));
            if option.eq_ignore_ascii_case("Attach") {
                let id = dd
                    .get("managedDisk")
                    .and_then(|m| m.get("id"))
                    .and_then(Value::as_str)
                    .ok_or_else(|| {
                        ArmError::bad_request(
                            "InvalidParameter",
                            "Required parameter 'dataDisk.managedDisk.id' is missing (null).",
                        )
                    })?;
                disks.push((attach_disk(part, pc, id)?, del));
            } else {
                let name = prop_str(&dd, "name")
                    .map(str::to_string)
                    .unwrap_or_else(|| {
                        format!(
                            "{}_disk{}_{}",
                            pc.name,
                            out.len() + 2,
                            pc.guid.replace('-', "")
                        )
                    });
                let key = ResKey::new(Kind::Disk, pc.rg, &name);
                let mine = existing.is_some_and(|r| matches!(&r.links, Links::Vm { disks, .. } if disks.iter().any(|(k, _)| *k == key)));
                if !mine {
                    if part.peek(&key, pc.now).is_some() {
                        return Err(ArmError::conflict(
                            "ConflictingUserInput",
                            format!(
                                "A disk named {name} already exists in resource group {}.",
                                pc.rg
                            ),
                        ));
                    }
                    implicit.push(implicit_disk(pc, &name, dd.get("diskSizeGB"), None, None));
                }
                let mut md = obj(dd.get("managedDisk"), "dataDisk.managedDisk")?;
                md.insert(
                    "id".into(),
                    format!(
                        "/subscriptions/{}/resourceGroups/{}/providers/Microsoft.Compute/disks/{name}",
                        pc.sub, pc.rg
                    )
                    .into(),
                );
                dd.insert("name".into(), name.into());
                dd.insert("managedDisk".into(), Value::Object(md));
                disks.push((key, del));
            }
            out.push(Value::Object(dd));
        }
        storage.insert("dataDisks".into(), Value::Array(out));
    }
    props.insert("storageProfile".into(), Value::Object(storage));
    // Secrets ARM keeps but never returns.
    let mut custom_data = existing.and_then(|r| match &r.links {
        Links::Vm { custom_data, .. } => custom_data.clone(),
        _ => None,
    });
    let mut computer_name = pc.name.to_string();
    if let Some(Value::Object(os)) = props.get_mut("osProfile") {
        if let Some(cd) = os.remove("customData") {
            custom_data = cd.as_str().map(|s| Hidden(s.to_string()));
        }
        os.remove("adminPassword");
        match os.get("computerName").and_then(Value::as_str) {
            Some(c) => computer_name = c.to_string(),
            None => {
                os.insert("computerName".into(), pc.name.into());
            }
        }
    }
    // userData is returned only with `$expand=userData`.
    let user_data = match props.remove("userData") {
        Some(ud) => Some(ud),
        None => existing.and_then(|r| match &r.links {
            Links::Vm { user_data, .. } => user_data.clone(),
            _ => None,
        }),
    };
    let size = super::spot::vm_size(body.get("properties")).into();
    let spot = super::spot::is_spot_priority(props.get("priority"));
    let mut p = Prepared::new(
        props,
        Links::Vm {
            nics,
            disks,
            custom_data,
            user_data,
            computer_name,
            size,
            spot,
        },
    );
    p.implicit = implicit;
    Ok(p)
}

/// The VM's instance view (`/instanceView`, `$expand=instanceView`).
pub fn instance_view(part: &Partition, r: &Resource, now: Instant) -> Value {
    let state = r.state(now);
    let (prov, power) = match state {
        "Creating" => (
            json!({"code": "ProvisioningState/creating", "level": "Info", "displayStatus": "Creating"}),
            Some(("starting", "VM starting")),
        ),
        "Updating" => (
            json!({"code": "ProvisioningState/updating", "level": "Info", "displayStatus": "Updating"}),
            Some(("running", "VM running")),
        ),
        "Deleting" => (
            json!({"code": "ProvisioningState/deleting", "level": "Info", "displayStatus": "Deleting"}),
            Some(("deallocating", "VM deallocating")),
        ),
        "Failed" => {
            let (code, msg) =
                r.op.failure
                    .as_ref()
                    .map(|f| (f.code.as_str(), f.message.as_str()))
                    .unwrap_or(("", ""));
            // A failed create never ran; a failed update (a power action)
            // leaves the VM as it was, and ARM still reports its power.
            let power = (r.op.kind == OpKind::Update).then_some(("running", "VM running"));
            (
                json!({"code": format!("ProvisioningState/failed/{code}"), "level": "Error", "displayStatus": "Provisioning failed", "message": msg}),
                power,
            )
        }
        _ => (
            json!({"code": "ProvisioningState/succeeded", "level": "Info", "displayStatus": "Provisioning succeeded", "time": timestamp(r.created)}),
            Some(("running", "VM running")),
        ),
    };
    let power = if super::spot::deallocated(part, r, now) {
        Some(("deallocated", "VM deallocated"))
    } else if r.state(now) == "Deleting" {
        power
    } else {
        super::out_of_band::power_state(part, r, now).or(power)
    };
    let mut statuses = vec![prov];
    if let Some((code, display)) = power {
        statuses.push(json!({"code": format!("PowerState/{code}"), "level": "Info", "displayStatus": display}));
    }
    let (computer_name, disks) = match &r.links {
        Links::Vm {
            computer_name,
            disks,
            ..
        } => (computer_name.as_str(), disks.as_slice()),
        _ => ("", &[][..]),
    };
    let disk_views: Vec<Value> = disks
        .iter()
        .filter_map(|(k, _)| part.peek(k, now))
        .map(|d| {
            let s = d.state(now).to_ascii_lowercase();
            json!({"name": d.name, "statuses": [{"code": format!("ProvisioningState/{s}"), "level": "Info",
                "displayStatus": format!("Provisioning {s}")}]})
        })
        .collect();
    let agent_ready = state == "Succeeded" || state == "Updating";
    json!({
        "computerName": computer_name,
        "vmAgent": {"vmAgentVersion": "2.7.41491.1102", "statuses": [{
            "code": "ProvisioningState/succeeded", "level": "Info",
            "displayStatus": if agent_ready { "Ready" } else { "Not Ready" }}]},
        "disks": disk_views,
        "statuses": statuses,
    })
}

/// Computed properties of a VM.
pub fn vm_extra(
    part: &Partition,
    r: &Resource,
    state: &'static str,
    now: Instant,
    opts: ReadOpts,
) -> Vec<(&'static str, Value)> {
    let mut extra = vec![
        ("provisioningState", Value::from(state)),
        ("vmId", Value::from(r.guid.as_str())),
        ("timeCreated", Value::from(timestamp(r.created))),
    ];
    if opts.user_data {
        if let Links::Vm {
            user_data: Some(ud),
            ..
        } = &r.links
        {
            extra.push(("userData", ud.clone()));
        }
    }
    if opts.instance_view {
        extra.push(("instanceView", instance_view(part, r, now)));
    }
    extra
}

/// The cascade of a VM delete: every NIC, public IP (through a cascaded NIC)
/// and disk marked `deleteOption: Delete`.
pub fn cascade(part: &Partition, vm: &Resource, now: Instant) -> Vec<ResKey> {
    let mut out = Vec::new();
    if let Links::Vm { nics, disks, .. } = &vm.links {
        for (nk, del) in nics {
            if !*del {
                continue;
            }
            if let Some(nic) = part.peek(nk, now) {
                out.push(nk.clone());
                if let Links::Nic { pips, .. } = &nic.links {
                    out.extend(pips.iter().filter(|(_, d)| *d).map(|(k, _)| k.clone()));
                }
            }
        }
        out.extend(disks.iter().filter(|(_, d)| *d).map(|(k, _)| k.clone()));
    }
    out
}
