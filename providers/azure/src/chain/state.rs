//! The chain's persisted state: the resources in creation order, the
//! teardown in deletion order, and a failure, all in the worker's provider
//! state.
//!
//! The JSON layout is the one the chain has always written (version
//! [`STATE_VERSION`]): creation items as `{ty, name, created, op}`, teardown
//! items as `{ty, name, gone, op, retry_at}`. In memory both are one
//! [`Item`], moved forward by the same code whichever way the chain runs.

use serde::{Deserialize, Serialize};
use skyfleet_core::{Error, Failure, Result, Worker};
use time::OffsetDateTime;

use crate::client::{ArmOperation, ResourceType};
use crate::idempotency::Names;
use crate::launch::AzureLaunch;

/// The version of the persisted state layout.
pub const STATE_VERSION: u32 = 1;

/// One resource of the chain, to create or to delete.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    /// Its type.
    pub ty: ResourceType,
    /// Its name.
    pub name: String,
    /// Whether it is confirmed created (creation) or gone (teardown).
    pub done: bool,
    /// The create or delete operation in flight.
    pub op: Option<ArmOperation>,
    /// Not before this time (a delete after a "busy" answer).
    pub retry_at: Option<OffsetDateTime>,
}

impl Item {
    fn new(ty: ResourceType, name: &str) -> Self {
        Item {
            ty,
            name: name.to_string(),
            done: false,
            op: None,
            retry_at: None,
        }
    }
}

/// The order of creation: public IP -> NIC -> data disks -> (explicit OS
/// disk) -> VM.
fn creation_order(names: &Names, explicit_os_disk: bool) -> Vec<Item> {
    let mut items = Vec::new();
    if let Some(pip) = &names.public_ip {
        items.push(Item::new(ResourceType::PublicIp, pip));
    }
    items.push(Item::new(ResourceType::Nic, &names.nic));
    for d in &names.data_disks {
        items.push(Item::new(ResourceType::Disk, d));
    }
    if explicit_os_disk {
        items.push(Item::new(ResourceType::Disk, &names.os_disk));
    }
    items.push(Item::new(ResourceType::Vm, &names.vm));
    items
}

/// The order of deletion, the reverse of dependency: VM -> NIC -> public IP
/// -> data disks -> OS disk, keeping those for which `may_exist` holds.
fn teardown_order(names: &Names, may_exist: impl Fn(ResourceType, &str) -> bool) -> Vec<Item> {
    let mut candidates = vec![(ResourceType::Vm, names.vm.as_str())];
    candidates.push((ResourceType::Nic, &names.nic));
    if let Some(pip) = &names.public_ip {
        candidates.push((ResourceType::PublicIp, pip));
    }
    for d in &names.data_disks {
        candidates.push((ResourceType::Disk, d));
    }
    candidates.push((ResourceType::Disk, &names.os_disk));
    candidates
        .into_iter()
        .filter(|(ty, name)| may_exist(*ty, name))
        .map(|(ty, name)| Item::new(ty, name))
        .collect()
}

/// The teardown plan and its progress.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Teardown {
    /// Why.
    pub reason: String,
    /// What to delete, in order.
    #[serde(with = "wire::targets")]
    pub targets: Vec<Item>,
    /// The VM was created with every dependent `deleteOption: Delete`: its
    /// delete removes everything.
    pub cascade: bool,
}

impl Teardown {
    /// Marks item `idx` gone. `observed` is true when its delete operation
    /// was seen to succeed: only then are the VM's dependents known to have
    /// gone with it (a 404 may mean someone else deleted the VM, without
    /// them).
    pub fn mark_gone(&mut self, idx: usize, observed: bool) {
        let cascade = observed && self.cascade && self.targets[idx].ty == ResourceType::Vm;
        for (i, t) in self.targets.iter_mut().enumerate() {
            if i == idx || cascade {
                t.done = true;
                t.op = None;
            }
        }
    }
}

/// The Azure provider's state on a worker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChainState {
    /// Layout version.
    pub v: u32,
    /// The resource group.
    pub resource_group: String,
    /// The region.
    pub location: String,
    /// Every name, derived from the worker id.
    pub names: Names,
    /// Dependents are created with `deleteOption: Delete`.
    pub cascade: bool,
    /// The creation chain, in order (the VM last).
    #[serde(with = "wire::links")]
    pub create: Vec<Item>,
    /// The teardown, once begun.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub teardown: Option<Teardown>,
    /// The implicit OS disk (made by the VM from its image) carries the
    /// ownership tags, PATCHed on once the VM exists. False in states
    /// written before this field: a worker already running then keeps an
    /// untagged disk.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub os_disk_tagged: bool,
    /// Consecutive instance-view 404s of an existing VM.
    #[serde(default)]
    pub instance_view_404s: u32,
    /// Why the worker failed, if it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<Failure>,
}

impl ChainState {
    /// The initial state of a worker: names and the chain to create.
    pub fn new(worker_id: &str, launch: &AzureLaunch, resource_group: String) -> Self {
        let names = Names::derive(
            &launch.name_prefix,
            worker_id,
            launch.public_ip,
            launch.data_disks.len(),
        );
        ChainState {
            v: STATE_VERSION,
            resource_group,
            location: launch.location().to_string(),
            cascade: launch.delete_with_vm,
            create: creation_order(&names, launch.os_disk.explicit),
            names,
            teardown: None,
            os_disk_tagged: false,
            instance_view_404s: 0,
            failure: None,
        }
    }

    /// Parses a worker's state (`None` before the first step).
    pub fn from_worker(worker: &Worker) -> Result<Option<Self>> {
        if worker.provider_state.is_null() {
            return Ok(None);
        }
        serde_json::from_value(worker.provider_state.clone())
            .map(Some)
            .map_err(|e| {
                Error::internal(format!(
                    "worker {}: unreadable Azure provider state: {e}",
                    worker.id()
                ))
                .with_code("InvalidProviderState")
                .with_provider("azure")
            })
    }

    /// Starts the teardown of whatever may exist. The first unconfirmed
    /// resource may exist; so may the one after it, because a step whose
    /// answer was lost may have confirmed the first and PUT the next. Later
    /// ones were never requested.
    pub fn begin_teardown(&mut self, reason: impl Into<String>) {
        if self.teardown.is_some() {
            return;
        }
        let frontier = self
            .create
            .iter()
            .position(|l| !l.done)
            .unwrap_or(self.create.len());
        let requested = |ty: ResourceType, name: &str| {
            self.create
                .iter()
                .position(|l| l.ty == ty && l.name == name)
                .is_some_and(|i| i <= frontier + 1)
        };
        let n = &self.names;
        let explicit_os = self
            .create
            .iter()
            .any(|l| l.ty == ResourceType::Disk && l.name == n.os_disk);
        // An implicit OS disk exists once its VM may.
        let may_exist = |ty: ResourceType, name: &str| {
            if ty == ResourceType::Disk && name == n.os_disk && !explicit_os {
                requested(ResourceType::Vm, &n.vm)
            } else {
                requested(ty, name)
            }
        };
        let targets = teardown_order(n, may_exist);
        let vm_created = self
            .create
            .last()
            .is_some_and(|l| l.ty == ResourceType::Vm && l.done);
        for l in &mut self.create {
            l.op = None;
        }
        self.teardown = Some(Teardown {
            reason: reason.into(),
            targets,
            cascade: self.cascade && vm_created,
        });
    }

    /// Records `e` (the first failure wins) and starts the teardown.
    pub fn fail(&mut self, e: &Error) {
        if self.failure.is_none() {
            self.failure = Some(Failure::from(e));
        }
        self.begin_teardown(format!("failure: {}", e.message()));
    }
}

/// The persisted shapes of [`Item`]: `created` for creation, `gone` and
/// `retry_at` for teardown.
mod wire {
    use super::*;

    #[derive(Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Link {
        ty: ResourceType,
        name: String,
        #[serde(default)]
        created: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        op: Option<ArmOperation>,
    }

    #[derive(Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Target {
        ty: ResourceType,
        name: String,
        #[serde(default)]
        gone: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        op: Option<ArmOperation>,
        #[serde(
            default,
            with = "time::serde::rfc3339::option",
            skip_serializing_if = "Option::is_none"
        )]
        retry_at: Option<OffsetDateTime>,
    }

    pub(super) mod links {
        use super::*;
        use serde::{Deserializer, Serializer};

        pub fn serialize<S: Serializer>(items: &[Item], s: S) -> Result<S::Ok, S::Error> {
            s.collect_seq(items.iter().map(|i| Link {
                ty: i.ty,
                name: i.name.clone(),
                created: i.done,
                op: i.op.clone(),
            }))
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Item>, D::Error> {
            let links = Vec::<Link>::deserialize(d)?;
            Ok(links
                .into_iter()
                .map(|l| Item {
                    ty: l.ty,
                    name: l.name,
                    done: l.created,
                    op: l.op,
                    retry_at: None,
                })
                .collect())
        }
    }

    pub(super) mod targets {
        use super::*;
        use serde::{Deserializer, Serializer};

        pub fn serialize<S: Serializer>(items: &[Item], s: S) -> Result<S::Ok, S::Error> {
            s.collect_seq(items.iter().map(|i| Target {
                ty: i.ty,
                name: i.name.clone(),
                gone: i.done,
                op: i.op.clone(),
                retry_at: i.retry_at,
            }))
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Item>, D::Error> {
            let targets = Vec::<Target>::deserialize(d)?;
            Ok(targets
                .into_iter()
                .map(|t| Item {
                    ty: t.ty,
                    name: t.name,
                    done: t.gone,
                    op: t.op,
                    retry_at: t.retry_at,
                })
                .collect())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every state of the fixture (written before the chain became a
    /// folder) reads, and writes back byte for byte the same JSON.
    #[test]
    fn fixture_states_round_trip_unchanged() {
        let entries: Vec<serde_json::Value> =
            serde_json::from_str(include_str!("../../tests/fixtures/chain_states.json")).unwrap();
        assert!(entries.len() >= 30);
        for e in entries {
            let st: ChainState = serde_json::from_value(e["state"].clone())
                .unwrap_or_else(|err| panic!("{}: {err}", e["label"]));
            assert_eq!(
                serde_json::to_value(&st).unwrap(),
                e["state"],
                "{}",
                e["label"]
            );
        }
    }

    #[test]
    fn teardown_of_a_half_created_chain() {
        let launch = AzureLaunch::parse(&serde_json::json!({
            "location": "eastus", "vm_size": "Standard_D2s_v5", "public_ip": true,
            "data_disks": [{"size_gb": 8}, {"size_gb": 8}],
            "subnet_id": "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/virtualNetworks/v/subnets/d",
        }))
        .unwrap();
        let mut st = ChainState::new("w", &launch, "rg".into());
        let order: Vec<_> = st.create.iter().map(|i| i.name.as_str()).collect();
        assert_eq!(
            order,
            ["sf-w-pip", "sf-w-nic", "sf-w-d0", "sf-w-d1", "sf-w-vm"]
        );
        st.create[0].done = true;
        st.begin_teardown("test");
        let td = st.teardown.unwrap();
        // The public IP is created, the NIC may be, the first disk may have
        // been PUT by a lost step; nothing later was ever requested.
        let names: Vec<_> = td.targets.iter().map(|i| i.name.as_str()).collect();
        assert_eq!(names, ["sf-w-nic", "sf-w-pip", "sf-w-d0"]);
        assert!(!td.cascade);
    }
}
