//! The EC2 launch config a pool gives ([`Ec2Launch`]), its validation, and
//! the UserData skyfleet writes for each worker (its
//! [`Bootstrap`] document).
//!
//! The field names are EC2's own (`ImageId`, `InstanceType`, `SubnetId`,
//! `Placement.AvailabilityZone`, `InstanceMarketOptions`, ...), as in
//! Taskcluster's AWS provider, plus `region` and two skyfleet fields,
//! `workerConfig` and `additionalUserData`, which go into the UserData.
//! As in Taskcluster, `MinCount`, `MaxCount`, `UserData` and
//! `IamInstanceProfile` are refused: skyfleet launches exactly one instance
//! per worker and writes the UserData itself, and an instance profile is
//! not something a pool config should be able to grant. Spot instances
//! must end when EC2 reclaims them (skyfleet replaces them):
//! `SpotOptions.InstanceInterruptionBehavior` `stop` or `hibernate` and
//! `SpotInstanceType: persistent` are refused, naming the key.
//!
//! ```
//! use serde_json::json;
//! let launch = skyfleet_aws::Ec2Launch::parse(&json!({
//!     "region": "us-east-1",
//!     "ImageId": "ami-0123456789abcdef0",
//!     "InstanceType": "m5.large",
//!     "InstanceMarketOptions": {"MarketType": "spot"}
//! })).unwrap();
//! assert!(launch.is_spot());
//! let err = skyfleet_aws::Ec2Launch::parse(&json!({
//!     "region": "us-east-1", "ImageId": "ami-1", "InstanceType": "m5.large", "MaxCount": 3
//! })).unwrap_err();
//! assert!(err.to_string().contains("launch.MaxCount"));
//! ```

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use skyfleet_core::offering::CapacityType;
use skyfleet_core::provider::bootstrap::{Bootstrap, MAX_ROOT_URL};
use skyfleet_core::{Error, Result, WorkerSpec};

use crate::builder::is_region_name;

/// The largest UserData EC2 accepts, in bytes before base64 encoding.
pub const MAX_USER_DATA: usize = 16 * 1024;

/// Fields refused in a launch config, with the reason.
const FORBIDDEN: &[(&str, &str)] = &[
    (
        "MinCount",
        "skyfleet launches exactly one instance per worker",
    ),
    (
        "MaxCount",
        "skyfleet launches exactly one instance per worker",
    ),
    (
        "UserData",
        "skyfleet writes the UserData; put worker settings in `workerConfig` or `additionalUserData`",
    ),
    (
        "IamInstanceProfile",
        "instance profiles are not allowed in launch configs",
    ),
    (
        "ClientToken",
        "skyfleet derives the ClientToken from the worker id",
    ),
    (
        "TagSpecifications",
        "skyfleet tags instances and volumes itself; use the pool's tags",
    ),
];

/// The fields a launch config may have.
const ALLOWED: &[&str] = &[
    "region",
    "ImageId",
    "InstanceType",
    "SubnetId",
    "Placement",
    "SecurityGroupIds",
    "KeyName",
    "InstanceMarketOptions",
    "BlockDeviceMappings",
    "EbsOptimized",
    "workerConfig",
    "additionalUserData",
];

/// Placement of the instance.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct Placement {
    /// The availability zone (`us-east-1a`).
    #[serde(default)]
    pub availability_zone: Option<String>,
}

/// Spot options (`InstanceMarketOptions.SpotOptions`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct SpotOptions {
    /// The highest hourly price, as a decimal string (`"0.05"`).
    #[serde(default)]
    pub max_price: Option<String>,
    /// `one-time` (default) or `persistent`.
    #[serde(default)]
    pub spot_instance_type: Option<String>,
    /// `terminate` (default), `stop` or `hibernate`.
    #[serde(default)]
    pub instance_interruption_behavior: Option<String>,
}

/// `InstanceMarketOptions`: spot or on-demand.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct MarketOptions {
    /// `spot` (or `on-demand`, the same as leaving the options out).
    pub market_type: String,
    /// Spot options.
    #[serde(default)]
    pub spot_options: Option<SpotOptions>,
}

/// An EBS volume of a block device mapping.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct Ebs {
    /// Size in GiB.
    #[serde(default)]
    pub volume_size: Option<i32>,
    /// `gp3`, `gp2`, `io1`, `io2`, `st1`, `sc1` or `standard`.
    #[serde(default)]
    pub volume_type: Option<String>,
    /// Delete the volume with the instance (default true for root volumes).
    #[serde(default)]
    pub delete_on_termination: Option<bool>,
    /// Encrypt the volume.
    #[serde(default)]
    pub encrypted: Option<bool>,
    /// Provisioned IOPS.
    #[serde(default)]
    pub iops: Option<i32>,
    /// Throughput in MiB/s (gp3).
    #[serde(default)]
    pub throughput: Option<i32>,
    /// The snapshot to create the volume from.
    #[serde(default)]
    pub snapshot_id: Option<String>,
}

/// One block device mapping.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct BlockDevice {
    /// The device name (`/dev/xvda`).
    pub device_name: String,
    /// The EBS volume.
    #[serde(default)]
    pub ebs: Option<Ebs>,
}

/// A validated EC2 launch config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ec2Launch {
    /// The region to launch in.
    pub region: String,
    /// The AMI.
    #[serde(rename = "ImageId")]
    pub image_id: String,
    /// The instance type.
    #[serde(rename = "InstanceType")]
    pub instance_type: String,
    /// The subnet (which implies the availability zone).
    #[serde(rename = "SubnetId", default)]
    pub subnet_id: Option<String>,
    /// Placement.
    #[serde(rename = "Placement", default)]
    pub placement: Option<Placement>,
    /// Security groups.
    #[serde(rename = "SecurityGroupIds", default)]
    pub security_group_ids: Vec<String>,
    /// The key pair.
    #[serde(rename = "KeyName", default)]
    pub key_name: Option<String>,
    /// Spot or on-demand.
    #[serde(rename = "InstanceMarketOptions", default)]
    pub market: Option<MarketOptions>,
    /// Block device mappings.
    #[serde(rename = "BlockDeviceMappings", default)]
    pub block_devices: Vec<BlockDevice>,
    /// EBS optimisation.
    #[serde(rename = "EbsOptimized", default)]
    pub ebs_optimized: Option<bool>,
    /// The worker's own configuration, passed in the UserData.
    #[serde(rename = "workerConfig", default)]
    pub worker_config: Option<Value>,
    /// Extra UserData keys (skyfleet's own keys win on conflict).
    #[serde(rename = "additionalUserData", default)]
    pub additional_user_data: Option<Map<String, Value>>,
}

fn check_id(field: &str, value: &str, prefix: &str) -> Result<()> {
    let rest = value.strip_prefix(prefix).and_then(|r| r.strip_prefix('-'));
    let ok = rest.is_some_and(|r| !r.is_empty() && r.bytes().all(|b| b.is_ascii_alphanumeric()));
    if ok {
        Ok(())
    } else {
        Err(Error::invalid_config(
            format!("launch.{field}"),
            format!("`{value}` is not a valid id (expected `{prefix}-...`)"),
        ))
    }
}

impl Ec2Launch {
    /// Parses and validates a launch config. Errors are `InvalidConfig`
    /// naming the field (`launch.ImageId`, `launch.MaxCount`, ...).
    pub fn parse(launch: &Value) -> Result<Ec2Launch> {
        let Value::Object(map) = launch else {
            return Err(Error::invalid_config("launch", "must be a JSON object"));
        };
        for key in map.keys() {
            if let Some((_, why)) = FORBIDDEN.iter().find(|(k, _)| k == key) {
                return Err(Error::invalid_config(
                    format!("launch.{key}"),
                    format!("`{key}` is not allowed: {why}"),
                ));
            }
            if !ALLOWED.contains(&key.as_str()) {
                return Err(Error::invalid_config(
                    format!("launch.{key}"),
                    format!("unknown field `{key}` (allowed: {})", ALLOWED.join(", ")),
                ));
            }
        }
        for required in ["region", "ImageId", "InstanceType"] {
            if !map.contains_key(required) {
                return Err(Error::invalid_config(
                    format!("launch.{required}"),
                    format!("`{required}` is required"),
                ));
            }
        }
        let parsed: Ec2Launch = serde_path_to_error::deserialize(launch).map_err(|e| {
            let path = e.path().to_string();
            Error::invalid_config(format!("launch.{path}"), e.inner().to_string())
        })?;
        parsed.check()?;
        Ok(parsed)
    }

    fn check(&self) -> Result<()> {
        if !is_region_name(&self.region) {
            return Err(Error::invalid_config(
                "launch.region",
                format!("`{}` is not a region name such as us-east-1", self.region),
            ));
        }
        check_id("ImageId", &self.image_id, "ami")?;
        let t = &self.instance_type;
        let type_ok = t.len() <= 64
            && t.split_once('.')
                .is_some_and(|(a, b)| !a.is_empty() && !b.is_empty())
            && t.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-');
        if !type_ok {
            return Err(Error::invalid_config(
                "launch.InstanceType",
                format!("`{t}` is not an instance type such as m5.large"),
            ));
        }
        if let Some(s) = &self.subnet_id {
            check_id("SubnetId", s, "subnet")?;
        }
        for (i, g) in self.security_group_ids.iter().enumerate() {
            check_id(&format!("SecurityGroupIds[{i}]"), g, "sg")?;
        }
        if let Some(z) = self.availability_zone() {
            if !z.starts_with(&self.region) || z.len() <= self.region.len() {
                return Err(Error::invalid_config(
                    "launch.Placement.AvailabilityZone",
                    format!("zone `{z}` is not in region `{}`", self.region),
                ));
            }
        }
        if let Some(m) = &self.market {
            match m.market_type.as_str() {
                "spot" | "on-demand" => {}
                other => {
                    return Err(Error::invalid_config(
                        "launch.InstanceMarketOptions.MarketType",
                        format!("`{other}` is not `spot` or `on-demand`"),
                    ))
                }
            }
            if m.market_type != "spot" && m.spot_options.is_some() {
                return Err(Error::invalid_config(
                    "launch.InstanceMarketOptions.SpotOptions",
                    "SpotOptions need MarketType `spot`",
                ));
            }
            if let Some(s) = &m.spot_options {
                let f = "launch.InstanceMarketOptions.SpotOptions";
                if let Some(p) = &s.max_price {
                    if p.parse::<f64>()
                        .map_or(true, |v| !v.is_finite() || v <= 0.0)
                    {
                        return Err(Error::invalid_config(
                            format!("{f}.MaxPrice"),
                            format!("`{p}` is not a positive decimal price"),
                        ));
                    }
                }
                // skyfleet replaces an interrupted worker: the instance
                // must end with its interruption, not wait stopped (or be
                // relaunched by a persistent request) behind skyfleet's back.
                if let Some(k) = &s.spot_instance_type {
                    match k.as_str() {
                        "one-time" => {}
                        "persistent" => {
                            return Err(Error::invalid_config(
                                format!("{f}.SpotInstanceType"),
                                "`persistent` is not supported: skyfleet replaces interrupted \
                                 workers itself; use `one-time`",
                            ))
                        }
                        _ => {
                            return Err(Error::invalid_config(
                                format!("{f}.SpotInstanceType"),
                                format!("`{k}` is not `one-time`"),
                            ))
                        }
                    }
                }
                if let Some(b) = &s.instance_interruption_behavior {
                    match b.as_str() {
                        "terminate" => {}
                        "stop" | "hibernate" => {
                            return Err(Error::invalid_config(
                                format!("{f}.InstanceInterruptionBehavior"),
                                format!(
                                    "`{b}` is not supported: skyfleet replaces interrupted \
                                     workers, so the instance must `terminate`"
                                ),
                            ))
                        }
                        _ => {
                            return Err(Error::invalid_config(
                                format!("{f}.InstanceInterruptionBehavior"),
                                format!("`{b}` is not `terminate`"),
                            ))
                        }
                    }
                }
            }
        }
        for (i, d) in self.block_devices.iter().enumerate() {
            let f = format!("launch.BlockDeviceMappings[{i}]");
            if !d.device_name.starts_with("/dev/") && !d.device_name.starts_with("xvd") {
                return Err(Error::invalid_config(
                    format!("{f}.DeviceName"),
                    format!("`{}` is not a device name such as /dev/xvda", d.device_name),
                ));
            }
            if let Some(ebs) = &d.ebs {
                if ebs.volume_size.is_some_and(|s| s < 1) {
                    return Err(Error::invalid_config(
                        format!("{f}.Ebs.VolumeSize"),
                        "must be at least 1 GiB",
                    ));
                }
                if let Some(t) = &ebs.volume_type {
                    if !["gp3", "gp2", "io1", "io2", "st1", "sc1", "standard"].contains(&t.as_str())
                    {
                        return Err(Error::invalid_config(
                            format!("{f}.Ebs.VolumeType"),
                            format!("`{t}` is not an EBS volume type"),
                        ));
                    }
                }
            }
        }
        // The UserData of any worker must fit: check with the largest
        // identity fields a worker can have.
        let worst = self.user_data_json(Bootstrap {
            root_url: "u".repeat(MAX_ROOT_URL),
            worker_pool_id: "p".repeat(256),
            provider_id: "p".repeat(64),
            worker_group: self.region.clone(),
            worker_id: "w".repeat(38),
            launch_config_id: "l".repeat(128),
            worker_config: Value::Object(Map::new()),
            extra: Map::new(),
        });
        if worst.len() > MAX_USER_DATA {
            return Err(Error::invalid_config(
                "launch.workerConfig",
                format!(
                    "workerConfig and additionalUserData make a UserData of about {} bytes; EC2 accepts at most {MAX_USER_DATA}",
                    worst.len()
                ),
            ));
        }
        Ok(())
    }

    /// The availability zone, when the config names one.
    pub fn availability_zone(&self) -> Option<&str> {
        self.placement
            .as_ref()
            .and_then(|p| p.availability_zone.as_deref())
            .filter(|z| !z.is_empty())
    }

    /// Whether the instance is a spot instance.
    pub fn is_spot(&self) -> bool {
        self.market
            .as_ref()
            .is_some_and(|m| m.market_type == "spot")
    }

    /// The capacity type: [`CapacityType::Spot`] with `MarketType: spot`,
    /// else on demand.
    pub fn capacity_type(&self) -> CapacityType {
        if self.is_spot() {
            CapacityType::Spot
        } else {
            CapacityType::OnDemand
        }
    }

    /// `doc` with this config's worker config and extra keys, in JSON.
    fn user_data_json(&self, doc: Bootstrap) -> Vec<u8> {
        let mut doc = doc.with_worker_config(self.worker_config.as_ref());
        if let Some(extra) = &self.additional_user_data {
            doc = doc.with_extra(extra);
        }
        doc.to_json()
    }

    /// The base64 UserData for a worker: its bootstrap document
    /// ([`Bootstrap`]: `rootUrl` (the provider's root URL, when it has one),
    /// `workerPoolId`, `providerId`, `workerGroup` (the region), `workerId`,
    /// `launchConfigId`, `workerConfig`) with the `additionalUserData` keys
    /// beside them. Fails with `InvalidConfig` when it is larger than EC2's
    /// 16 KB.
    pub fn user_data(&self, spec: &WorkerSpec, root_url: Option<&str>) -> Result<String> {
        let raw = self.user_data_json(Bootstrap::new(spec, self.region.clone(), root_url));
        if raw.len() > MAX_USER_DATA {
            return Err(Error::invalid_config(
                "launch.workerConfig",
                format!(
                    "the UserData is {} bytes; EC2 accepts at most {MAX_USER_DATA}",
                    raw.len()
                ),
            ));
        }
        Ok(base64::engine::general_purpose::STANDARD.encode(raw))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn base() -> Value {
        json!({"region": "us-east-1", "ImageId": "ami-0abc", "InstanceType": "t3.micro"})
    }

    fn field_of(v: Value) -> String {
        match Ec2Launch::parse(&v).unwrap_err().kind() {
            skyfleet_core::ErrorKind::InvalidConfig { field } => field.clone(),
            k => panic!("unexpected {k:?}"),
        }
    }

    fn with(key: &str, value: Value) -> Value {
        let mut v = base();
        v[key] = value;
        v
    }

    #[test]
    fn required_and_forbidden_fields() {
        assert!(Ec2Launch::parse(&base()).is_ok());
        for key in ["region", "ImageId", "InstanceType"] {
            let mut v = base();
            v.as_object_mut().unwrap().remove(key);
            assert_eq!(field_of(v), format!("launch.{key}"));
        }
        for key in ["MinCount", "MaxCount", "UserData", "IamInstanceProfile"] {
            assert_eq!(field_of(with(key, json!(1))), format!("launch.{key}"));
        }
        assert_eq!(field_of(with("Colour", json!("red"))), "launch.Colour");
        assert_eq!(field_of(json!([])), "launch");
    }

    #[test]
    fn user_data_is_the_bootstrap_document() {
        let mut v = base();
        v["workerConfig"] = json!({"threads": 4});
        v["additionalUserData"] = json!({"workerId": "forged", "site": "lab"});
        let launch = Ec2Launch::parse(&v).unwrap();
        let spec = skyfleet_core::testing::fixtures::worker("w-1")
            .pool("ci/linux")
            .spec();
        let ud = launch.user_data(&spec, Some("https://m.example")).unwrap();
        let doc = Bootstrap::parse_base64(&ud).unwrap();
        assert_eq!(doc.root_url, "https://m.example");
        assert_eq!(doc.worker_id, "w-1", "skyfleet's keys win");
        assert_eq!(doc.worker_pool_id, "ci/linux");
        assert_eq!(doc.worker_group, "us-east-1");
        assert_eq!(doc.worker_config, json!({"threads": 4}));
        assert_eq!(doc.extra["site"], "lab");
    }

    #[test]
    fn values_are_checked() {
        assert_eq!(field_of(with("ImageId", json!("img-1"))), "launch.ImageId");
        assert_eq!(field_of(with("ImageId", json!(7))), "launch.ImageId");
        assert_eq!(
            field_of(with("InstanceType", json!("huge"))),
            "launch.InstanceType"
        );
        assert_eq!(field_of(with("region", json!("Mars"))), "launch.region");
        assert_eq!(
            field_of(with("Placement", json!({"AvailabilityZone": "eu-west-1a"}))),
            "launch.Placement.AvailabilityZone"
        );
        assert_eq!(
            field_of(with(
                "InstanceMarketOptions",
                json!({"MarketType": "spot", "SpotOptions": {"MaxPrice": "-1"}})
            )),
            "launch.InstanceMarketOptions.SpotOptions.MaxPrice"
        );
        for (key, value) in [
            ("InstanceInterruptionBehavior", "stop"),
            ("InstanceInterruptionBehavior", "hibernate"),
            ("InstanceInterruptionBehavior", "reboot"),
            ("SpotInstanceType", "persistent"),
        ] {
            assert_eq!(
                field_of(with(
                    "InstanceMarketOptions",
                    json!({"MarketType": "spot", "SpotOptions": {key: value}})
                )),
                format!("launch.InstanceMarketOptions.SpotOptions.{key}"),
                "{key}: {value}"
            );
        }
        let ok = Ec2Launch::parse(&with(
            "InstanceMarketOptions",
            json!({"MarketType": "spot", "SpotOptions": {
                "InstanceInterruptionBehavior": "terminate", "SpotInstanceType": "one-time",
                "MaxPrice": "0.04"}}),
        ))
        .unwrap();
        assert_eq!(ok.capacity_type(), CapacityType::Spot);
        assert_eq!(
            Ec2Launch::parse(&base()).unwrap().capacity_type(),
            CapacityType::OnDemand
        );
        assert_eq!(
            field_of(with(
                "BlockDeviceMappings",
                json!([{"DeviceName": "/dev/xvda", "Ebs": {"VolumeSize": "big"}}])
            )),
            "launch.BlockDeviceMappings[0].Ebs.VolumeSize"
        );
        assert_eq!(
            field_of(with("workerConfig", json!({"blob": "x".repeat(17_000)}))),
            "launch.workerConfig"
        );
    }
}
