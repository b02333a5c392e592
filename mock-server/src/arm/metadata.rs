//! What the metadata service reads about a VM: [`Arm::imds_vm`] finds a VM
//! by its `vmId` across subscriptions and takes a snapshot of what Azure's
//! instance metadata serves.

use std::time::Instant;

use serde_json::{Map, Value};

use super::store::{Kind, Links, Partition, Resource};
use super::Arm;
use crate::imds::facts::AzureVm;

impl Arm {
    /// The VM whose `vmId` is `vm_id` (any case): `None` unless it exists
    /// and is not being deleted or failed (Azure VMs have no stopped state
    /// in this mock).
    pub fn imds_vm(&self, vm_id: &str) -> Option<AzureVm> {
        let now = Instant::now();
        for part in self.store.all() {
            let mut part = part.lock().unwrap_or_else(|e| e.into_inner());
            super::spot::apply_evictions(&mut part, now);
            let found = part
                .resources
                .values()
                .find(|r| r.kind == Kind::VirtualMachine && r.guid.eq_ignore_ascii_case(vm_id));
            let Some(vm) = found else {
                continue;
            };
            let running = vm.alive(now)
                && matches!(vm.state(now), "Creating" | "Updating" | "Succeeded")
                && !super::spot::deallocated(&part, vm, now)
                && super::out_of_band::power_state(&part, vm, now)
                    .is_none_or(|(code, _)| code == "running");
            return running.then(|| facts(&part, vm, now));
        }
        None
    }
}

fn text(v: Option<&Value>) -> String {
    match v {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

fn at<'a>(props: &'a Map<String, Value>, path: &[&str]) -> Option<&'a Value> {
    let (first, rest) = path.split_first()?;
    rest.iter().try_fold(props.get(*first)?, |v, k| v.get(k))
}

fn facts(part: &Partition, vm: &Resource, now: Instant) -> AzureVm {
    let p = &vm.props.map();
    let image = |k: &str| text(at(p, &["storageProfile", "imageReference", k]));
    let (computer_name, user_data, nic_keys) = match &vm.links {
        Links::Vm {
            computer_name,
            user_data,
            nics,
            ..
        } => (
            computer_name.clone(),
            user_data
                .as_ref()
                .and_then(Value::as_str)
                .map(str::to_string),
            nics.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>(),
        ),
        _ => (vm.name.clone(), None, Vec::new()),
    };
    let nics = nic_keys
        .iter()
        .filter_map(|k| part.peek(k, now))
        .map(|nic| {
            let ips = nic
                .props
                .at(&["ipConfigurations"])
                .as_ref()
                .and_then(Value::as_array)
                .map(|cfgs| {
                    cfgs.iter()
                        .filter_map(|c| c.get("properties")?.get("privateIPAddress")?.as_str())
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default();
            let mac = match &nic.links {
                Links::Nic { mac, .. } => mac.replace('-', ""),
                _ => String::new(),
            };
            (ips, mac)
        })
        .collect();
    let os_type = match text(at(p, &["storageProfile", "osDisk", "osType"])) {
        t if t.is_empty() => "Linux".to_string(),
        t => t,
    };
    AzureVm {
        subscription: part.subscription.clone(),
        resource_group: vm.rg.clone(),
        name: vm.name.clone(),
        resource_id: vm.id.clone(),
        vm_id: vm.guid.clone(),
        location: vm.location.clone(),
        vm_size: text(at(p, &["hardwareProfile", "vmSize"])),
        computer_name,
        os_type,
        image: [
            image("publisher"),
            image("offer"),
            image("sku"),
            image("version"),
        ],
        // The marketplace plan is not kept by this mock.
        plan: Default::default(),
        license_type: text(p.get("licenseType")),
        priority: text(p.get("priority")),
        scheduled_events: super::spot::scheduled_events(part, vm, now),
        zone: vm
            .zones
            .as_ref()
            .and_then(|z| z.value().get(0).map(|z| text(Some(z))))
            .unwrap_or_default(),
        tags: vm
            .tags
            .map()
            .iter()
            .map(|(k, v)| (k.clone(), text(Some(v))))
            .collect(),
        user_data,
        nics,
    }
}
