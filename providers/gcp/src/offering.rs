//! The [`Offering`] of a GCE launch config: the zone, the machine type's
//! name, spot (Spot and preemptible VMs) or on demand, and the quota scope
//! `{region}/{spot|on_demand}/{series}`: Compute's CPU quotas are per
//! region, separate for preemptible capacity, and per machine series
//! (`N2_CPUS`, `C2_CPUS`; `CPUS` for E2 and N1).

use skyfleet_core::offering::Offering;

use crate::launch::GceLaunch;

/// The machine series of a machine type name: what comes before its first
/// `-` (`e2` of `e2-standard-4`, `n2d` of `n2d-highmem-8`, `custom` of a
/// custom N1 type `custom-4-8192`).
///
/// ```
/// assert_eq!(skyfleet_gcp::machine_series("n2-standard-4"), "n2");
/// assert_eq!(skyfleet_gcp::machine_series("f1"), "f1");
/// ```
pub fn machine_series(machine_type: &str) -> &str {
    machine_type.split('-').next().unwrap_or(machine_type)
}

/// The offering of `launch` (validated) on provider `provider_id`.
pub fn offering(provider_id: &str, launch: &GceLaunch) -> Offering {
    let capacity_type = launch.capacity_type();
    let machine = launch.machine_type_name();
    Offering {
        provider_id: provider_id.to_string(),
        location: launch.zone.clone(),
        instance_type: machine.to_string(),
        capacity_type,
        quota_scope: Some(format!(
            "{}/{}/{}",
            launch.region(),
            capacity_type,
            machine_series(machine)
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use skyfleet_core::offering::CapacityType;

    fn launch(extra: serde_json::Value) -> GceLaunch {
        let mut v = json!({"zone": "europe-west1-b", "machineType": "n2-standard-4",
                           "disks": [{"initializeParams": {"sourceImage": "x"}}]});
        for (k, val) in extra.as_object().cloned().unwrap_or_default() {
            v[k] = val;
        }
        GceLaunch::parse(&v).unwrap()
    }

    #[test]
    fn offerings_of_launch_configs() {
        let o = offering("gce", &launch(json!({"spot": true})));
        assert_eq!(o.key(), "gce/europe-west1-b/n2-standard-4/spot");
        assert_eq!(o.quota_scope.as_deref(), Some("europe-west1/spot/n2"));
        let o = offering(
            "gce",
            &launch(json!({"scheduling": {"preemptible": true},
                           "machineType": "zones/europe-west1-b/machineTypes/e2-small"})),
        );
        assert_eq!(o.instance_type, "e2-small");
        assert_eq!(o.capacity_type, CapacityType::Spot);
        let o = offering("gce", &launch(json!({})));
        assert_eq!(o.capacity_type, CapacityType::OnDemand);
        assert_eq!(o.quota_scope.as_deref(), Some("europe-west1/on_demand/n2"));
        assert_eq!(machine_series("custom-4-8192"), "custom");
    }
}
