//! What each cloud's store tells the metadata service about one VM: a
//! snapshot taken under the cloud's lock, so the metadata service keeps no
//! VM state of its own. Each cloud module fills these in (`Ec2::imds_vm`,
//! `Gce::imds_vm`, `Arm::imds_vm`); a VM that does not exist or is not
//! running has none.

use std::sync::Arc;

/// An EC2 instance.
#[derive(Debug, Clone)]
pub struct AwsVm {
    /// Account id (12 digits).
    pub account: String,
    /// Region.
    pub region: String,
    /// `i-...`.
    pub instance_id: String,
    /// AMI.
    pub image_id: String,
    /// Instance type.
    pub instance_type: String,
    /// Availability zone.
    pub zone: String,
    /// Private IPv4 address.
    pub private_ip: String,
    /// Private DNS name.
    pub private_dns: String,
    /// `r-...`.
    pub reservation_id: String,
    /// Index within its launch.
    pub launch_index: u32,
    /// A spot instance.
    pub spot: bool,
    /// The termination time of a spot interruption notice in force
    /// (`YYYY-MM-DDTHH:MM:SSZ`).
    pub spot_action: Option<String>,
    /// Launch time, RFC 3339 with milliseconds.
    pub launch_time: String,
    /// `UserData`, decoded.
    pub user_data: Option<Arc<[u8]>>,
    /// `MetadataOptions.HttpTokens=required`: GETs need an IMDSv2 token.
    pub tokens_required: bool,
}

/// A Compute Engine instance.
#[derive(Debug, Clone)]
pub struct GceVm {
    /// Project id.
    pub project: String,
    /// Zone.
    pub zone: String,
    /// Name.
    pub name: String,
    /// Numeric id.
    pub id: u64,
    /// Creation time, seconds since the epoch.
    pub created_unix: i64,
    /// Machine type name (`e2-medium`).
    pub machine_type: String,
    /// Description.
    pub description: Option<String>,
    /// Network tags.
    pub tags: Vec<String>,
    /// The first network interface's IP.
    pub network_ip: Option<String>,
    /// Metadata items, in order.
    pub attributes: Vec<(String, String)>,
    /// The first service account: email as given (`default` for the
    /// default compute account) and scopes.
    pub service_account: Option<(String, Vec<String>)>,
    /// Preemptible or spot.
    pub preemptible: bool,
    /// A preemption notice is out (`instance/preempted` is `TRUE`).
    pub preempted: bool,
}

/// An Azure VM.
#[derive(Debug, Clone)]
pub struct AzureVm {
    /// Subscription id.
    pub subscription: String,
    /// Resource group.
    pub resource_group: String,
    /// Name.
    pub name: String,
    /// ARM id.
    pub resource_id: String,
    /// `vmId`.
    pub vm_id: String,
    /// Region.
    pub location: String,
    /// `hardwareProfile.vmSize`.
    pub vm_size: String,
    /// `osProfile.computerName` or the name.
    pub computer_name: String,
    /// `storageProfile.osDisk.osType` (Linux when absent).
    pub os_type: String,
    /// `storageProfile.imageReference`: publisher, offer, sku, version.
    pub image: [String; 4],
    /// The marketplace plan: name, product, publisher.
    pub plan: [String; 3],
    /// `licenseType`.
    pub license_type: String,
    /// `priority`.
    pub priority: String,
    /// The Scheduled Events document, as `/metadata/scheduledevents`
    /// answers it.
    pub scheduled_events: serde_json::Value,
    /// The first zone, if any.
    pub zone: String,
    /// Tags.
    pub tags: Vec<(String, String)>,
    /// `userData` (base64, as given).
    pub user_data: Option<String>,
    /// The NICs: private IPv4 addresses and MAC.
    pub nics: Vec<(Vec<String>, String)>,
}
