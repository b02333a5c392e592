//! A shared power-state snapshot of the subscription's VMs, so that the
//! health checks of many running workers cost a few list calls instead of
//! one instance-view GET each.
//!
//! One snapshot is one subscription-wide `VirtualMachines_ListAll` with
//! `statusOnly=true` (every page), which carries each VM's instance-view
//! statuses. It keeps the VMs carrying skyfleet's ownership tags
//! (`skyfleet-manager` and `skyfleet-provider`), keyed by (resource group,
//! VM name), both lowercased (ARM names are case-insensitive), with those
//! tags: a worker only trusts a VM tagged with its own.
//!
//! # Why 15 s
//!
//! A listing of V VMs costs ceil(V/100) calls (ARM pages by 100 in
//! practice) and answers every check due while it is younger than
//! `max_age`. With V workers checked every `interval`, V * max_age /
//! interval checks fall in one snapshot's life, so the calls per check are
//! about (V/100) / (V * max_age / interval) = interval / (100 * max_age):
//! 30 / 1500 = 0.02 at a 30 s interval and 15 s (0.04 at the 60 s default
//! interval; the calls per second, V / (100 * max_age), do not depend on
//! the interval). A VM deleted or stopped out of band is still noticed within
//! interval + max_age (45 s at 30 s), as the next check after the snapshot
//! that no longer shows it running falls back to its own GET.
//!
//! # Only good news
//!
//! A snapshot only ever says "healthy": a VM listed with
//! `PowerState/running` (or `starting`), no `ProvisioningState/failed/...`
//! and not `deleting`, tagged for the worker's manager. Anything else (not
//! listed, because it was created after the listing or is gone; stopped;
//! deallocated; failed) is checked with the VM's own instance view GET, the
//! authoritative answer with its 404 tolerance. So a snapshot never declares
//! a worker gone. A listing that fails (an error, throttling, a garbled
//! page) is not stored: that batch's checks each make their own GET.
//!
//! One refresh runs at a time: concurrent batches wait on the same lock and
//! then share the listing its holder made.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use http::Method;
use serde_json::Value;
use skyfleet_core::clock::Clock;
use skyfleet_core::model::tag;
use skyfleet_core::provider::support::{self, Page};
use skyfleet_core::transport::ApiClass;
use skyfleet_core::Result;
use time::OffsetDateTime;
use tokio::sync::Mutex;

use crate::client::{garbled, ArmAnswer, ArmClient};

/// The operation of the listing, for metrics and errors.
const OP: &str = "VirtualMachines_ListAll";

/// The default `max_age` (see the module doc for the numbers).
pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(15);

/// One listed VM of ours.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Listed {
    /// Its `skyfleet-manager` tag.
    manager: String,
    /// Its `skyfleet-provider` tag.
    provider: String,
    /// Running or starting, not failed, not being deleted.
    healthy: bool,
}

/// The VMs of one listing.
#[derive(Debug, Default)]
pub(crate) struct Snapshot {
    vms: HashMap<(String, String), Listed>,
}

impl Snapshot {
    /// True when the listing showed VM `vm` of `rg`, tagged for `manager`
    /// and `provider`, running: its health check needs no call.
    pub fn healthy(&self, rg: &str, vm: &str, manager: &str, provider: &str) -> bool {
        let key = (rg.to_ascii_lowercase(), vm.to_ascii_lowercase());
        self.vms
            .get(&key)
            .is_some_and(|l| l.healthy && l.manager == manager && l.provider == provider)
    }

    /// VMs of ours listed.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.vms.len()
    }

    /// The snapshot of the listed `items`, keeping those with ownership
    /// tags.
    fn from_items(items: &[Value]) -> Snapshot {
        let mut vms = HashMap::new();
        for v in items {
            let tags = v.get("tags");
            let tag_of = |k: &str| tags.and_then(|t| t.get(k)).and_then(Value::as_str);
            let (Some(manager), Some(provider), Some(name), Some(rg)) = (
                tag_of(tag::MANAGER),
                tag_of(tag::PROVIDER),
                v.get("name").and_then(Value::as_str),
                v.get("id").and_then(Value::as_str).and_then(resource_group),
            ) else {
                continue;
            };
            let statuses = v
                .get("properties")
                .and_then(|p| p.get("instanceView"))
                .and_then(|iv| iv.get("statuses"))
                .and_then(Value::as_array);
            let healthy = statuses.is_some_and(|s| running(s));
            vms.insert(
                (rg.to_ascii_lowercase(), name.to_ascii_lowercase()),
                Listed {
                    manager: manager.to_string(),
                    provider: provider.to_string(),
                    healthy,
                },
            );
        }
        Snapshot { vms }
    }
}

/// The resource group of an ARM id
/// (`/subscriptions/{s}/resourceGroups/{rg}/...`).
fn resource_group(id: &str) -> Option<&str> {
    let mut segs = id.split('/');
    while let Some(s) = segs.next() {
        if s.eq_ignore_ascii_case("resourceGroups") {
            return segs.next().filter(|rg| !rg.is_empty());
        }
    }
    None
}

/// Good news only: a `PowerState/running` or `starting`, and no
/// provisioning status that is failed or deleting.
fn running(statuses: &[Value]) -> bool {
    let codes = statuses
        .iter()
        .filter_map(|s| s.get("code").and_then(Value::as_str))
        .map(str::to_ascii_lowercase);
    let mut up = false;
    for c in codes {
        if c.starts_with("provisioningstate/failed") || c == "provisioningstate/deleting" {
            return false;
        }
        up |= c == "powerstate/running" || c == "powerstate/starting";
    }
    up
}

/// The shared snapshot and its refresh (see the module doc).
#[derive(Debug)]
pub(crate) struct PowerStates {
    max_age: Duration,
    cell: Mutex<Option<(OffsetDateTime, Arc<Snapshot>)>>,
}

impl PowerStates {
    /// Snapshots younger than `max_age` are shared; zero disables them.
    pub fn new(max_age: Duration) -> Self {
        PowerStates {
            max_age,
            cell: Mutex::new(None),
        }
    }

    /// False when `max_age` is zero: every check makes its own GET.
    pub fn enabled(&self) -> bool {
        !self.max_age.is_zero()
    }

    /// The snapshot, listed anew when the last one is `max_age` old (or
    /// dated in the future: a clock set back). A failed listing is not
    /// stored.
    pub async fn current(&self, client: &ArmClient, clock: &dyn Clock) -> Result<Arc<Snapshot>> {
        // Held across the listing: one refresh at a time, and the batches
        // that waited for it share its result.
        let mut cell = self.cell.lock().await;
        let now = clock.now();
        if let Some((at, snap)) = cell.as_ref() {
            let age = now - *at;
            if !age.is_negative() && age < self.max_age {
                return Ok(snap.clone());
            }
        }
        let items = list(client).await?;
        let snap = Arc::new(Snapshot::from_items(&items));
        tracing::debug!(
            listed = items.len(),
            ours = snap.vms.len(),
            "azure power-state snapshot"
        );
        // Dated when the listing began: its oldest page is that old.
        *cell = Some((now, snap.clone()));
        Ok(snap)
    }
}

/// Every page of the subscription's VM list with statuses.
async fn list(client: &ArmClient) -> Result<Vec<Value>> {
    let first = client.vm_status_list_url();
    support::paginate(OP, |next: Option<String>| {
        let url = next.unwrap_or_else(|| first.clone());
        async move {
            // The bearer token goes to the configured endpoint only.
            client.check_url(&url)?;
            let resp = client
                .request(Method::GET, &url)
                .class(ApiClass::Read)
                .operation(OP)
                .send()
                .await?;
            if !resp.is_success() {
                return Err(resp.error(OP));
            }
            let body: Value = resp.arm_json(OP)?;
            let items = body
                .get("value")
                .and_then(Value::as_array)
                .ok_or_else(|| garbled(OP, resp.status, "list without `value`"))?
                .clone();
            let next = match body.get("nextLink") {
                None | Some(Value::Null) => None,
                Some(Value::String(n)) if n.is_empty() => None,
                Some(Value::String(n)) => Some(n.clone()),
                Some(_) => return Err(garbled(OP, resp.status, "`nextLink` is not a string")),
            };
            Ok(Page { items, next })
        }
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn vm(rg: &str, name: &str, provider: &str, codes: &[&str]) -> Value {
        json!({
            "id": format!("/subscriptions/s/resourceGroups/{rg}/providers/Microsoft.Compute/virtualMachines/{name}"),
            "name": name,
            "tags": {"skyfleet-manager": "m1", "skyfleet-provider": provider},
            "properties": {"instanceView": {"statuses":
                codes.iter().map(|c| json!({"code": c})).collect::<Vec<_>>()}}
        })
    }

    #[test]
    fn only_good_news_of_our_vms() {
        let ok = ["ProvisioningState/succeeded", "PowerState/running"];
        let items = vec![
            vm("Workers", "VM-1", "azure", &ok),
            vm(
                "workers",
                "vm-2",
                "azure",
                &["ProvisioningState/creating", "PowerState/starting"],
            ),
            vm(
                "workers",
                "vm-3",
                "azure",
                &["ProvisioningState/succeeded", "PowerState/deallocated"],
            ),
            vm(
                "workers",
                "vm-4",
                "azure",
                &["ProvisioningState/failed/X", "PowerState/running"],
            ),
            vm(
                "workers",
                "vm-5",
                "azure",
                &["ProvisioningState/deleting", "PowerState/running"],
            ),
            vm("workers", "vm-6", "other", &ok),
            vm("workers", "vm-7", "azure", &["ProvisioningState/succeeded"]),
            json!({"name": "vm-8", "tags": {"skyfleet-provider": "azure"}}),
        ];
        let s = Snapshot::from_items(&items);
        assert_eq!(s.len(), 7, "vm-8 has no id or manager");
        let ok = |rg: &str, n: &str| s.healthy(rg, n, "m1", "azure");
        assert!(ok("workers", "vm-1"), "names are case-insensitive");
        assert!(
            !s.healthy("workers", "vm-1", "m2", "azure"),
            "another manager's VM"
        );
        assert!(
            !s.healthy("workers", "vm-6", "m1", "azure"),
            "another provider's VM"
        );
        assert!(s.healthy("workers", "vm-6", "m1", "other"));
        assert!(ok("WORKERS", "vm-2"));
        for n in ["vm-3", "vm-4", "vm-5", "vm-7", "vm-8", "vm-9"] {
            assert!(!ok("workers", n), "{n}");
        }
    }

    #[test]
    fn resource_groups_of_ids() {
        assert_eq!(
            resource_group("/subscriptions/s/resourcegroups/rg-1/providers/x/y/z"),
            Some("rg-1")
        );
        assert_eq!(resource_group("/subscriptions/s/resourceGroups/"), None);
        assert_eq!(resource_group("/subscriptions/s"), None);
    }
}
