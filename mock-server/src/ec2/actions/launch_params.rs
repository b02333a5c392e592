//! The RunInstances parameters other launches share (CreateFleet and
//! launch template data check them the same way): instance type, zone,
//! user data, metadata options, tag specifications, spot options, and the
//! error of a stocked-out launch.

use std::collections::BTreeMap;
use std::sync::Arc;

use base64::Engine;

use super::{check_tag, tag_pairs, MAX_TAGS, MAX_TAG_SPECS};
use crate::ec2::error::Ec2Error;
use crate::ec2::instances::MetadataOptions;
use crate::ec2::query::Params;

/// Largest decoded UserData EC2 accepts.
const MAX_USER_DATA: usize = 16 * 1024;

/// `InstanceType` (default `m1.small`): `family.size`, lowercase.
pub(super) fn instance_type(p: &Params) -> Result<&str, Ec2Error> {
    let instance_type = p.get("InstanceType").unwrap_or("m1.small");
    let type_ok = instance_type.split_once('.').is_some_and(|(a, b)| {
        !a.is_empty()
            && !b.is_empty()
            && instance_type
                .bytes()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'.' || c == b'-')
    });
    if !type_ok || instance_type.len() > 64 {
        return Err(Ec2Error::invalid_value(format!(
            "Invalid value '{instance_type}' for InstanceType."
        )));
    }
    Ok(instance_type)
}

/// `Placement.AvailabilityZone`, else the zone the subnet lives in.
pub(super) fn zone(
    p: &Params,
    subnet_id: Option<&str>,
    region_zones: &[String],
) -> Result<Option<String>, Ec2Error> {
    match p
        .get("Placement.AvailabilityZone")
        .filter(|z| !z.is_empty())
    {
        Some(z) if region_zones.iter().any(|r| r == z) => Ok(Some(z.to_string())),
        Some(z) => Err(Ec2Error::invalid_value(format!(
            "Invalid availability zone: [{z}]"
        ))),
        None => Ok(subnet_id.map(|s| {
            // A subnet lives in one zone; derive it stably from the id.
            let h = s.bytes().fold(0usize, |h, b| {
                h.wrapping_mul(31).wrapping_add(usize::from(b))
            });
            region_zones[h % region_zones.len()].clone()
        })),
    }
}

/// `UserData`: base64, at most [`MAX_USER_DATA`] bytes decoded.
pub(super) fn user_data(p: &Params) -> Result<Option<Arc<[u8]>>, Ec2Error> {
    let Some(ud) = p.get("UserData") else {
        return Ok(None);
    };
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(ud.trim())
        .map_err(|_| Ec2Error::invalid_value("Invalid BASE64 encoding of user data."))?;
    if decoded.len() > MAX_USER_DATA {
        return Err(Ec2Error::invalid_value(format!(
            "User data is limited to {MAX_USER_DATA} bytes"
        )));
    }
    Ok(Some(decoded.into()))
}

/// `MetadataOptions.HttpTokens` (`optional`, `required`),
/// `.HttpEndpoint` (`enabled`, `disabled`) and
/// `.HttpPutResponseHopLimit` (1 to 64).
pub(super) fn metadata_options(p: &Params) -> Result<MetadataOptions, Ec2Error> {
    let mut m = MetadataOptions::default();
    match p.get("MetadataOptions.HttpTokens") {
        None | Some("optional") => {}
        Some("required") => m.tokens_required = true,
        Some(other) => {
            return Err(Ec2Error::invalid_value(format!(
                "Invalid value '{}' for HttpTokens. Valid values: optional, required.",
                clip(other)
            )))
        }
    }
    match p.get("MetadataOptions.HttpEndpoint") {
        None | Some("enabled") => {}
        Some("disabled") => m.endpoint_enabled = false,
        Some(other) => {
            return Err(Ec2Error::invalid_value(format!(
                "Invalid value '{}' for HttpEndpoint. Valid values: enabled, disabled.",
                clip(other)
            )))
        }
    }
    if let Some(hops) = p.int("MetadataOptions.HttpPutResponseHopLimit")? {
        m.hop_limit = u8::try_from(hops)
            .ok()
            .filter(|h| (1..=64).contains(h))
            .ok_or_else(|| {
                Ec2Error::invalid_value(format!(
                    "Invalid value '{hops}' for HttpPutResponseHopLimit. Valid values: 1 to 64."
                ))
            })?;
    }
    Ok(m)
}

/// At most 64 characters of a value echoed in a message.
pub(super) fn clip(s: &str) -> String {
    s.chars().take(64).collect()
}

/// The tags of the `TagSpecification.N` whose resource type is `instance`
/// (every specification's tags are checked).
pub(super) fn instance_tags(p: &Params) -> Result<BTreeMap<String, String>, Ec2Error> {
    let mut tags = BTreeMap::new();
    let specs = p.indices("TagSpecification");
    if specs.len() > MAX_TAG_SPECS {
        return Err(Ec2Error::invalid_value(format!(
            "The maximum number of tag specifications is {MAX_TAG_SPECS}"
        )));
    }
    for n in specs {
        let rt = p
            .get(&format!("TagSpecification.{n}.ResourceType"))
            .ok_or_else(|| Ec2Error::missing(&format!("TagSpecification.{n}.ResourceType")))?;
        let pairs = tag_pairs(p, &format!("TagSpecification.{n}.Tag"))?;
        for (k, v) in &pairs {
            check_tag(k, v.as_deref().unwrap_or(""))?;
        }
        if rt == "instance" {
            for (k, v) in pairs {
                tags.insert(k, v.unwrap_or_default());
            }
        }
    }
    if tags.len() > MAX_TAGS {
        return Err(Ec2Error::new(
            400,
            "TagLimitExceeded",
            format!("The maximum number of tags ({MAX_TAGS}) per resource was exceeded"),
        ));
    }
    Ok(tags)
}

/// `InstanceMarketOptions`: the spot instance type of a spot launch.
pub(super) fn spot(p: &Params) -> Result<Option<&str>, Ec2Error> {
    match p.get("InstanceMarketOptions.MarketType") {
        None => Ok(None),
        Some("spot") => {
            let kind = p
                .get("InstanceMarketOptions.SpotOptions.SpotInstanceType")
                .unwrap_or("one-time");
            if kind != "one-time" && kind != "persistent" {
                return Err(Ec2Error::invalid_value(format!(
                    "Invalid value '{kind}' for SpotInstanceType."
                )));
            }
            match p.get("InstanceMarketOptions.SpotOptions.InstanceInterruptionBehavior") {
                None | Some("terminate") => {}
                Some("stop" | "hibernate") if kind == "persistent" => {}
                Some(b @ ("stop" | "hibernate")) => {
                    return Err(Ec2Error::invalid_combination(format!(
                        "InstanceInterruptionBehavior '{b}' requires SpotInstanceType 'persistent'."
                    )))
                }
                Some(other) => {
                    return Err(Ec2Error::invalid_value(format!(
                        "Invalid value '{}' for InstanceInterruptionBehavior. Valid values: hibernate, stop, terminate.",
                        clip(other)
                    )))
                }
            }
            if let Some(price) = p.get("InstanceMarketOptions.SpotOptions.MaxPrice") {
                if price
                    .parse::<f64>()
                    .map_or(true, |v| !v.is_finite() || v <= 0.0)
                {
                    return Err(Ec2Error::invalid_value(format!(
                        "Invalid value '{price}' for MaxPrice."
                    )));
                }
            }
            Ok(Some(kind))
        }
        Some(other) => Err(Ec2Error::invalid_value(format!(
            "Invalid value '{other}' for MarketType."
        ))),
    }
}

/// The error of a launch into a stocked-out offering: 500 for EC2's
/// server-side capacity codes, 400 for quota codes and any other.
pub(super) fn stockout_error(code: &str, instance_type: &str, zone: &str) -> Ec2Error {
    match code {
        "InsufficientInstanceCapacity" => Ec2Error::new(
            500,
            code,
            format!(
                "We currently do not have sufficient {instance_type} capacity in the Availability Zone you requested ({zone}). Our system will be working on provisioning additional capacity. You can currently get {instance_type} capacity by not specifying an Availability Zone in your request or choosing a different Availability Zone."
            ),
        ),
        "InsufficientHostCapacity" | "InsufficientReservedInstanceCapacity" => Ec2Error::new(
            500,
            code,
            format!("There is not enough capacity to fulfill your request in {zone}."),
        ),
        "VcpuLimitExceeded" => Ec2Error::new(
            400,
            code,
            format!("You have requested more vCPU capacity than your current vCPU limit allows for the instance bucket that the specified instance type {instance_type} belongs to. Please visit http://aws.amazon.com/contact-us/ec2-request to request an adjustment to this limit."),
        ),
        "MaxSpotInstanceCountExceeded" => Ec2Error::new(
            400,
            code,
            "Max spot instance count exceeded",
        ),
        other => Ec2Error::new(
            400,
            other,
            format!("The request for {instance_type} in {zone} cannot be fulfilled ({other})."),
        ),
    }
}

