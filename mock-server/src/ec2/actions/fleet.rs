//! CreateFleet of type `instant`: one launch per launch template override
//! in allocation order, per lifecycle (on-demand, then spot), until the
//! target capacity is met. An override that cannot launch (a stockout,
//! a limit, a bad instance type) becomes an `errorSet` item and the next
//! override is tried, as EC2 does; the request itself fails only on
//! malformed parameters. `maintain` and `request` fleets are refused.
//!
//! Allocation order: `lowest-price` (the default of both) orders the
//! overrides by the instance type's size as the mock's price proxy
//! (vCPUs, then memory; types the mock does not know come last);
//! `prioritized` (on-demand) and `capacity-optimized-prioritized` (spot)
//! by `Priority`, lowest first, unset last; the other spot strategies
//! keep the order given. Ties keep the order given.

use std::cmp::Ordering;
use std::time::Instant;

use super::run::RunInput;
use super::{check_tag, tag_pairs, DryRun, MAX_TAG_SPECS};
use crate::ec2::config::Ec2Config;
use crate::ec2::error::Ec2Error;
use crate::ec2::fleets::FleetRecord;
use crate::ec2::instance_types;
use crate::ec2::query::Params;
use crate::ec2::xml::Xml;
use crate::ec2::{Caller, Ec2, Injected};

/// Most `LaunchTemplateConfigs.N`.
const MAX_CONFIGS: usize = 50;
/// Most overrides over all configs.
const MAX_OVERRIDES: usize = 300;
/// Largest `TotalTargetCapacity` the mock serves in one instant fleet.
const MAX_TARGET: i64 = 10_000;

/// One launch template plus one of its overrides.
#[derive(Debug, Clone)]
struct Choice {
    /// Where it came from (`LaunchTemplateConfigs.N`, `Overrides.M`).
    order: usize,
    template_id: String,
    version: String,
    /// The template lookup parameters (`LaunchTemplate.*`).
    lookup: Vec<(String, String)>,
    instance_type: Option<String>,
    subnet_id: Option<String>,
    zone: Option<String>,
    max_price: Option<String>,
    weight: f64,
    weight_text: Option<String>,
    priority: Option<f64>,
    priority_text: Option<String>,
}

/// One lifecycle's share of the target and its strategy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Strategy {
    LowestPrice,
    Prioritized,
    AsGiven,
}

/// An instance type's place in `lowest-price` order.
fn price_rank(t: Option<&str>) -> (u8, u32, u64) {
    match t.and_then(instance_types::lookup) {
        Some(i) => (0, i.vcpus, i.memory_mib),
        None => (1, 0, 0),
    }
}

fn order(choices: &[Choice], strategy: Strategy, default_type: &str) -> Vec<Choice> {
    let mut out = choices.to_vec();
    match strategy {
        Strategy::AsGiven => {}
        Strategy::LowestPrice => out.sort_by_key(|c| {
            (price_rank(Some(c.instance_type.as_deref().unwrap_or(default_type))), c.order)
        }),
        Strategy::Prioritized => out.sort_by(|a, b| {
            let pa = a.priority.unwrap_or(f64::INFINITY);
            let pb = b.priority.unwrap_or(f64::INFINITY);
            pa.partial_cmp(&pb)
                .unwrap_or(Ordering::Equal)
                .then(a.order.cmp(&b.order))
        }),
    }
    out
}

fn strategy(p: &Params, name: &str, spot: bool) -> Result<Strategy, Ec2Error> {
    let value = p.get(name).unwrap_or("lowest-price");
    let s = match (value, spot) {
        ("lowest-price", _) => Strategy::LowestPrice,
        ("prioritized", false) | ("capacity-optimized-prioritized", true) => Strategy::Prioritized,
        ("diversified" | "capacity-optimized" | "price-capacity-optimized", true) => {
            Strategy::AsGiven
        }
        (other, _) => {
            let valid = if spot {
                "lowest-price, diversified, capacity-optimized, capacity-optimized-prioritized, price-capacity-optimized"
            } else {
                "lowest-price, prioritized"
            };
            return Err(Ec2Error::invalid_value(format!(
                "Value ({}) for parameter {name} is invalid. Valid values: {valid}.",
                clip(other)
            )));
        }
    };
    Ok(s)
}

fn clip(s: &str) -> String {
    s.chars().take(64).collect()
}

/// A positive number (`WeightedCapacity`, `Priority` allows 0).
fn number(p: &Params, name: &str, min_exclusive: bool) -> Result<Option<f64>, Ec2Error> {
    let Some(v) = p.get(name) else {
        return Ok(None);
    };
    match v.parse::<f64>() {
        Ok(n) if n.is_finite() && (n > 0.0 || (!min_exclusive && n == 0.0)) => Ok(Some(n)),
        _ => Err(Ec2Error::invalid_value(format!(
            "Value ({}) for parameter {name} is invalid.",
            clip(v)
        ))),
    }
}

/// The fleet and instance tags of `TagSpecification.N` (types `fleet`,
/// `instance`, `volume`); the instance and volume ones are passed to each
/// launch as they are.
fn check_tag_specs(p: &Params) -> Result<Vec<(String, String)>, Ec2Error> {
    let specs = p.indices("TagSpecification");
    if specs.len() > MAX_TAG_SPECS {
        return Err(Ec2Error::invalid_value(format!(
            "The maximum number of tag specifications is {MAX_TAG_SPECS}"
        )));
    }
    let mut passed = Vec::new();
    for n in specs {
        let prefix = format!("TagSpecification.{n}");
        let rt = p.get(&format!("{prefix}.ResourceType")).unwrap_or("");
        if !matches!(rt, "fleet" | "instance" | "volume") {
            return Err(Ec2Error::invalid_value(format!(
                "'{}' is not a valid taggable resource type for this operation.",
                clip(rt)
            )));
        }
        for (k, v) in tag_pairs(p, &format!("{prefix}.Tag"))? {
            check_tag(&k, v.as_deref().unwrap_or(""))?;
        }
        if rt != "fleet" {
            for (k, v) in p.under(&prefix) {
                passed.push((format!("{prefix}.{k}"), v));
            }
        }
    }
    Ok(passed)
}

/// `LaunchTemplateConfigs.N.*`: every template and override, unresolved.
fn choices(p: &Params) -> Result<Vec<Choice>, Ec2Error> {
    let configs = p.indices("LaunchTemplateConfigs");
    if configs.is_empty() {
        return Err(Ec2Error::missing("LaunchTemplateConfigs"));
    }
    if configs.len() > MAX_CONFIGS {
        return Err(Ec2Error::invalid_value(format!(
            "At most {MAX_CONFIGS} launch template configs may be given"
        )));
    }
    let mut out = Vec::new();
    for n in configs {
        let spec = format!("LaunchTemplateConfigs.{n}.LaunchTemplateSpecification");
        let mut lookup = Vec::new();
        for (field, key) in [
            ("LaunchTemplateId", "LaunchTemplate.LaunchTemplateId"),
            ("LaunchTemplateName", "LaunchTemplate.LaunchTemplateName"),
            ("Version", "LaunchTemplate.Version"),
        ] {
            if let Some(v) = p.get(&format!("{spec}.{field}")) {
                lookup.push((key.to_string(), v.to_string()));
            }
        }
        if !lookup.iter().any(|(k, _)| k != "LaunchTemplate.Version") {
            return Err(Ec2Error::missing(&format!(
                "{spec}.LaunchTemplateId or {spec}.LaunchTemplateName"
            )));
        }
        let version = p.get(&format!("{spec}.Version")).unwrap_or("$Default").to_string();
        let overrides = p.indices(&format!("LaunchTemplateConfigs.{n}.Overrides"));
        let base = Choice {
            order: out.len(),
            template_id: String::new(),
            version,
            lookup,
            instance_type: None,
            subnet_id: None,
            zone: None,
            max_price: None,
            weight: 1.0,
            weight_text: None,
            priority: None,
            priority_text: None,
        };
        if overrides.is_empty() {
            out.push(base);
            continue;
        }
        for m in overrides {
            let at = |f: &str| format!("LaunchTemplateConfigs.{n}.Overrides.{m}.{f}");
            let get = |f: &str| p.get(&at(f)).map(str::to_string);
            let weight = number(p, &at("WeightedCapacity"), true)?;
            let priority = number(p, &at("Priority"), false)?;
            number(p, &at("MaxPrice"), true)?;
            out.push(Choice {
                order: out.len(),
                instance_type: get("InstanceType"),
                subnet_id: get("SubnetId"),
                zone: get("AvailabilityZone"),
                max_price: get("MaxPrice"),
                weight: weight.unwrap_or(1.0),
                weight_text: get("WeightedCapacity"),
                priority,
                priority_text: get("Priority"),
                ..base.clone()
            });
            if out.len() > MAX_OVERRIDES {
                return Err(Ec2Error::invalid_value(format!(
                    "At most {MAX_OVERRIDES} launch template overrides may be given"
                )));
            }
        }
    }
    Ok(out)
}

/// `TargetCapacitySpecification`: (on-demand, spot) capacity units.
fn targets(p: &Params) -> Result<(i64, i64), Ec2Error> {
    const T: &str = "TargetCapacitySpecification";
    let total = p
        .int(&format!("{T}.TotalTargetCapacity"))?
        .ok_or_else(|| Ec2Error::missing(&format!("{T}.TotalTargetCapacity")))?;
    let on_demand = p.int(&format!("{T}.OnDemandTargetCapacity"))?;
    let spot = p.int(&format!("{T}.SpotTargetCapacity"))?;
    let bad = |name: &str, v: i64| {
        Ec2Error::invalid_value(format!(
            "Value ({v}) for parameter {T}.{name} is invalid: expecting 0 to {MAX_TARGET}."
        ))
    };
    if !(1..=MAX_TARGET).contains(&total) {
        return Err(bad("TotalTargetCapacity", total));
    }
    for (name, v) in [("OnDemandTargetCapacity", on_demand), ("SpotTargetCapacity", spot)] {
        if let Some(v) = v.filter(|v| !(0..=MAX_TARGET).contains(v)) {
            return Err(bad(name, v));
        }
    }
    let (od, sp) = (on_demand.unwrap_or(0), spot.unwrap_or(0));
    if od + sp > total {
        return Err(Ec2Error::invalid_value(format!(
            "The sum of OnDemandTargetCapacity ({od}) and SpotTargetCapacity ({sp}) exceeds TotalTargetCapacity ({total})."
        )));
    }
    let rest = total - od - sp;
    match p.get(&format!("{T}.DefaultTargetCapacityType")) {
        None | Some("on-demand") => Ok((od + rest, sp)),
        Some("spot") => Ok((od, sp + rest)),
        Some(other) => Err(Ec2Error::invalid_value(format!(
            "Value ({}) for parameter {T}.DefaultTargetCapacityType is invalid. Valid values: spot, on-demand.",
            clip(other)
        ))),
    }
}

/// Writes `<launchTemplateAndOverrides>` of one choice.
fn write_choice(x: &mut Xml, c: &Choice) {
    x.open("launchTemplateAndOverrides");
    x.open("launchTemplateSpecification");
    x.leaf("launchTemplateId", &c.template_id);
    x.leaf("version", &c.version);
    x.close("launchTemplateSpecification");
    x.open("overrides");
    let fields = [
        ("instanceType", &c.instance_type),
        ("maxPrice", &c.max_price),
        ("subnetId", &c.subnet_id),
        ("availabilityZone", &c.zone),
        ("weightedCapacity", &c.weight_text),
        ("priority", &c.priority_text),
    ];
    for (tag, v) in fields {
        if let Some(v) = v {
            x.leaf(tag, v);
        }
    }
    x.close("overrides");
    x.close("launchTemplateAndOverrides");
}

impl Ec2 {
    /// CreateFleet.
    pub(in crate::ec2) fn create_fleet(
        &self,
        caller: &Caller,
        p: &Params,
        cfg: &Ec2Config,
        injected: &Injected,
        request_id: &str,
    ) -> Result<String, Ec2Error> {
        match p.get("Type").unwrap_or("maintain") {
            "instant" => {}
            t @ ("maintain" | "request") => {
                return Err(Ec2Error::invalid_value(format!(
                    "Fleet type '{t}' is not supported by this mock: only Type=instant is served."
                )))
            }
            other => {
                return Err(Ec2Error::invalid_value(format!(
                    "Value ({}) for parameter Type is invalid. Valid values: maintain, request, instant.",
                    clip(other)
                )))
            }
        }
        let mut choices = choices(p)?;
        let (on_demand, spot) = targets(p)?;
        let od_strategy = strategy(p, "OnDemandOptions.AllocationStrategy", false)?;
        let spot_strategy = strategy(p, "SpotOptions.AllocationStrategy", true)?;
        let passed_tags = check_tag_specs(p)?;
        let client_token = p.get("ClientToken").unwrap_or("");
        if client_token.len() > 64 || !client_token.is_ascii() {
            return Err(Ec2Error::invalid_value(
                "The client token must be at most 64 ASCII characters.",
            ));
        }
        let dry_run = DryRun::parse(p);
        // Resolve every template before taking the partition's lock.
        let mut templates = Vec::with_capacity(choices.len());
        for c in &mut choices {
            let t = self
                .launched_from(caller, &Params::from_pairs(c.lookup.clone()))?
                .ok_or_else(|| Ec2Error::missing("LaunchTemplateSpecification"))?;
            c.template_id = t.id().to_string();
            templates.push(t);
        }
        dry_run.answer()?;

        let now = Instant::now();
        let part = self.partition_or_create(caller);
        let mut part = part.lock().unwrap_or_else(|e| e.into_inner());
        part.sweep(now);
        let fingerprint = p.fingerprint(&["ClientToken", "Version", "DryRun"]);
        if let Some(r) = part.fleet_tokens.get(client_token) {
            if r.fingerprint != fingerprint {
                return Err(Ec2Error::new(
                    400,
                    "IdempotentParameterMismatch",
                    "Arguments on this idempotent request are inconsistent with arguments used in previous request(s).",
                ));
            }
            return Ok(wrap(request_id, &r.body));
        }

        let h = self.ctx.hex_id(32);
        let fleet_id = format!(
            "fleet-{}-{}-{}-{}-{}",
            &h[..8],
            &h[8..12],
            &h[12..16],
            &h[16..20],
            &h[20..]
        );
        let mut launched = Xml::bare(1024);
        let mut errors = Xml::bare(1024);
        let mut any_launched = false;
        let mut any_error = false;
        for (lifecycle, target, strat) in [
            ("on-demand", on_demand, od_strategy),
            ("spot", spot, spot_strategy),
        ] {
            let mut remaining = target as f64;
            for c in order(&choices, strat, "m1.small") {
                if remaining <= 0.0 {
                    break;
                }
                let template = &templates[c.order];
                let count = (remaining / c.weight).ceil().max(1.0) as i64;
                let mut pairs: Vec<(String, String)> = vec![
                    ("MinCount".into(), "1".into()),
                    ("MaxCount".into(), count.to_string()),
                ];
                let opt = [
                    ("InstanceType", &c.instance_type),
                    ("SubnetId", &c.subnet_id),
                    ("Placement.AvailabilityZone", &c.zone),
                ];
                for (k, v) in opt {
                    if let Some(v) = v {
                        pairs.push((k.into(), v.clone()));
                    }
                }
                if lifecycle == "spot" {
                    pairs.push(("InstanceMarketOptions.MarketType".into(), "spot".into()));
                    if let Some(mp) = &c.max_price {
                        pairs.push(("InstanceMarketOptions.SpotOptions.MaxPrice".into(), mp.clone()));
                    }
                }
                pairs.extend(passed_tags.iter().cloned());
                let params = template.merge_except(
                    &Params::from_pairs(pairs),
                    &["InstanceMarketOptions"],
                );
                let instance_type = params.get("InstanceType").unwrap_or("m1.small").to_string();
                let outcome = RunInput::parse(&params, caller, cfg).and_then(|mut input| {
                    template.tag(&mut input);
                    input
                        .tags_mut()
                        .insert("aws:ec2:fleet-id".into(), fleet_id.clone());
                    self.launch(&mut part, caller, &input, cfg, injected, now)
                });
                match outcome {
                    Ok((_, ids)) => {
                        remaining -= ids.len() as f64 * c.weight;
                        any_launched = true;
                        launched.open("item");
                        write_choice(&mut launched, &c);
                        launched.leaf("lifecycle", lifecycle);
                        launched.open("instanceIds");
                        for id in &ids {
                            launched.leaf("item", id);
                        }
                        launched.close("instanceIds");
                        launched.leaf("instanceType", &instance_type);
                        launched.close("item");
                    }
                    Err(e) => {
                        any_error = true;
                        errors.open("item");
                        write_choice(&mut errors, &c);
                        errors.leaf("lifecycle", lifecycle);
                        errors.leaf("errorCode", &e.code);
                        errors.leaf("errorMessage", &e.message);
                        errors.close("item");
                    }
                }
            }
        }
        let mut body = Xml::bare(2048);
        body.leaf("fleetId", &fleet_id);
        if any_error {
            body.open("errorSet");
            body.raw(&errors.into_string());
            body.close("errorSet");
        } else {
            body.empty("errorSet");
        }
        if any_launched {
            body.open("fleetInstanceSet");
            body.raw(&launched.into_string());
            body.close("fleetInstanceSet");
        } else {
            body.empty("fleetInstanceSet");
        }
        let body = body.into_string();
        if !client_token.is_empty() {
            part.fleet_tokens.insert(FleetRecord {
                token: client_token.to_string(),
                fingerprint,
                body: body.clone(),
            });
        }
        Ok(wrap(request_id, &body))
    }
}

fn wrap(request_id: &str, body: &str) -> String {
    let mut x = Xml::response("CreateFleet", request_id, 256 + body.len());
    x.raw(body);
    x.finish_response("CreateFleet")
}
