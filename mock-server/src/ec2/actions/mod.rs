//! The EC2 actions, one module per family: [`run`] (RunInstances),
//! [`describe`] (DescribeInstances, DescribeInstanceStatus), [`state`]
//! (Terminate/Stop/StartInstances), [`tags`] (Create/Delete/DescribeTags),
//! [`regions`] (DescribeRegions, DescribeAvailabilityZones),
//! [`instance_types`] (DescribeInstanceTypes), [`launch_templates`]
//! (Create/Describe/DeleteLaunchTemplate, and the template a RunInstances
//! names), [`volumes`] (Create/Describe/DeleteVolume), [`attach`]
//! (Attach/DetachVolume), [`block_devices`] (the volumes a launch
//! creates) and [`fleet`] (CreateFleet of type `instant`).
//!
//! Every action first parses its parameters into a typed input (answering
//! EC2's own error codes for missing or malformed ones), then works on the
//! partition. This module holds the parameter parsers the families share.

mod attach;
mod block_devices;
mod describe;
mod fleet;
mod instance_types;
mod launch_params;
mod launch_templates;
mod regions;
mod run;
mod state;
mod tags;
mod volumes;

use super::error::Ec2Error;
use super::query::Params;
use super::xml::is_xml_char;

pub(super) use self::instance_types::describe_instance_types;
pub(super) use self::regions::{describe_availability_zones, describe_regions};

/// The actions the mock implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// RunInstances.
    RunInstances,
    /// DescribeInstances.
    DescribeInstances,
    /// DescribeInstanceStatus.
    DescribeInstanceStatus,
    /// TerminateInstances.
    TerminateInstances,
    /// StopInstances.
    StopInstances,
    /// StartInstances.
    StartInstances,
    /// CreateTags.
    CreateTags,
    /// DeleteTags.
    DeleteTags,
    /// DescribeTags.
    DescribeTags,
    /// DescribeRegions.
    DescribeRegions,
    /// DescribeAvailabilityZones.
    DescribeAvailabilityZones,
    /// DescribeInstanceTypes.
    DescribeInstanceTypes,
    /// CreateLaunchTemplate.
    CreateLaunchTemplate,
    /// DescribeLaunchTemplates.
    DescribeLaunchTemplates,
    /// DeleteLaunchTemplate.
    DeleteLaunchTemplate,
    /// CreateVolume.
    CreateVolume,
    /// DescribeVolumes.
    DescribeVolumes,
    /// DeleteVolume.
    DeleteVolume,
    /// AttachVolume.
    AttachVolume,
    /// DetachVolume.
    DetachVolume,
    /// CreateFleet.
    CreateFleet,
}

impl Action {
    const ALL: [Action; 21] = [
        Action::RunInstances,
        Action::DescribeInstances,
        Action::DescribeInstanceStatus,
        Action::TerminateInstances,
        Action::StopInstances,
        Action::StartInstances,
        Action::CreateTags,
        Action::DeleteTags,
        Action::DescribeTags,
        Action::DescribeRegions,
        Action::DescribeAvailabilityZones,
        Action::DescribeInstanceTypes,
        Action::CreateLaunchTemplate,
        Action::DescribeLaunchTemplates,
        Action::DeleteLaunchTemplate,
        Action::CreateVolume,
        Action::DescribeVolumes,
        Action::DeleteVolume,
        Action::AttachVolume,
        Action::DetachVolume,
        Action::CreateFleet,
    ];

    /// The Action name.
    pub fn name(self) -> &'static str {
        match self {
            Action::RunInstances => "RunInstances",
            Action::DescribeInstances => "DescribeInstances",
            Action::DescribeInstanceStatus => "DescribeInstanceStatus",
            Action::TerminateInstances => "TerminateInstances",
            Action::StopInstances => "StopInstances",
            Action::StartInstances => "StartInstances",
            Action::CreateTags => "CreateTags",
            Action::DeleteTags => "DeleteTags",
            Action::DescribeTags => "DescribeTags",
            Action::DescribeRegions => "DescribeRegions",
            Action::DescribeAvailabilityZones => "DescribeAvailabilityZones",
            Action::DescribeInstanceTypes => "DescribeInstanceTypes",
            Action::CreateLaunchTemplate => "CreateLaunchTemplate",
            Action::DescribeLaunchTemplates => "DescribeLaunchTemplates",
            Action::DeleteLaunchTemplate => "DeleteLaunchTemplate",
            Action::CreateVolume => "CreateVolume",
            Action::DescribeVolumes => "DescribeVolumes",
            Action::DeleteVolume => "DeleteVolume",
            Action::AttachVolume => "AttachVolume",
            Action::DetachVolume => "DetachVolume",
            Action::CreateFleet => "CreateFleet",
        }
    }

    /// The action named `name`, if implemented.
    pub fn from_name(name: &str) -> Option<Action> {
        Action::ALL.into_iter().find(|a| a.name() == name)
    }

    /// The request-token bucket class.
    pub(super) fn request_class(self, p: &Params) -> &'static str {
        match self {
            Action::RunInstances | Action::CreateFleet => "run_instances",
            Action::StartInstances => "start_instances",
            Action::TerminateInstances => "terminate_instances",
            Action::CreateTags | Action::DeleteTags => "tags",
            Action::StopInstances
            | Action::CreateLaunchTemplate
            | Action::DeleteLaunchTemplate
            | Action::CreateVolume
            | Action::DeleteVolume
            | Action::AttachVolume
            | Action::DetachVolume => "mutating",
            Action::DescribeInstances | Action::DescribeInstanceStatus => {
                let unfiltered = p.indices("InstanceId").is_empty()
                    && p.indices("Filter").is_empty()
                    && p.get("MaxResults").is_none();
                if unfiltered {
                    "unfiltered_describe"
                } else {
                    "non_mutating"
                }
            }
            Action::DescribeTags
            | Action::DescribeRegions
            | Action::DescribeAvailabilityZones
            | Action::DescribeInstanceTypes
            | Action::DescribeLaunchTemplates
            | Action::DescribeVolumes => "non_mutating",
        }
    }

    /// The resource-token bucket class and its cost (instances).
    pub(super) fn resource_class(self, p: &Params) -> Option<(&'static str, f64)> {
        let ids = || p.list("InstanceId").len().max(1) as f64;
        match self {
            Action::RunInstances => {
                let n = p
                    .get("MaxCount")
                    .and_then(|v| v.parse::<u32>().ok())
                    .unwrap_or(1)
                    .max(1);
                Some(("run_instances_resource", f64::from(n)))
            }
            Action::CreateFleet => {
                let n = p
                    .get("TargetCapacitySpecification.TotalTargetCapacity")
                    .and_then(|v| v.parse::<u32>().ok())
                    .unwrap_or(1)
                    .max(1);
                Some(("run_instances_resource", f64::from(n)))
            }
            Action::StartInstances => Some(("start_instances_resource", ids())),
            Action::StopInstances => Some(("stop_instances_resource", ids())),
            Action::TerminateInstances => Some(("terminate_instances_resource", ids())),
            _ => None,
        }
    }

    /// What a fault rule's `resource` glob is matched against: the
    /// launch's `Name` tag for RunInstances and CreateFleet, the
    /// `VolumeId` for Attach/DetachVolume, the first `InstanceId` or
    /// `ResourceId` otherwise, else the empty string.
    pub(super) fn fault_resource(self, p: &Params) -> String {
        match self {
            Action::RunInstances | Action::CreateFleet => launch_name_tag(p).unwrap_or_default(),
            Action::AttachVolume | Action::DetachVolume => {
                p.get("VolumeId").unwrap_or_default().to_string()
            }
            Action::CreateTags | Action::DeleteTags => p
                .list("ResourceId")
                .first()
                .map(|s| s.to_string())
                .unwrap_or_default(),
            _ => p
                .list("InstanceId")
                .first()
                .map(|s| s.to_string())
                .unwrap_or_default(),
        }
    }
}

/// Most tags per resource.
const MAX_TAGS: usize = 50;
/// Most `TagSpecification.N` in one RunInstances (each is a scan of the
/// parameters, so the cap also bounds the work a crafted body can cause).
const MAX_TAG_SPECS: usize = 20;

/// The `Name` tag of a RunInstances' instance tag specification.
pub fn launch_name_tag(p: &Params) -> Option<String> {
    for n in p
        .indices("TagSpecification")
        .into_iter()
        .take(MAX_TAG_SPECS)
    {
        if p.get(&format!("TagSpecification.{n}.ResourceType")) != Some("instance") {
            continue;
        }
        for m in p.indices(&format!("TagSpecification.{n}.Tag")) {
            if p.get(&format!("TagSpecification.{n}.Tag.{m}.Key")) == Some("Name") {
                return p
                    .get(&format!("TagSpecification.{n}.Tag.{m}.Value"))
                    .map(str::to_string);
            }
        }
    }
    None
}

/// Whether `id` looks like `{prefix}-` followed by 8 or 17 lowercase hex.
fn well_formed(id: &str, prefix: &str) -> bool {
    id.strip_prefix(prefix)
        .and_then(|r| r.strip_prefix('-'))
        .is_some_and(|hex| {
            (hex.len() == 8 || hex.len() == 17)
                && hex
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        })
}

/// The instance ids of `InstanceId.N`, checked for shape.
fn instance_ids(p: &Params) -> Result<Vec<&str>, Ec2Error> {
    let ids = p.list("InstanceId");
    for id in &ids {
        if !well_formed(id, "i") {
            return Err(Ec2Error::malformed_instance_id(id));
        }
    }
    Ok(ids)
}

/// The availability zones of a region: `{region}a`, `{region}b`, ...
pub fn zones(region: &str, n: u32) -> Vec<String> {
    (0..n.min(26))
        .map(|i| format!("{region}{}", char::from(b'a' + i as u8)))
        .collect()
}

/// The zone id EC2 would show (`use1-az1` for `us-east-1a`).
fn zone_id(region: &str, index: usize) -> String {
    let mut short = String::new();
    let parts: Vec<&str> = region.split('-').collect();
    for (i, part) in parts.iter().enumerate() {
        if i == 0 || i + 1 == parts.len() {
            short.push_str(part);
            continue;
        }
        let abbreviated = match *part {
            "northeast" => "ne",
            "northwest" => "nw",
            "southeast" => "se",
            "southwest" => "sw",
            "north" => "n",
            "south" => "s",
            "east" => "e",
            "west" => "w",
            "central" => "c",
            other => other.get(..1).unwrap_or(""),
        };
        short.push_str(abbreviated);
    }
    format!("{short}-az{}", index + 1)
}

/// `MaxResults` (range `min..=1000`) and `NextToken` (a creation number).
fn page(p: &Params, min: i64) -> Result<(Option<usize>, u64), Ec2Error> {
    let max = match p.int("MaxResults")? {
        None => None,
        Some(n) if n < min || n > 1000 => {
            return Err(Ec2Error::invalid_value(format!(
                "Value ( {n} ) for parameter maxResults is invalid. Expecting a value between {min} and 1000."
            )))
        }
        Some(n) => Some(n as usize),
    };
    let start = match p.get("NextToken") {
        None => 0,
        Some(t) => t
            .strip_prefix("nt-")
            .and_then(|h| u64::from_str_radix(h, 16).ok())
            .ok_or_else(|| Ec2Error::bad_token(t))?,
    };
    Ok((max, start))
}

fn next_token(seq: u64) -> String {
    format!("nt-{seq:016x}")
}

/// Validates a tag key and value as EC2 does.
fn check_tag(key: &str, value: &str) -> Result<(), Ec2Error> {
    if key.is_empty() || key.chars().count() > 128 {
        return Err(Ec2Error::invalid_value(format!(
            "Tag key must be 1 to 128 characters long, got '{key}'"
        )));
    }
    if value.chars().count() > 256 {
        return Err(Ec2Error::invalid_value(format!(
            "Tag value for key '{key}' exceeds 256 characters"
        )));
    }
    if key.to_ascii_lowercase().starts_with("aws:") {
        return Err(Ec2Error::invalid_value(format!(
            "Tag keys starting with 'aws:' are reserved for internal use: '{key}'"
        )));
    }
    if !key.chars().all(is_xml_char) || !value.chars().all(is_xml_char) {
        return Err(Ec2Error::invalid_value(format!(
            "Tag '{key}' contains characters that are not allowed"
        )));
    }
    Ok(())
}

/// `Tag.N.Key` / `Tag.N.Value` pairs under `prefix`.
fn tag_pairs(p: &Params, prefix: &str) -> Result<Vec<(String, Option<String>)>, Ec2Error> {
    let indices = p.indices(prefix);
    if indices.len() > MAX_TAGS {
        return Err(Ec2Error::new(
            400,
            "TagLimitExceeded",
            format!("At most {MAX_TAGS} tags may be given in one request"),
        ));
    }
    let mut out = Vec::new();
    for n in indices {
        let key = p
            .get(&format!("{prefix}.{n}.Key"))
            .ok_or_else(|| Ec2Error::missing(&format!("{prefix}.{n}.Key")))?;
        let value = p.get(&format!("{prefix}.{n}.Value")).map(str::to_string);
        out.push((key.to_string(), value));
    }
    Ok(out)
}

/// The `DryRun` flag. It is parsed with the other parameters but answered
/// where EC2 answers it: after the checks that need state (an unknown id
/// wins over `DryRunOperation`), so a malformed value is kept until then.
struct DryRun(Result<bool, Ec2Error>);

impl DryRun {
    fn parse(p: &Params) -> DryRun {
        DryRun(p.dry_run())
    }

    /// `DryRunOperation` when the flag is set, the parse error when it was
    /// malformed, else nothing.
    fn answer(self) -> Result<(), Ec2Error> {
        if self.0? {
            return Err(Ec2Error::dry_run());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_zones() {
        assert!(well_formed("i-0123456789abcdef0", "i"));
        assert!(well_formed("i-01234567", "i"));
        assert!(!well_formed("i-0123", "i"));
        assert!(!well_formed("i-0123456789ABCDEF0", "i"));
        assert_eq!(zones("us-east-1", 2), vec!["us-east-1a", "us-east-1b"]);
        assert_eq!(zone_id("us-east-1", 0), "use1-az1");
        assert_eq!(zone_id("ap-southeast-2", 1), "apse2-az2");
    }
}
