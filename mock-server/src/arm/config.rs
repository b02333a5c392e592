//! ARM settings: how long each kind of operation takes, the polling hint
//! sent with long-running operations, the subscription throttle limits and
//! the applications registered with Entra ID's token endpoint.

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
    /// The applications Entra ID knows (at most [`MAX_ENTRA_APPS`]). A
    /// tenant named by none of them is open: any client id with any secret
    /// or well-formed assertion gets a token there. In a tenant named by at
    /// least one, an unknown client id is refused (`AADSTS700016`), a wrong
    /// secret too (`AADSTS7000215`), and an assertion must be signed by the
    /// app's certificate. The default is one app, [`EntraApp::default`].
    pub entra_apps: Vec<EntraApp>,
}

/// The most applications `azure.entra_apps` takes.
pub const MAX_ENTRA_APPS: usize = 1000;

/// An application registered with Entra ID: a client id in a tenant with a
/// client secret, a certificate, or both.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EntraApp {
    /// The tenant (directory) id or name, as it appears in the token URL
    /// (compared without regard to case).
    pub tenant: String,
    /// The application (client) id (compared without regard to case).
    pub client_id: String,
    /// The client secret; `None`: secrets are refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
    /// A PEM `CERTIFICATE` (RSA key; other PEM blocks such as the private
    /// key are ignored) whose key must sign client assertions; `None`:
    /// assertions are refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate_pem: Option<String>,
}

impl Default for EntraApp {
    /// Tenant `mock-tenant`, client id `mock-client`, secret `mock-secret`.
    fn default() -> Self {
        EntraApp {
            tenant: "mock-tenant".into(),
            client_id: "mock-client".into(),
            client_secret: Some("mock-secret".into()),
            certificate_pem: None,
        }
    }
}

impl ArmConfig {
    /// Checks the registered apps: at most [`MAX_ENTRA_APPS`], a tenant and
    /// a client id each, and certificates that parse. The error starts with
    /// the field at fault (`entra_apps[2].certificate_pem: ...`).
    pub fn validate(&self) -> Result<(), String> {
        if self.entra_apps.len() > MAX_ENTRA_APPS {
            return Err(format!(
                "entra_apps: at most {MAX_ENTRA_APPS} applications, got {}",
                self.entra_apps.len()
            ));
        }
        for (i, app) in self.entra_apps.iter().enumerate() {
            if app.tenant.trim().is_empty() || app.tenant.contains('/') {
                return Err(format!(
                    "entra_apps[{i}].tenant: must be a non-empty path segment"
                ));
            }
            if app.client_id.trim().is_empty() {
                return Err(format!("entra_apps[{i}].client_id: must not be empty"));
            }
            if let Some(pem) = &app.certificate_pem {
                super::token::RegisteredCert::from_pem(pem)
                    .map_err(|e| format!("entra_apps[{i}].certificate_pem: {e}"))?;
            }
        }
        Ok(())
    }
}

impl Default for ArmConfig {
    fn default() -> Self {
        ArmConfig {
            durations: ArmDurations::default(),
            retry_after_s: 1,
            throttle: ArmThrottle::default(),
            consistency_window_s: 0.0,
            entra_apps: vec![EntraApp::default()],
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
