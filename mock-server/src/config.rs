//! The mock's configuration document: what `PUT /_mock/config` takes, what
//! `GET /_mock/config` answers and what `skyfleet-mock --config FILE` reads.

use serde::{Deserialize, Serialize};

pub use crate::arm::{
    ArmConfig, ArmDurations, ArmLimits, ArmPower, ArmThrottle, BucketLimit as ArmBucketLimit,
    EntraApp, MAX_ENTRA_APPS,
};
pub use crate::ec2::{BucketLimit as Ec2BucketLimit, Ec2Config, Ec2Throttle};
pub use crate::gce::{AuthorizedUser, GceConfig, GceThrottle, MAX_AUTHORIZED_USERS};

/// The configuration of the whole mock.
///
/// Every field is optional: a field left out keeps its current value, and a
/// cloud section that is given replaces that cloud's settings as a whole
/// (fields left out of it take their defaults).
///
/// ```
/// let cfg = skyfleet_mock::MockConfig::from_json(
///     r#"{"time_scale": 0.001, "aws": {"launch_ms": 30000}}"#,
/// ).unwrap();
/// assert_eq!(cfg.time_scale, Some(0.001));
/// ```
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MockConfig {
    /// Multiplies every simulated duration (0.001 turns a 60 s VM creation
    /// into 60 ms). Finite and >= 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_scale: Option<f64>,
    /// The longest a `hang` fault holds a request, in milliseconds (real
    /// time, not scaled).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_hang_ms: Option<u64>,
    /// EC2 settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws: Option<Ec2Config>,
    /// Azure Resource Manager settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub azure: Option<ArmConfig>,
    /// Compute Engine settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gcp: Option<GceConfig>,
}

impl MockConfig {
    /// Parses a JSON configuration document. The error names the field at
    /// fault (for example `aws.launch_ms: invalid type: string "x", expected
    /// u64 at line 1 column 30`).
    pub fn from_json(text: &str) -> Result<MockConfig, String> {
        let de = &mut serde_json::Deserializer::from_str(text);
        let cfg: MockConfig = serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            if path == "." {
                e.inner().to_string()
            } else {
                format!("{path}: {}", e.inner())
            }
        })?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks values that the types alone do not constrain.
    pub fn validate(&self) -> Result<(), String> {
        if let Some(s) = self.time_scale {
            if !s.is_finite() || s < 0.0 {
                return Err(format!("time_scale: must be a finite number >= 0, got {s}"));
            }
        }
        if let Some(aws) = &self.aws {
            aws.validate().map_err(|e| format!("aws.{e}"))?;
        }
        if let Some(azure) = &self.azure {
            azure.validate().map_err(|e| format!("azure.{e}"))?;
        }
        if let Some(gcp) = &self.gcp {
            gcp.validate().map_err(|e| format!("gcp.{e}"))?;
        }
        if let Some(w) = self.azure.as_ref().map(|a| a.consistency_window_s) {
            if !w.is_finite() || w < 0.0 {
                return Err(format!(
                    "azure.consistency_window_s: must be a finite number of seconds >= 0, got {w}"
                ));
            }
        }
        Ok(())
    }
}
