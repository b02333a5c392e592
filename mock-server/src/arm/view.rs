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
    pub base: &'a Map<String, Value>,
    /// Computed properties (they win over stored keys of the same name).
    pub extra: Vec<(&'static str, Value)>,
}

impl Serialize for Merged<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        for (k, v) in self.base {
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

fn no_tags(m: &&Compact) -> bool {
    m.is_empty_object()
}

#[derive(Serialize)]
struct View<'a> {
    name: &'a str,
    id: &'a str,
    #[serde(rename = "type")]
    ty: &'static str,
    location: &'a str,
    #[serde(skip_serializing_if = "no_tags")]
    tags: &'a Compact,
    #[serde(skip_serializing_if = "Option::is_none")]
    etag: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sku: Option<&'a Compact>,
    #[serde(skip_serializing_if = "Option::is_none")]
    zones: Option<&'a Compact>,
    #[serde(rename = "managedBy", skip_serializing_if = "Option::is_none")]
    managed_by: Option<String>,
    properties: Merged<'a>,
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
    let base = r.props.map();
    let view = View {
        name: &r.name,
        id: &r.id,
        ty: r.kind.arm_type(),
        location: &r.location,
        tags: &r.tags,
        etag: network.then(|| r.etag()),
        sku: r.sku.as_ref(),
        zones: r.zones.as_ref(),
        managed_by,
        properties: Merged {
            base: &base,
            extra,
        },
    };
    // Serializing maps of JSON values to a Vec cannot fail.
    serde_json::to_vec(&view).unwrap_or_default()
}
