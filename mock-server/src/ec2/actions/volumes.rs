//! CreateVolume, DescribeVolumes and DeleteVolume (EBS volumes; an
//! attached volume answers `VolumeInUse` to DeleteVolume, see [`attach`](super::attach)).

use std::collections::BTreeMap;
use std::time::Instant;

use super::{check_tag, next_token, page, tag_pairs, well_formed, zones, DryRun, MAX_TAG_SPECS};
use crate::ec2::config::Ec2Config;
use crate::ec2::error::Ec2Error;
use crate::ec2::filters::{self, Filter};
use crate::ec2::instances::bool_str;
use crate::ec2::query::Params;
use crate::ec2::volumes::Volume;
use crate::ec2::xml::Xml;
use crate::ec2::{Caller, Ec2};

/// Filter names DescribeVolumes supports.
const FILTERS: &[&str] = &[
    "volume-id",
    "status",
    "availability-zone",
    "size",
    "volume-type",
    "encrypted",
    "tag:",
    "tag-key",
    "tag-value",
    "attachment.instance-id",
    "attachment.device",
    "attachment.status",
    "attachment.delete-on-termination",
];

/// A volume type's size range (GiB) and IOPS rule.
struct TypeRule {
    min_gib: i64,
    max_gib: i64,
    /// The IOPS range when the type takes `Iops`; `None` when it does not.
    iops: Option<(i64, i64)>,
    /// Whether `Iops` must be given.
    iops_required: bool,
}

fn rule(volume_type: &str) -> Option<TypeRule> {
    let r = |min_gib, max_gib, iops, iops_required| TypeRule {
        min_gib,
        max_gib,
        iops,
        iops_required,
    };
    Some(match volume_type {
        "gp2" => r(1, 16384, None, false),
        "gp3" => r(1, 16384, Some((3000, 16000)), false),
        "io1" => r(4, 16384, Some((100, 64000)), true),
        "io2" => r(4, 16384, Some((100, 256000)), true),
        "st1" | "sc1" => r(125, 16384, None, false),
        "standard" => r(1, 1024, None, false),
        _ => return None,
    })
}

pub(super) fn not_found(id: &str) -> Ec2Error {
    Ec2Error::new(
        400,
        "InvalidVolume.NotFound",
        format!("The volume '{id}' does not exist."),
    )
}

pub(super) fn check_id(id: &str) -> Result<(), Ec2Error> {
    if well_formed(id, "vol") {
        return Ok(());
    }
    Err(Ec2Error::new(
        400,
        "InvalidVolumeID.Malformed",
        format!("Invalid id: \"{id}\" (expecting \"vol-...\")"),
    ))
}

/// The tags of the `TagSpecification.N` of resource type `volume`.
fn volume_tags(p: &Params) -> Result<BTreeMap<String, String>, Ec2Error> {
    let mut tags = BTreeMap::new();
    let specs = p.indices("TagSpecification");
    if specs.len() > MAX_TAG_SPECS {
        return Err(Ec2Error::invalid_value(format!(
            "The maximum number of tag specifications is {MAX_TAG_SPECS}"
        )));
    }
    for n in specs {
        let rt = p.get(&format!("TagSpecification.{n}.ResourceType"));
        if rt != Some("volume") {
            return Err(Ec2Error::invalid_value(format!(
                "'{}' is not a valid taggable resource type for this operation.",
                rt.unwrap_or("")
            )));
        }
        for (k, v) in tag_pairs(p, &format!("TagSpecification.{n}.Tag"))? {
            let v = v.unwrap_or_default();
            check_tag(&k, &v)?;
            tags.insert(k, v);
        }
    }
    Ok(tags)
}

/// The fields of one volume (CreateVolume's root, or a `volumeSet` item).
fn write_volume(x: &mut Xml, v: &Volume, now: Instant) {
    x.leaf("volumeId", &v.id);
    x.num("size", v.size_gib);
    x.leaf("snapshotId", "");
    x.leaf("availabilityZone", &v.zone);
    x.leaf("status", v.status(now));
    x.leaf("createTime", &v.create_time);
    match v.attached(now) {
        Some((a, status)) => {
            x.open("attachmentSet");
            x.open("item");
            x.leaf("volumeId", &v.id);
            x.leaf("instanceId", &a.instance_id);
            x.leaf("device", &a.device);
            x.leaf("status", status);
            x.leaf("attachTime", &a.attach_time);
            x.leaf("deleteOnTermination", bool_str(a.delete_on_termination));
            x.close("item");
            x.close("attachmentSet");
        }
        None => x.empty("attachmentSet"),
    }
    if !v.tags.is_empty() {
        x.open("tagSet");
        for (k, val) in &v.tags {
            x.open("item");
            x.leaf("key", k);
            x.leaf("value", val);
            x.close("item");
        }
        x.close("tagSet");
    }
    x.leaf("volumeType", &v.volume_type);
    if let Some(iops) = v.iops {
        x.num("iops", iops);
    }
    if let Some(t) = v.throughput {
        x.num("throughput", t);
    }
    x.leaf("encrypted", if v.encrypted { "true" } else { "false" });
    x.leaf("multiAttachEnabled", "false");
}

fn matches(f: &Filter, v: &Volume, now: Instant) -> bool {
    match f.name.as_str() {
        "volume-id" => f.any(&v.id),
        "status" => f.any(v.status(now)),
        "availability-zone" => f.any(&v.zone),
        "size" => f.any(&v.size_gib.to_string()),
        "volume-type" => f.any(&v.volume_type),
        "encrypted" => f.any(if v.encrypted { "true" } else { "false" }),
        "tag-key" => v.tags.keys().any(|k| f.any(k)),
        "tag-value" => v.tags.values().any(|val| f.any(val)),
        "attachment.instance-id" => v.attached(now).is_some_and(|(a, _)| f.any(&a.instance_id)),
        "attachment.device" => v.attached(now).is_some_and(|(a, _)| f.any(&a.device)),
        "attachment.status" => v.attached(now).is_some_and(|(_, s)| f.any(s)),
        "attachment.delete-on-termination" => v
            .attached(now)
            .is_some_and(|(a, _)| f.any(bool_str(a.delete_on_termination))),
        name => name
            .strip_prefix("tag:")
            .and_then(|k| v.tags.get(k))
            .is_some_and(|val| f.any(val)),
    }
}

/// The checked CreateVolume parameters: size, type, IOPS, throughput.
pub(super) fn sizing(p: &Params) -> Result<(u32, String, Option<u32>, Option<u32>), Ec2Error> {
    let volume_type = p.get("VolumeType").unwrap_or("gp2");
    let Some(r) = rule(volume_type) else {
        let shown: String = volume_type.chars().take(64).collect();
        return Err(Ec2Error::invalid_value(format!(
            "Value ({shown}) for parameter volumeType is invalid. Valid values: standard, io1, io2, gp2, gp3, sc1, st1."
        )));
    };
    let size = p.int("Size")?.ok_or_else(|| Ec2Error::missing("Size"))?;
    if size < r.min_gib || size > r.max_gib {
        return Err(Ec2Error::invalid_value(format!(
            "Volume of {size}GiB is out of range for {volume_type}: {} to {} GiB.",
            r.min_gib, r.max_gib
        )));
    }
    let iops = match (p.int("Iops")?, r.iops) {
        (Some(_), None) => {
            return Err(Ec2Error::invalid_combination(format!(
                "The parameter iops is not supported for {volume_type} volumes."
            )))
        }
        (Some(n), Some((lo, hi))) if n < lo || n > hi => {
            return Err(Ec2Error::invalid_value(format!(
                "Value ({n}) for parameter iops is invalid for {volume_type}: {lo} to {hi}."
            )))
        }
        (None, _) if r.iops_required => return Err(Ec2Error::missing("Iops")),
        (Some(n), Some(_)) => Some(n),
        (None, Some((lo, _))) => Some(lo),
        // gp2's baseline: 3 per GiB, 100 to 16000.
        (None, None) if volume_type == "gp2" => Some((size * 3).clamp(100, 16000)),
        (None, None) => None,
    };
    let throughput = match (p.int("Throughput")?, volume_type) {
        (None, "gp3") => Some(125),
        (Some(t), "gp3") if (125..=1000).contains(&t) => Some(t),
        (Some(t), "gp3") => {
            return Err(Ec2Error::invalid_value(format!(
                "Value ({t}) for parameter throughput is invalid: 125 to 1000."
            )))
        }
        (Some(_), _) => {
            return Err(Ec2Error::invalid_combination(format!(
                "The parameter throughput is not supported for {volume_type} volumes."
            )))
        }
        (None, _) => None,
    };
    // The ranges above keep every value well inside u32.
    let to_u32 = |n: i64| u32::try_from(n).unwrap_or(u32::MAX);
    Ok((
        to_u32(size),
        volume_type.to_string(),
        iops.map(to_u32),
        throughput.map(to_u32),
    ))
}

impl Ec2 {
    /// CreateVolume.
    pub(in crate::ec2) fn create_volume(
        &self,
        caller: &Caller,
        p: &Params,
        cfg: &Ec2Config,
        request_id: &str,
    ) -> Result<String, Ec2Error> {
        let zone = p.require("AvailabilityZone")?;
        if !zones(&caller.region, cfg.zones_per_region).iter().any(|z| z == zone) {
            return Err(Ec2Error::invalid_value(format!(
                "Invalid availability zone: [{zone}]"
            )));
        }
        if let Some(snap) = p.get("SnapshotId") {
            if !well_formed(snap, "snap") {
                return Err(Ec2Error::new(
                    400,
                    "InvalidSnapshotID.Malformed",
                    format!("Invalid id: \"{snap}\" (expecting \"snap-...\")"),
                ));
            }
            // The mock keeps no snapshots.
            return Err(Ec2Error::new(
                400,
                "InvalidSnapshot.NotFound",
                format!("The snapshot '{snap}' does not exist."),
            ));
        }
        let (size_gib, volume_type, iops, throughput) = sizing(p)?;
        let encrypted = p.bool("Encrypted")?.unwrap_or(false);
        let tags = volume_tags(p)?;
        let client_token = p.get("ClientToken").unwrap_or("");
        if client_token.len() > 64 || !client_token.is_ascii() {
            return Err(Ec2Error::invalid_value(
                "The client token must be at most 64 ASCII characters.",
            ));
        }
        DryRun::parse(p).answer()?;
        let now = Instant::now();
        let part = self.partition_or_create(caller);
        let mut part = part.lock().unwrap_or_else(|e| e.into_inner());
        let volume = Volume {
            seq: 0,
            id: String::new(),
            size_gib,
            zone: zone.to_string(),
            volume_type,
            iops,
            throughput,
            encrypted,
            create_time: String::new(),
            ready_at: now,
            client_token: client_token.to_string(),
            tags,
            attachment: None,
        };
        if let Some(v) = part.volumes.by_token(client_token) {
            let same = v.size_gib == volume.size_gib
                && v.zone == volume.zone
                && v.volume_type == volume.volume_type
                && v.iops == volume.iops
                && v.throughput == volume.throughput
                && v.encrypted == volume.encrypted
                && v.tags == volume.tags;
            if !same {
                return Err(Ec2Error::new(
                    400,
                    "IdempotentParameterMismatch",
                    "Arguments on this idempotent request are inconsistent with arguments used in previous request(s).",
                ));
            }
            return Ok(single(request_id, v, now));
        }
        let limit = cfg.volume_limit as usize;
        if part.volumes.len() >= limit {
            return Err(Ec2Error::new(
                400,
                "VolumeLimitExceeded",
                format!("You have reached the maximum number of volumes ({limit}) for this account and region."),
            ));
        }
        let seq = part.volumes.insert(Volume {
            id: format!("vol-{}", self.ctx.hex_id(17)),
            create_time: crate::now_rfc3339(),
            ready_at: now + self.scaled_ms(cfg.volume_create_ms),
            ..volume
        });
        let v = part
            .volumes
            .by_seq(seq)
            .ok_or_else(|| Ec2Error::new(500, "InternalError", "volume vanished"))?;
        Ok(single(request_id, v, now))
    }

    /// DescribeVolumes.
    pub(in crate::ec2) fn describe_volumes(
        &self,
        caller: &Caller,
        p: &Params,
        request_id: &str,
    ) -> Result<String, Ec2Error> {
        let ids = p.list("VolumeId");
        for id in &ids {
            check_id(id)?;
        }
        let filters = filters::parse(p)?;
        filters::check_names(&filters, FILTERS)?;
        let (max, start) = page(p, 5)?;
        if max.is_some() && !ids.is_empty() {
            return Err(Ec2Error::invalid_combination(
                "The parameter volumeSet cannot be used with the parameter maxResults",
            ));
        }
        let dry_run = DryRun::parse(p);
        let now = Instant::now();
        let part = self.partition(caller);
        let mut guard = part
            .as_ref()
            .map(|m| m.lock().unwrap_or_else(|e| e.into_inner()));
        if let Some(g) = guard.as_mut() {
            g.settle_volumes(now);
        }
        let volumes = guard.as_ref().map(|g| &g.volumes);
        for id in &ids {
            if volumes.and_then(|v| v.get(id)).is_none() {
                return Err(not_found(id));
            }
        }
        dry_run.answer()?;
        let mut x = Xml::response("DescribeVolumes", request_id, 2048);
        x.open("volumeSet");
        let mut shown = 0;
        let mut next = None;
        for v in volumes.into_iter().flat_map(|v| v.iter()) {
            let selected = v.seq >= start
                && (ids.is_empty() || ids.contains(&v.id.as_str()))
                && filters.iter().all(|f| matches(f, v, now));
            if !selected {
                continue;
            }
            if max.is_some_and(|m| shown >= m) {
                next = Some(v.seq);
                break;
            }
            x.open("item");
            write_volume(&mut x, v, now);
            x.close("item");
            shown += 1;
        }
        x.close("volumeSet");
        if let Some(seq) = next {
            x.leaf("nextToken", &next_token(seq));
        }
        Ok(x.finish_response("DescribeVolumes"))
    }

    /// DeleteVolume.
    pub(in crate::ec2) fn delete_volume(
        &self,
        caller: &Caller,
        p: &Params,
        request_id: &str,
    ) -> Result<String, Ec2Error> {
        let id = p.require("VolumeId")?;
        check_id(id)?;
        let dry_run = DryRun::parse(p);
        let part = self.partition(caller).ok_or_else(|| not_found(id))?;
        let mut part = part.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        part.settle_volumes(now);
        let v = part.volumes.get(id).ok_or_else(|| not_found(id))?;
        if let Some((a, _)) = v.attached(now) {
            return Err(Ec2Error::new(
                400,
                "VolumeInUse",
                format!("Volume {id} is currently attached to {}", a.instance_id),
            ));
        }
        dry_run.answer()?;
        part.volumes.remove(id);
        let mut x = Xml::response("DeleteVolume", request_id, 256);
        x.leaf("return", "true");
        Ok(x.finish_response("DeleteVolume"))
    }
}

fn single(request_id: &str, v: &Volume, now: Instant) -> String {
    let mut x = Xml::response("CreateVolume", request_id, 1024);
    write_volume(&mut x, v, now);
    x.finish_response("CreateVolume")
}
