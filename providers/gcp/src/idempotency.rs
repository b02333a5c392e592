//! Idempotency: the names and `requestId`s that make every mutation safe to
//! repeat, each a pure function of the worker id.
//!
//! An instance is named after its worker ([`instance_name`]), so a resumed
//! insert can only ever target that one name.
//!
//! Compute de-duplicates a mutation whose `requestId` it has seen (for at
//! least an hour): the repeat answers the original operation and changes
//! nothing. Taskcluster sent a random UUID per call, which only covers
//! retries inside one call: a process that crashed after `insert` and
//! resumed created a second VM. Here the id is a UUID v5 of the worker id,
//! the purpose of the call and an attempt counter kept in the worker's
//! state, so every retry, in this process or the next, sends the same id.
//! A v5 UUID is never the zero UUID, which Compute refuses.

use uuid::Uuid;

/// The instance name of a worker: a pure function of its id (a worker id is
/// 1-38 of `a-z0-9-` starting with a letter, so this is a valid Compute
/// name).
pub(crate) fn instance_name(worker_id: &str) -> String {
    format!("{worker_id}-vm")
}

/// The namespace of skyfleet's GCE request ids (a fixed random UUID).
const NAMESPACE: Uuid = Uuid::from_u128(0x6c1f_3a1e_9d2b_4c57_8e0a_57f3_2b91_d4c6);

/// What the request does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Purpose {
    /// `instances.insert`.
    Insert,
    /// `instances.delete`.
    Delete,
}

impl Purpose {
    fn as_str(self) -> &'static str {
        match self {
            Purpose::Insert => "insert",
            Purpose::Delete => "delete",
        }
    }
}

/// The request id of `purpose` for `worker_id` in `project`, attempt
/// `attempt` (0 for the first; a new attempt gets a new id, for when the
/// previous one's operation is known to have failed).
pub(crate) fn request_id(project: &str, worker_id: &str, purpose: Purpose, attempt: u32) -> Uuid {
    let name = format!(
        "skyfleet-gcp/{project}/{worker_id}/{}/{attempt}",
        purpose.as_str()
    );
    Uuid::new_v5(&NAMESPACE, name.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_distinct_and_valid() {
        let a = request_id("p", "w-1", Purpose::Insert, 0);
        assert_eq!(a, request_id("p", "w-1", Purpose::Insert, 0));
        assert_ne!(a, request_id("p", "w-1", Purpose::Insert, 1));
        assert_ne!(a, request_id("p", "w-1", Purpose::Delete, 0));
        assert_ne!(a, request_id("p", "w-2", Purpose::Insert, 0));
        assert!(!a.is_nil());
        assert_eq!(a.get_version_num(), 5);
        assert_eq!(instance_name("w-1"), "w-1-vm");
    }
}
