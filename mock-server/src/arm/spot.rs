//! Azure Spot VMs: the `priority`, `evictionPolicy` and
//! `billingProfile.maxPrice` a VM PUT may carry, and evictions. An evicted
//! VM gets a `Preempt` event in its Scheduled Events at once; at the
//! event's `NotBefore` it is deleted (`evictionPolicy: Delete`, with what
//! its `deleteOption`s name, as a DELETE would) or deallocated
//! (`Deallocate`: `PowerState/deallocated`). Evictions are applied lazily,
//! whenever the subscription's state is next read.

use std::sync::Arc;
use std::time::Instant;

use serde_json::{json, Map, Value};
use time::OffsetDateTime;

use super::compute;
use super::error::ArmError;
use super::store::{Kind, Links, Op, OpKind, Partition, ResKey, Resource};
use super::Arm;
use crate::capacity::{Notice, Target};

/// An eviction given notice.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Eviction {
    /// The notice (its end is the event's `NotBefore`).
    pub notice: Notice,
    /// The VM's `vmId`: a VM made later under the same name is not evicted.
    pub vm_id: String,
    /// `evictionPolicy: Delete` (else `Deallocate`).
    pub delete: bool,
    /// Set once the eviction has been carried out.
    pub applied: bool,
}

/// Case-insensitive match of a string property against `options`,
/// returning the canonical spelling.
fn one_of(v: &str, options: &[&'static str]) -> Option<&'static str> {
    options.iter().copied().find(|o| o.eq_ignore_ascii_case(v))
}

/// Checks `priority`, `evictionPolicy` and `billingProfile.maxPrice` of a
/// VM's `properties`; true for a Spot or Low priority VM.
pub fn check(props: Option<&Value>) -> Result<bool, ArmError> {
    let Some(props) = props.and_then(Value::as_object) else {
        return Ok(false);
    };
    let priority = match props.get("priority") {
        None | Some(Value::Null) => "Regular",
        Some(Value::String(p)) => one_of(p, &["Regular", "Low", "Spot"]).ok_or_else(|| {
            ArmError::invalid_parameter(
                "properties.priority",
                format!(
                    "The value '{}' of parameter 'priority' is not allowed. Allowed values are 'Regular', 'Low', 'Spot'.",
                    clip(p)
                ),
            )
        })?,
        Some(other) => {
            return Err(ArmError::invalid_parameter(
                "properties.priority",
                format!("The value {} of parameter 'priority' must be a string.", clip(&other.to_string())),
            ))
        }
    };
    let spot = priority != "Regular";
    match props.get("evictionPolicy") {
        None | Some(Value::Null) => {}
        Some(Value::String(e)) => {
            if one_of(e, &["Deallocate", "Delete"]).is_none() {
                return Err(ArmError::invalid_parameter(
                    "properties.evictionPolicy",
                    format!(
                        "The value '{}' of parameter 'evictionPolicy' is not allowed. Allowed values are 'Deallocate', 'Delete'.",
                        clip(e)
                    ),
                ));
            }
            if !spot {
                return Err(ArmError::invalid_parameter(
                    "properties.evictionPolicy",
                    "Eviction policy can be set only on Azure Spot Virtual Machines (priority 'Spot' or 'Low').",
                ));
            }
        }
        Some(_) => {
            return Err(ArmError::invalid_parameter(
                "properties.evictionPolicy",
                "The parameter 'evictionPolicy' must be a string.",
            ))
        }
    }
    match props.get("billingProfile") {
        None | Some(Value::Null) => {}
        Some(Value::Object(b)) => {
            match b.get("maxPrice") {
                None | Some(Value::Null) => {}
                Some(Value::Number(n)) => {
                    let v = n.as_f64().unwrap_or(f64::NAN);
                    if !(v == -1.0 || (v.is_finite() && v > 0.0)) {
                        return Err(ArmError::invalid_parameter(
                            "properties.billingProfile.maxPrice",
                            format!("The value '{n}' of parameter 'billingProfile.maxPrice' is not allowed. It must be -1 or greater than 0."),
                        ));
                    }
                }
                Some(_) => {
                    return Err(ArmError::invalid_parameter(
                        "properties.billingProfile.maxPrice",
                        "The parameter 'billingProfile.maxPrice' must be a number.",
                    ))
                }
            }
            if !spot {
                return Err(ArmError::invalid_parameter(
                    "properties.billingProfile",
                    "Billing profile can be set only on Azure Spot Virtual Machines (priority 'Spot' or 'Low').",
                ));
            }
        }
        Some(_) => {
            return Err(ArmError::invalid_parameter(
                "properties.billingProfile",
                "The parameter 'billingProfile' must be an object.",
            ))
        }
    }
    Ok(spot)
}

/// At most 64 characters of a value echoed in a message.
fn clip(s: &str) -> String {
    s.chars().take(64).collect()
}

/// What Azure fills in for a Spot VM that leaves it out: `evictionPolicy:
/// Deallocate`, `billingProfile.maxPrice: -1`.
pub fn defaults(props: &mut Map<String, Value>) {
    let spot = props
        .get("priority")
        .and_then(Value::as_str)
        .is_some_and(|p| !p.eq_ignore_ascii_case("Regular"));
    if !spot {
        return;
    }
    props
        .entry("evictionPolicy")
        .or_insert_with(|| "Deallocate".into());
    if !matches!(props.get("billingProfile"), Some(Value::Object(_))) {
        props.insert("billingProfile".into(), json!({"maxPrice": -1}));
    }
}

/// The `vmSize` of a VM body's properties (empty when absent).
pub fn vm_size(props: Option<&Value>) -> &str {
    props
        .and_then(|p| p.get("hardwareProfile"))
        .and_then(|h| h.get("vmSize"))
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// The message of an allocation failure with `code`.
pub fn allocation_message(code: &str, size: &str, location: &str) -> String {
    match code {
        "AllocationFailed" | "ZonalAllocationFailed" => format!(
            "Allocation failed. We do not have sufficient capacity for the requested VM size {size} in this region ({location}). Read more about improving likelihood of allocation success at http://aka.ms/allocation-guidance"
        ),
        "SkuNotAvailable" => format!(
            "The requested VM size for resource 'Following SKUs have failed for Capacity Restrictions: {size}' is currently not available in location '{location}'. Please try another size or deploy to a different location or different zone."
        ),
        "QuotaExceeded" | "OperationNotAllowed" => format!(
            "Operation could not be completed as it results in exceeding approved Total Regional Cores quota. Location: {location}, VM size: {size}."
        ),
        other => format!("The VM of size {size} in {location} could not be allocated ({other})."),
    }
}

/// Whether a VM's `priority` is Spot or Low.
pub fn is_spot_priority(priority: Option<&Value>) -> bool {
    priority
        .and_then(Value::as_str)
        .is_some_and(|p| p.eq_ignore_ascii_case("Spot") || p.eq_ignore_ascii_case("Low"))
}

/// Whether VM `r` is Spot or Low priority.
pub fn is_spot(r: &Resource) -> bool {
    matches!(r.links, Links::Vm { spot: true, .. })
}

fn key_of(r: &Resource) -> ResKey {
    ResKey::new(r.kind, &r.rg, &r.name)
}

/// The eviction of VM `r`, if one was given (to this VM, not an older
/// one of the same name).
fn eviction_of<'a>(part: &'a Partition, r: &Resource) -> Option<&'a Eviction> {
    part.evictions
        .get(&key_of(r))
        .filter(|e| e.vm_id == r.guid)
}

/// Whether VM `r` has been deallocated by an eviction at `now`.
pub fn deallocated(part: &Partition, r: &Resource, now: Instant) -> bool {
    eviction_of(part, r).is_some_and(|e| !e.delete && e.notice.ended(now))
}

/// Carries out the evictions whose time has come: a Delete policy deletes
/// the VM (with what its `deleteOption`s name) as of the event's
/// `NotBefore`.
pub fn apply_evictions(part: &mut Partition, now: Instant) {
    if part.evictions.is_empty() {
        return;
    }
    let due: Vec<ResKey> = part
        .evictions
        .iter()
        .filter(|(_, e)| !e.applied && e.notice.ended(now))
        .map(|(k, _)| k.clone())
        .collect();
    for key in due {
        let Some(ev) = part.evictions.get_mut(&key) else {
            continue;
        };
        ev.applied = true;
        let (delete, vm_id, ends) = (ev.delete, ev.vm_id.clone(), ev.notice.ends_at);
        if !delete {
            continue;
        }
        let Some(vm) = part.peek(&key, now).filter(|r| r.guid == vm_id) else {
            continue;
        };
        let cascade = compute::cascade(part, vm, now);
        let op = Op {
            id: Arc::from(uuid::Uuid::new_v4().to_string()),
            kind: OpKind::Delete,
            ends,
            failure: None,
        };
        for k in cascade.iter().chain(std::iter::once(&key)) {
            if let Some(c) = part.resources.get_mut(k) {
                c.op = op.clone();
            }
        }
    }
    // Forget evictions of VMs that no longer exist.
    let gone: Vec<ResKey> = part
        .evictions
        .iter()
        .filter(|(k, e)| e.applied && part.peek(k, now).is_none_or(|r| r.guid != e.vm_id))
        .map(|(k, _)| k.clone())
        .collect();
    for k in gone {
        part.evictions.remove(&k);
    }
}

/// `DD Mon YYYY HH:MM:SS GMT` with the weekday: RFC 1123, as Scheduled
/// Events writes `NotBefore`.
fn rfc1123(t: OffsetDateTime) -> String {
    const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{}, {:02} {} {:04} {:02}:{:02}:{:02} GMT",
        DAYS[usize::from(t.weekday().number_days_from_monday())],
        t.day(),
        MONTHS[usize::from(u8::from(t.month()) - 1)],
        t.year(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// The Scheduled Events document of VM `r` at `now`: a `Preempt` event
/// once an eviction notice is out, no events before.
pub fn scheduled_events(part: &Partition, r: &Resource, now: Instant) -> Value {
    match eviction_of(part, r).filter(|e| e.notice.noticed(now)) {
        None => json!({"DocumentIncarnation": 1, "Events": []}),
        Some(e) => json!({
            "DocumentIncarnation": 2,
            "Events": [{
                "EventId": e.notice.event_id,
                "EventType": "Preempt",
                "ResourceType": "VirtualMachine",
                "Resources": [r.name],
                "EventStatus": "Scheduled",
                "NotBefore": rfc1123(e.notice.ends_wall),
                "Description": "The virtual machine is being evicted because Azure needs the capacity back or the price went above the maximum set.",
                "EventSource": "Platform",
                "DurationInSeconds": -1,
            }],
        }),
    }
}

/// The `vmSize` of stored VM `r` (empty when absent).
pub fn resource_vm_size(r: &Resource) -> &str {
    match &r.links {
        Links::Vm { size, .. } => size,
        _ => "",
    }
}

fn target(r: &Resource) -> Target {
    Target {
        id: r.name.clone(),
        name: r.name.clone(),
        location: r.location.clone(),
        instance_type: resource_vm_size(r).to_string(),
    }
}

/// Whether VM `r` can be evicted at `now`: Spot or Low, provisioned, not
/// yet evicted.
fn evictable(part: &Partition, r: &Resource, now: Instant) -> bool {
    r.kind == Kind::VirtualMachine
        && is_spot(r)
        && r.alive(now)
        && r.state(now) == "Succeeded"
        && eviction_of(part, r).is_none()
}

impl Arm {
    /// Every running Spot (or Low priority) VM not yet evicted.
    pub fn spot_running(&self) -> Vec<Target> {
        let now = Instant::now();
        let mut out = Vec::new();
        for p in self.store.all() {
            let mut part = p.lock().unwrap_or_else(|e| e.into_inner());
            apply_evictions(&mut part, now);
            out.extend(
                part.resources
                    .values()
                    .filter(|r| evictable(&part, r, now))
                    .map(|r| target(r)),
            );
        }
        out
    }

    /// Gives every running Spot VM named `name` (any case, in any group
    /// and subscription) its eviction notice: empty when there is none.
    pub fn interrupt(&self, name: &str, notice: &Notice) -> Vec<Target> {
        let now = Instant::now();
        let mut out = Vec::new();
        for p in self.store.all() {
            let mut part = p.lock().unwrap_or_else(|e| e.into_inner());
            apply_evictions(&mut part, now);
            let hits: Vec<(ResKey, Eviction, Target)> = part
                .resources
                .values()
                .filter(|r| r.name.eq_ignore_ascii_case(name) && evictable(&part, r, now))
                .map(|r| {
                    let delete = r
                        .props
                        .at(&["evictionPolicy"])
                        .as_ref()
                        .and_then(Value::as_str)
                        .is_some_and(|e| e.eq_ignore_ascii_case("Delete"));
                    let ev = Eviction {
                        notice: notice.clone(),
                        vm_id: r.guid.clone(),
                        delete,
                        applied: false,
                    };
                    (key_of(r), ev, target(r))
                })
                .collect();
            for (k, ev, t) in hits {
                part.evictions.insert(k, ev);
                out.push(t);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_before_is_rfc1123() {
        let t = time::macros::datetime!(2016-09-19 18:29:47 UTC);
        assert_eq!(rfc1123(t), "Mon, 19 Sep 2016 18:29:47 GMT");
    }

    #[test]
    fn spot_properties_are_checked() {
        let ok = json!({"priority": "Spot", "evictionPolicy": "Delete", "billingProfile": {"maxPrice": -1}});
        assert!(check(Some(&ok)).unwrap());
        assert!(!check(Some(&json!({}))).unwrap());
        let e = check(Some(&json!({"priority": "Cheap"}))).unwrap_err();
        assert_eq!(e.target.as_deref(), Some("properties.priority"));
        let e = check(Some(&json!({"evictionPolicy": "Delete"}))).unwrap_err();
        assert_eq!(e.target.as_deref(), Some("properties.evictionPolicy"));
        let e = check(Some(&json!({"priority": "Spot", "billingProfile": {"maxPrice": 0}})))
            .unwrap_err();
        assert_eq!(e.target.as_deref(), Some("properties.billingProfile.maxPrice"));
    }
}
