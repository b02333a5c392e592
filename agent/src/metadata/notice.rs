//! Interruption notices: each cloud's warning that it is about to reclaim
//! a spot or preemptible VM, read from the VM's metadata service.
//!
//! - EC2: `/latest/meta-data/spot/instance-action` answers
//!   `{"action": "terminate", "time": "2026-12-04T20:30:00Z"}` about two
//!   minutes ahead, and 404 while no interruption is scheduled.
//! - Compute Engine: `instance/preempted` turns `TRUE` about 30 s before a
//!   spot or preemptible VM stops (`FALSE` otherwise); there is no time.
//! - Azure: the Scheduled Events document
//!   (`/metadata/scheduledevents?api-version=2020-07-01`) lists a `Preempt`
//!   event naming the VM with `NotBefore` (an HTTP date) about 30 s ahead.
//!
//! The parsers here are pure; [`MetadataSource::interruption`](super::MetadataSource::interruption)
//! does the requests. AWS recommends polling every 5 s; so does the agent
//! ([`NOTICE_INTERVAL`]).

use std::time::Duration;

use serde::Deserialize;
use skyfleet_core::protocol::InterruptionNotice;
use time::OffsetDateTime;

/// How often the agent reads its notice: AWS's recommended 5 s, a fraction
/// of the shortest lead (30 s on Compute Engine and Azure).
pub const NOTICE_INTERVAL: Duration = Duration::from_secs(5);

/// Why a notice could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct NoticeError(String);

#[derive(Deserialize)]
struct InstanceAction {
    action: String,
    time: String,
}

/// EC2's `spot/instance-action` document (the answer to a 200; a 404 means
/// no notice).
///
/// ```
/// use skyfleet_agent::metadata::notice::aws_instance_action;
/// let n = aws_instance_action(r#"{"action":"terminate","time":"2026-12-04T20:30:00Z"}"#).unwrap();
/// assert_eq!(n.action, "terminate");
/// assert_eq!(n.not_before.unwrap().unix_timestamp(), 1_796_416_200);
/// ```
pub fn aws_instance_action(body: &str) -> Result<InterruptionNotice, NoticeError> {
    let doc: InstanceAction = serde_json::from_str(body)
        .map_err(|e| NoticeError(format!("spot/instance-action: {e}")))?;
    if !matches!(doc.action.as_str(), "terminate" | "stop" | "hibernate") {
        return Err(NoticeError(format!(
            "spot/instance-action: unknown action {:?}",
            clip(&doc.action)
        )));
    }
    let at = OffsetDateTime::parse(&doc.time, &time::format_description::well_known::Rfc3339)
        .map_err(|e| {
            NoticeError(format!(
                "spot/instance-action: time {:?}: {e}",
                clip(&doc.time)
            ))
        })?;
    Ok(InterruptionNotice {
        action: doc.action,
        not_before: Some(at),
    })
}

/// Compute Engine's `instance/preempted` value: a notice when `TRUE`.
///
/// ```
/// use skyfleet_agent::metadata::notice::gce_preempted;
/// assert!(gce_preempted("TRUE").unwrap().is_some());
/// assert!(gce_preempted("FALSE\n").unwrap().is_none());
/// assert!(gce_preempted("maybe").is_err());
/// ```
pub fn gce_preempted(body: &str) -> Result<Option<InterruptionNotice>, NoticeError> {
    match body.trim() {
        "TRUE" => Ok(Some(InterruptionNotice {
            action: "preempted".into(),
            not_before: None,
        })),
        "FALSE" => Ok(None),
        other => Err(NoticeError(format!(
            "instance/preempted: expected TRUE or FALSE, got {:?}",
            clip(other)
        ))),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ScheduledEvents {
    #[serde(default)]
    events: Vec<ScheduledEvent>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ScheduledEvent {
    event_type: String,
    #[serde(default)]
    resources: Vec<String>,
    #[serde(default)]
    not_before: String,
}

/// Azure's Scheduled Events document: the `Preempt` event naming `vm_name`
/// (any `Preempt` event when the name is unknown), with its `NotBefore`.
/// Other events (reboots, redeploys, freezes) are not interruptions.
///
/// ```
/// use skyfleet_agent::metadata::notice::azure_preempt;
/// let doc = r#"{"DocumentIncarnation":1,"Events":[{"EventId":"e","EventType":"Preempt",
///   "ResourceType":"VirtualMachine","Resources":["vm-1"],"EventStatus":"Scheduled",
///   "NotBefore":"Fri, 04 Dec 2026 20:30:00 GMT","Description":"","EventSource":"Platform",
///   "DurationInSeconds":-1}]}"#;
/// let n = azure_preempt(doc, Some("vm-1")).unwrap().unwrap();
/// assert_eq!(n.action, "Preempt");
/// assert_eq!(n.not_before.unwrap().unix_timestamp(), 1_796_416_200);
/// assert!(azure_preempt(doc, Some("vm-2")).unwrap().is_none());
/// ```
pub fn azure_preempt(
    body: &str,
    vm_name: Option<&str>,
) -> Result<Option<InterruptionNotice>, NoticeError> {
    let doc: ScheduledEvents =
        serde_json::from_str(body).map_err(|e| NoticeError(format!("scheduledevents: {e}")))?;
    let Some(event) = doc.events.into_iter().find(|e| {
        e.event_type == "Preempt"
            && vm_name.is_none_or(|n| e.resources.iter().any(|r| r.eq_ignore_ascii_case(n)))
    }) else {
        return Ok(None);
    };
    let not_before = if event.not_before.is_empty() {
        None
    } else {
        let at = httpdate::parse_http_date(&event.not_before).map_err(|e| {
            NoticeError(format!(
                "scheduledevents: NotBefore {:?}: {e}",
                clip(&event.not_before)
            ))
        })?;
        Some(OffsetDateTime::from(at))
    };
    Ok(Some(InterruptionNotice {
        action: event.event_type,
        not_before,
    }))
}

/// At most 64 bytes of what a service answered, for messages.
fn clip(s: &str) -> &str {
    let mut end = s.len().min(64);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aws_notices_parse_and_bad_ones_are_named() {
        let n = aws_instance_action(r#"{"action":"stop","time":"2026-12-04T20:30:00Z"}"#).unwrap();
        assert_eq!(n.action, "stop");
        let e = aws_instance_action(r#"{"action":"explode","time":"2026-12-04T20:30:00Z"}"#)
            .unwrap_err();
        assert!(e.to_string().contains("explode"), "{e}");
        let e = aws_instance_action(r#"{"action":"terminate","time":"soon"}"#).unwrap_err();
        assert!(e.to_string().contains("soon"), "{e}");
        assert!(aws_instance_action("<html>").is_err());
    }

    #[test]
    fn azure_ignores_other_events_and_other_vms() {
        let doc = r#"{"DocumentIncarnation":2,"Events":[
            {"EventId":"a","EventType":"Reboot","Resources":["vm-1"],"NotBefore":""},
            {"EventId":"b","EventType":"Preempt","Resources":["vm-9"],"NotBefore":""}]}"#;
        assert!(azure_preempt(doc, Some("vm-1")).unwrap().is_none());
        let any = azure_preempt(doc, None).unwrap().unwrap();
        assert_eq!(any.not_before, None);
        assert!(
            azure_preempt(r#"{"DocumentIncarnation":0,"Events":[]}"#, Some("vm-1"))
                .unwrap()
                .is_none()
        );
        let bad =
            r#"{"Events":[{"EventType":"Preempt","Resources":["vm-1"],"NotBefore":"tomorrow"}]}"#;
        assert!(azure_preempt(bad, Some("vm-1"))
            .unwrap_err()
            .to_string()
            .contains("tomorrow"));
    }
}
