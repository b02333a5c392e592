//! EC2 in a snapshot: every partition (account and region) with its
//! instances, ClientToken records, launch templates, volumes and creation
//! counters.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::SnapshotError;
use crate::ec2::store::Partition;
use crate::ec2::Ec2;

/// The `ec2` section.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Section {
    partitions: Vec<PartitionIn>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PartitionIn {
    account: String,
    region: String,
    state: Partition,
}

#[derive(Serialize)]
struct PartitionOut<'a> {
    account: &'a str,
    region: &'a str,
    state: &'a Partition,
}

/// The section, checked.
pub(super) struct Checked(Vec<((String, String), Partition)>);

/// The `ec2` section of the current state.
pub(super) fn take(ec2: &Ec2) -> Result<Value, serde_json::Error> {
    let mut parts = ec2.store().all_with_region();
    parts.sort_by(|a, b| a.0.cmp(&b.0));
    let mut out = Vec::with_capacity(parts.len());
    for ((account, region), part) in parts {
        let part = part.lock().unwrap_or_else(|e| e.into_inner());
        out.push(serde_json::to_value(PartitionOut {
            account: &account,
            region: &region,
            state: &part,
        })?);
    }
    Ok(serde_json::json!({ "partitions": out }))
}

/// Checks what the stores take for granted and rebuilds the id index.
pub(super) fn check(section: Section) -> Result<Checked, SnapshotError> {
    if section.partitions.len() > crate::bounded::MAX_ENTRIES {
        return Err(SnapshotError::field(
            "ec2.partitions",
            format!(
                "at most {} partitions, found {}",
                crate::bounded::MAX_ENTRIES,
                section.partitions.len()
            ),
        ));
    }
    let mut keys = HashSet::new();
    let mut ids = HashSet::new();
    let mut out = Vec::with_capacity(section.partitions.len());
    for (n, p) in section.partitions.into_iter().enumerate() {
        let at = |field: &str| format!("ec2.partitions[{n}].{field}");
        if p.account.is_empty() || p.region.is_empty() {
            return Err(SnapshotError::field(at("account"), "account and region must not be empty"));
        }
        if !keys.insert((p.account.clone(), p.region.clone())) {
            return Err(SnapshotError::field(
                at("account"),
                format!("account {} in region {} is listed twice", p.account, p.region),
            ));
        }
        let mut state = p.state;
        for (seq, inst) in &state.instances {
            let here = || at(&format!("state.instances.{seq}"));
            if inst.seq != *seq {
                return Err(SnapshotError::field(
                    here(),
                    format!("seq {} is filed under {seq}", inst.seq),
                ));
            }
            if *seq >= state.next_seq {
                return Err(SnapshotError::field(
                    at("state.next_seq"),
                    format!("must be above every instance's seq ({seq})"),
                ));
            }
            if !ids.insert(inst.id.clone()) {
                return Err(SnapshotError::field(
                    here(),
                    format!("instance id {} is listed twice", inst.id),
                ));
            }
        }
        state.by_id = state
            .instances
            .values()
            .map(|i| (i.id.clone(), i.seq))
            .collect();
        state.last_sweep = None;
        if state.volumes.iter().any(|v| v.seq >= state.volumes.next_seq()) {
            return Err(SnapshotError::field(
                at("state.volumes.next_seq"),
                "must be above every volume's seq",
            ));
        }
        if state.templates.iter().any(|t| t.seq >= state.templates.next_seq()) {
            return Err(SnapshotError::field(
                at("state.templates.next_seq"),
                "must be above every launch template's seq",
            ));
        }
        out.push(((p.account, p.region), state));
    }
    Ok(Checked(out))
}

/// Replaces EC2's state.
pub(super) fn apply(ec2: &Ec2, checked: Checked) {
    ec2.store().replace_all(checked.0);
}
