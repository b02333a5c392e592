//! Configuration: the provider's own ([`AzureConfig`], one per subscription)
//! and the per-launch-config parameters ([`AzureLaunch`]).
//!
//! Both are plain serde documents so that a process can rebuild a provider
//! from its configuration alone after a crash: nothing a worker needs lives
//! only in memory. Launch configs are checked up front by
//! [`AzureLaunch::parse`], which names the offending field in an
//! [`ErrorKind::InvalidConfig`](skyfleet_core::ErrorKind::InvalidConfig)
//! error, so a bad pool definition is refused before anything is created.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use skyfleet_core::{Error, PollPolicy, Result};

use crate::credential::CredentialConfig;
use crate::naming;

/// The public Azure Resource Manager endpoint.
pub const PUBLIC_ENDPOINT: &str = "https://management.azure.com";

/// The configuration of one [`AzureProvider`](crate::AzureProvider): one
/// subscription, its credentials, endpoint and pacing.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AzureConfig {
    /// The provider id (unique in a fleet), also the `skyfleet-provider` tag.
    #[serde(default = "AzureConfig::default_id")]
    pub id: String,
    /// The subscription every resource lives in.
    pub subscription_id: String,
    /// Resource groups scanned by `list_owned` (orphan sweeps); the first is
    /// also the default group of launch configs that name none.
    #[serde(default)]
    pub resource_groups: Vec<String>,
    /// The ARM endpoint (`https://management.azure.com` by default; a mock's
    /// URL in tests). Must be `https`: a bearer token is sent to it.
    #[serde(default = "AzureConfig::default_endpoint")]
    pub endpoint: String,
    /// How tokens are obtained.
    #[serde(default)]
    pub credential: CredentialConfig,
    /// Extra PEM root certificates trusted for ARM (and the token authority),
    /// for private endpoints and test servers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_pem: Option<String>,
    /// Transport tuning (timeouts, attempts, rate limits).
    #[serde(default)]
    pub transport: TransportSettings,
    /// How long-running operations are polled: interval bounds, the
    /// operation deadline (default 10 minutes) and the poll error streak.
    #[serde(default)]
    pub poll: PollPolicy,
    /// Seconds between health checks of a running worker (default 60).
    #[serde(default = "AzureConfig::default_health_interval")]
    pub health_interval_s: f64,
    /// Consecutive instance-view 404s tolerated on a VM that exists
    /// (default 2; Taskcluster PR #8315 found them transient).
    #[serde(default = "AzureConfig::default_iv_404s")]
    pub max_instance_view_404s: u32,
    /// Seconds to wait before retrying a delete that ARM refused because a
    /// dependent or another operation still holds the resource (default 5).
    #[serde(default = "AzureConfig::default_busy_retry")]
    pub busy_retry_s: f64,
}

impl std::fmt::Debug for AzureConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AzureConfig")
            .field("id", &self.id)
            .field("subscription_id", &self.subscription_id)
            .field("resource_groups", &self.resource_groups)
            .field("endpoint", &self.endpoint)
            .field("credential", &self.credential)
            .field("ca_pem", &self.ca_pem.as_ref().map(|_| "<pem>"))
            .field("transport", &self.transport)
            .field("poll", &self.poll)
            .finish_non_exhaustive()
    }
}

/// Transport settings carried in the provider config. Unset values keep the
/// shared transport's defaults for Azure.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransportSettings {
    /// Per-attempt timeout of every ARM call, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempt_timeout_ms: Option<u64>,
    /// Overall timeout of every ARM call (retries included), in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overall_timeout_ms: Option<u64>,
    /// Attempts per call, the first included.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_attempts: Option<u32>,
    /// Reads (and polls) per second, with the same burst.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reads_per_s: Option<u32>,
    /// Writes and deletes per second, with the same burst.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub writes_per_s: Option<u32>,
    /// Calls of one key in flight at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrency: Option<usize>,
}

impl AzureConfig {
    fn default_id() -> String {
        "azure".into()
    }
    fn default_endpoint() -> String {
        PUBLIC_ENDPOINT.into()
    }
    fn default_health_interval() -> f64 {
        60.0
    }
    fn default_iv_404s() -> u32 {
        2
    }
    fn default_busy_retry() -> f64 {
        5.0
    }

    /// A config for `subscription_id` with every default.
    pub fn new(subscription_id: impl Into<String>) -> Self {
        AzureConfig {
            id: Self::default_id(),
            subscription_id: subscription_id.into(),
            resource_groups: Vec::new(),
            endpoint: Self::default_endpoint(),
            credential: CredentialConfig::default(),
            ca_pem: None,
            transport: TransportSettings::default(),
            poll: PollPolicy::default(),
            health_interval_s: Self::default_health_interval(),
            max_instance_view_404s: Self::default_iv_404s(),
            busy_retry_s: Self::default_busy_retry(),
        }
    }

    /// Parses a JSON config document and validates it.
    pub fn from_json(value: serde_json::Value) -> Result<Self> {
        let c: AzureConfig = serde_json::from_value(value)
            .map_err(|e| Error::invalid_config("azure", format!("bad provider config: {e}")))?;
        c.validate()?;
        Ok(c)
    }

    /// Checks the config, naming the offending field.
    pub fn validate(&self) -> Result<()> {
        if self.id.trim().is_empty() {
            return Err(Error::invalid_config("id", "must not be empty"));
        }
        if !is_arm_segment(&self.subscription_id) {
            return Err(Error::invalid_config(
                "subscription_id",
                "must be a non-empty subscription id (letters, digits, '-')",
            ));
        }
        for (i, rg) in self.resource_groups.iter().enumerate() {
            if !naming::valid_resource_group(rg) {
                return Err(Error::invalid_config(
                    format!("resource_groups[{i}]"),
                    format!("`{rg}` is not a valid resource group name"),
                ));
            }
        }
        if !self.endpoint.starts_with("https://") {
            return Err(Error::invalid_config(
                "endpoint",
                "must be an https:// URL (a bearer token is sent to it)",
            ));
        }
        self.poll.validate()?;
        if !(self.health_interval_s.is_finite() && self.health_interval_s > 0.0) {
            return Err(Error::invalid_config("health_interval_s", "must be > 0"));
        }
        if !(self.busy_retry_s.is_finite() && self.busy_retry_s > 0.0) {
            return Err(Error::invalid_config("busy_retry_s", "must be > 0"));
        }
        self.credential.validate()?;
        Ok(())
    }

    /// The endpoint without a trailing slash.
    pub fn base_url(&self) -> &str {
        self.endpoint.trim_end_matches('/')
    }

    pub(crate) fn health_interval(&self) -> Duration {
        Duration::try_from_secs_f64(self.health_interval_s).unwrap_or(Duration::from_secs(60))
    }

    pub(crate) fn busy_retry(&self) -> Duration {
        Duration::try_from_secs_f64(self.busy_retry_s).unwrap_or(Duration::from_secs(5))
    }
}

fn is_arm_segment(s: &str) -> bool {
    !s.is_empty() && s.len() <= 64 && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

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
        if self.admin_username.trim().is_empty() {
            return Err(Error::invalid_config(
                "launch.admin_username",
                "must not be empty",
            ));
        }
        Ok(())
    }

    /// The location (validated present).
    pub fn location(&self) -> &str {
        self.location.as_deref().unwrap_or_default()
    }

    /// The VM size (validated present).
    pub fn vm_size(&self) -> &str {
        self.vm_size.as_deref().unwrap_or_default()
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
    }

    #[test]
    fn provider_config_validation() {
        let mut c = AzureConfig::new("sub-1");
        c.validate().unwrap();
        c.endpoint = "http://x".into();
        assert!(matches!(
            c.validate().unwrap_err().kind(),
            ErrorKind::InvalidConfig { field } if field == "endpoint"
        ));
        let c = AzureConfig::from_json(json!({"subscription_id": "s", "resource_groups": ["rg"]}))
            .unwrap();
        assert_eq!(c.base_url(), PUBLIC_ENDPOINT);
    }
}
