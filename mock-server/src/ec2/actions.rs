//! The EC2 actions: parameter validation, state changes and response XML.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use base64::Engine;

use super::config::Ec2Config;
use super::error::Ec2Error;
use super::filters::{self, Filter};
use super::instances::{write_groups, Instance, Partition, Phase, Spot, State, TokenEntry};
use super::query::Params;
use super::xml::{is_xml_char, Xml};
use super::{Caller, Ec2, Injected};

/// Largest decoded UserData EC2 accepts.
const MAX_USER_DATA: usize = 16 * 1024;
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

/// Writes one instance-state change item (Terminate/Stop/Start).
fn write_change(x: &mut Xml, id: &str, current: State, previous: State) {
    x.open("item");
    x.leaf("instanceId", id);
    current.write(x, "currentState");
    previous.write(x, "previousState");
    x.close("item");
}

impl Ec2 {
    fn scaled_ms(&self, ms: u64) -> Duration {
        self.ctx.scaled(Duration::from_millis(ms))
    }

    /// RunInstances.
    pub(super) fn run_instances(
        &self,
        caller: &Caller,
        p: &Params,
        cfg: &Ec2Config,
        injected: &Injected,
        request_id: &str,
    ) -> Result<String, Ec2Error> {
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
        let zone = match p
            .get("Placement.AvailabilityZone")
            .filter(|z| !z.is_empty())
        {
            Some(z) if region_zones.iter().any(|r| r == z) => Some(z.to_string()),
            Some(z) => {
                return Err(Ec2Error::invalid_value(format!(
                    "Invalid availability zone: [{z}]"
                )))
            }
            None => subnet_id.map(|s| {
                // A subnet lives in one zone; derive it stably from the id.
                let h = s.bytes().fold(0usize, |h, b| {
                    h.wrapping_mul(31).wrapping_add(usize::from(b))
                });
                region_zones[h % region_zones.len()].clone()
            }),
        };
        if let Some(ud) = p.get("UserData") {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(ud.trim())
                .map_err(|_| Ec2Error::invalid_value("Invalid BASE64 encoding of user data."))?;
            if decoded.len() > MAX_USER_DATA {
                return Err(Ec2Error::invalid_value(format!(
                    "User data is limited to {MAX_USER_DATA} bytes"
                )));
            }
        }
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
        let spot = match p.get("InstanceMarketOptions.MarketType") {
            None => None,
            Some("spot") => {
                let kind = p
                    .get("InstanceMarketOptions.SpotOptions.SpotInstanceType")
                    .unwrap_or("one-time");
                if kind != "one-time" && kind != "persistent" {
                    return Err(Ec2Error::invalid_value(format!(
                        "Invalid value '{kind}' for SpotInstanceType."
                    )));
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
                Some(kind.to_string())
            }
            Some(other) => {
                return Err(Ec2Error::invalid_value(format!(
                    "Invalid value '{other}' for MarketType."
                )))
            }
        };
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
        if p.dry_run()? {
            return Err(Ec2Error::dry_run());
        }
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
                return Ok(write_reservation(
                    request_id,
                    &entry.reservation_id,
                    &caller.account,
                    &groups,
                    &existing,
                    now,
                ));
            }
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
        let ready_at = now + self.scaled_ms(cfg.launch_ms);
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
                key_name: p.get("KeyName").map(str::to_string),
                groups: groups.clone(),
                client_token: client_token.to_string(),
                spot: spot.as_ref().map(|kind| Spot {
                    request_id: format!("sir-{}", self.ctx.hex_id(8)),
                    kind: kind.clone(),
                }),
                launch_time: launch_time.clone(),
                tags: tags.clone(),
                phase: Phase::Launching,
                ready_at,
                gone_at,
                user_action_at: String::new(),
                failure: injected.fail.clone(),
                hidden_reads: injected.hidden_reads,
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

    /// DescribeInstances.
    pub(super) fn describe_instances(
        &self,
        caller: &Caller,
        p: &Params,
        request_id: &str,
    ) -> Result<String, Ec2Error> {
        let ids = instance_ids(p)?;
        let filters = filters::parse(p)?;
        filters::check_names(&filters, filters::INSTANCE_FILTERS)?;
        if !ids.is_empty() && p.get("MaxResults").is_some() {
            return Err(Ec2Error::invalid_combination(
                "The parameter instancesSet cannot be used with the parameter maxResults",
            ));
        }
        let (max, start) = page(p, 5)?;
        if p.dry_run()? {
            return Err(Ec2Error::dry_run());
        }
        let now = Instant::now();
        let Some(part) = self.partition(caller) else {
            if !ids.is_empty() {
                return Err(Ec2Error::instances_not_found(&ids));
            }
            let x = Xml::response("DescribeInstances", request_id, 256);
            let mut x = x;
            x.empty("reservationSet");
            return Ok(x.finish_response("DescribeInstances"));
        };
        let mut part = part.lock().unwrap_or_else(|e| e.into_inner());
        part.sweep(now);
        let selected = select(&mut part, &ids, &filters, now, start, max, false)?;
        let mut x = Xml::response(
            "DescribeInstances",
            request_id,
            512 + selected.seqs.len() * 1500,
        );
        if selected.seqs.is_empty() {
            x.empty("reservationSet");
        } else {
            x.open("reservationSet");
            let mut current: Option<&str> = None;
            for seq in &selected.seqs {
                let Some(i) = part.instances.get(seq) else {
                    continue;
                };
                if current != Some(i.reservation_id.as_str()) {
                    if current.is_some() {
                        x.close("instancesSet");
                        x.close("item");
                    }
                    x.open("item");
                    x.leaf("reservationId", &i.reservation_id);
                    x.leaf("ownerId", &caller.account);
                    write_groups(&mut x, &i.groups);
                    x.open("instancesSet");
                    current = Some(i.reservation_id.as_str());
                }
                i.write(&mut x, i.seen(now).state);
            }
            x.close("instancesSet");
            x.close("item");
            x.close("reservationSet");
        }
        if let Some(seq) = selected.next {
            x.leaf("nextToken", &next_token(seq));
        }
        Ok(x.finish_response("DescribeInstances"))
    }

    /// DescribeInstanceStatus.
    pub(super) fn describe_instance_status(
        &self,
        caller: &Caller,
        p: &Params,
        request_id: &str,
    ) -> Result<String, Ec2Error> {
        let ids = instance_ids(p)?;
        let filters = filters::parse(p)?;
        filters::check_names(
            &filters,
            &[
                "instance-state-name",
                "instance-state-code",
                "availability-zone",
                "instance-status.status",
                "system-status.status",
            ],
        )?;
        if !ids.is_empty() && p.get("MaxResults").is_some() {
            return Err(Ec2Error::invalid_combination(
                "The parameter instancesSet cannot be used with the parameter maxResults",
            ));
        }
        let include_all = p.bool("IncludeAllInstances")?.unwrap_or(false);
        let (max, start) = page(p, 5)?;
        if p.dry_run()? {
            return Err(Ec2Error::dry_run());
        }
        let now = Instant::now();
        let mut x = Xml::response("DescribeInstanceStatus", request_id, 1024);
        let Some(part) = self.partition(caller) else {
            if !ids.is_empty() {
                return Err(Ec2Error::instances_not_found(&ids));
            }
            x.empty("instanceStatusSet");
            return Ok(x.finish_response("DescribeInstanceStatus"));
        };
        let mut part = part.lock().unwrap_or_else(|e| e.into_inner());
        part.sweep(now);
        // Status filters apply to the derived status, so select on state
        // first and check them while writing.
        let (state_filters, status_filters): (Vec<Filter>, Vec<Filter>) = filters
            .into_iter()
            .partition(|f| f.name.starts_with("instance-state") || f.name == "availability-zone");
        let selected = select(
            &mut part,
            &ids,
            &state_filters,
            now,
            start,
            max,
            !include_all,
        )?;
        let mut wrote = false;
        for seq in &selected.seqs {
            let Some(i) = part.instances.get(seq) else {
                continue;
            };
            let state = i.seen(now).state;
            let status = if state == State::Running {
                "ok"
            } else {
                "not-applicable"
            };
            let passes = status_filters.iter().all(|f| f.any(status));
            if !passes {
                continue;
            }
            if !wrote {
                x.open("instanceStatusSet");
                wrote = true;
            }
            x.open("item");
            x.leaf("instanceId", &i.id);
            x.leaf("availabilityZone", &i.zone);
            state.write(&mut x, "instanceState");
            for tag in ["systemStatus", "instanceStatus"] {
                x.open(tag);
                x.leaf("status", status);
                if state == State::Running {
                    x.open("details");
                    x.open("item");
                    x.leaf("name", "reachability");
                    x.leaf("status", "passed");
                    x.close("item");
                    x.close("details");
                }
                x.close(tag);
            }
            x.close("item");
        }
        if wrote {
            x.close("instanceStatusSet");
        } else {
            x.empty("instanceStatusSet");
        }
        if let Some(seq) = selected.next {
            x.leaf("nextToken", &next_token(seq));
        }
        Ok(x.finish_response("DescribeInstanceStatus"))
    }

    /// Looks up every id (all must exist) under the partition lock and
    /// applies `change` to each; answers the state-change XML.
    fn change_states(
        &self,
        caller: &Caller,
        p: &Params,
        action: &str,
        request_id: &str,
        check: impl Fn(&Instance, State) -> Result<(), Ec2Error>,
        change: impl Fn(&mut Instance, State, Instant),
    ) -> Result<String, Ec2Error> {
        let ids = instance_ids(p)?;
        if ids.is_empty() {
            return Err(Ec2Error::missing("InstanceId"));
        }
        let now = Instant::now();
        let Some(part) = self.partition(caller) else {
            return Err(Ec2Error::instances_not_found(&ids));
        };
        let mut part = part.lock().unwrap_or_else(|e| e.into_inner());
        part.sweep(now);
        let missing: Vec<&str> = ids
            .iter()
            .copied()
            .filter(|id| part.get(id, now).is_none())
            .collect();
        if !missing.is_empty() {
            return Err(Ec2Error::instances_not_found(&missing));
        }
        for id in &ids {
            if let Some(i) = part.get(id, now) {
                check(i, i.seen(now).state)?;
            }
        }
        if p.dry_run()? {
            return Err(Ec2Error::dry_run());
        }
        let mut x = Xml::response(action, request_id, 256 + ids.len() * 256);
        x.open("instancesSet");
        for id in &ids {
            if let Some(i) = part.get_mut(id, now) {
                let previous = i.seen(now).state;
                change(i, previous, now);
                let current = i.seen(now).state;
                write_change(&mut x, id, current, previous);
            }
        }
        x.close("instancesSet");
        Ok(x.finish_response(action))
    }

    /// TerminateInstances.
    pub(super) fn terminate_instances(
        &self,
        caller: &Caller,
        p: &Params,
        cfg: &Ec2Config,
        request_id: &str,
    ) -> Result<String, Ec2Error> {
        let shut = self.scaled_ms(cfg.terminate_ms);
        let visible = self.scaled_ms(cfg.terminated_visible_ms);
        self.change_states(
            caller,
            p,
            "TerminateInstances",
            request_id,
            |_, _| Ok(()),
            |i, state, now| {
                if !matches!(state, State::ShuttingDown | State::Terminated) {
                    i.transition(Phase::Terminating, now, shut);
                    i.failure = None;
                    i.gone_at = Some(i.ready_at + visible);
                }
            },
        )
    }

    /// StopInstances.
    pub(super) fn stop_instances(
        &self,
        caller: &Caller,
        p: &Params,
        cfg: &Ec2Config,
        request_id: &str,
    ) -> Result<String, Ec2Error> {
        let stop = self.scaled_ms(cfg.stop_ms);
        self.change_states(
            caller,
            p,
            "StopInstances",
            request_id,
            |i, state| match state {
                State::Running | State::Stopping | State::Stopped => {
                    match &i.spot {
                        Some(s) if s.kind == "one-time" => Err(Ec2Error::new(
                            400,
                            "UnsupportedOperation",
                            format!(
                                "You can't stop the Spot Instance '{}' because it is associated with a one-time Spot Instance request. You can only stop Spot Instances associated with persistent Spot Instance requests.",
                                i.id
                            ),
                        )),
                        _ => Ok(()),
                    }
                }
                State::Pending if i.phase == Phase::Launching => Err(Ec2Error::incorrect_state(format!(
                    "The instance '{}' cannot be stopped as it has never reached the 'running' state.",
                    i.id
                ))),
                _ => Err(Ec2Error::incorrect_state(format!(
                    "This instance '{}' is not in a state from which it can be stopped.",
                    i.id
                ))),
            },
            |i, state, now| {
                if state == State::Running {
                    i.transition(Phase::Stopping, now, stop);
                    i.failure = None;
                }
            },
        )
    }

    /// StartInstances.
    pub(super) fn start_instances(
        &self,
        caller: &Caller,
        p: &Params,
        cfg: &Ec2Config,
        injected: &Injected,
        request_id: &str,
    ) -> Result<String, Ec2Error> {
        let launch = self.scaled_ms(cfg.launch_ms);
        self.change_states(
            caller,
            p,
            "StartInstances",
            request_id,
            |i, state| match state {
                State::Stopped | State::Running | State::Pending => Ok(()),
                _ => Err(Ec2Error::incorrect_state(format!(
                    "The instance '{}' is not in a state from which it can be started.",
                    i.id
                ))),
            },
            |i, state, now| {
                if state == State::Stopped {
                    i.transition(Phase::Starting, now, launch);
                    i.failure = injected.fail.clone();
                }
            },
        )
    }

    /// Checks `ResourceId.N` (instances only) under the lock.
    fn tag_targets<'p>(
        p: &'p Params,
        part: Option<&Partition>,
        now: Instant,
    ) -> Result<Vec<&'p str>, Ec2Error> {
        let ids = p.list("ResourceId");
        if ids.is_empty() {
            return Err(Ec2Error::missing("ResourceId"));
        }
        let mut missing = Vec::new();
        for id in &ids {
            if !well_formed(id, "i") {
                return Err(Ec2Error::new(
                    400,
                    "InvalidID",
                    format!("The ID '{id}' is not valid"),
                ));
            }
            if part.and_then(|pt| pt.get(id, now)).is_none() {
                missing.push(*id);
            }
        }
        if !missing.is_empty() {
            return Err(Ec2Error::instances_not_found(&missing));
        }
        Ok(ids)
    }

    /// CreateTags.
    pub(super) fn create_tags(
        &self,
        caller: &Caller,
        p: &Params,
        request_id: &str,
    ) -> Result<String, Ec2Error> {
        let tags = tag_pairs(p, "Tag")?;
        if tags.is_empty() {
            return Err(Ec2Error::missing("Tag"));
        }
        for (k, v) in &tags {
            check_tag(k, v.as_deref().unwrap_or(""))?;
        }
        let now = Instant::now();
        let part = self.partition(caller);
        let mut guard = part
            .as_ref()
            .map(|pt| pt.lock().unwrap_or_else(|e| e.into_inner()));
        let ids = Self::tag_targets(p, guard.as_deref(), now)?;
        if p.dry_run()? {
            return Err(Ec2Error::dry_run());
        }
        if let Some(part) = guard.as_deref_mut() {
            for id in &ids {
                if let Some(i) = part.get(id, now) {
                    let new_keys = tags.iter().filter(|(k, _)| !i.tags.contains_key(k)).count();
                    if i.tags.len() + new_keys > MAX_TAGS {
                        return Err(Ec2Error::new(
                            400,
                            "TagLimitExceeded",
                            format!(
                                "The maximum number of tags ({MAX_TAGS}) has been reached for resource {id}"
                            ),
                        ));
                    }
                }
            }
            for id in &ids {
                if let Some(i) = part.get_mut(id, now) {
                    for (k, v) in &tags {
                        i.tags.insert(k.clone(), v.clone().unwrap_or_default());
                    }
                }
            }
        }
        let mut x = Xml::response("CreateTags", request_id, 256);
        x.leaf("return", "true");
        Ok(x.finish_response("CreateTags"))
    }

    /// DeleteTags.
    pub(super) fn delete_tags(
        &self,
        caller: &Caller,
        p: &Params,
        request_id: &str,
    ) -> Result<String, Ec2Error> {
        let tags = tag_pairs(p, "Tag")?;
        let now = Instant::now();
        let part = self.partition(caller);
        let mut guard = part
            .as_ref()
            .map(|pt| pt.lock().unwrap_or_else(|e| e.into_inner()));
        let ids = Self::tag_targets(p, guard.as_deref(), now)?;
        if p.dry_run()? {
            return Err(Ec2Error::dry_run());
        }
        if let Some(part) = guard.as_deref_mut() {
            for id in &ids {
                if let Some(i) = part.get_mut(id, now) {
                    if tags.is_empty() {
                        i.tags.clear();
                    }
                    for (k, v) in &tags {
                        let matches = match v {
                            None => true,
                            Some(v) => i.tags.get(k) == Some(v),
                        };
                        if matches {
                            i.tags.remove(k);
                        }
                    }
                }
            }
        }
        let mut x = Xml::response("DeleteTags", request_id, 256);
        x.leaf("return", "true");
        Ok(x.finish_response("DeleteTags"))
    }

    /// DescribeTags.
    pub(super) fn describe_tags(
        &self,
        caller: &Caller,
        p: &Params,
        request_id: &str,
    ) -> Result<String, Ec2Error> {
        let filters = filters::parse(p)?;
        filters::check_names(&filters, &["key", "value", "resource-id", "resource-type"])?;
        let (max, start) = page(p, 5)?;
        if p.dry_run()? {
            return Err(Ec2Error::dry_run());
        }
        let now = Instant::now();
        let mut x = Xml::response("DescribeTags", request_id, 1024);
        let mut rows: Vec<(&str, &str, &str)> = Vec::new();
        let part = self.partition(caller);
        let guard = part
            .as_ref()
            .map(|pt| pt.lock().unwrap_or_else(|e| e.into_inner()));
        if let Some(part) = guard.as_deref() {
            for i in part.instances.values() {
                if i.seen(now).gone {
                    continue;
                }
                for (k, v) in &i.tags {
                    let ok = filters.iter().all(|f| match f.name.as_str() {
                        "key" => f.any(k),
                        "value" => f.any(v),
                        "resource-id" => f.any(&i.id),
                        "resource-type" => f.any("instance"),
                        _ => false,
                    });
                    if ok {
                        rows.push((&i.id, k, v));
                    }
                }
            }
        }
        let start = usize::try_from(start).unwrap_or(usize::MAX).min(rows.len());
        let end = max.map_or(rows.len(), |m| (start + m).min(rows.len()));
        if start == end {
            x.empty("tagSet");
        } else {
            x.open("tagSet");
            for (id, k, v) in &rows[start..end] {
                x.open("item");
                x.leaf("resourceId", id);
                x.leaf("resourceType", "instance");
                x.leaf("key", k);
                x.leaf("value", v);
                x.close("item");
            }
            x.close("tagSet");
        }
        if end < rows.len() {
            x.leaf("nextToken", &next_token(end as u64));
        }
        Ok(x.finish_response("DescribeTags"))
    }
}

/// What a describe selected.
struct Selected {
    seqs: Vec<u64>,
    next: Option<u64>,
}

/// Picks instances for DescribeInstances / DescribeInstanceStatus: by id
/// (all must exist) or by scanning from `start`, applying filters, hidden
/// reads (`not_found_reads`) and the page size.
fn select(
    part: &mut Partition,
    ids: &[&str],
    filters: &[Filter],
    now: Instant,
    start: u64,
    max: Option<usize>,
    running_only: bool,
) -> Result<Selected, Ec2Error> {
    let keep = |i: &Instance, state: State| {
        (!running_only || state == State::Running) && filters::instance_matches(filters, i, state)
    };
    if !ids.is_empty() {
        let mut missing = Vec::new();
        let mut seqs = Vec::new();
        for id in ids {
            match part.get_mut(id, now) {
                None => missing.push(*id),
                Some(i) if i.hidden_reads > 0 => {
                    i.hidden_reads -= 1;
                    missing.push(*id);
                }
                Some(i) => {
                    if keep(i, i.seen(now).state) {
                        seqs.push(i.seq);
                    }
                }
            }
        }
        if !missing.is_empty() {
            return Err(Ec2Error::instances_not_found(&missing));
        }
        seqs.sort_unstable();
        seqs.dedup();
        return Ok(Selected { seqs, next: None });
    }
    let mut seqs = Vec::new();
    let mut next = None;
    for (seq, i) in part.instances.range_mut(start..) {
        let seen = i.seen(now);
        if seen.gone || !keep(i, seen.state) {
            continue;
        }
        if i.hidden_reads > 0 {
            i.hidden_reads -= 1;
            continue;
        }
        if max.is_some_and(|m| seqs.len() >= m) {
            next = Some(*seq);
            break;
        }
        seqs.push(*seq);
    }
    Ok(Selected { seqs, next })
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
        i.write(&mut x, i.seen(now).state);
    }
    x.close("instancesSet");
    x.finish_response("RunInstances")
}

/// DescribeRegions.
pub(super) fn describe_regions(
    _caller: &Caller,
    p: &Params,
    cfg: &Ec2Config,
    request_id: &str,
) -> Result<String, Ec2Error> {
    let names = p.list("RegionName");
    for n in &names {
        if !cfg.regions.iter().any(|r| r == n) {
            return Err(Ec2Error::invalid_value(format!("Invalid region: {n}")));
        }
    }
    let filters = filters::parse(p)?;
    filters::check_names(&filters, &["region-name", "endpoint", "opt-in-status"])?;
    p.bool("AllRegions")?;
    if p.dry_run()? {
        return Err(Ec2Error::dry_run());
    }
    let mut x = Xml::response("DescribeRegions", request_id, 1024);
    x.open("regionInfo");
    for r in &cfg.regions {
        let endpoint = format!("ec2.{r}.amazonaws.com");
        if !names.is_empty() && !names.contains(&r.as_str()) {
            continue;
        }
        let ok = filters.iter().all(|f| match f.name.as_str() {
            "region-name" => f.any(r),
            "endpoint" => f.any(&endpoint),
            "opt-in-status" => f.any("opt-in-not-required"),
            _ => false,
        });
        if !ok {
            continue;
        }
        x.open("item");
        x.leaf("regionName", r);
        x.leaf("regionEndpoint", &endpoint);
        x.leaf("optInStatus", "opt-in-not-required");
        x.close("item");
    }
    x.close("regionInfo");
    Ok(x.finish_response("DescribeRegions"))
}

/// DescribeAvailabilityZones (of the caller's region).
pub(super) fn describe_availability_zones(
    caller: &Caller,
    p: &Params,
    cfg: &Ec2Config,
    request_id: &str,
) -> Result<String, Ec2Error> {
    let all = zones(&caller.region, cfg.zones_per_region);
    let names = p.list("ZoneName");
    let ids = p.list("ZoneId");
    for n in &names {
        if !all.iter().any(|z| z == n) {
            return Err(Ec2Error::invalid_value(format!(
                "Invalid availability zone: [{n}]"
            )));
        }
    }
    let filters = filters::parse(p)?;
    filters::check_names(
        &filters,
        &[
            "zone-name",
            "zone-id",
            "state",
            "region-name",
            "zone-type",
            "group-name",
        ],
    )?;
    p.bool("AllAvailabilityZones")?;
    if p.dry_run()? {
        return Err(Ec2Error::dry_run());
    }
    let mut x = Xml::response("DescribeAvailabilityZones", request_id, 1024);
    x.open("availabilityZoneInfo");
    for (index, z) in all.iter().enumerate() {
        let zid = zone_id(&caller.region, index);
        if !names.is_empty() && !names.contains(&z.as_str()) {
            continue;
        }
        if !ids.is_empty() && !ids.contains(&zid.as_str()) {
            continue;
        }
        let ok = filters.iter().all(|f| match f.name.as_str() {
            "zone-name" => f.any(z),
            "zone-id" => f.any(&zid),
            "state" => f.any("available"),
            "region-name" | "group-name" => f.any(&caller.region),
            "zone-type" => f.any("availability-zone"),
            _ => false,
        });
        if !ok {
            continue;
        }
        x.open("item");
        x.leaf("zoneName", z);
        x.leaf("zoneState", "available");
        x.leaf("regionName", &caller.region);
        x.empty("messageSet");
        x.leaf("optInStatus", "opt-in-not-required");
        x.leaf("zoneId", &zid);
        x.leaf("groupName", &caller.region);
        x.leaf("networkBorderGroup", &caller.region);
        x.leaf("zoneType", "availability-zone");
        x.close("item");
    }
    x.close("availabilityZoneInfo");
    Ok(x.finish_response("DescribeAvailabilityZones"))
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
