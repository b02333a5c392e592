//! ARM settings: how long each kind of operation takes (VM power actions
//! included), the polling hint sent with long-running operations, the
//! subscription throttle limits and the per-subscription resource limits.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// ARM settings, as `PUT /_mock/config` and the config file take them under
/// the `azure` key. Every field has a default, so `{}` is a valid config;
/// unknown fields are refused (a typo would otherwise be silently ignored).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ArmConfig {
    /// How long each operation takes, before the global time scale.
    pub durations: ArmDurations,
    /// The polling hint, in seconds before the time scale, on accepted
    /// long-running operations, running status resources and running
    /// `Location` polls (scaled, cut to the time the operation has left and
    /// sent as `crate::delay` describes). 0 is raised to 1.
    pub retry_after_s: u64,
    /// Subscription token buckets.
    pub throttle: ArmThrottle,
    /// Eventual consistency of lists, in seconds before the time scale:
    /// for this long after its PUT a new resource is missing from list
    /// calls, and after its delete a deleted one is still listed (a GET by
    /// name answers the truth). 0: lists are always current.
    pub consistency_window_s: f64,
    /// How long each VM power action takes, before the time scale.
    pub power: ArmPower,
    /// Limits per subscription (Azure's published defaults).
    pub limits: ArmLimits,
}

impl Default for ArmConfig {
    fn default() -> Self {
        ArmConfig {
            durations: ArmDurations::default(),
            retry_after_s: 1,
            throttle: ArmThrottle::default(),
            consistency_window_s: 0.0,
            power: ArmPower::default(),
            limits: ArmLimits::default(),
        }
    }
}

/// Durations of the VM power actions (`POST .../virtualMachines/{vm}/{action}`)
/// in seconds (fractions allowed), before the time scale.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ArmPower {
    /// `powerOff` with a graceful guest shutdown (`skipShutdown=false`, the default).
    pub power_off_s: f64,
    /// `powerOff?skipShutdown=true`: no guest shutdown.
    pub power_off_skip_shutdown_s: f64,
    /// `deallocate`.
    pub deallocate_s: f64,
    /// `start`.
    pub start_s: f64,
    /// `restart`.
    pub restart_s: f64,
    /// `redeploy` (to a new host: deallocate and start).
    pub redeploy_s: f64,
}

impl Default for ArmPower {
    fn default() -> Self {
        ArmPower {
            power_off_s: 30.0,
            power_off_skip_shutdown_s: 10.0,
            deallocate_s: 60.0,
            start_s: 30.0,
            restart_s: 45.0,
            redeploy_s: 120.0,
        }
    }
}

/// Limits per subscription partition. Defaults are Azure's published limits
/// ("Azure subscription and service limits"); a PUT that would go over one
/// answers Azure's own quota error and changes nothing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ArmLimits {
    /// Resource groups per subscription (Azure: 980); one more answers 409
    /// `ResourceGroupQuotaExceeded`.
    pub resource_groups: usize,
    /// Resources of one type in one resource group (Azure: 800); one more
    /// answers 409 `ResourceQuotaExceeded`.
    pub resources_per_type_per_group: usize,
    /// Virtual machines per subscription and region (Azure: 25,000); one
    /// more answers 409 `OperationNotAllowed` as a quota refusal.
    pub vms_per_region: usize,
}

impl Default for ArmLimits {
    fn default() -> Self {
        ArmLimits {
            resource_groups: 980,
            resources_per_type_per_group: 800,
            vms_per_region: 25_000,
        }
    }
}

/// Operation durations in seconds (fractions allowed), before the time scale.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ArmDurations {
    /// Public IP address create or update.
    pub public_ip_s: f64,
    /// Network interface create or update.
    pub network_interface_s: f64,
    /// Virtual network (and subnet) create or update.
    pub virtual_network_s: f64,
    /// Managed disk create or update.
    pub disk_s: f64,
    /// Virtual machine create.
    pub vm_create_s: f64,
    /// Virtual machine update (PUT on an existing VM).
    pub vm_update_s: f64,
    /// Virtual machine delete (cascaded deletes finish with it).
    pub vm_delete_s: f64,
    /// Delete of any other resource, resource groups included.
    pub delete_s: f64,
}

impl Default for ArmDurations {
    fn default() -> Self {
        ArmDurations {
            public_ip_s: 3.0,
            network_interface_s: 3.0,
            virtual_network_s: 2.0,
            disk_s: 5.0,
            vm_create_s: 45.0,
            vm_update_s: 10.0,
            vm_delete_s: 30.0,
            delete_s: 10.0,
        }
    }
}

/// Converts configured seconds to a duration; negative or non-finite is 0.
pub(crate) fn secs(s: f64) -> Duration {
    if s.is_finite() && s > 0.0 {
        Duration::try_from_secs_f64(s).unwrap_or(Duration::from_secs(u64::from(u32::MAX)))
    } else {
        Duration::ZERO
    }
}

/// ARM's subscription throttling: one token bucket per subscription and
/// request class (reads, writes, deletes). Defaults are ARM's published
/// per-region limits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ArmThrottle {
    /// Off by default: no request is refused, the remaining-count headers
    /// still show the bucket size.
    pub enabled: bool,
    /// GETs (operation polls included).
    pub reads: BucketLimit,
    /// PUTs.
    pub writes: BucketLimit,
    /// DELETEs.
    pub deletes: BucketLimit,
}

impl Default for ArmThrottle {
    fn default() -> Self {
        ArmThrottle {
            enabled: false,
            reads: BucketLimit {
                burst: 250,
                refill_per_s: 25.0,
            },
            writes: BucketLimit {
                burst: 200,
                refill_per_s: 10.0,
            },
            deletes: BucketLimit {
                burst: 200,
                refill_per_s: 10.0,
            },
        }
    }
}

/// One token bucket's size and refill rate.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BucketLimit {
    /// Bucket size: requests allowed in a burst.
    pub burst: u64,
    /// Tokens added per second.
    pub refill_per_s: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_documents_take_defaults_and_typos_are_refused() {
        let c: ArmConfig =
            serde_json::from_str(r#"{"durations":{"vm_create_s":60},"throttle":{"enabled":true}}"#)
                .unwrap();
        assert_eq!(c.durations.vm_create_s, 60.0);
        assert_eq!(c.durations.disk_s, ArmDurations::default().disk_s);
        assert!(c.throttle.enabled);
        assert_eq!(c.throttle.reads.burst, 250);
        assert_eq!(c.retry_after_s, 1);
        assert!(serde_json::from_str::<ArmConfig>(r#"{"durations":{"vm_create":60}}"#).is_err());
        let c: ArmConfig =
            serde_json::from_str(r#"{"power":{"start_s":5},"limits":{"resource_groups":3}}"#)
                .unwrap();
        assert_eq!(c.power.start_s, 5.0);
        assert_eq!(c.power.deallocate_s, 60.0);
        assert_eq!(c.limits.resource_groups, 3);
        assert_eq!(c.limits.resources_per_type_per_group, 800);
        assert!(serde_json::from_str::<ArmConfig>(r#"{"limits":{"groups":3}}"#).is_err());
    }
}
