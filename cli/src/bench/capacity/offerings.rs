//! The benchmark's six offerings per cloud: spot first (tier 0, four
//! offerings: two types in two zones, or on Azure two sizes and a third
//! size), on-demand after (tier 1, two offerings), and which two of them
//! the mock stocks out for the first third of the run (the two with the
//! most weight in the spot tier).

use serde_json::{json, Value};
use skyfleet_core::model::LaunchConfig;

/// One offering of the benchmark: its launch config and what the mock
/// matches a stockout on.
#[derive(Debug, Clone)]
pub struct BenchOffering {
    /// The launch config.
    pub launch: LaunchConfig,
    /// The mock's location of it (EC2 zone, GCE zone, ARM location).
    pub location: &'static str,
    /// Its instance type or VM size.
    pub instance_type: &'static str,
    /// Whether it is spot.
    pub spot: bool,
    /// Whether the mock stocks it out for part of the run.
    pub stocked_out: bool,
}

fn lc(id: String, tier: u32, weight: f64, launch: Value) -> LaunchConfig {
    LaunchConfig {
        id,
        weight,
        capacity_per_worker: 1,
        tier,
        launch,
    }
}

/// (location, type, spot, stocked out) of each cloud's six offerings.
fn plan(cloud: &str) -> [(&'static str, &'static str, bool, bool); 6] {
    match cloud {
        "aws" => [
            ("us-east-1a", "m5.large", true, true),
            ("us-east-1b", "m5.large", true, false),
            ("us-east-1a", "c5.large", true, true),
            ("us-east-1b", "c5.large", true, false),
            ("us-east-1c", "m5.large", false, false),
            ("us-east-1c", "c5.large", false, false),
        ],
        "gcp" => [
            ("europe-west1-b", "e2-standard-4", true, true),
            ("europe-west1-c", "e2-standard-4", true, false),
            ("europe-west1-b", "n2-standard-4", true, true),
            ("europe-west1-c", "n2-standard-4", true, false),
            ("europe-west1-d", "e2-standard-4", false, false),
            ("europe-west1-d", "n2-standard-4", false, false),
        ],
        _ => [
            ("westeurope", "Standard_D2s_v5", true, true),
            ("westeurope", "Standard_D4s_v5", true, false),
            ("westeurope", "Standard_E2s_v5", true, true),
            ("westeurope", "Standard_F2s_v2", true, false),
            ("westeurope", "Standard_D2s_v5", false, false),
            ("westeurope", "Standard_E2s_v5", false, false),
        ],
    }
}

/// The six offerings of `cloud` (`aws`, `gcp`, `azure`), built from the
/// demo pool's launch (`base`: its image, disks, subnet).
pub fn offerings(cloud: &str, base: &Value) -> Vec<BenchOffering> {
    plan(cloud)
        .into_iter()
        .enumerate()
        .map(|(i, (location, instance_type, spot, stocked_out))| {
            let mut launch = base.clone();
            match cloud {
                "aws" => {
                    launch["InstanceType"] = json!(instance_type);
                    launch["Placement"] = json!({"AvailabilityZone": location});
                    if spot {
                        launch["InstanceMarketOptions"] = json!({"MarketType": "spot"});
                    }
                }
                "gcp" => {
                    launch["zone"] = json!(location);
                    launch["machineType"] = json!(instance_type);
                    if spot {
                        launch["scheduling"] = json!({
                            "provisioningModel": "SPOT",
                            "instanceTerminationAction": "DELETE"
                        });
                    }
                }
                _ => {
                    launch["location"] = json!(location);
                    launch["vm_size"] = json!(instance_type);
                    if spot {
                        launch["priority"] = json!("Spot");
                        launch["eviction_policy"] = json!("Delete");
                    }
                }
            }
            let kind = if spot { "spot" } else { "od" };
            BenchOffering {
                launch: lc(
                    format!("{kind}-{i}-{instance_type}-{location}").to_ascii_lowercase(),
                    u32::from(!spot),
                    // The offerings that stock out are the favourites, as
                    // the cheapest type would be: launches meet the
                    // stockout at once, even in a small pool.
                    if stocked_out { 3.0 } else { 1.0 },
                    launch,
                ),
                location,
                instance_type,
                spot,
                stocked_out,
            }
        })
        .collect()
}

/// The mock's stockout entries for `cloud`'s stocked-out offerings.
pub fn stockouts(cloud: &str, offerings: &[BenchOffering]) -> Vec<Value> {
    offerings
        .iter()
        .filter(|o| o.stocked_out)
        .map(|o| {
            json!({
                "cloud": cloud,
                "location": o.location,
                "instance_type": o.instance_type,
                "capacity_type": if o.spot { "spot" } else { "on_demand" },
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn six_offerings_per_cloud_spot_first_two_stocked_out() {
        for cloud in ["aws", "gcp", "azure"] {
            let o = offerings(cloud, &json!({}));
            assert_eq!(o.len(), 6);
            assert_eq!(o.iter().filter(|o| o.spot).count(), 4, "{cloud}");
            assert!(o.iter().all(|o| o.launch.tier == u32::from(!o.spot)));
            assert_eq!(stockouts(cloud, &o).len(), 2);
            let ids: std::collections::BTreeSet<_> = o.iter().map(|o| &o.launch.id).collect();
            assert_eq!(ids.len(), 6, "launch config ids are distinct");
        }
    }
}
