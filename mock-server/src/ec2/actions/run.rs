//! RunInstances: the launch parameters, ClientToken idempotency, the
//! instance limit, and the reservation it answers with.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use super::block_devices::{block_devices, volume_spec_tags, DeviceSpec};
use super::launch_params::{
    instance_tags, instance_type, metadata_options, spot, stockout_error, user_data, zone,
};
use super::{well_formed, zones, DryRun};
use crate::ec2::config::Ec2Config;
use crate::ec2::error::Ec2Error;
use crate::ec2::instances::{write_groups, Instance, MetadataOptions, Phase, Spot, State};
use crate::ec2::query::Params;
use crate::ec2::store::{Partition, TokenEntry};
use crate::ec2::volumes::{Attachment, Volume};
use crate::ec2::xml::Xml;
use crate::ctx::Cloud;
use crate::ec2::{Caller, Ec2, Injected};

/// The parameters of a RunInstances, checked.
pub(in crate::ec2) struct RunInput<'p> {
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
    /// The volumes each instance gets (the root volume first).
    devices: Vec<DeviceSpec>,
    /// The tags of the `volume` tag specifications.
    volume_tags: BTreeMap<String, String>,
    dry_run: DryRun,
}

impl<'p> RunInput<'p> {
    /// The instance tags, to add to.
    pub(in crate::ec2) fn tags_mut(&mut self) -> &mut BTreeMap<String, String> {
        &mut self.tags
    }

    /// The tags of the volumes the launch creates, to add to.
    pub(in crate::ec2) fn volume_tags_mut(&mut self) -> &mut BTreeMap<String, String> {
        &mut self.volume_tags
    }

    /// Checks the parameters in the order EC2 reports them.
    pub(in crate::ec2) fn parse(
        p: &'p Params,
        caller: &Caller,
        cfg: &Ec2Config,
    ) -> Result<RunInput<'p>, Ec2Error> {
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
        let devices = block_devices(p)?;
        let volume_tags = volume_spec_tags(p)?;
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
            devices,
            volume_tags,
            dry_run: DryRun::parse(p),
        })
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
        let mut input = RunInput::parse(p, caller, cfg)?;
        if let Some(t) = &template {
            t.tag(&mut input);
        }
        let dry_run = std::mem::replace(&mut input.dry_run, DryRun(Ok(false)));
        dry_run.answer()?;

        let now = Instant::now();
        let part = self.partition_or_create(caller);
        let mut part = part.lock().unwrap_or_else(|e| e.into_inner());
        part.sweep(now);

        // ClientToken: zonal scope when a zone is implied, else regional.
        let client_token = input.client_token;
        let token_key = match &input.zone {
            Some(z) if !client_token.is_empty() => format!("{z}/{client_token}"),
            _ => client_token.to_string(),
        };
        let fingerprint = p.fingerprint(&["ClientToken", "Version", "DryRun"]);
        if !client_token.is_empty() {
            if let Some(entry) = part.tokens.get(&token_key) {
                return replay(&part, entry, &fingerprint, client_token, caller, &input.groups, request_id, now);
            }
        }
        let (reservation_id, ids) = self.launch(&mut part, caller, &input, cfg, injected, now)?;
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
            &input.groups,
            &created,
            &part,
            now,
        ))
    }

    /// Launches checked RunInstances parameters into `part`: between
    /// `min` and `max` instances with their block-device volumes, or
    /// nothing at all (every check comes before the first insert). Answers
    /// the reservation id and the instance ids.
    pub(in crate::ec2) fn launch(
        &self,
        part: &mut Partition,
        caller: &Caller,
        input: &RunInput<'_>,
        cfg: &Ec2Config,
        injected: &Injected,
        now: Instant,
    ) -> Result<(String, Vec<String>), Ec2Error> {
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
            devices,
            volume_tags,
            dry_run: _,
        } = input;
        let (min, max, instance_type, spot) = (*min, *max, *instance_type, *spot);
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
        part.settle_volumes(now);
        let volume_limit = cfg.volume_limit as usize;
        let needed = count.saturating_mul(devices.len());
        if part.volumes.len().saturating_add(needed) > volume_limit {
            return Err(Ec2Error::new(
                400,
                "VolumeLimitExceeded",
                format!(
                    "You have reached the maximum number of volumes ({volume_limit}) for this account and region: this launch needs {needed} more."
                ),
            ));
        }
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
                metadata: *metadata,
                phase: Phase::Launching,
                ready_at,
                gone_at,
                user_action_at: String::new(),
                failure: injected.fail.clone(),
                hidden_reads: injected.hidden_reads,
                interrupted: None,
                visible_from: now + self.scaled_ms(cfg.consistency_window_ms),
            };
            for d in devices {
                part.volumes.insert(Volume {
                    seq: 0,
                    id: format!("vol-{}", self.ctx.hex_id(17)),
                    size_gib: d.size_gib,
                    zone: inst.zone.clone(),
                    volume_type: d.volume_type.clone(),
                    iops: d.iops,
                    throughput: d.throughput,
                    encrypted: d.encrypted,
                    create_time: launch_time.clone(),
                    ready_at: now,
                    client_token: String::new(),
                    tags: volume_tags.clone(),
                    attachment: Some(Attachment {
                        instance_id: inst.id.clone(),
                        device: d.device.clone(),
                        attach_time: launch_time.clone(),
                        attached_at: now,
                        delete_on_termination: d.delete_on_termination,
                        detached_at: None,
                    }),
                });
            }
            ids.push(inst.id.clone());
            part.insert(inst);
        }
        Ok((reservation_id, ids))
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
        part,
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
    part: &Partition,
    now: Instant,
) -> String {
    let mut x = Xml::response("RunInstances", request_id, 512 + instances.len() * 1500);
    x.leaf("reservationId", reservation_id);
    x.leaf("ownerId", owner);
    write_groups(&mut x, groups);
    let devices = part.volumes.devices(now);
    x.open("instancesSet");
    for i in instances {
        i.write(&mut x, i.seen(now).state, now, &devices);
    }
    x.close("instancesSet");
    x.finish_response("RunInstances")
}
