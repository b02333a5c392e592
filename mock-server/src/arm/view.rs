//! How resources look on the wire: the stored request properties merged with
//! what ARM computes (provisioningState, ids, attachments), serialized
//! straight from borrowed state so a GET clones nothing big under the lock.

use std::time::Instant;

use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};
use serde_json::{Map, Value};

use super::compact::Compact;
use super::store::{Kind, Partition, Resource};
use super::{compute, network};

/// The stored properties with computed ones laid over them.
pub struct Merged<'a> {
    /// Stored properties.
    pub base: &'a Compact,
    /// Computed properties (they win over stored keys of the same name).
    pub extra: Vec<(&'static str, Value)>,
}

impl Serialize for Merged<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let base: Map<String, Value> = self.base.map();
        let mut m = s.serialize_map(None)?;
        for (k, v) in &base {
            if !self.extra.iter().any(|(e, _)| e == k) {
                m.serialize_entry(k, v)?;
            }
        }
        for (k, v) in &self.extra {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

#[derive(Serialize)]
struct View<'a> {
    name: &'a str,
    id: &'a str,
    #[serde(rename = "type")]
    ty: &'static str,
    location: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    etag: Option<String>,
    #[serde(rename = "managedBy", skip_serializing_if = "Option::is_none")]
    managed_by: Option<String>,
}

/// Options of a read.
#[derive(Debug, Clone, Copy, Default)]
pub struct ReadOpts {
    /// `$expand=instanceView` on a VM GET.
    pub instance_view: bool,
    /// `$expand=userData` on a VM GET.
    pub user_data: bool,
}

/// The JSON body of `r` as a GET returns it.
pub fn resource_json(part: &Partition, r: &Resource, now: Instant, opts: ReadOpts) -> Vec<u8> {
    let state = r.state(now);
    let mut managed_by = None;
    let extra = match r.kind {
        Kind::VirtualNetwork => network::vnet_extra(r, state),
        Kind::PublicIp => network::pip_extra(part, r, state, now),
        Kind::NetworkInterface => network::nic_extra(part, r, state, now),
        Kind::Disk => {
            managed_by = compute::disk_user(part, r, now).map(|v| v.id.clone());
            compute::disk_extra(r, state, managed_by.is_some())
        }
        Kind::VirtualMachine => compute::vm_extra(part, r, state, now, opts),
    };
    let network = r.kind.namespace() == "Microsoft.Network";
    let view = View {
        name: &r.name,
        id: &r.id,
        ty: r.kind.arm_type(),
        location: &r.location,
        etag: network.then(|| r.etag()),
        managed_by,
    };
    // Serializing strings and maps of JSON values to a Vec cannot fail.
    let mut out = serde_json::to_vec(&view).unwrap_or_default();
    // The stored JSON is spliced in as text, not parsed: `out` is an object
    // with members (`name` always), so its last byte is the closing brace.
    out.pop();
    let member = |name: &str, value: &Compact, out: &mut Vec<u8>| {
        out.extend_from_slice(b",\"");
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b"\":");
        value.write(out);
    };
    if !r.tags.is_empty_object() {
        member("tags", &r.tags, &mut out);
    }
    if let Some(sku) = &r.sku {
        member("sku", sku, &mut out);
    }
    if let Some(zones) = &r.zones {
        member("zones", zones, &mut out);
    }
    out.extend_from_slice(b",\"properties\":");
    if !r.props.write_with(&mut out, &extra) {
        let merged = Merged {
            base: &r.props,
            extra,
        };
        // As above, writing JSON values to a Vec cannot fail.
        let _ = serde_json::to_writer(&mut out, &merged);
    }
    out.push(b'}');
    out
}
