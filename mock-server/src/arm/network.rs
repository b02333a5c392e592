//! `Microsoft.Network`: virtual networks with subnets, public IP addresses
//! and network interfaces: request validation, the links between them, and
//! the properties ARM computes for them.

use std::time::Instant;

use serde_json::{json, Map, Value};

use super::error::ArmError;
use super::resources::{obj, prop_str, ref_key, ref_subnet, Prepared, PutCtx};
use super::store::{Kind, Links, Partition, ResKey, Resource, Subnet};

/// The id of a subnet.
pub fn subnet_id(vnet_id: &str, name: &str) -> String {
    format!("{vnet_id}/subnets/{name}")
}

/// A subnet as GET `.../subnets/{name}` returns it.
pub fn subnet_json(vnet: &Resource, s: &Subnet, state: &str) -> Value {
    let mut props = s.props.clone();
    props.insert("provisioningState".into(), state.into());
    json!({
        "name": s.name,
        "id": subnet_id(&vnet.id, &s.name),
        "etag": vnet.etag(),
        "type": "Microsoft.Network/virtualNetworks/subnets",
        "properties": props,
    })
}

/// Reads one subnet definition (`{"name":..,"properties":{..}}`).
pub fn parse_subnet(v: &Value, name: Option<&str>) -> Result<Subnet, ArmError> {
    let o = v
        .as_object()
        .ok_or_else(|| ArmError::invalid_content("A subnet must be a JSON object."))?;
    let name = match name {
        Some(n) => n.to_string(),
        None => o
            .get("name")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
            .ok_or_else(|| {
                ArmError::bad_request("InvalidRequestFormat", "Every subnet needs a name.")
            })?
            .to_string(),
    };
    let mut props = obj(o.get("properties"), "subnet properties")?;
    props.remove("provisioningState");
    if !props.contains_key("addressPrefix") && !props.contains_key("addressPrefixes") {
        props.insert("addressPrefix".into(), "10.0.0.0/24".into());
    }
    Ok(Subnet {
        name,
        props,
        next_ip: 0,
    })
}

/// Virtual network PUT.
pub fn prepare_vnet(
    part: &Partition,
    pc: &PutCtx,
    body: &Map<String, Value>,
) -> Result<Prepared, ArmError> {
    let mut props = obj(body.get("properties"), "properties")?;
    let subnets_in = props.remove("subnets");
    props.remove("provisioningState");
    let mut subnets = Vec::new();
    if let Some(list) = subnets_in {
        let arr = list
            .as_array()
            .ok_or_else(|| ArmError::invalid_content("properties.subnets must be an array."))?;
        for v in arr {
            subnets.push(parse_subnet(v, None)?);
        }
    }
    let old: &[Subnet] = match part.peek(pc.key, pc.now).map(|r| &r.links) {
        Some(Links::Vnet { subnets }) => subnets,
        _ => &[],
    };
    // Keep address counters of subnets that stay; refuse to drop used ones.
    for o in old {
        match subnets
            .iter_mut()
            .find(|s| s.name.eq_ignore_ascii_case(&o.name))
        {
            Some(s) => s.next_ip = o.next_ip,
            None => {
                if let Some(nic) = subnet_user(part, pc.key, &o.name, pc.now) {
                    return Err(in_use_subnet(&subnet_id(pc.id, &o.name), &nic.id));
                }
            }
        }
    }
    Ok(Prepared::new(props, Links::Vnet { subnets }))
}

/// 400 `InUseSubnetCannotBeDeleted`.
pub fn in_use_subnet(subnet: &str, nic: &str) -> ArmError {
    ArmError::bad_request(
        "InUseSubnetCannotBeDeleted",
        format!("Subnet {subnet} is in use by {nic}/ipConfigurations and cannot be deleted."),
    )
}

/// A live NIC with an ip configuration in `vnet`'s subnet `subnet` (or any
/// subnet of it when `subnet` is empty). Scans NICs; only deletes use it.
pub fn subnet_user<'a>(
    part: &'a Partition,
    vnet: &ResKey,
    subnet: &str,
    now: Instant,
) -> Option<&'a Resource> {
    part.resources
        .values()
        .find(|r| {
            r.alive(now)
                && match &r.links {
                    Links::Nic { subnets, .. } => subnets.iter().any(|(v, s)| {
                        v == vnet && (subnet.is_empty() || s.eq_ignore_ascii_case(subnet))
                    }),
                    _ => false,
                }
        })
        .map(|r| &**r)
}

/// Public IP PUT.
pub fn prepare_pip(
    part: &mut Partition,
    pc: &PutCtx,
    body: &Map<String, Value>,
) -> Result<Prepared, ArmError> {
    let mut props = obj(body.get("properties"), "properties")?;
    for k in [
        "provisioningState",
        "ipAddress",
        "ipConfiguration",
        "resourceGuid",
    ] {
        props.remove(k);
    }
    let standard = body
        .get("sku")
        .and_then(|s| s.get("name"))
        .and_then(Value::as_str)
        .is_some_and(|n| n.eq_ignore_ascii_case("Standard"));
    let method = prop_str(&props, "publicIPAllocationMethod")
        .unwrap_or(if standard { "Static" } else { "Dynamic" })
        .to_string();
    let is_static = method.eq_ignore_ascii_case("Static");
    if standard && !is_static {
        return Err(ArmError::bad_request(
            "StandardSkuPublicIPAddressesMustBeStatic",
            format!(
                "Standard sku publicIp {} must have AllocationMethod set to Static.",
                pc.id
            ),
        ));
    }
    props.insert("publicIPAllocationMethod".into(), method.into());
    props
        .entry("publicIPAddressVersion")
        .or_insert_with(|| "IPv4".into());
    props
        .entry("idleTimeoutInMinutes")
        .or_insert_with(|| 4.into());
    let (nic, address) = match part.peek(pc.key, pc.now).map(|r| &r.links) {
        Some(Links::Pip { nic, address, .. }) => (nic.clone(), address.clone()),
        _ => {
            part.next_public_ip = part.next_public_ip.wrapping_add(1);
            let n = part.next_public_ip;
            (
                None,
                format!("20.{}.{}.{}", 64 + (n >> 16) % 128, (n >> 8) & 255, n & 255),
            )
        }
    };
    Ok(Prepared::new(
        props,
        Links::Pip {
            nic,
            address,
            is_static,
        },
    ))
}

/// The live NIC holding public IP `r`, if that NIC still references it.
pub fn pip_user<'a>(part: &'a Partition, r: &Resource, now: Instant) -> Option<&'a Resource> {
    let Links::Pip { nic: Some(nk), .. } = &r.links else {
        return None;
    };
    let me = ResKey::new(r.kind, &r.rg, &r.name);
    part.peek(nk, now).filter(
        |n| matches!(&n.links, Links::Nic { pips, .. } if pips.iter().any(|(k, _)| *k == me)),
    )
}

/// Computed properties of a public IP.
pub fn pip_extra(
    part: &Partition,
    r: &Resource,
    state: &'static str,
    now: Instant,
) -> Vec<(&'static str, Value)> {
    let mut extra = vec![
        ("provisioningState", Value::from(state)),
        ("resourceGuid", Value::from(r.guid.as_str())),
    ];
    let user = pip_user(part, r, now);
    if let Links::Pip {
        address, is_static, ..
    } = &r.links
    {
        if *is_static || user.is_some() {
            extra.push(("ipAddress", Value::from(address.as_str())));
        }
    }
    if let Some(nic) = user {
        let cfg = nic_ipconfig_of(nic, &r.id)
            .unwrap_or_else(|| format!("{}/ipConfigurations/ipconfig1", nic.id));
        extra.push(("ipConfiguration", json!({ "id": cfg })));
    }
    extra
}

fn nic_ipconfig_of(nic: &Resource, pip_id: &str) -> Option<String> {
    nic.props
        .at(&["ipConfigurations"])?
        .as_array()?
        .iter()
        .find_map(|c| {
            let p = c
                .get("properties")?
                .get("publicIPAddress")?
                .get("id")?
                .as_str()?;
            p.eq_ignore_ascii_case(pip_id)
                .then(|| c.get("id").and_then(Value::as_str).map(str::to_string))?
        })
}

fn ipv4_base(prefix: Option<&str>) -> u32 {
    prefix
        .and_then(|p| p.split('/').next())
        .and_then(|a| a.parse::<std::net::Ipv4Addr>().ok())
        .map(u32::from)
        .unwrap_or(0x0a00_0000)
}

/// Network interface PUT.
pub fn prepare_nic(
    part: &mut Partition,
    pc: &PutCtx,
    body: &Map<String, Value>,
) -> Result<Prepared, ArmError> {
    let mut props = obj(body.get("properties"), "properties")?;
    for k in [
        "provisioningState",
        "virtualMachine",
        "macAddress",
        "resourceGuid",
    ] {
        props.remove(k);
    }
    let configs = props
        .get("ipConfigurations")
        .and_then(Value::as_array)
        .filter(|a| !a.is_empty())
        .cloned()
        .ok_or_else(|| {
            ArmError::bad_request(
                "InvalidRequestFormat",
                "properties.ipConfigurations must be an array with at least one ip configuration.",
            )
        })?;
    let (old_vm, old_mac, old_cfgs) = match part.peek(pc.key, pc.now) {
        Some(r) => match &r.links {
            Links::Nic { vm, mac, .. } => (
                vm.clone(),
                mac.clone(),
                r.props.at(&["ipConfigurations"]).unwrap_or(Value::Null),
            ),
            _ => (None, String::new(), Value::Null),
        },
        None => (None, String::new(), Value::Null),
    };
    let mut pips = Vec::new();
    let mut subnets = Vec::new();
    let mut out = Vec::new();
    for (i, c) in configs.iter().enumerate() {
        let co = c.as_object().ok_or_else(|| {
            ArmError::invalid_content("Every ip configuration must be a JSON object.")
        })?;
        let name = co
            .get("name")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
            .unwrap_or("ipconfig1")
            .to_string();
        let mut cp = obj(co.get("properties"), "ipConfigurations.properties")?;
        cp.remove("provisioningState");
        let subnet_ref = cp
            .get("subnet")
            .and_then(|s| s.get("id"))
            .and_then(Value::as_str)
            .ok_or_else(|| {
                ArmError::bad_request(
                    "InvalidRequestFormat",
                    format!(
                        "Ip configuration {}/ipConfigurations/{name} must reference a subnet.",
                        pc.id
                    ),
                )
            })?
            .to_string();
        let (vnet_key, sn) = ref_subnet(pc.sub, &subnet_ref)
            .ok_or_else(|| ArmError::bad_reference(&subnet_ref, pc.id))?;
        let vnet = part
            .resources
            .get_mut(&vnet_key)
            .filter(|v| v.alive(pc.now))
            .ok_or_else(|| ArmError::bad_reference(&subnet_ref, pc.id))?;
        let Links::Vnet { subnets: vsubs } = &mut vnet.links else {
            return Err(ArmError::bad_reference(&subnet_ref, pc.id));
        };
        let subnet = vsubs
            .iter_mut()
            .find(|s| s.name.eq_ignore_ascii_case(&sn))
            .ok_or_else(|| ArmError::bad_reference(&subnet_ref, pc.id))?;
        let kept_ip = old_cfgs.as_array().and_then(|a| {
            a.iter()
                .find(|o| o.get("name").and_then(Value::as_str) == Some(name.as_str()))
                .and_then(|o| {
                    o.get("properties")?
                        .get("privateIPAddress")?
                        .as_str()
                        .map(str::to_string)
                })
        });
        let static_ip = prop_str(&cp, "privateIPAllocationMethod")
            .is_some_and(|m| m.eq_ignore_ascii_case("Static"))
            && cp.get("privateIPAddress").and_then(Value::as_str).is_some();
        if !static_ip {
            let ip = match kept_ip {
                Some(ip) => ip,
                None => {
                    let base = ipv4_base(subnet.props.get("addressPrefix").and_then(Value::as_str));
                    let ip =
                        std::net::Ipv4Addr::from(base.wrapping_add(4).wrapping_add(subnet.next_ip));
                    subnet.next_ip = subnet.next_ip.wrapping_add(1);
                    ip.to_string()
                }
            };
            cp.insert("privateIPAddress".into(), ip.into());
            cp.entry("privateIPAllocationMethod")
                .or_insert_with(|| "Dynamic".into());
        }
        cp.entry("privateIPAddressVersion")
            .or_insert_with(|| "IPv4".into());
        cp.entry("primary").or_insert_with(|| (i == 0).into());
        subnets.push((vnet_key, sn.to_ascii_lowercase()));
        if let Some(pip_ref) = cp
            .get("publicIPAddress")
            .and_then(|p| p.get("id"))
            .and_then(Value::as_str)
            .map(str::to_string)
        {
            let pk = ref_key(pc.sub, &pip_ref)
                .filter(|k| k.kind == Kind::PublicIp)
                .ok_or_else(|| ArmError::bad_reference(&pip_ref, pc.id))?;
            let pip = part
                .peek(&pk, pc.now)
                .ok_or_else(|| ArmError::bad_reference(&pip_ref, pc.id))?;
            if pip.op.kind == super::store::OpKind::Delete {
                return Err(ArmError::bad_reference(&pip_ref, pc.id));
            }
            if let Some(other) = pip_user(part, pip, pc.now) {
                if other.id != pc.id {
                    return Err(ArmError::bad_request(
                        "PublicIPAddressInUse",
                        format!(
                            "Resource {pip_ref} is already in use by {}/ipConfigurations.",
                            other.id
                        ),
                    ));
                }
            }
            let own_delete = pip
                .props
                .at(&["deleteOption"])
                .as_ref()
                .and_then(Value::as_str)
                .is_some_and(|d| d.eq_ignore_ascii_case("Delete"));
            let cfg_delete = cp
                .get("publicIPAddress")
                .and_then(|p| p.get("properties"))
                .and_then(|p| p.get("deleteOption"))
                .and_then(Value::as_str)
                .is_some_and(|d| d.eq_ignore_ascii_case("Delete"));
            pips.push((pk, own_delete || cfg_delete));
        }
        out.push(json!({
            "name": name,
            "id": format!("{}/ipConfigurations/{name}", pc.id),
            "type": "Microsoft.Network/networkInterfaces/ipConfigurations",
            "properties": cp,
        }));
    }
    props.insert("ipConfigurations".into(), Value::Array(out));
    props
        .entry("dnsSettings")
        .or_insert_with(|| json!({"dnsServers": [], "appliedDnsServers": []}));
    props
        .entry("enableAcceleratedNetworking")
        .or_insert_with(|| false.into());
    props
        .entry("enableIPForwarding")
        .or_insert_with(|| false.into());
    let mac = if old_mac.is_empty() {
        let g = pc.guid.replace('-', "").to_ascii_uppercase();
        let byte = |i: usize| g.get(i..i + 2).unwrap_or("00");
        format!("00-0D-3A-{}-{}-{}", byte(0), byte(2), byte(4))
    } else {
        old_mac
    };
    Ok(Prepared::new(
        props,
        Links::Nic {
            pips,
            subnets,
            vm: old_vm,
            mac,
        },
    ))
}

/// The live VM using NIC `r`, if that VM still references it.
pub fn nic_user<'a>(part: &'a Partition, r: &Resource, now: Instant) -> Option<&'a Resource> {
    let Links::Nic { vm: Some(vk), .. } = &r.links else {
        return None;
    };
    let me = ResKey::new(r.kind, &r.rg, &r.name);
    part.peek(vk, now).filter(
        |v| matches!(&v.links, Links::Vm { nics, .. } if nics.iter().any(|(k, _)| *k == me)),
    )
}

/// Computed properties of a NIC.
pub fn nic_extra(
    part: &Partition,
    r: &Resource,
    state: &'static str,
    now: Instant,
) -> Vec<(&'static str, Value)> {
    let mut extra = vec![
        ("provisioningState", Value::from(state)),
        ("resourceGuid", Value::from(r.guid.as_str())),
    ];
    if let Some(vm) = nic_user(part, r, now) {
        extra.push(("virtualMachine", json!({ "id": vm.id })));
        if let Links::Nic { mac, .. } = &r.links {
            extra.push(("macAddress", Value::from(mac.as_str())));
        }
        extra.push(("primary", Value::from(true)));
    }
    extra
}

/// Computed properties of a virtual network.
pub fn vnet_extra(r: &Resource, state: &'static str) -> Vec<(&'static str, Value)> {
    let subnets: Vec<Value> = match &r.links {
        Links::Vnet { subnets } => subnets.iter().map(|s| subnet_json(r, s, state)).collect(),
        _ => Vec::new(),
    };
    vec![
        ("provisioningState", Value::from(state)),
        ("resourceGuid", Value::from(r.guid.as_str())),
        ("subnets", Value::Array(subnets)),
    ]
}
