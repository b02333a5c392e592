//! ARM settings: how long each kind of operation takes, the polling hint
//! sent with long-running operations, and the subscription throttle limits.

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
}

impl Default for ArmConfig {
    fn default() -> Self {
        ArmConfig {
            durations: ArmDurations::default(),
            retry_after_s: 1,
            throttle: ArmThrottle::default(),
            consistency_window_s: 0.0,
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
    }
}
