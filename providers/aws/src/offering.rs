//! The [`Offering`] of an EC2 launch config: where its capacity comes from
//! and which vCPU quota it draws on.
//!
//! - location: `Placement.AvailabilityZone` when the config names one,
//!   else the region (a config with only a `SubnetId` is in the subnet's
//!   zone, which skyfleet cannot tell without a call: it is keyed by
//!   region);
//! - instance type: `InstanceType`;
//! - capacity type: spot with `InstanceMarketOptions.MarketType: spot`;
//! - quota scope: `{region}/{on_demand|spot}/{class}`, EC2's vCPU quotas
//!   being per region, per purchase option and per instance class
//!   ([`quota_class`]).

use skyfleet_core::offering::Offering;

use crate::launch::Ec2Launch;

/// The vCPU quota class of an instance type: `standard` for the families
/// EC2 counts under "Standard (A, C, D, H, I, M, R, T, Z)" instances, else
/// the family's letters (`g` for `g5.xlarge`, `inf` for `inf2.xlarge`,
/// `p`, `x`, `f`, `dl`, `trn`, `hpc`, `vt`, `mac`, `u`).
///
/// The family's letters are the type's leading ASCII letters; `im` and
/// `is` (`im4gn`, `is4gen`) are I-family storage types and so standard.
///
/// ```
/// use skyfleet_aws::quota_class;
/// assert_eq!(quota_class("m5.large"), "standard");
/// assert_eq!(quota_class("c7gn.xlarge"), "standard");
/// assert_eq!(quota_class("g5.xlarge"), "g");
/// assert_eq!(quota_class("inf2.xlarge"), "inf");
/// ```
pub fn quota_class(instance_type: &str) -> String {
    let family = instance_type.split('.').next().unwrap_or_default();
    let letters: String = family
        .chars()
        .take_while(char::is_ascii_alphabetic)
        .map(|c| c.to_ascii_lowercase())
        .collect();
    let standard = matches!(
        letters.as_str(),
        "a" | "c" | "d" | "h" | "i" | "m" | "r" | "t" | "z" | "im" | "is"
    );
    if standard || letters.is_empty() {
        "standard".into()
    } else {
        letters
    }
}

/// The offering of `launch` (validated) on provider `provider_id`.
pub fn offering(provider_id: &str, launch: &Ec2Launch) -> Offering {
    let capacity_type = launch.capacity_type();
    Offering {
        provider_id: provider_id.to_string(),
        location: launch
            .availability_zone()
            .unwrap_or(&launch.region)
            .to_string(),
        instance_type: launch.instance_type.clone(),
        capacity_type,
        quota_scope: Some(format!(
            "{}/{}/{}",
            launch.region,
            capacity_type,
            quota_class(&launch.instance_type)
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use skyfleet_core::offering::CapacityType;

    #[test]
    fn quota_classes() {
        for (t, class) in [
            ("a1.medium", "standard"),
            ("c5.large", "standard"),
            ("d3en.xlarge", "standard"),
            ("h1.2xlarge", "standard"),
            ("i4i.large", "standard"),
            ("im4gn.large", "standard"),
            ("is4gen.medium", "standard"),
            ("m7i-flex.large", "standard"),
            ("r6g.large", "standard"),
            ("t3.micro", "standard"),
            ("z1d.large", "standard"),
            ("f1.2xlarge", "f"),
            ("g4dn.xlarge", "g"),
            ("p4d.24xlarge", "p"),
            ("x2idn.16xlarge", "x"),
            ("inf1.xlarge", "inf"),
            ("trn1.2xlarge", "trn"),
            ("dl1.24xlarge", "dl"),
            ("hpc7g.4xlarge", "hpc"),
            ("vt1.3xlarge", "vt"),
            ("mac2.metal", "mac"),
            ("u-6tb1.metal", "u"),
        ] {
            assert_eq!(quota_class(t), class, "{t}");
        }
    }

    #[test]
    fn offerings_of_launch_configs() {
        let l = Ec2Launch::parse(&json!({
            "region": "us-east-1", "ImageId": "ami-1", "InstanceType": "m5.large",
            "Placement": {"AvailabilityZone": "us-east-1b"},
            "InstanceMarketOptions": {"MarketType": "spot"}
        }))
        .unwrap();
        let o = offering("aws-east", &l);
        assert_eq!(o.location, "us-east-1b");
        assert_eq!(o.instance_type, "m5.large");
        assert_eq!(o.capacity_type, CapacityType::Spot);
        assert_eq!(o.quota_scope.as_deref(), Some("us-east-1/spot/standard"));
        assert_eq!(o.key(), "aws-east/us-east-1b/m5.large/spot");

        let l = Ec2Launch::parse(&json!({
            "region": "eu-west-1", "ImageId": "ami-1", "InstanceType": "g5.xlarge",
            "InstanceMarketOptions": {"MarketType": "on-demand"}
        }))
        .unwrap();
        let o = offering("aws", &l);
        assert_eq!(o.location, "eu-west-1");
        assert_eq!(o.capacity_type, CapacityType::OnDemand);
        assert_eq!(o.quota_scope.as_deref(), Some("eu-west-1/on_demand/g"));
    }
}
