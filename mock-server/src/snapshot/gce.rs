//! Compute Engine in a snapshot: every project with its instances (spec,
//! labels, fingerprints, status timeline), operations and request ids.

use std::collections::HashMap;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use super::SnapshotError;
use crate::gce::operations::Failure;
use crate::gce::store::Project;

/// The most operations a snapshot may carry per project (the configured
/// `operation_limit` trims them further on the next insert).
const MAX_OPERATIONS: usize = 1_000_000;
use crate::gce::Gce;

/// The `gce` section.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Section {
    projects: Vec<ProjectIn>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProjectIn {
    project: String,
    state: Project,
}

#[derive(Serialize)]
struct ProjectOut<'a> {
    project: &'a str,
    state: &'a Project,
}

/// The section, checked.
pub(super) struct Checked(HashMap<String, Project>);

/// The `gce` section of the current state.
pub(super) fn take(gce: &Gce) -> Result<Value, serde_json::Error> {
    let mut out: Vec<(String, Value)> = gce
        .store()
        .each(|(name, project)| {
            serde_json::to_value(ProjectOut {
                project: name,
                state: project,
            })
            .map(|v| (name.clone(), v))
        })
        .into_iter()
        .collect::<Result<_, _>>()?;
    out.sort_by(|a, b| a.0.cmp(&b.0));
    let list: Vec<Value> = out.into_iter().map(|(_, v)| v).collect();
    Ok(serde_json::json!({ "projects": list }))
}

/// Checks what the store takes for granted.
pub(super) fn check(section: Section) -> Result<Checked, SnapshotError> {
    if section.projects.len() > crate::bounded::MAX_ENTRIES {
        return Err(SnapshotError::field(
            "gce.projects",
            format!("at most {} projects", crate::bounded::MAX_ENTRIES),
        ));
    }
    let mut out = HashMap::new();
    for (n, p) in section.projects.into_iter().enumerate() {
        let at = |field: &str| format!("gce.projects[{n}].{field}");
        for (zone, instances) in &p.state.zones {
            for (name, i) in instances {
                if *i.zone != **zone || i.spec.name != *name {
                    return Err(SnapshotError::field(
                        at(&format!("state.zones.{zone}.{name}")),
                        format!("instance {} in zone {} is filed under another name or zone", i.spec.name, i.zone),
                    ));
                }
            }
        }
        if p.state.operations.len() > MAX_OPERATIONS {
            return Err(SnapshotError::field(
                at("state.operations"),
                format!("at most {MAX_OPERATIONS} operations"),
            ));
        }
        if let Some((name, op)) = p.state.operations.iter().find(|(k, op)| **k != op.name) {
            return Err(SnapshotError::field(
                at(&format!("state.operations.{name}")),
                format!("operation {} is filed under another name", op.name),
            ));
        }
        if p.project.is_empty() || out.contains_key(&p.project) {
            return Err(SnapshotError::field(
                at("project"),
                format!("empty or listed twice: {:?}", p.project),
            ));
        }
        out.insert(p.project, p.state);
    }
    Ok(Checked(out))
}

/// Replaces Compute Engine's state.
pub(super) fn apply(gce: &Gce, checked: Checked) {
    gce.store().replace_all(checked.0);
}

/// `failure` of an operation: its `httpErrorMessage` must be one of the
/// messages Compute pairs with an HTTP status (a `&'static str` in the
/// store).
pub(crate) fn failure<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Failure>, D::Error> {
    const KNOWN: &[&str] = &[
        "BAD REQUEST",
        "FORBIDDEN",
        "NOT FOUND",
        "CONFLICT",
        "INTERNAL SERVER ERROR",
        "SERVICE UNAVAILABLE",
    ];
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct FailureIn {
        code: String,
        message: String,
        http_status: u16,
        http_message: String,
        #[serde(default)]
        instance_quota: Option<u32>,
    }
    let Some(f) = Option::<FailureIn>::deserialize(d)? else {
        return Ok(None);
    };
    let http_message = KNOWN
        .iter()
        .copied()
        .find(|k| *k == f.http_message)
        .ok_or_else(|| {
            serde::de::Error::custom(format!(
                "unknown http_message {:?}; one of {KNOWN:?}",
                f.http_message
            ))
        })?;
    Ok(Some(Failure {
        code: f.code,
        message: f.message,
        http_status: f.http_status,
        http_message,
        instance_quota: f.instance_quota,
    }))
}
