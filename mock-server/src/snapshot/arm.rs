//! ARM in a snapshot: every subscription with its resource groups,
//! resources (properties, tags, links, last operation), operation records,
//! spot evictions, out-of-band power changes and address counter.

use std::collections::HashSet;

use serde::Deserialize;
use serde_json::Value;

use super::SnapshotError;
use crate::arm::store::{Partition, ResKey, MAX_DELETED, MAX_OPERATIONS};
use crate::arm::Arm;

/// The `arm` section.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Section {
    subscriptions: Vec<Partition>,
}

/// The section, checked.
pub(super) struct Checked(Vec<Partition>);

/// The `arm` section of the current state.
pub(super) fn take(arm: &Arm) -> Result<Value, serde_json::Error> {
    let mut out = Vec::new();
    for part in arm.store().all() {
        let part = part.lock().unwrap_or_else(|e| e.into_inner());
        out.push((part.subscription.to_ascii_lowercase(), serde_json::to_value(&*part)?));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    let list: Vec<Value> = out.into_iter().map(|(_, v)| v).collect();
    Ok(serde_json::json!({ "subscriptions": list }))
}

/// Checks what the store takes for granted.
pub(super) fn check(section: Section) -> Result<Checked, SnapshotError> {
    if section.subscriptions.len() > crate::bounded::MAX_ENTRIES {
        return Err(SnapshotError::field(
            "arm.subscriptions",
            format!("at most {} subscriptions", crate::bounded::MAX_ENTRIES),
        ));
    }
    let mut seen = HashSet::new();
    for (n, p) in section.subscriptions.iter().enumerate() {
        let at = |field: &str| format!("arm.subscriptions[{n}].{field}");
        if p.subscription.is_empty() || !seen.insert(p.subscription.to_ascii_lowercase()) {
            return Err(SnapshotError::field(
                at("subscription"),
                format!("empty or listed twice: {:?}", p.subscription),
            ));
        }
        for (key, g) in &p.groups {
            if *key != g.name.to_ascii_lowercase() {
                return Err(SnapshotError::field(
                    at(&format!("groups.{key}")),
                    format!("group {:?} is filed under {key:?}", g.name),
                ));
            }
        }
        for (i, (key, r)) in p.resources.iter().enumerate() {
            if *key != ResKey::new(r.kind, &r.rg, &r.name) {
                return Err(SnapshotError::field(
                    at(&format!("resources[{i}]")),
                    format!("resource {} is filed under another key", r.id),
                ));
            }
            if !p.groups.contains_key(&key.rg) {
                return Err(SnapshotError::field(
                    at(&format!("resources[{i}]")),
                    format!("resource {} is in resource group {:?}, which is not listed", r.id, r.rg),
                ));
            }
        }
        if p.ops.len() > MAX_OPERATIONS || p.op_order.len() > MAX_OPERATIONS {
            return Err(SnapshotError::field(
                at("ops"),
                format!("at most {MAX_OPERATIONS} operations"),
            ));
        }
        if let Some(id) = p.op_order.iter().find(|id| !p.ops.contains_key(*id)) {
            return Err(SnapshotError::field(
                at("op_order"),
                format!("operation {id} is not in ops"),
            ));
        }
        if p.deleted.len() > MAX_DELETED {
            return Err(SnapshotError::field(
                at("deleted"),
                format!("at most {MAX_DELETED} deleted resources"),
            ));
        }
    }
    Ok(Checked(section.subscriptions))
}

/// Replaces ARM's state.
pub(super) fn apply(arm: &Arm, checked: Checked) {
    arm.store().replace_all(checked.0);
}
