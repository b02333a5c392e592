//! Offerings: where and how a worker's capacity comes from, and what the
//! clouds said about it.
//!
//! An [`Offering`] is (provider, region or zone, instance type or size,
//! capacity type). Each launch config resolves to one through
//! [`Provider::offering`](crate::Provider::offering); a pool orders its launch
//! configs in tiers ([`LaunchConfig::tier`](crate::model::LaunchConfig::tier),
//! lower first) with weights inside a tier. A capacity error, a quota error
//! or an interruption marks an offering unavailable in the store for a
//! while, shared by every replica ([`CapacityClass`] says which, and so for
//! how long).
//!
//! An interruption (a spot instance reclaimed, a preemptible VM preempted,
//! a spot VM evicted) is seen by the provider's checks or by the worker's
//! agent reading its metadata service; either way it arrives as one
//! [`Interruption`].

use std::fmt;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// How capacity is bought.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CapacityType {
    /// Pay as you go; reclaimed only by you.
    OnDemand,
    /// Spare capacity at a discount that the cloud may reclaim (AWS spot,
    /// GCE spot and preemptible, Azure spot).
    Spot,
}

impl CapacityType {
    /// The stable name (`on_demand`, `spot`) used in stores, keys and
    /// metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            CapacityType::OnDemand => "on_demand",
            CapacityType::Spot => "spot",
        }
    }

    /// The capacity type named `name`, if any.
    pub fn from_name(name: &str) -> Option<CapacityType> {
        match name {
            "on_demand" => Some(CapacityType::OnDemand),
            "spot" => Some(CapacityType::Spot),
            _ => None,
        }
    }
}

impl fmt::Display for CapacityType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One place capacity comes from: (provider, location, instance type,
/// capacity type), plus the quota it draws on.
///
/// ```
/// use skyfleet_core::offering::{CapacityType, Offering};
/// let o = Offering {
///     provider_id: "aws-east".into(),
///     location: "us-east-1a".into(),
///     instance_type: "m5.large".into(),
///     capacity_type: CapacityType::Spot,
///     quota_scope: Some("us-east-1/standard".into()),
/// };
/// assert_eq!(o.key(), "aws-east/us-east-1a/m5.large/spot");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Offering {
    /// The provider id.
    pub provider_id: String,
    /// The region or zone the capacity is in (`us-east-1a`, `europe-west1-b`,
    /// `westeurope`); empty where the provider has no such notion.
    pub location: String,
    /// The instance type, machine type or VM size (`m5.large`,
    /// `e2-standard-4`, `Standard_D2s_v5`).
    pub instance_type: String,
    /// On-demand or spot.
    pub capacity_type: CapacityType,
    /// The quota this offering draws on (for example region and instance
    /// family: `us-east-1/standard`, `westeurope/standardDSv5Family`): a
    /// quota error marks every offering of the pool sharing it. `None` where
    /// the provider cannot tell.
    pub quota_scope: Option<String>,
}

impl Offering {
    /// The offering's stable key: `provider/location/type/capacity_type`.
    pub fn key(&self) -> String {
        format!(
            "{}/{}/{}/{}",
            self.provider_id, self.location, self.instance_type, self.capacity_type
        )
    }
}

/// Why an offering is marked unavailable (and so for how long).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CapacityClass {
    /// The cloud had no capacity for it (stockout).
    Capacity,
    /// A quota it draws on is exhausted; marks every offering sharing the
    /// quota scope.
    Quota,
    /// A worker on it was interrupted (spot reclaimed, preempted, evicted).
    Interruption,
}

impl CapacityClass {
    /// The stable name (`capacity`, `quota`, `interruption`).
    pub fn as_str(self) -> &'static str {
        match self {
            CapacityClass::Capacity => "capacity",
            CapacityClass::Quota => "quota",
            CapacityClass::Interruption => "interruption",
        }
    }

    /// The class named `name`, if any.
    pub fn from_name(name: &str) -> Option<CapacityClass> {
        match name {
            "capacity" => Some(CapacityClass::Capacity),
            "quota" => Some(CapacityClass::Quota),
            "interruption" => Some(CapacityClass::Interruption),
            _ => None,
        }
    }

    /// The class of a capacity-or-quota error from the cloud's `code`: a
    /// quota code of any of the three clouds is [`CapacityClass::Quota`],
    /// anything else (stockouts, allocation failures, unknown codes)
    /// [`CapacityClass::Capacity`].
    ///
    /// ```
    /// use skyfleet_core::offering::CapacityClass;
    /// assert_eq!(CapacityClass::of_code(Some("VcpuLimitExceeded")), CapacityClass::Quota);
    /// assert_eq!(CapacityClass::of_code(Some("QUOTA_EXCEEDED")), CapacityClass::Quota);
    /// assert_eq!(CapacityClass::of_code(Some("AllocationFailed")), CapacityClass::Capacity);
    /// assert_eq!(CapacityClass::of_code(None), CapacityClass::Capacity);
    /// ```
    pub fn of_code(code: Option<&str>) -> CapacityClass {
        match code {
            Some(c) if QUOTA_CODES.contains(&c) => CapacityClass::Quota,
            _ => CapacityClass::Capacity,
        }
    }
}

impl fmt::Display for CapacityClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The quota codes of the three clouds: EC2's account limits, Compute
/// Engine's quota reasons and ARM's core-quota codes.
pub const QUOTA_CODES: &[&str] = &[
    // EC2
    "VcpuLimitExceeded",
    "InstanceLimitExceeded",
    // Compute Engine
    "QUOTA_EXCEEDED",
    "quotaExceeded",
    // ARM
    "QuotaExceeded",
    "OperationNotAllowed",
];

/// Who noticed an interruption.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InterruptionSource {
    /// The provider's checks (EC2 state reason, GCE preemption, Azure
    /// eviction).
    Provider,
    /// The worker's agent, from its metadata service's notice.
    Agent,
}

/// A cloud reclaiming a worker's capacity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Interruption {
    /// Who noticed it.
    pub source: InterruptionSource,
    /// The cloud's own word for it (`Server.SpotInstanceTermination`,
    /// `preempted`, `Preempt`, `terminate`).
    pub detail: String,
    /// When the capacity goes, if the notice said (AWS's instance-action
    /// time, Azure's `NotBefore`); `None` when it has gone already or the
    /// cloud gave no time.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "time::serde::rfc3339::option"
    )]
    pub not_before: Option<OffsetDateTime>,
}
