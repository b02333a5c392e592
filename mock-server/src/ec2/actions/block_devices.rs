//! Block device mappings (`BlockDeviceMapping.N.*` of RunInstances, of
//! launch template data and of CreateFleet): the EBS volumes a launch
//! creates for each instance, the root volume included, and device names.

use std::collections::BTreeMap;

use super::volumes::sizing;
use super::{check_tag, tag_pairs, MAX_TAG_SPECS};
use crate::ec2::error::Ec2Error;
use crate::ec2::query::Params;

/// The root device every instance has (`rootDeviceName`).
pub(in crate::ec2) const ROOT_DEVICE: &str = "/dev/xvda";

/// The root volume's size when no mapping names the root device (the
/// mock's AMIs are all 8 GiB).
const ROOT_GIB: &str = "8";

/// Most `BlockDeviceMapping.N` in one launch.
const MAX_MAPPINGS: usize = 32;

/// One EBS volume to create per instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(in crate::ec2) struct DeviceSpec {
    /// The device name it is attached as.
    pub device: String,
    /// Size in GiB.
    pub size_gib: u32,
    /// Volume type.
    pub volume_type: String,
    /// Provisioned IOPS.
    pub iops: Option<u32>,
    /// gp3 throughput.
    pub throughput: Option<u32>,
    /// Encrypted.
    pub encrypted: bool,
    /// Deleted when the instance terminates (default true).
    pub delete_on_termination: bool,
}

/// Whether `name` is a device name EC2 accepts for an EBS volume:
/// `/dev/sd[a-z]`, `/dev/xvd[a-z]`, `/dev/hd[a-z]` (one or two letters,
/// then an optional partition 1 to 15), or `xvd[a-z]` (Windows).
pub(in crate::ec2) fn check_device(name: &str) -> Result<(), Ec2Error> {
    let linux = name.strip_prefix("/dev/");
    let rest = match linux {
        Some(r) => ["sd", "xvd", "hd"]
            .iter()
            .find_map(|p| r.strip_prefix(p)),
        None => name.strip_prefix("xvd"),
    };
    let ok = rest.is_some_and(|r| {
        let letters = r.bytes().take_while(u8::is_ascii_lowercase).count();
        let digits = &r[letters..];
        (1..=2).contains(&letters)
            && (digits.is_empty()
                || (linux.is_some()
                    && !digits.starts_with('0')
                    && digits.parse::<u8>().is_ok_and(|n| (1..=15).contains(&n))))
    });
    if ok {
        return Ok(());
    }
    let shown: String = name.chars().take(64).collect();
    Err(Ec2Error::invalid_value(format!(
        "Value ({shown}) for parameter device is invalid. {shown} is not a valid EBS device name."
    )))
}

/// The volumes one instance of this launch gets: the root volume (from a
/// mapping naming [`ROOT_DEVICE`], else 8 GiB gp2) and one per EBS
/// mapping. `NoDevice` and instance-store (`VirtualName`) mappings create
/// none.
pub(in crate::ec2) fn block_devices(p: &Params) -> Result<Vec<DeviceSpec>, Ec2Error> {
    let indices = p.indices("BlockDeviceMapping");
    if indices.len() > MAX_MAPPINGS {
        return Err(Ec2Error::invalid_value(format!(
            "At most {MAX_MAPPINGS} block device mappings may be given"
        )));
    }
    let mut out: Vec<DeviceSpec> = Vec::new();
    for n in indices {
        let at = |field: &str| format!("BlockDeviceMapping.{n}.{field}");
        let device = p
            .get(&at("DeviceName"))
            .ok_or_else(|| Ec2Error::missing(&at("DeviceName")))?;
        check_device(device)?;
        if out.iter().any(|d| d.device == device) {
            return Err(Ec2Error::invalid_value(format!(
                "The device '{device}' is used in more than one block-device mapping"
            )));
        }
        if p.get(&at("NoDevice")).is_some() || p.get(&at("VirtualName")).is_some() {
            continue;
        }
        let ebs = p.under(&at("Ebs"));
        if ebs.is_empty() {
            return Err(Ec2Error::missing(&at("Ebs")));
        }
        if let Some((_, snap)) = ebs.iter().find(|(k, _)| k == "SnapshotId") {
            // The mock keeps no snapshots.
            return Err(Ec2Error::new(
                400,
                "InvalidSnapshot.NotFound",
                format!("The snapshot '{}' does not exist.", clip(snap)),
            ));
        }
        out.push(spec(device, &ebs, &at("Ebs"))?);
    }
    if !out.iter().any(|d| d.device == ROOT_DEVICE) {
        let root = spec(ROOT_DEVICE, &[("VolumeSize".into(), ROOT_GIB.into())], "root")?;
        out.insert(0, root);
    }
    Ok(out)
}

/// One mapping's `Ebs.*` fields, checked as CreateVolume checks them.
fn spec(device: &str, ebs: &[(String, String)], prefix: &str) -> Result<DeviceSpec, Ec2Error> {
    let mut pairs = Vec::new();
    let mut encrypted = false;
    let mut delete_on_termination = true;
    for (k, v) in ebs {
        let flag = |v: &str| match v {
            "true" => Ok(true),
            "false" => Ok(false),
            _ => Err(Ec2Error::invalid_value(format!(
                "Value ({}) for parameter {prefix}.{k} is invalid. Expected a boolean.",
                clip(v)
            ))),
        };
        match k.as_str() {
            "VolumeSize" => pairs.push(("Size".to_string(), v.clone())),
            "VolumeType" | "Iops" | "Throughput" => pairs.push((k.clone(), v.clone())),
            "Encrypted" => encrypted = flag(v)?,
            "DeleteOnTermination" => delete_on_termination = flag(v)?,
            _ => {}
        }
    }
    if !pairs.iter().any(|(k, _)| k == "Size") {
        return Err(Ec2Error::missing(&format!("{prefix}.VolumeSize")));
    }
    let (size_gib, volume_type, iops, throughput) = sizing(&Params::from_pairs(pairs))?;
    Ok(DeviceSpec {
        device: device.to_string(),
        size_gib,
        volume_type,
        iops,
        throughput,
        encrypted,
        delete_on_termination,
    })
}

/// The tags of the `TagSpecification.N` whose resource type is `volume`
/// (RunInstances checks every specification's tags in
/// [`instance_tags`](super::launch_params::instance_tags)).
pub(in crate::ec2) fn volume_spec_tags(p: &Params) -> Result<BTreeMap<String, String>, Ec2Error> {
    let mut tags = BTreeMap::new();
    for n in p.indices("TagSpecification").into_iter().take(MAX_TAG_SPECS) {
        if p.get(&format!("TagSpecification.{n}.ResourceType")) != Some("volume") {
            continue;
        }
        for (k, v) in tag_pairs(p, &format!("TagSpecification.{n}.Tag"))? {
            let v = v.unwrap_or_default();
            check_tag(&k, &v)?;
            tags.insert(k, v);
        }
    }
    Ok(tags)
}

fn clip(s: &str) -> String {
    s.chars().take(64).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_names() {
        for ok in ["/dev/sdf", "/dev/xvdb", "/dev/xvdba", "/dev/sdf1", "/dev/sdf15", "xvdf", "/dev/hda"] {
            assert!(check_device(ok).is_ok(), "{ok}");
        }
        for bad in ["sdf", "/dev/sdf0", "/dev/sdf16", "/dev/sdabc", "/dev/nvme", "/dev/", "", "xvdf1", "/dev/SDF"] {
            let e = check_device(bad).expect_err(bad);
            assert_eq!(e.code, "InvalidParameterValue", "{bad}");
        }
    }

    #[test]
    fn root_volume_is_added_and_mappings_are_checked() {
        let p = Params::parse(
            b"BlockDeviceMapping.1.DeviceName=/dev/sdf&BlockDeviceMapping.1.Ebs.VolumeSize=20&BlockDeviceMapping.1.Ebs.VolumeType=gp3&BlockDeviceMapping.1.Ebs.DeleteOnTermination=false",
        );
        let d = block_devices(&p).expect("valid");
        assert_eq!(d.len(), 2);
        assert_eq!((d[0].device.as_str(), d[0].size_gib), (ROOT_DEVICE, 8));
        assert!(d[0].delete_on_termination);
        assert_eq!((d[1].size_gib, d[1].volume_type.as_str(), d[1].iops), (20, "gp3", Some(3000)));
        assert!(!d[1].delete_on_termination);
        let root = Params::parse(b"BlockDeviceMapping.1.DeviceName=/dev/xvda&BlockDeviceMapping.1.Ebs.VolumeSize=30");
        assert_eq!(block_devices(&root).expect("valid").len(), 1);
        let no_size = Params::parse(b"BlockDeviceMapping.1.DeviceName=/dev/sdf&BlockDeviceMapping.1.Ebs.VolumeType=gp3");
        assert_eq!(block_devices(&no_size).expect_err("no size").code, "MissingParameter");
        let io1 = Params::parse(b"BlockDeviceMapping.1.DeviceName=/dev/sdf&BlockDeviceMapping.1.Ebs.VolumeSize=10&BlockDeviceMapping.1.Ebs.VolumeType=io1");
        assert_eq!(block_devices(&io1).expect_err("no iops").code, "MissingParameter");
    }
}
