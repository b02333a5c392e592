//! DescribeInstances and DescribeInstanceStatus: selection by id or by
//! filters and pages, hidden reads (`not_found_reads`), and their XML.

use std::time::Instant;

use super::{instance_ids, next_token, page, DryRun};
use crate::ec2::error::Ec2Error;
use crate::ec2::filters::{self, Filter};
use crate::ec2::instances::{write_groups, Instance, State};
use crate::ec2::query::Params;
use crate::ec2::store::Partition;
use crate::ec2::xml::Xml;
use crate::ec2::{Caller, Ec2};

/// The filters DescribeInstanceStatus accepts.
const STATUS_FILTERS: &[&str] = &[
    "instance-state-name",
    "instance-state-code",
    "availability-zone",
    "instance-status.status",
    "system-status.status",
];

/// The parameters of a DescribeInstances or DescribeInstanceStatus, checked.
struct DescribeInput<'p> {
    ids: Vec<&'p str>,
    filters: Vec<Filter>,
    /// `IncludeAllInstances` (DescribeInstanceStatus): not only running ones.
    include_all: bool,
    /// Page size.
    max: Option<usize>,
    /// Creation number to start from.
    start: u64,
}

impl<'p> DescribeInput<'p> {
    /// Checks the parameters; `status` selects DescribeInstanceStatus's
    /// filter names and its `IncludeAllInstances`.
    fn parse(p: &'p Params, status: bool) -> Result<DescribeInput<'p>, Ec2Error> {
        let ids = instance_ids(p)?;
        let filters = filters::parse(p)?;
        let names = if status {
            STATUS_FILTERS
        } else {
            filters::INSTANCE_FILTERS
        };
        filters::check_names(&filters, names)?;
        if !ids.is_empty() && p.get("MaxResults").is_some() {
            return Err(Ec2Error::invalid_combination(
                "The parameter instancesSet cannot be used with the parameter maxResults",
            ));
        }
        let include_all = if status {
            p.bool("IncludeAllInstances")?.unwrap_or(false)
        } else {
            false
        };
        let (max, start) = page(p, 5)?;
        DryRun::parse(p).answer()?;
        Ok(DescribeInput {
            ids,
            filters,
            include_all,
            max,
            start,
        })
    }
}

impl Ec2 {
    /// DescribeInstances.
    pub(in crate::ec2) fn describe_instances(
        &self,
        caller: &Caller,
        p: &Params,
        request_id: &str,
    ) -> Result<String, Ec2Error> {
        let DescribeInput {
            ids,
            filters,
            max,
            start,
            ..
        } = DescribeInput::parse(p, false)?;
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
        let devices = part.volumes.devices(now);
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
                i.write(&mut x, i.seen(now).state, now, &devices);
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
    pub(in crate::ec2) fn describe_instance_status(
        &self,
        caller: &Caller,
        p: &Params,
        request_id: &str,
    ) -> Result<String, Ec2Error> {
        let DescribeInput {
            ids,
            filters,
            include_all,
            max,
            start,
        } = DescribeInput::parse(p, true)?;
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
                Some(i) if now < i.visible_from => missing.push(*id),
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
        if seen.gone || now < i.visible_from || !keep(i, seen.state) {
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
