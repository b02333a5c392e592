//! RunInstances: the launch parameters, ClientToken idempotency, the
//! instance limit, and the reservation it answers with.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use base64::Engine;

use super::{check_tag, tag_pairs, well_formed, zones, DryRun, MAX_TAGS, MAX_TAG_SPECS};
use crate::ec2::config::Ec2Config;
use crate::ec2::error::Ec2Error;
use crate::ec2::instances::{write_groups, Instance, MetadataOptions, Phase, Spot, State};
use crate::ec2::query::Params;
use crate::ec2::store::{Partition, TokenEntry};
use crate::ec2::xml::Xml;
use crate::ctx::Cloud;
use crate::ec2::{Caller, Ec2, Injected};

/// Largest decoded UserData EC2 accepts.
const MAX_USER_DATA: usize = 16 * 1024;

/// The parameters of a RunInstances, checked.
struct RunInput<'p> {
    image_id: &'p str,
    min: i64,
    max: i64,
    instance_type: &'p str,
    subnet_id: Option<&'p str>,
    /// The zone asked for, or implied by the subnet.
    zone: Option<String>,
    /// The zones of the caller's region.
    region_zones: Vec<String>,
    /// The instance tags of the tag specifications.
    tags: BTreeMap<String, String>,
    /// The spot instance type (`one-time` or `persistent`), for a spot launch.
    spot: Option<&'p str>,
    client_token: &'p str,
    groups: Vec<String>,
    key_name: Option<&'p str>,
    /// `UserData`, decoded.
    user_data: Option<Arc<[u8]>>,
    metadata: MetadataOptions,
    dry_run: DryRun,
}

impl<'p> RunInput<'p> {
    /// Checks the parameters in the order EC2 reports them.
    fn parse(p: &'p Params, caller: &Caller, cfg: &Ec2Config) -> Result<RunInput<'p>, Ec2Error> {
        let image_id = p.require("ImageId")?;
        if !well_formed(image_id, "ami") {
            return Err(Ec2Error::new(
                400,
                "InvalidAMIID.Malformed",
                format!("Invalid id: \"{image_id}\" (expecting \"ami-...\")"),
            ));
        }
        let min = p
            .int("MinCount")?
            .ok_or_else(|| Ec2Error::missing("MinCount"))?;
        let max = p
            .int("MaxCount")?
            .ok_or_else(|| Ec2Error::missing("MaxCount"))?;
        if min < 1 {
            return Err(Ec2Error::invalid_value(format!(
                "Value ({min}) for parameter minCount is invalid. Expected a positive integer."
            )));
        }
        if max < min {
            return Err(Ec2Error::invalid_value(format!(
                "Value ({max}) for parameter maxCount is invalid. Expected a value greater than or equal to minCount ({min})."
            )));
        }
        let instance_type = instance_type(p)?;
        let region_zones = zones(&caller.region, cfg.zones_per_region);
        let subnet_id = p.get("SubnetId");
        if let Some(s) = subnet_id {
            if !well_formed(s, "subnet") {
                return Err(Ec2Error::new(
                    400,
                    "InvalidSubnetID.Malformed",
                    format!("Invalid id: \"{s}\" (expecting \"subnet-...\")"),
                ));
            }
        }
        let zone = zone(p, subnet_id, &region_zones)?;
        let user_data = user_data(p)?;
        let metadata = metadata_options(p)?;
        let tags = instance_tags(p)?;
        let spot = spot(p)?;
        let client_token = p.get("ClientToken").unwrap_or("");
        if client_token.len() > 64 || !client_token.is_ascii() {
            return Err(Ec2Error::invalid_value(
                "The client token must be at most 64 ASCII characters.",
            ));
        }
        let groups: Vec<String> = p
            .list("SecurityGroupId")
            .into_iter()
            .map(str::to_string)
            .collect();
        Ok(RunInput {
            image_id,
            min,
            max,
            instance_type,
            subnet_id,
            zone,
            region_zones,
            tags,
            spot,
            client_token,
            groups,
            key_name: p.get("KeyName"),
            user_data,
            metadata,
            dry_run: DryRun::parse(p),
        })
    }
}

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
fn zone(
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
fn clip(s: &str) -> String {
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
fn stockout_error(code: &str, instance_type: &str, zone: &str) -> Ec2Error {
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

impl Ec2 {
    /// RunInstances.
    pub(in crate::ec2) fn run_instances(
        &self,
        caller: &Caller,
        p: &Params,
        cfg: &Ec2Config,
        injected: &Injected,
        request_id: &str,
    ) -> Result<String, Ec2Error> {
        let template = self.launched_from(caller, p)?;
        let merged = template.as_ref().map(|t| t.merge(p));
        let p = merged.as_ref().unwrap_or(p);
        let input = RunInput::parse(p, caller, cfg)?;
        let RunInput {
            image_id,
            min,
            max,
            instance_type,
            subnet_id,
            zone,
            region_zones,
            tags,
            spot,
            client_token,
            groups,
            key_name,
            user_data,
            metadata,
            dry_run,
        } = input;
        let mut tags = tags;
        if let Some(t) = &template {
            t.tag(&mut tags);
        }
        dry_run.answer()?;
        if cfg
            .unavailable_instance_types
            .iter()
            .any(|t| t == instance_type)
        {
            let z = zone.clone().unwrap_or_else(|| caller.region.clone());
            return Err(Ec2Error::new(
                400,
                "InsufficientInstanceCapacity",
                format!(
                    "We currently do not have sufficient {instance_type} capacity in the Availability Zone you requested ({z}). Our system will be working on provisioning additional capacity."
                ),
            ));
        }

        let now = Instant::now();
        let part = self.partition_or_create(caller);
        let mut part = part.lock().unwrap_or_else(|e| e.into_inner());
        part.sweep(now);

        // ClientToken: zonal scope when a zone is implied, else regional.
        let token_key = match &zone {
            Some(z) if !client_token.is_empty() => format!("{z}/{client_token}"),
            _ => client_token.to_string(),
        };
        let fingerprint = p.fingerprint(&["ClientToken", "Version", "DryRun"]);
        if !client_token.is_empty() {
            if let Some(entry) = part.tokens.get(&token_key) {
                return replay(&part, entry, &fingerprint, client_token, caller, &groups, request_id, now);
            }
        }

        // A stockout answers for the zone the first instance would get.
        let first_zone = zone
            .clone()
            .unwrap_or_else(|| region_zones[(part.next_seq as usize) % region_zones.len()].clone());
        if let Some(code) =
            self.ctx
                .capacity()
                .stockout(Cloud::Aws, &first_zone, instance_type, spot.is_some())
        {
            return Err(stockout_error(&code, instance_type, &first_zone));
        }

        let live = part.live_count(now);
        let limit = cfg.instance_limit as usize;
        let available = limit.saturating_sub(live);
        if (min as u64) > available as u64 {
            return Err(Ec2Error::new(
                400,
                "InstanceLimitExceeded",
                format!(
                    "You have requested more instances ({min}) than your current instance limit of {limit} allows for the specified instance type. Please visit http://aws.amazon.com/contact-us/ec2-request to request an adjustment to this limit."
                ),
            ));
        }
        let count = usize::try_from(max).unwrap_or(usize::MAX).min(available);
        let reservation_id = format!("r-{}", self.ctx.hex_id(17));
        let launch_time = crate::now_rfc3339();
        let ready_at = if injected.stuck {
            // Never running: `pending` for as long as the mock keeps time.
            now + crate::bounded::MAX_DURATION
        } else {
            now + self.scaled_ms(cfg.launch_ms)
        };
        let gone_at = injected
            .fail
            .as_ref()
            .map(|_| ready_at + self.scaled_ms(cfg.terminated_visible_ms));
        let vpc_id = subnet_id.map(|s| {
            let h = s
                .bytes()
                .fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)));
            format!("vpc-{h:08x}")
        });
        let dns_suffix = if caller.region == "us-east-1" {
            "ec2.internal".to_string()
        } else {
            format!("{}.compute.internal", caller.region)
        };
        let mut ids = Vec::with_capacity(count);
        for index in 0..count {
            let seq = part.next_seq;
            let ip = format!(
                "10.{}.{}.{}",
                (seq >> 16) & 0xff,
                (seq >> 8) & 0xff,
                seq & 0xff
            );
            let inst = Instance {
                seq,
                id: format!("i-{}", self.ctx.hex_id(17)),
                reservation_id: reservation_id.clone(),
                image_id: image_id.to_string(),
                instance_type: instance_type.to_string(),
                zone: zone
                    .clone()
                    .unwrap_or_else(|| region_zones[(seq as usize) % region_zones.len()].clone()),
                subnet_id: subnet_id.map(str::to_string),
                vpc_id: vpc_id.clone(),
                private_dns: format!("ip-{}.{dns_suffix}", ip.replace('.', "-")),
                private_ip: ip,
                launch_index: index as u32,
                key_name: key_name.map(str::to_string),
                groups: groups.clone(),
                client_token: client_token.to_string(),
                spot: spot.map(|kind| Spot {
                    request_id: format!("sir-{}", self.ctx.hex_id(8)),
                    kind: kind.to_string(),
                }),
                launch_time: launch_time.clone(),
                tags: tags.clone(),
                user_data: user_data.clone(),
                metadata,
                phase: Phase::Launching,
                ready_at,
                gone_at,
                user_action_at: String::new(),
                failure: injected.fail.clone(),
                hidden_reads: injected.hidden_reads,
                interrupted: None,
                visible_from: now + self.scaled_ms(cfg.consistency_window_ms),
            };
            ids.push(inst.id.clone());
            part.insert(inst);
        }
        if !client_token.is_empty() {
            part.tokens.insert(
                token_key,
                TokenEntry {
                    fingerprint,
                    reservation_id: reservation_id.clone(),
                    instance_ids: ids.clone(),
                },
            );
        }
        let created: Vec<&Instance> = ids.iter().filter_map(|id| part.get(id, now)).collect();
        Ok(write_reservation(
            request_id,
            &reservation_id,
            &caller.account,
            &groups,
            &created,
            now,
        ))
    }
}

/// A RunInstances repeating a ClientToken: the original reservation, unless
/// the parameters differ or all its instances are terminated.
#[allow(clippy::too_many_arguments)]
fn replay(
    part: &Partition,
    entry: &TokenEntry,
    fingerprint: &[(String, String)],
    client_token: &str,
    caller: &Caller,
    groups: &[String],
    request_id: &str,
    now: Instant,
) -> Result<String, Ec2Error> {
    if entry.fingerprint != fingerprint {
        return Err(Ec2Error::new(
            400,
            "IdempotentParameterMismatch",
            "Arguments on this idempotent request are inconsistent with arguments used in previous request(s).",
        ));
    }
    let existing: Vec<&Instance> = entry
        .instance_ids
        .iter()
        .filter_map(|id| part.get(id, now))
        .collect();
    let all_terminated = existing.is_empty()
        || existing
            .iter()
            .all(|i| i.seen(now).state == State::Terminated);
    if all_terminated {
        return Err(Ec2Error::new(
            400,
            "IdempotentInstanceTerminated",
            format!(
                "The client token '{client_token}' is associated with an instance that has been terminated. Use a different client token."
            ),
        ));
    }
    Ok(write_reservation(
        request_id,
        &entry.reservation_id,
        &caller.account,
        groups,
        &existing,
        now,
    ))
}

/// The RunInstances answer: the reservation fields under the root.
fn write_reservation(
    request_id: &str,
    reservation_id: &str,
    owner: &str,
    groups: &[String],
    instances: &[&Instance],
    now: Instant,
) -> String {
    let mut x = Xml::response("RunInstances", request_id, 512 + instances.len() * 1500);
    x.leaf("reservationId", reservation_id);
    x.leaf("ownerId", owner);
    write_groups(&mut x, groups);
    x.open("instancesSet");
    for i in instances {
        i.write(&mut x, i.seen(now).state, now);
    }
    x.close("instancesSet");
    x.finish_response("RunInstances")
}
