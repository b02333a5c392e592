//! [`Failure`]: the one record of a failure that is kept (on a step, on a
//! worker, in a provider's persisted state, in a pool's error list).
//!
//! An [`Error`] is what a call returns; a `Failure` is what is remembered of
//! it: the kind, the cloud's code, the message and, once it is recorded on a
//! worker, when. The kind is stored by [`ErrorKind::name`] (as every store
//! has done), and read back with [`ErrorKind::from_name`], so records
//! written before this type existed still read, and a kind added later reads
//! as [`ErrorKind::Internal`] in an older build instead of failing.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::error::{Error, ErrorKind};

/// A failure as it is recorded: kind, code, message and (when recorded on a
/// worker) when.
///
/// ```
/// use skyfleet_core::{Error, ErrorKind, Failure};
/// let err = Error::new(ErrorKind::CapacityOrQuota, "no capacity").with_code("AllocationFailed");
/// let f = Failure::from(&err);
/// assert_eq!(f.kind, ErrorKind::CapacityOrQuota);
/// assert_eq!(f.kind, "capacity_or_quota");
/// assert_eq!(f.to_error().code(), Some("AllocationFailed"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    /// The classification (stored by its stable name: `capacity_or_quota`,
    /// `timeout`, ...).
    pub kind: ErrorKind,
    /// The cloud's code, when it gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// The message.
    pub message: String,
    /// When it was recorded; `None` until it is recorded on a worker (a
    /// step's failure is stamped when the step is applied).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "time::serde::rfc3339::option"
    )]
    pub at: Option<OffsetDateTime>,
}

/// The longest message kept on a record (worker errors, pool errors), in
/// bytes: a cloud that answers a megabyte of error text does not fill the
/// store with it.
pub const MAX_STORED_MESSAGE: usize = 1024;

/// `message` cut to at most [`MAX_STORED_MESSAGE`] bytes on a char
/// boundary, with `…` at the end when something was cut.
pub fn truncate_message(message: &str) -> String {
    if message.len() <= MAX_STORED_MESSAGE {
        return message.to_string();
    }
    const MARK: &str = "…";
    let mut end = MAX_STORED_MESSAGE - MARK.len();
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{MARK}", &message[..end])
}

impl Failure {
    /// A failure of `kind` with `message` (cut to [`MAX_STORED_MESSAGE`]),
    /// no code, not yet stamped.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Failure {
            kind,
            code: None,
            message: truncate_message(&message.into()),
            at: None,
        }
    }

    /// Records `err` as seen at `at`.
    pub fn from_error(err: &Error, at: OffsetDateTime) -> Self {
        Failure::from(err).stamped(at)
    }

    /// Sets the cloud's code.
    pub fn with_code(mut self, code: impl Into<String>) -> Self {
        self.code = Some(code.into());
        self
    }

    /// Sets when the failure was recorded.
    pub fn stamped(mut self, at: OffsetDateTime) -> Self {
        self.at = Some(at);
        self
    }

    /// The failure as an [`Error`] again (kind, code and message).
    pub fn to_error(&self) -> Error {
        let e = Error::new(self.kind.clone(), self.message.clone());
        match &self.code {
            Some(c) => e.with_code(c.clone()),
            None => e,
        }
    }
}

impl From<&Error> for Failure {
    fn from(e: &Error) -> Self {
        Failure {
            kind: e.kind().clone(),
            code: e.code().map(truncate_message),
            message: truncate_message(e.message()),
            at: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_messages_are_cut_to_one_kib_on_a_char_boundary() {
        // 3-byte chars: no boundary falls on 1024 - 3.
        let huge = "€".repeat(100_000);
        let f =
            Failure::from(&Error::new(ErrorKind::Internal, huge.clone()).with_code(huge.clone()));
        assert!(f.message.len() <= MAX_STORED_MESSAGE, "{}", f.message.len());
        assert!(f.message.len() > MAX_STORED_MESSAGE - 8);
        assert!(f.message.ends_with('…'));
        assert!(f.code.as_ref().unwrap().len() <= MAX_STORED_MESSAGE);
        assert!(
            Failure::new(ErrorKind::Internal, "x".repeat(5000))
                .message
                .len()
                <= MAX_STORED_MESSAGE
        );
        assert_eq!(truncate_message("short"), "short");
    }

    /// A worker error as stored today (kind by name, RFC 3339 `at`) reads,
    /// and writes back the same JSON.
    #[test]
    fn todays_json_shape_still_reads() {
        let stored = r#"{"kind":"capacity_or_quota","code":"InsufficientInstanceCapacity","message":"no capacity","at":"2026-01-02T03:04:05Z"}"#;
        let f: Failure = serde_json::from_str(stored).unwrap();
        assert_eq!(f.kind, ErrorKind::CapacityOrQuota);
        assert_eq!(f.code.as_deref(), Some("InsufficientInstanceCapacity"));
        assert_eq!(f.message, "no capacity");
        assert_eq!(f.at, Some(time::macros::datetime!(2026-01-02 03:04:05 UTC)));
        assert_eq!(serde_json::to_string(&f).unwrap(), stored);

        // Without a code, and a step error without `at`.
        let f: Failure = serde_json::from_str(r#"{"kind":"timeout","message":"slow"}"#).unwrap();
        assert_eq!(
            (f.kind.clone(), f.code.clone(), f.at),
            (ErrorKind::Timeout, None, None)
        );
        assert_eq!(
            serde_json::to_string(&f).unwrap(),
            r#"{"kind":"timeout","message":"slow"}"#
        );

        // A kind this build does not know reads as internal.
        let f: Failure =
            serde_json::from_str(r#"{"kind":"from_the_future","message":"m"}"#).unwrap();
        assert_eq!(f.kind, ErrorKind::Internal);
    }

    /// Kinds are no longer flattened to `operation_failed` on the way back.
    #[test]
    fn every_kind_survives() {
        for kind in [
            ErrorKind::AlreadyExists,
            ErrorKind::Conflict,
            ErrorKind::Internal,
            ErrorKind::InvalidConfig {
                field: "launch.zone".into(),
            },
        ] {
            let f = Failure::from(&Error::new(kind.clone(), "m"));
            assert_eq!(f.kind, kind);
            assert_eq!(f.to_error().kind(), &kind);
        }
    }
}
