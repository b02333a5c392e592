//! The [`Offering`] of an Azure launch config: the location, the VM size,
//! spot or regular, and the quota scope `{location}/{spot|on_demand}/{series}`.
//!
//! ARM counts regular vCPUs per region and per VM family
//! (`standardDSv5Family`), and spot vCPUs in one regional pool ("Total
//! Regional Low-priority vCPUs", whatever the family): a spot offering's
//! series is therefore `lowPriority`, shared by every spot size of the
//! location, and a regular one's is [`vm_family`] of its size.

use skyfleet_core::offering::{CapacityType, Offering};

use crate::launch::AzureLaunch;

/// The series of every spot offering: Azure's one regional spot quota.
pub const SPOT_SERIES: &str = "lowPriority";

/// The quota family of a VM size, an approximation of ARM's family names
/// made from the size alone: `standard` + the family letters + the
/// feature letters in capitals + the version + any other parts +
/// `Family`. Exact for the common sizes (`Standard_D2s_v5` is
/// `standardDSv5Family`, `Standard_D2ads_v5` `standardDADSv5Family`,
/// `Standard_B2s` `standardBSFamily`, `Standard_NC4as_T4_v3`
/// `standardNCASv3_T4Family`, `Standard_M128ms` `standardMSFamily`); a
/// few families that ARM names otherwise
/// (for example promotional or constrained sizes folded into their base
/// family) are keyed separately, which only makes a quota error mark
/// fewer offerings.
///
/// ```
/// assert_eq!(skyfleet_azure::vm_family("Standard_D2s_v5"), "standardDSv5Family");
/// assert_eq!(skyfleet_azure::vm_family("Standard_E4-2as_v4"), "standardEASv4Family");
/// ```
pub fn vm_family(vm_size: &str) -> String {
    let mut parts = vm_size.split('_');
    let first = parts.next().unwrap_or_default();
    let (tier, size) =
        if first.eq_ignore_ascii_case("standard") || first.eq_ignore_ascii_case("basic") {
            (first.to_ascii_lowercase(), parts.next().unwrap_or_default())
        } else {
            ("standard".to_string(), first)
        };
    let family: String = size
        .chars()
        .take_while(char::is_ascii_alphabetic)
        .map(|c| c.to_ascii_uppercase())
        .collect();
    // ARM leaves the memory-intensive `m` out of M-series family names
    // (`Standard_M128ms` is `standardMSFamily`).
    let features: String = size
        .chars()
        .skip_while(char::is_ascii_alphabetic)
        .skip_while(|c| c.is_ascii_digit() || *c == '-')
        .filter(|c| !(family == "M" && c.eq_ignore_ascii_case(&'m')))
        .map(|c| c.to_ascii_uppercase())
        .collect();
    let mut version = String::new();
    let mut others = String::new();
    for p in parts {
        let is_version =
            p.len() > 1 && p.starts_with(['v', 'V']) && p[1..].bytes().all(|b| b.is_ascii_digit());
        if is_version {
            version = p.to_ascii_lowercase();
        } else if !p.eq_ignore_ascii_case("promo") && !p.is_empty() {
            others.push('_');
            others.push_str(p);
        }
    }
    format!("{tier}{family}{features}{version}{others}Family")
}

/// The offering of `launch` (validated) on provider `provider_id`.
pub fn offering(provider_id: &str, launch: &AzureLaunch) -> Offering {
    let capacity_type = launch.capacity_type();
    let series = match capacity_type {
        CapacityType::Spot => SPOT_SERIES.to_string(),
        CapacityType::OnDemand => vm_family(launch.vm_size()),
    };
    Offering {
        provider_id: provider_id.to_string(),
        location: launch.location().to_string(),
        instance_type: launch.vm_size().to_string(),
        capacity_type,
        quota_scope: Some(format!("{}/{capacity_type}/{series}", launch.location())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn families() {
        for (size, family) in [
            ("Standard_D2s_v5", "standardDSv5Family"),
            ("Standard_D2_v5", "standardDv5Family"),
            ("Standard_D2ads_v5", "standardDADSv5Family"),
            ("Standard_DS2_v2", "standardDSv2Family"),
            ("Standard_E4s_v3", "standardESv3Family"),
            ("Standard_F2s_v2", "standardFSv2Family"),
            ("Standard_B2s", "standardBSFamily"),
            ("Standard_A2_v2", "standardAv2Family"),
            ("Standard_M128ms", "standardMSFamily"),
            ("Standard_L8s_v3", "standardLSv3Family"),
            ("Standard_NC4as_T4_v3", "standardNCASv3_T4Family"),
            ("Standard_E4-2as_v4", "standardEASv4Family"),
            ("Basic_A1", "basicAFamily"),
        ] {
            assert_eq!(vm_family(size), family, "{size}");
        }
    }

    #[test]
    fn offerings_of_launch_configs() {
        let subnet = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/virtualNetworks/v/subnets/d";
        let l = AzureLaunch::parse(
            &json!({"location": "westeurope", "vm_size": "Standard_D2s_v5",
                                           "subnet_id": subnet}),
        )
        .unwrap();
        let o = offering("az", &l);
        assert_eq!(o.key(), "az/westeurope/Standard_D2s_v5/on_demand");
        assert_eq!(
            o.quota_scope.as_deref(),
            Some("westeurope/on_demand/standardDSv5Family")
        );
        let l = AzureLaunch::parse(
            &json!({"location": "westeurope", "vm_size": "Standard_E4s_v3",
                                           "subnet_id": subnet, "priority": "Spot"}),
        )
        .unwrap();
        let o = offering("az", &l);
        assert_eq!(o.capacity_type, CapacityType::Spot);
        assert_eq!(
            o.quota_scope.as_deref(),
            Some("westeurope/spot/lowPriority")
        );
    }
}
