//! [`Scheduling`]: the `scheduling` of a GCE launch config (spot,
//! preemptible, termination action), checked so that a worker skyfleet
//! must replace when preempted is always deleted by Compute, never stopped.

use serde::{Deserialize, Serialize};
use skyfleet_core::{Error, Result};

/// The scheduling a launch config may give (Compute's `scheduling` names):
/// how capacity is bought, and what Compute does when it reclaims it.
/// `automaticRestart` and `onHostMaintenance` are skyfleet's (a crashed
/// worker is replaced, not restarted).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Scheduling {
    /// `SPOT` or `STANDARD` (the default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provisioning_model: Option<String>,
    /// A legacy preemptible VM.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preemptible: Option<bool>,
    /// What Compute does to a preempted Spot VM: only `DELETE` (the
    /// default for spot), since skyfleet replaces interrupted workers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_termination_action: Option<String>,
}

impl Scheduling {
    /// Checks the scheduling against itself and the launch config's
    /// `spot` and `preemptible` flags; errors name the key
    /// (`launch.scheduling.instanceTerminationAction`, ...).
    pub(crate) fn validate(&self, spot: bool, flag_preemptible: bool) -> Result<()> {
        let sc = self;
        let f = "launch.scheduling";
        let model_spot = match sc.provisioning_model.as_deref() {
            None => false,
            Some("SPOT") => true,
            Some("STANDARD") => {
                if spot {
                    return Err(Error::invalid_config(
                        format!("{f}.provisioningModel"),
                        "`STANDARD` contradicts `spot: true`",
                    ));
                }
                false
            }
            Some(other) => {
                return Err(Error::invalid_config(
                    format!("{f}.provisioningModel"),
                    format!("`{other}` is not `SPOT` or `STANDARD`"),
                ))
            }
        };
        let sched_preemptible = sc.preemptible == Some(true);
        if sched_preemptible && (model_spot || spot) {
            return Err(Error::invalid_config(
                format!("{f}.preemptible"),
                "a Spot VM (`provisioningModel: SPOT`) is not also a legacy preemptible VM",
            ));
        }
        if model_spot && flag_preemptible {
            return Err(Error::invalid_config(
                format!("{f}.provisioningModel"),
                "`SPOT` and `preemptible: true` exclude each other",
            ));
        }
        if sc.preemptible == Some(false) && flag_preemptible {
            return Err(Error::invalid_config(
                format!("{f}.preemptible"),
                "`false` contradicts `preemptible: true`",
            ));
        }
        if let Some(action) = &sc.instance_termination_action {
            let field = format!("{f}.instanceTerminationAction");
            match action.as_str() {
                "DELETE" if model_spot || spot => {}
                "DELETE" => {
                    return Err(Error::invalid_config(
                        field,
                        "applies to Spot VMs only (`provisioningModel: SPOT`)",
                    ))
                }
                "STOP" => {
                    return Err(Error::invalid_config(
                        field,
                        "`STOP` is not supported: skyfleet replaces preempted workers, \
                         so a preempted Spot VM must be deleted (`DELETE`)",
                    ))
                }
                other => {
                    return Err(Error::invalid_config(
                        field,
                        format!("`{other}` is not `DELETE`"),
                    ))
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde_json::{json, Value};
    use skyfleet_core::offering::CapacityType;

    use crate::launch::GceLaunch;

    fn field(v: Value) -> String {
        match GceLaunch::parse(&v).unwrap_err().kind() {
            skyfleet_core::ErrorKind::InvalidConfig { field } => field.clone(),
            k => panic!("{k:?}"),
        }
    }

    fn ok() -> Value {
        json!({"zone": "us-central1-a", "machineType": "e2-small",
               "disks": [{"initializeParams": {"sourceImage": "x"}}]})
    }

    #[test]
    fn scheduling_is_checked_and_sent() {
        let sched = |v: Value| {
            let mut l = ok();
            l["scheduling"] = v;
            l
        };
        for (bad, key) in [
            (
                json!({"provisioningModel": "SPOT", "instanceTerminationAction": "STOP"}),
                "launch.scheduling.instanceTerminationAction",
            ),
            (
                json!({"provisioningModel": "SPOT", "instanceTerminationAction": "HALT"}),
                "launch.scheduling.instanceTerminationAction",
            ),
            (
                json!({"instanceTerminationAction": "DELETE"}),
                "launch.scheduling.instanceTerminationAction",
            ),
            (
                json!({"provisioningModel": "CHEAP"}),
                "launch.scheduling.provisioningModel",
            ),
            (
                json!({"provisioningModel": "SPOT", "preemptible": true}),
                "launch.scheduling.preemptible",
            ),
            (
                json!({"automaticRestart": true}),
                "launch.scheduling.automaticRestart",
            ),
        ] {
            assert_eq!(field(sched(bad.clone())), key, "{bad}");
        }
        let mut v = sched(json!({"provisioningModel": "STANDARD"}));
        v["spot"] = json!(true);
        assert_eq!(field(v), "launch.scheduling.provisioningModel");

        let labels = BTreeMap::new();
        let none = BTreeMap::new();
        let l = GceLaunch::parse(&sched(json!({"provisioningModel": "SPOT"}))).unwrap();
        assert_eq!(l.capacity_type(), CapacityType::Spot);
        let b = l.instance_body("w", &labels, &none);
        assert_eq!(b["scheduling"]["provisioningModel"], "SPOT");
        assert_eq!(
            b["scheduling"]["instanceTerminationAction"], "DELETE",
            "set when absent"
        );
        let l = GceLaunch::parse(&sched(
            json!({"provisioningModel": "SPOT", "instanceTerminationAction": "DELETE"}),
        ))
        .unwrap();
        assert_eq!(
            l.instance_body("w", &labels, &none)["scheduling"]["instanceTerminationAction"],
            "DELETE"
        );
        let l = GceLaunch::parse(&sched(json!({"preemptible": true}))).unwrap();
        assert_eq!(l.capacity_type(), CapacityType::Spot);
        let b = l.instance_body("w", &labels, &none);
        assert_eq!(b["scheduling"]["preemptible"], true);
        assert!(b["scheduling"].get("provisioningModel").is_none());
        let l = GceLaunch::parse(&ok()).unwrap();
        assert_eq!(l.capacity_type(), CapacityType::OnDemand);
        assert_eq!(
            l.instance_body("w", &labels, &none)["scheduling"]["automaticRestart"],
            false
        );
        let mut v = ok();
        v["machineType"] = json!("zones/us-central1-a/machineTypes/n2-standard-4");
        assert_eq!(
            GceLaunch::parse(&v).unwrap().machine_type_name(),
            "n2-standard-4"
        );
    }
}
