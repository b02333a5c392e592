//! The per-launch-config parameters of a worker ([`AzureLaunch`]): a plain
//! serde document checked up front by [`AzureLaunch::parse`], which names
//! the offending field in an
//! [`ErrorKind::InvalidConfig`](skyfleet_core::ErrorKind::InvalidConfig)
//! error, so a bad pool definition is refused before anything is created.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use skyfleet_core::offering::CapacityType;
use skyfleet_core::provider::bootstrap::Bootstrap;
use skyfleet_core::{Error, Result, WorkerSpec};

use crate::idempotency as naming;

/// The largest `userData` ARM accepts: 64 KB of base64.
pub const MAX_USER_DATA: usize = 64 * 1024;

/// A marketplace image, or an image by ARM id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged, deny_unknown_fields)]
pub enum ImageRef {
    /// A custom or gallery image by id.
    Id {
        /// The ARM id of the image.
        id: String,
    },
    /// A marketplace image.
    Marketplace {
        /// Publisher (`Canonical`).
        publisher: String,
        /// Offer (`0001-com-ubuntu-server-jammy`).
        offer: String,
        /// SKU (`22_04-lts-gen2`).
        sku: String,
        /// Version (`latest`).
        #[serde(default = "ImageRef::latest")]
        version: String,
    },
}

impl ImageRef {
    fn latest() -> String {
        "latest".into()
    }

    pub(crate) fn to_json(&self) -> serde_json::Value {
        match self {
            ImageRef::Id { id } => serde_json::json!({ "id": id }),
            ImageRef::Marketplace {
                publisher,
                offer,
                sku,
                version,
            } => serde_json::json!({
                "publisher": publisher, "offer": offer, "sku": sku, "version": version
            }),
        }
    }
}

impl ImageRef {
    /// The image as a disk's `creationData.imageReference.id`: the image id,
    /// or the platform image path of a marketplace image in `location`.
    pub(crate) fn disk_image_id(&self, subscription: &str, location: &str) -> String {
        match self {
            ImageRef::Id { id } => id.clone(),
            ImageRef::Marketplace {
                publisher,
                offer,
                sku,
                version,
            } => format!(
                "/Subscriptions/{subscription}/Providers/Microsoft.Compute/Locations/{location}\
                 /Publishers/{publisher}/ArtifactTypes/VMImage/Offers/{offer}/Skus/{sku}/Versions/{version}"
            ),
        }
    }
}

impl Default for ImageRef {
    /// Ubuntu 22.04 LTS (gen2).
    fn default() -> Self {
        ImageRef::Marketplace {
            publisher: "Canonical".into(),
            offer: "0001-com-ubuntu-server-jammy".into(),
            sku: "22_04-lts-gen2".into(),
            version: "latest".into(),
        }
    }
}

/// The OS disk: created implicitly with the VM from its image (default), or
/// explicitly, as its own resource, before the VM (`explicit: true`).
///
/// An explicit OS disk is created from the image by a disk PUT and attached
/// to the VM (`createOption: Attach`); ARM then takes no `osProfile`, so the
/// custom data is sent as the VM's `userData`, and the image must be a
/// marketplace image with a concrete version, or an image id.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OsDisk {
    /// Create the OS disk as its own resource before the VM.
    #[serde(default)]
    pub explicit: bool,
    /// Size in GiB (the image's size when unset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size_gb: Option<u32>,
    /// Storage SKU (`Premium_LRS`, `StandardSSD_LRS`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sku: Option<String>,
}

/// One data disk, created explicitly before the VM and attached to it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataDisk {
    /// Size in GiB (1 to 32767).
    pub size_gb: u32,
    /// Storage SKU (default `Standard_LRS`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sku: Option<String>,
}

/// The Azure launch parameters of a worker (a pool launch config's `launch`).
///
/// Required: `location`, `vm_size`, `subnet_id`. A public IP is **off** by
/// default (Taskcluster #4987/#7257: most workers need none, and each one is
/// an extra resource, two extra calls and a quota).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AzureLaunch {
    /// The region (`eastus`).
    #[serde(default)]
    pub location: Option<String>,
    /// The VM size (`Standard_D2s_v5`).
    #[serde(default)]
    pub vm_size: Option<String>,
    /// The ARM id of the subnet the NIC joins.
    #[serde(default)]
    pub subnet_id: Option<String>,
    /// The resource group (default: the provider's first resource group).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_group: Option<String>,
    /// Prefix of every resource name: 1-8 of `a-z0-9`, starting with a letter.
    #[serde(default = "AzureLaunch::default_prefix")]
    pub name_prefix: String,
    /// Create a public IP (Static, Standard SKU). Off by default.
    #[serde(default)]
    pub public_ip: bool,
    /// The image.
    #[serde(default)]
    pub image: ImageRef,
    /// The OS disk.
    #[serde(default)]
    pub os_disk: OsDisk,
    /// Data disks, created before the VM and attached to it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub data_disks: Vec<DataDisk>,
    /// The admin user name.
    #[serde(default = "AzureLaunch::default_admin")]
    pub admin_username: String,
    /// An SSH public key for the admin user (password login is disabled).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssh_public_key: Option<String>,
    /// Custom data handed to the VM (cloud-init), as plain text; it is
    /// base64-encoded on the wire.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_data: Option<String>,
    /// The worker's own configuration (a JSON object), passed in its
    /// bootstrap document (`workerConfig`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker_config: Option<serde_json::Value>,
    /// Availability zones.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub zones: Vec<String>,
    /// Create every dependent (NIC, public IP, disks) with
    /// `deleteOption: Delete`, so teardown is one VM delete (default true).
    #[serde(default = "AzureLaunch::default_true")]
    pub delete_with_vm: bool,
    /// Extra tags on every resource.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
    /// The VM's `priority`: `Regular` (the default), `Spot`, or `Low` (the
    /// legacy name of spot).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<String>,
    /// The VM's `evictionPolicy` (spot only): `Delete` (the default) or
    /// `Deallocate` (the worker then removes the deallocated VM, as it does
    /// any VM found deallocated).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eviction_policy: Option<String>,
    /// The VM's `billingProfile.maxPrice` (spot only): the highest hourly
    /// price in US dollars, or `-1` for "up to the on-demand price, never
    /// evicted for price".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_price: Option<f64>,
}

impl AzureLaunch {
    fn default_prefix() -> String {
        "sf".into()
    }
    fn default_admin() -> String {
        "skyfleet".into()
    }
    fn default_true() -> bool {
        true
    }

    /// Parses and validates a launch config; errors are
    /// `InvalidConfig { field: "launch.<name>" }`.
    pub fn parse(launch: &serde_json::Value) -> Result<AzureLaunch> {
        let l: AzureLaunch = serde_json::from_value(launch.clone()).map_err(|e| {
            let msg = e.to_string();
            let field = msg
                .split('`')
                .nth(1)
                .filter(|_| msg.starts_with("unknown field") || msg.starts_with("missing field"))
                .map(|f| format!("launch.{f}"))
                .unwrap_or_else(|| "launch".into());
            Error::invalid_config(field, format!("bad Azure launch config: {msg}"))
        })?;
        l.validate()?;
        Ok(l)
    }

    fn validate(&self) -> Result<()> {
        let required = |v: &Option<String>, field: &str| -> Result<()> {
            match v {
                Some(s) if !s.trim().is_empty() => Ok(()),
                _ => Err(Error::invalid_config(
                    format!("launch.{field}"),
                    format!("`{field}` is required"),
                )),
            }
        };
        required(&self.location, "location")?;
        required(&self.vm_size, "vm_size")?;
        required(&self.subnet_id, "subnet_id")?;
        let subnet = self.subnet_id.as_deref().unwrap_or_default();
        let segs: Vec<&str> = subnet.trim_matches('/').split('/').collect();
        let subnet_ok = segs.len() == 10
            && segs[0].eq_ignore_ascii_case("subscriptions")
            && segs[2].eq_ignore_ascii_case("resourceGroups")
            && segs[6].eq_ignore_ascii_case("virtualNetworks")
            && segs[8].eq_ignore_ascii_case("subnets")
            && segs.iter().all(|s| !s.is_empty());
        if !subnet_ok {
            return Err(Error::invalid_config(
                "launch.subnet_id",
                "must be a subnet ARM id: /subscriptions/{s}/resourceGroups/{rg}/providers/\
                 Microsoft.Network/virtualNetworks/{vnet}/subnets/{name}",
            ));
        }
        if !naming::valid_prefix(&self.name_prefix) {
            return Err(Error::invalid_config(
                "launch.name_prefix",
                format!(
                    "`{}` must be 1-{} characters of a-z and 0-9, starting with a letter",
                    self.name_prefix,
                    naming::MAX_PREFIX
                ),
            ));
        }
        if let Some(rg) = &self.resource_group {
            if !naming::valid_resource_group(rg) {
                return Err(Error::invalid_config(
                    "launch.resource_group",
                    format!("`{rg}` is not a valid resource group name"),
                ));
            }
        }
        for (i, d) in self.data_disks.iter().enumerate() {
            if d.size_gb == 0 || d.size_gb > 32_767 {
                return Err(Error::invalid_config(
                    format!("launch.data_disks[{i}].size_gb"),
                    "must be within 1..=32767",
                ));
            }
        }
        if self.os_disk.explicit {
            if let ImageRef::Marketplace { version, .. } = &self.image {
                if version.eq_ignore_ascii_case("latest") {
                    return Err(Error::invalid_config(
                        "launch.image.version",
                        "an explicit OS disk needs a concrete image version, not `latest`",
                    ));
                }
            }
        }
        if self.data_disks.len() > naming::MAX_DATA_DISKS {
            return Err(Error::invalid_config(
                "launch.data_disks",
                format!("at most {} data disks", naming::MAX_DATA_DISKS),
            ));
        }
        if self.worker_config.as_ref().is_some_and(|c| !c.is_object()) {
            return Err(Error::invalid_config(
                "launch.worker_config",
                "must be a JSON object",
            ));
        }
        if self.admin_username.trim().is_empty() {
            return Err(Error::invalid_config(
                "launch.admin_username",
                "must not be empty",
            ));
        }
        self.validate_spot()
    }

    /// Checks `priority`, `eviction_policy` and `max_price` together.
    fn validate_spot(&self) -> Result<()> {
        let spot = match self.priority.as_deref() {
            None | Some("Regular") => false,
            Some("Spot" | "Low") => true,
            Some(other) => {
                return Err(Error::invalid_config(
                    "launch.priority",
                    format!("`{other}` is not `Regular`, `Spot` or `Low`"),
                ))
            }
        };
        if let Some(p) = &self.eviction_policy {
            if !spot {
                return Err(Error::invalid_config(
                    "launch.eviction_policy",
                    "applies to spot VMs only (`priority: Spot`)",
                ));
            }
            if p != "Delete" && p != "Deallocate" {
                return Err(Error::invalid_config(
                    "launch.eviction_policy",
                    format!("`{p}` is not `Delete` or `Deallocate`"),
                ));
            }
        }
        if let Some(price) = self.max_price {
            if !spot {
                return Err(Error::invalid_config(
                    "launch.max_price",
                    "applies to spot VMs only (`priority: Spot`)",
                ));
            }
            if !price.is_finite() || !(price > 0.0 || price == -1.0) {
                return Err(Error::invalid_config(
                    "launch.max_price",
                    format!("`{price}` is neither a positive price nor -1"),
                ));
            }
        }
        Ok(())
    }

    /// Whether the VM is a spot VM (`priority` `Spot` or `Low`).
    pub fn is_spot(&self) -> bool {
        matches!(self.priority.as_deref(), Some("Spot" | "Low"))
    }

    /// The capacity type: spot for spot VMs, else on demand.
    pub fn capacity_type(&self) -> CapacityType {
        if self.is_spot() {
            CapacityType::Spot
        } else {
            CapacityType::OnDemand
        }
    }

    /// The VM body's spot settings: `priority: Spot`, `evictionPolicy`
    /// (`Delete` unless the config says `Deallocate`) and, when given,
    /// `billingProfile.maxPrice`; `None` for a regular VM.
    pub(crate) fn spot_properties(&self) -> Option<serde_json::Value> {
        if !self.is_spot() {
            return None;
        }
        let mut v = serde_json::json!({
            "priority": "Spot",
            "evictionPolicy": self.eviction_policy.as_deref().unwrap_or("Delete"),
        });
        if let Some(p) = self.max_price {
            v["billingProfile"] = serde_json::json!({ "maxPrice": p });
        }
        Some(v)
    }

    /// The location (validated present).
    pub fn location(&self) -> &str {
        self.location.as_deref().unwrap_or_default()
    }

    /// The VM size (validated present).
    pub fn vm_size(&self) -> &str {
        self.vm_size.as_deref().unwrap_or_default()
    }

    /// The VM's `userData` for the worker `spec`: its bootstrap document
    /// ([`Bootstrap`]: `workerGroup` is the location), pointing at
    /// `root_url`, base64-encoded. With an explicit OS disk ARM takes no
    /// `osProfile`, so the custom data travels in the document, as
    /// `customData`. Fails with `InvalidConfig` when the encoded document is
    /// over ARM's [`MAX_USER_DATA`].
    pub fn user_data(&self, spec: &WorkerSpec, root_url: Option<&str>) -> Result<String> {
        let mut doc = Bootstrap::new(spec, self.location(), root_url)
            .with_worker_config(self.worker_config.as_ref());
        if let (true, Some(cd)) = (self.os_disk.explicit, &self.custom_data) {
            doc.extra
                .insert("customData".into(), serde_json::Value::from(cd.clone()));
        }
        let encoded = doc.to_base64();
        if encoded.len() > MAX_USER_DATA {
            return Err(Error::invalid_config(
                "launch.worker_config",
                format!(
                    "the VM's userData would be {} bytes of base64; Azure accepts at most {MAX_USER_DATA}",
                    encoded.len()
                ),
            ));
        }
        Ok(encoded)
    }

    /// The subnet id (validated present).
    pub fn subnet_id(&self) -> &str {
        self.subnet_id.as_deref().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use skyfleet_core::ErrorKind;

    fn field(v: serde_json::Value) -> String {
        match AzureLaunch::parse(&v).unwrap_err().kind().clone() {
            ErrorKind::InvalidConfig { field } => field,
            k => panic!("unexpected {k:?}"),
        }
    }

    const SUBNET: &str =
        "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/virtualNetworks/v/subnets/d";

    #[test]
    fn launch_validation_names_the_field() {
        let ok = json!({"location": "eastus", "vm_size": "Standard_D2s_v5", "subnet_id": SUBNET});
        let l = AzureLaunch::parse(&ok).unwrap();
        assert!(!l.public_ip);
        assert!(l.delete_with_vm);
        assert_eq!(
            field(json!({"vm_size": "x", "subnet_id": SUBNET})),
            "launch.location"
        );
        assert_eq!(
            field(json!({"location": "x", "subnet_id": SUBNET})),
            "launch.vm_size"
        );
        assert_eq!(
            field(json!({"location": "x", "vm_size": "y"})),
            "launch.subnet_id"
        );
        assert_eq!(
            field(json!({"location": "x", "vm_size": "y", "subnet_id": "nope"})),
            "launch.subnet_id"
        );
        assert_eq!(
            field(
                json!({"location": "x", "vm_size": "y", "subnet_id": SUBNET, "name_prefix": "Bad_"})
            ),
            "launch.name_prefix"
        );
        assert_eq!(
            field(json!({"location": "x", "vm_size": "y", "subnet_id": SUBNET, "vmsize": 1})),
            "launch.vmsize"
        );
        assert_eq!(field(json!([1])), "launch");
        assert_eq!(
            field(
                json!({"location": "x", "vm_size": "y", "subnet_id": SUBNET, "worker_config": 3})
            ),
            "launch.worker_config"
        );
    }

    #[test]
    fn spot_settings_are_checked_and_sent() {
        let with = |extra: serde_json::Value| {
            let mut v =
                json!({"location": "eastus", "vm_size": "Standard_D2s_v5", "subnet_id": SUBNET});
            for (k, x) in extra.as_object().cloned().unwrap_or_default() {
                v[k] = x;
            }
            v
        };
        for (bad, key) in [
            (json!({"priority": "Cheap"}), "launch.priority"),
            (
                json!({"eviction_policy": "Delete"}),
                "launch.eviction_policy",
            ),
            (
                json!({"priority": "Regular", "max_price": 0.1}),
                "launch.max_price",
            ),
            (
                json!({"priority": "Spot", "eviction_policy": "Stop"}),
                "launch.eviction_policy",
            ),
            (
                json!({"priority": "Spot", "max_price": 0}),
                "launch.max_price",
            ),
            (
                json!({"priority": "Spot", "max_price": -2}),
                "launch.max_price",
            ),
        ] {
            assert_eq!(field(with(bad.clone())), key, "{bad}");
        }
        let l = AzureLaunch::parse(&with(json!({"priority": "Spot"}))).unwrap();
        assert_eq!(l.capacity_type(), CapacityType::Spot);
        assert_eq!(
            l.spot_properties().unwrap(),
            json!({"priority": "Spot", "evictionPolicy": "Delete"})
        );
        let l = AzureLaunch::parse(&with(
            json!({"priority": "Low", "eviction_policy": "Deallocate", "max_price": -1}),
        ))
        .unwrap();
        assert_eq!(
            l.spot_properties().unwrap(),
            json!({"priority": "Spot", "evictionPolicy": "Deallocate",
                   "billingProfile": {"maxPrice": -1.0}})
        );
        let l = AzureLaunch::parse(&with(json!({"priority": "Regular"}))).unwrap();
        assert_eq!(l.capacity_type(), CapacityType::OnDemand);
        assert!(l.spot_properties().is_none());
    }

    #[test]
    fn user_data_is_the_bootstrap_document() {
        let spec = skyfleet_core::testing::fixtures::worker("w-1").spec();
        let mut v = json!({"location": "eastus", "vm_size": "Standard_D2s_v5", "subnet_id": SUBNET,
                           "worker_config": {"a": 1}, "custom_data": "#cloud-config"});
        let l = AzureLaunch::parse(&v).unwrap();
        let doc = Bootstrap::parse_base64(&l.user_data(&spec, Some("https://m.example")).unwrap())
            .unwrap();
        assert_eq!(doc.worker_group, "eastus");
        assert_eq!(doc.worker_config, json!({"a": 1}));
        assert!(doc.extra.is_empty(), "custom data goes to osProfile");
        v["os_disk"] = json!({"explicit": true});
        v["image"] = json!({"id": "/subscriptions/s/images/i"});
        let l = AzureLaunch::parse(&v).unwrap();
        let doc = Bootstrap::parse_base64(&l.user_data(&spec, Some("https://m.example")).unwrap())
            .unwrap();
        assert_eq!(doc.extra["customData"], "#cloud-config");
        v["worker_config"] = json!({"blob": "x".repeat(MAX_USER_DATA)});
        let e = AzureLaunch::parse(&v)
            .unwrap()
            .user_data(&spec, None)
            .unwrap_err();
        assert!(
            matches!(e.kind(), ErrorKind::InvalidConfig { field } if field == "launch.worker_config")
        );
    }
}
