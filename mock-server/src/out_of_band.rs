//! Out-of-band changes: `POST /_mock/resources/{id}/actions` deletes,
//! stops, deallocates or starts a VM, or replaces its tags, as if someone
//! used the cloud's console, so a test can check that a client notices a
//! cloud that changed behind its back.
//!
//! `{id}` is what `GET /_mock/resources` lists as the VM's `id`: an EC2
//! instance id (`i-...`), an ARM virtual machine id (`/subscriptions/...`,
//! URL-encoded: `%2F` for each `/`) or a numeric GCE instance id. Each
//! cloud module carries the change out on its own state through the same
//! transitions its API calls use (see `ec2::out_of_band`,
//! `arm::out_of_band`, `gce::out_of_band`).
//!
//! Answers: 200 with the resource as `GET /_mock/resources` then shows it
//! (`null` once it is gone); 400 for a bad body or an action the cloud has
//! no meaning for (`deallocate` on EC2 or GCE); 404 for an unknown id; 409
//! when the VM's state rules the action out (start of a VM being deleted).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use crate::app::Shared;
use crate::control::json_error;
use crate::ctx::{Cloud, ResourceView};

/// The most tags `set_tags` takes (EC2 and Azure allow 50 per resource).
pub const MAX_TAGS: usize = 50;
/// The longest tag key `set_tags` takes.
pub const MAX_TAG_KEY: usize = 128;
/// The longest tag value `set_tags` takes.
pub const MAX_TAG_VALUE: usize = 256;
/// The longest `{id}` looked up (the longest ARM id is well under it).
const MAX_ID: usize = 1024;

/// An action, as the body's `action` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionName {
    /// Delete (EC2: terminate).
    Delete,
    /// Stop (ARM: power off, the VM stays allocated and billed).
    Stop,
    /// Deallocate (ARM only).
    Deallocate,
    /// Start a stopped (or deallocated) VM.
    Start,
    /// Replace every tag (GCE: label).
    SetTags,
}

impl ActionName {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            ActionName::Delete => "delete",
            ActionName::Stop => "stop",
            ActionName::Deallocate => "deallocate",
            ActionName::Start => "start",
            ActionName::SetTags => "set_tags",
        }
    }
}

/// The body of `POST /_mock/resources/{id}/actions`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActionRequest {
    /// What to do.
    pub action: ActionName,
    /// The new tags: required by `set_tags`, refused by the others.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<BTreeMap<String, String>>,
}

/// A checked action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Delete.
    Delete,
    /// Stop.
    Stop,
    /// Deallocate.
    Deallocate,
    /// Start.
    Start,
    /// Replace the tags with these.
    SetTags(BTreeMap<String, String>),
}

impl Action {
    /// Its name.
    pub fn name(&self) -> ActionName {
        match self {
            Action::Delete => ActionName::Delete,
            Action::Stop => ActionName::Stop,
            Action::Deallocate => ActionName::Deallocate,
            Action::Start => ActionName::Start,
            Action::SetTags(_) => ActionName::SetTags,
        }
    }
}

/// Why an action was not carried out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ActionError {
    /// No VM has this id.
    #[error("no VM with id `{0}` (use an `id` GET /_mock/resources lists)")]
    NotFound(String),
    /// The cloud has no such action.
    #[error("action `{}` is not meaningful on {}", .action.as_str(), .cloud.as_str())]
    Unsupported {
        /// The action.
        action: ActionName,
        /// The cloud.
        cloud: Cloud,
    },
    /// The VM's state rules the action out.
    #[error("{0}")]
    Conflict(String),
    /// The cloud refuses the parameters (GCE label rules).
    #[error("{0}")]
    Invalid(String),
}

impl ActionError {
    /// The HTTP status it is answered with.
    pub fn status(&self) -> u16 {
        match self {
            ActionError::NotFound(_) => 404,
            ActionError::Unsupported { .. } | ActionError::Invalid(_) => 400,
            ActionError::Conflict(_) => 409,
        }
    }
}

/// Parses and checks an action body; the message names the field at fault.
pub fn parse_action(body: &[u8]) -> Result<Action, String> {
    let r: ActionRequest = crate::capacity::control::parse(body)?;
    match (r.action, r.tags) {
        (ActionName::SetTags, None) => Err("tags: required by action `set_tags`".into()),
        (ActionName::SetTags, Some(tags)) => {
            check_tags(&tags)?;
            Ok(Action::SetTags(tags))
        }
        (a, Some(_)) => Err(format!(
            "tags: only action `set_tags` takes tags, not `{}`",
            a.as_str()
        )),
        (ActionName::Delete, None) => Ok(Action::Delete),
        (ActionName::Stop, None) => Ok(Action::Stop),
        (ActionName::Deallocate, None) => Ok(Action::Deallocate),
        (ActionName::Start, None) => Ok(Action::Start),
    }
}

fn check_tags(tags: &BTreeMap<String, String>) -> Result<(), String> {
    if tags.len() > MAX_TAGS {
        return Err(format!("tags: at most {MAX_TAGS}, got {}", tags.len()));
    }
    for (k, v) in tags {
        if k.is_empty() || k.chars().count() > MAX_TAG_KEY {
            return Err(format!(
                "tags: key `{}`: must be 1 to {MAX_TAG_KEY} characters",
                clip(k)
            ));
        }
        if k.chars().any(char::is_control) {
            return Err(format!("tags: key `{}`: control characters", clip(k)));
        }
        if v.chars().count() > MAX_TAG_VALUE || v.chars().any(char::is_control) {
            return Err(format!(
                "tags: value of `{}`: must be at most {MAX_TAG_VALUE} characters, none a control character",
                clip(k)
            ));
        }
    }
    Ok(())
}

/// The first 64 characters of `s`, for messages.
fn clip(s: &str) -> String {
    s.chars().take(64).collect()
}

/// Which cloud an id names, from its form; `None` when it names none.
pub fn cloud_of(id: &str) -> Option<Cloud> {
    if id.starts_with("/subscriptions/") {
        Some(Cloud::Azure)
    } else if id.starts_with("i-") {
        Some(Cloud::Aws)
    } else if !id.is_empty() && id.len() <= 20 && id.bytes().all(|b| b.is_ascii_digit()) {
        Some(Cloud::Gcp)
    } else {
        None
    }
}

/// The answer of a carried out action.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ActionDone {
    /// The action.
    pub action: ActionName,
    /// The cloud.
    pub cloud: Cloud,
    /// The id acted on.
    pub id: String,
    /// The resource as `GET /_mock/resources` shows it now, `null` once
    /// it is gone.
    pub resource: Option<ResourceView>,
}

/// The route.
pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/_mock/resources/{id}/actions", post(act))
        .with_state(shared)
}

async fn act(
    State(s): State<Arc<Shared>>,
    id: Result<Path<String>, PathRejection>,
    body: Bytes,
) -> Response {
    let Ok(Path(id)) = id else {
        return json_error(400, "id: must be a URL-encoded UTF-8 string");
    };
    let action = match parse_action(&body) {
        Ok(a) => a,
        Err(e) => return json_error(400, &e),
    };
    match apply(&s, &id, &action) {
        Ok(done) => Json(done).into_response(),
        Err(e) => json_error(e.status(), &e.to_string()),
    }
}

/// Carries `action` out on the VM `id`.
pub fn apply(s: &Shared, id: &str, action: &Action) -> Result<ActionDone, ActionError> {
    let not_found = || ActionError::NotFound(clip(id));
    if id.len() > MAX_ID {
        return Err(not_found());
    }
    let cloud = cloud_of(id).ok_or_else(not_found)?;
    match cloud {
        Cloud::Aws => s.ec2.out_of_band(id, action)?,
        Cloud::Azure => s.arm.out_of_band(id, action)?,
        Cloud::Gcp => s.gce.out_of_band(id, action)?,
    }
    let listed = match cloud {
        Cloud::Aws => s.ec2.resources(),
        Cloud::Azure => s.arm.resources(),
        Cloud::Gcp => s.gce.resources(),
    };
    let resource = listed
        .into_iter()
        .find(|r| r.id.eq_ignore_ascii_case(id) && r.kind != "resourceGroup");
    Ok(ActionDone {
        action: action.name(),
        cloud,
        id: id.to_string(),
        resource,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_checked_and_errors_name_the_field() {
        assert_eq!(parse_action(br#"{"action":"delete"}"#), Ok(Action::Delete));
        assert_eq!(
            parse_action(br#"{"action":"set_tags","tags":{"a":"b"}}"#),
            Ok(Action::SetTags([("a".to_string(), "b".to_string())].into()))
        );
        let e = parse_action(br#"{"action":"explode"}"#).unwrap_err();
        assert!(e.starts_with("action: unknown variant `explode`"), "{e}");
        let e = parse_action(br#"{"action":"set_tags"}"#).unwrap_err();
        assert!(e.starts_with("tags: required"), "{e}");
        let e = parse_action(br#"{"action":"stop","tags":{}}"#).unwrap_err();
        assert!(e.contains("not `stop`"), "{e}");
        let e = parse_action(br#"{"action":"stop","force":true}"#).unwrap_err();
        assert!(e.contains("unknown field `force`"), "{e}");
        let e = parse_action(br#"{"action":"set_tags","tags":{"":"x"}}"#).unwrap_err();
        assert!(e.starts_with("tags: key ``"), "{e}");
        let e = parse_action(b"not json").unwrap_err();
        assert!(e.contains("expected"), "{e}");
        let many: BTreeMap<String, String> =
            (0..=MAX_TAGS).map(|i| (format!("k{i}"), String::new())).collect();
        let body = serde_json::to_vec(&serde_json::json!({"action":"set_tags","tags": many}))
            .unwrap();
        let e = parse_action(&body).unwrap_err();
        assert!(e.starts_with("tags: at most 50"), "{e}");
    }

    #[test]
    fn ids_name_their_cloud_by_form() {
        assert_eq!(cloud_of("i-0123456789abcdef0"), Some(Cloud::Aws));
        assert_eq!(
            cloud_of("/subscriptions/s/resourceGroups/g/providers/Microsoft.Compute/virtualMachines/v"),
            Some(Cloud::Azure)
        );
        assert_eq!(cloud_of("1234567890123"), Some(Cloud::Gcp));
        assert_eq!(cloud_of("vm-name"), None);
        assert_eq!(cloud_of(""), None);
    }
}
