//! The status file a command writes: JSON
//! `{"state": "idle"|"busy", "running": N, "tasksCompleted": N}`, or a
//! bare `idle` / `busy`. Anything else reads as nothing, which the agent
//! reports as busy: a worker is never claimed idle on a guess.

use serde::Deserialize;
use skyfleet_core::protocol::Activity;

/// What a status file said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileStatus {
    /// Idle or busy.
    pub activity: Activity,
    /// Tasks running (0 when not given).
    pub running: u32,
    /// Tasks completed (0 when not given).
    pub tasks_completed: u64,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Json {
    state: String,
    #[serde(default)]
    running: u32,
    #[serde(default)]
    tasks_completed: u64,
}

/// Reads a status file's text; `None` when it says nothing usable. An
/// `idle` with tasks running is read as busy.
pub fn parse(text: &str) -> Option<FileStatus> {
    let text = text.trim();
    let (state, running, tasks_completed) = match text {
        "idle" => ("idle".to_string(), 0, 0),
        "busy" => ("busy".to_string(), 0, 0),
        _ => {
            let j: Json = serde_json::from_str(text).ok()?;
            (j.state, j.running, j.tasks_completed)
        }
    };
    let activity = match state.as_str() {
        "idle" if running == 0 => Activity::Idle,
        "idle" | "busy" => Activity::Busy,
        _ => return None,
    };
    Some(FileStatus {
        activity,
        running,
        tasks_completed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_and_bare_forms_read() {
        let s = parse(r#"{"state":"busy","running":3,"tasksCompleted":12}"#).unwrap();
        assert_eq!(
            (s.activity, s.running, s.tasks_completed),
            (Activity::Busy, 3, 12)
        );
        let s = parse("idle\n").unwrap();
        assert_eq!((s.activity, s.running), (Activity::Idle, 0));
        assert_eq!(parse(" busy ").unwrap().activity, Activity::Busy);
        let s = parse(r#"{"state":"idle","tasksCompleted":4}"#).unwrap();
        assert_eq!((s.activity, s.tasks_completed), (Activity::Idle, 4));
    }

    #[test]
    fn nothing_usable_is_none_and_idle_with_work_is_busy() {
        for bad in [
            "",
            "idel",
            "{\"state\":\"asleep\"}",
            "{\"running\":1}",
            "{",
            "draining",
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
        let s = parse(r#"{"state":"idle","running":1}"#).unwrap();
        assert_eq!(s.activity, Activity::Busy);
    }
}
