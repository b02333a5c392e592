//! ARM's in-memory state: resource groups, resources and operations,
//! partitioned by subscription. State is derived lazily from timestamps: a
//! resource's `provisioningState` and an operation's `status` are computed
//! from when its last operation ends, so nothing runs in the background.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use serde_json::{Map, Value};
use time::OffsetDateTime;

use super::compact::Compact;

/// The resource kinds this mock serves under `/providers/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Kind {
    /// `Microsoft.Network/virtualNetworks`.
    VirtualNetwork,
    /// `Microsoft.Network/publicIPAddresses`.
    PublicIp,
    /// `Microsoft.Network/networkInterfaces`.
    NetworkInterface,
    /// `Microsoft.Compute/disks`.
    Disk,
    /// `Microsoft.Compute/virtualMachines`.
    VirtualMachine,
}

impl Kind {
    /// The kind for a `{namespace}/{type}` pair (case-insensitive).
    pub fn from_type(ns: &str, ty: &str) -> Option<Kind> {
        let net = ns.eq_ignore_ascii_case("Microsoft.Network");
        let comp = ns.eq_ignore_ascii_case("Microsoft.Compute");
        let t = |s: &str| ty.eq_ignore_ascii_case(s);
        match () {
            _ if net && t("virtualNetworks") => Some(Kind::VirtualNetwork),
            _ if net && t("publicIPAddresses") => Some(Kind::PublicIp),
            _ if net && t("networkInterfaces") => Some(Kind::NetworkInterface),
            _ if comp && t("disks") => Some(Kind::Disk),
            _ if comp && t("virtualMachines") => Some(Kind::VirtualMachine),
            _ => None,
        }
    }

    /// The provider namespace.
    pub fn namespace(self) -> &'static str {
        match self {
            Kind::VirtualNetwork | Kind::PublicIp | Kind::NetworkInterface => "Microsoft.Network",
            Kind::Disk | Kind::VirtualMachine => "Microsoft.Compute",
        }
    }

    /// The full ARM type (`Microsoft.Compute/virtualMachines`).
    pub fn arm_type(self) -> &'static str {
        match self {
            Kind::VirtualNetwork => "Microsoft.Network/virtualNetworks",
            Kind::PublicIp => "Microsoft.Network/publicIPAddresses",
            Kind::NetworkInterface => "Microsoft.Network/networkInterfaces",
            Kind::Disk => "Microsoft.Compute/disks",
            Kind::VirtualMachine => "Microsoft.Compute/virtualMachines",
        }
    }

    /// The kind name `/_mock/resources` lists.
    pub fn view_kind(self) -> &'static str {
        match self {
            Kind::VirtualNetwork => "virtualNetwork",
            Kind::PublicIp => "publicIPAddress",
            Kind::NetworkInterface => "networkInterface",
            Kind::Disk => "disk",
            Kind::VirtualMachine => "virtualMachine",
        }
    }

    /// `provisioningState` while a create or update runs: Network and Disk
    /// RPs report `Updating`, Compute VMs `Creating` on create.
    pub fn busy_state(self, op: OpKind) -> &'static str {
        match (self, op) {
            (_, OpKind::Delete) => "Deleting",
            (Kind::VirtualMachine, OpKind::Create) => "Creating",
            _ => "Updating",
        }
    }
}

/// A resource's key in its partition: kind, lowercased group and name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct ResKey {
    /// Kind.
    pub kind: Kind,
    /// Resource group, lowercased.
    pub rg: String,
    /// Name, lowercased.
    pub name: String,
}

impl ResKey {
    /// A key from names as sent (lowercased here).
    pub fn new(kind: Kind, rg: &str, name: &str) -> Self {
        ResKey {
            kind,
            rg: rg.to_ascii_lowercase(),
            name: name.to_ascii_lowercase(),
        }
    }
}

/// What an operation does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum OpKind {
    /// PUT of a new resource.
    Create,
    /// PUT of an existing resource.
    Update,
    /// DELETE.
    Delete,
}

/// An operation's failure.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct OpError {
    /// ARM error code.
    pub code: String,
    /// Message.
    pub message: String,
}

/// The last operation on a resource.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Op {
    /// Operation id (the last segment of its status URL).
    pub id: Arc<str>,
    /// What it does.
    pub kind: OpKind,
    /// When it ends.
    #[serde(with = "crate::snapshot::clock::at")]
    pub ends: Instant,
    /// Set when it ends Failed (boxed: most operations succeed, and a
    /// stored resource should not carry the room for two strings).
    pub failure: Option<Box<OpError>>,
}

impl Op {
    /// True while the operation runs.
    pub fn running(&self, now: Instant) -> bool {
        now < self.ends
    }
}

/// One subnet of a virtual network.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Subnet {
    /// Name as sent.
    pub name: String,
    /// Properties as sent (provisioningState is computed).
    pub props: Map<String, Value>,
    /// Next private address offset handed to a NIC.
    pub next_ip: u32,
}

/// A value the mock keeps but never shows: `Debug` prints its length only.
#[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct Hidden(pub String);

impl std::fmt::Debug for Hidden {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "<redacted, {} bytes>", self.0.len())
    }
}

/// Kind-specific links between resources. Back references (a NIC's VM, a
/// public IP's NIC, a disk's VM) are checked against the other side when
/// read, so a deleted VM frees its NICs without a sweep.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub enum Links {
    /// Virtual network: its subnets.
    Vnet {
        /// Subnets in order.
        subnets: Vec<Subnet>,
    },
    /// Public IP.
    Pip {
        /// The NIC whose ip configuration holds this address.
        nic: Option<ResKey>,
        /// The allocated address (`Static` at once, `Dynamic` when attached).
        address: String,
        /// `Static` allocation.
        is_static: bool,
    },
    /// Network interface.
    Nic {
        /// Referenced public IPs and whether each is deleted with the NIC's VM
        /// (`deleteOption: Delete`).
        pips: Vec<(ResKey, bool)>,
        /// The (virtual network, lowercased subnet name) of each ip configuration.
        subnets: Vec<(ResKey, String)>,
        /// The VM using this NIC.
        vm: Option<ResKey>,
        /// MAC address, set when first attached.
        mac: String,
    },
    /// Managed disk.
    Disk {
        /// The VM the disk is attached to.
        vm: Option<ResKey>,
    },
    /// Virtual machine.
    Vm {
        /// NICs, each with its `deleteOption: Delete`.
        nics: Vec<(ResKey, bool)>,
        /// Managed disks (OS disk first), each with its `deleteOption: Delete`.
        disks: Vec<(ResKey, bool)>,
        /// `osProfile.customData`, kept but never returned (as Azure does),
        /// nor shown by `Debug`.
        custom_data: Option<Hidden>,
        /// `userData`, returned only with `$expand=userData`.
        user_data: Option<Value>,
        /// `osProfile.computerName` or the VM name.
        computer_name: String,
        /// `hardwareProfile.vmSize` (empty when absent), kept typed because
        /// every listing of the mock's resources reads it.
        size: Box<str>,
        /// `priority` is `Spot` or `Low`.
        spot: bool,
    },
}

/// One ARM resource.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Resource {
    /// Kind.
    pub kind: Kind,
    /// Resource group as first sent.
    pub rg: String,
    /// Name as first sent.
    pub name: String,
    /// Full ARM id.
    pub id: String,
    /// Region.
    pub location: String,
    /// Tags (an object).
    #[serde(deserialize_with = "super::compact::object")]
    pub tags: Compact,
    /// `sku`, as sent.
    pub sku: Option<Compact>,
    /// `zones`, as sent.
    pub zones: Option<Compact>,
    /// Stored properties in response shape, an object (computed ones are
    /// added on read).
    #[serde(deserialize_with = "super::compact::object")]
    pub props: Compact,
    /// `resourceGuid` / `uniqueId` / `vmId`.
    pub guid: String,
    /// Creation time.
    pub created: OffsetDateTime,
    /// Last operation.
    pub op: Op,
    /// Reads that still answer 404 (the `not_found_reads` fault).
    pub not_found_reads: u32,
    /// Links to other resources.
    pub links: Links,
}

impl Resource {
    /// True unless a delete finished successfully.
    pub fn alive(&self, now: Instant) -> bool {
        !(self.op.kind == OpKind::Delete && !self.op.running(now) && self.op.failure.is_none())
    }

    /// The current `provisioningState`.
    pub fn state(&self, now: Instant) -> &'static str {
        if self.op.running(now) {
            self.kind.busy_state(self.op.kind)
        } else if self.op.failure.is_some() {
            "Failed"
        } else {
            "Succeeded"
        }
    }

    /// True while any operation runs.
    pub fn busy(&self, now: Instant) -> bool {
        self.op.running(now)
    }

    /// `etag` (Network resources carry one).
    pub fn etag(&self) -> String {
        format!("W/\"{}\"", self.guid)
    }
}

/// A resource group.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Group {
    /// Name as first sent.
    pub name: String,
    /// Region.
    pub location: String,
    /// Tags.
    pub tags: Map<String, Value>,
    /// Creation time.
    pub created: OffsetDateTime,
    /// Set while (or after) the group is being deleted: when the delete ends.
    #[serde(with = "crate::snapshot::clock::tagged_opt")]
    pub deleting: Option<(Arc<str>, Instant)>,
}

impl Group {
    /// True unless its delete has finished.
    pub fn alive(&self, now: Instant) -> bool {
        self.deleting.as_ref().is_none_or(|(_, t)| now < *t)
    }
}

/// What an operation status resource and a `Location` poll need.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct OpRecord {
    /// Kind of operation.
    pub kind: OpKind,
    /// The resource it acts on (`None` for a resource group delete).
    pub resource: Option<ResKey>,
    /// When it started (wall clock).
    pub started_wall: OffsetDateTime,
    /// When it started.
    #[serde(with = "crate::snapshot::clock::at")]
    pub started: Instant,
    /// When it ends.
    #[serde(with = "crate::snapshot::clock::at")]
    pub ends: Instant,
    /// Set when it ends Failed (boxed: most operations succeed, and a
    /// stored resource should not carry the room for two strings).
    pub failure: Option<Box<OpError>>,
}

/// The most operations a subscription remembers; older ones are forgotten
/// (their status URLs then answer 404), so memory stays bounded.
pub const MAX_OPERATIONS: usize = 20_000;

/// The most deleted resources a subscription keeps for lists that lag
/// behind deletes (see [`crate::consistency`]); older ones are forgotten.
pub const MAX_DELETED: usize = 1_000;

/// One subscription's state.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct Partition {
    /// Subscription id as first sent.
    pub subscription: String,
    /// Resource groups by lowercased name.
    pub groups: HashMap<String, Group>,
    /// Resources, boxed: the table then holds a pointer per slot, not a
    /// whole resource, so its growth (doubling) stays small.
    #[serde(with = "crate::snapshot::clock::pairs")]
    pub resources: HashMap<ResKey, Box<Resource>>,
    /// Operations by id.
    pub ops: HashMap<Arc<str>, OpRecord>,
    /// Operation ids, oldest first.
    pub op_order: VecDeque<Arc<str>>,
    /// Counter for public addresses.
    pub next_public_ip: u32,
    /// Spot evictions given notice, by VM.
    #[serde(with = "crate::snapshot::clock::pairs")]
    pub evictions: HashMap<ResKey, super::spot::Eviction>,
    /// Out-of-band power changes (`/_mock/resources/{id}/actions`), by VM.
    #[serde(with = "crate::snapshot::clock::pairs")]
    pub power: HashMap<ResKey, super::out_of_band::PowerChange>,
    /// Resources whose delete finished and that a read has since dropped,
    /// oldest first (at most [`MAX_DELETED`]), for lists that lag.
    pub deleted: VecDeque<Box<Resource>>,
}

impl Partition {
    /// The live group named `rg` (a finished delete removes it).
    pub fn group(&mut self, rg: &str, now: Instant) -> Option<&mut Group> {
        let key = rg.to_ascii_lowercase();
        if self.groups.get(&key).is_some_and(|g| !g.alive(now)) {
            self.groups.remove(&key);
            return None;
        }
        self.groups.get_mut(&key)
    }

    /// The live resource at `key` (a finished delete removes it).
    pub fn live(&mut self, key: &ResKey, now: Instant) -> Option<&mut Resource> {
        if self.resources.get(key).is_some_and(|r| !r.alive(now)) {
            if let Some(gone) = self.resources.remove(key) {
                self.deleted.push_back(gone);
                while self.deleted.len() > MAX_DELETED {
                    self.deleted.pop_front();
                }
            }
            return None;
        }
        self.resources.get_mut(key).map(|r| &mut **r)
    }

    /// Like [`Partition::live`] without removing anything.
    pub fn peek(&self, key: &ResKey, now: Instant) -> Option<&Resource> {
        self.resources
            .get(key)
            .map(|r| &**r)
            .filter(|r| r.alive(now))
    }

    /// Records an operation, forgetting the oldest beyond [`MAX_OPERATIONS`].
    pub fn record_op(&mut self, id: Arc<str>, rec: OpRecord) {
        self.ops.insert(id.clone(), rec);
        self.op_order.push_back(id);
        while self.op_order.len() > MAX_OPERATIONS {
            if let Some(old) = self.op_order.pop_front() {
                self.ops.remove(&old);
            }
        }
    }
}

/// All subscriptions.
#[derive(Default)]
pub struct Store {
    parts: RwLock<HashMap<String, Arc<Mutex<Partition>>>>,
}

impl Store {
    /// The partition for `subscription` (case-insensitive), made on first use.
    pub fn partition(&self, subscription: &str) -> Arc<Mutex<Partition>> {
        let key = subscription.to_ascii_lowercase();
        if let Some(p) = self
            .parts
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
        {
            return p.clone();
        }
        let mut w = self.parts.write().unwrap_or_else(|e| e.into_inner());
        w.entry(key)
            .or_insert_with(|| {
                Arc::new(Mutex::new(Partition {
                    subscription: subscription.to_string(),
                    ..Partition::default()
                }))
            })
            .clone()
    }

    /// The partition for `subscription`, if it exists (reads never make one,
    /// so requests to random subscriptions cannot grow the store).
    pub fn existing(&self, subscription: &str) -> Option<Arc<Mutex<Partition>>> {
        self.parts
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&subscription.to_ascii_lowercase())
            .cloned()
    }

    /// Every partition.
    pub fn all(&self) -> Vec<Arc<Mutex<Partition>>> {
        self.parts
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// Replaces every partition at once (a snapshot restore).
    pub fn replace_all(&self, parts: Vec<Partition>) {
        let map = parts
            .into_iter()
            .map(|p| (p.subscription.to_ascii_lowercase(), Arc::new(Mutex::new(p))))
            .collect();
        *self.parts.write().unwrap_or_else(|e| e.into_inner()) = map;
    }

    /// Drops one subscription's state, or all.
    pub fn reset(&self, subscription: Option<&str>) {
        let mut w = self.parts.write().unwrap_or_else(|e| e.into_inner());
        match subscription {
            Some(s) => {
                w.remove(&s.to_ascii_lowercase());
            }
            None => w.clear(),
        }
    }
}

/// ARM's timestamp format: `2025-01-01T00:00:00.0000000+00:00`.
pub fn timestamp(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:07}+00:00",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.nanosecond() / 100
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn custom_data_stays_out_of_debug_output() {
        let links = Links::Vm {
            nics: Vec::new(),
            disks: Vec::new(),
            custom_data: Some(Hidden("c2VjcmV0LXRva2Vu".into())),
            user_data: None,
            computer_name: "vm".into(),
            size: "Standard_D2s_v5".into(),
            spot: false,
        };
        let shown = format!("{links:?}");
        assert!(!shown.contains("c2VjcmV0LXRva2Vu"), "{shown}");
        assert!(shown.contains("<redacted, 16 bytes>"), "{shown}");
        let json = serde_json::to_value(&links).unwrap();
        assert_eq!(json["Vm"]["custom_data"], "c2VjcmV0LXRva2Vu");
    }

    #[test]
    fn timestamps_have_seven_fraction_digits() {
        let t = time::macros::datetime!(2025-01-02 03:04:05.123456789 UTC);
        assert_eq!(timestamp(t), "2025-01-02T03:04:05.1234567+00:00");
    }
}
