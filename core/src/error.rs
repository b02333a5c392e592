//! The one error type of skyfleet.
//!
//! Every provider, store and transport layer reports failures as an [`Error`]
//! whose [`ErrorKind`] is a closed classification a caller can act on without
//! parsing strings: back off on [`ErrorKind::Throttled`], try another launch
//! config on [`ErrorKind::CapacityOrQuota`], fix configuration on
//! [`ErrorKind::InvalidConfig`]. The cloud's own error code and message are kept
//! alongside, for humans and for pool error reports.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// A convenient alias for results whose error is [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The classification of an [`Error`]: what a caller should do about it.
///
/// The set is closed for matching purposes (`#[non_exhaustive]` lets it grow
/// without a breaking change); anything unclassifiable is [`ErrorKind::Internal`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The resource (or worker) does not exist.
    NotFound,
    /// A resource (or worker) with that identity already exists.
    AlreadyExists,
    /// The cloud asked us to slow down; retry after the given delay if known.
    Throttled {
        /// How long the cloud asked us to wait, when it said.
        retry_after: Option<Duration>,
    },
    /// The cloud has no capacity for this request, or a quota is exhausted:
    /// try another launch config (another region, zone or instance type).
    CapacityOrQuota,
    /// The credentials are missing, expired or wrong.
    Unauthenticated,
    /// The credentials are valid but not allowed to do this.
    PermissionDenied,
    /// Configuration (a launch config, pool config or limit) is invalid.
    InvalidConfig {
        /// The path of the offending field, such as `launch_configs[0].weight`.
        field: String,
    },
    /// An asynchronous cloud operation ended in failure.
    OperationFailed,
    /// A call or operation did not finish in its allotted time.
    Timeout,
    /// A transient failure (connection reset, 5xx) that is worth retrying.
    Transient,
    /// An optimistic-concurrency check failed: the record changed under us.
    Conflict,
    /// A worker's identity proof was rejected. The message is the same for
    /// every rejection ("signature validation error"), so that a caller
    /// cannot tell which check failed; `reason`, a stable label such as
    /// `bad_signature`, is for logs and metrics only: no `Display` shows it
    /// (it is empty when read back by name).
    IdentityRejected {
        /// Which check failed.
        reason: &'static str,
    },
    /// A bug or an unclassifiable failure.
    Internal,
    /// A lease this replica held (a pool's provisioning lease) was taken
    /// over by another replica: what was to be done under it was not done.
    LeaseLost,
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ErrorKind::NotFound => f.write_str("not found"),
            ErrorKind::AlreadyExists => f.write_str("already exists"),
            ErrorKind::Throttled {
                retry_after: Some(d),
            } => {
                write!(f, "throttled (retry after {} ms)", d.as_millis())
            }
            ErrorKind::Throttled { retry_after: None } => f.write_str("throttled"),
            ErrorKind::CapacityOrQuota => f.write_str("capacity or quota exhausted"),
            ErrorKind::Unauthenticated => f.write_str("unauthenticated"),
            ErrorKind::PermissionDenied => f.write_str("permission denied"),
            ErrorKind::InvalidConfig { field } => write!(f, "invalid config at `{field}`"),
            ErrorKind::OperationFailed => f.write_str("operation failed"),
            ErrorKind::Timeout => f.write_str("timed out"),
            ErrorKind::Transient => f.write_str("transient failure"),
            ErrorKind::Conflict => f.write_str("conflict"),
            ErrorKind::IdentityRejected { .. } => f.write_str("identity rejected"),
            ErrorKind::Internal => f.write_str("internal error"),
            ErrorKind::LeaseLost => f.write_str("lease lost"),
        }
    }
}

impl ErrorKind {
    /// Every kind's [`ErrorKind::name`], in declaration order (metrics
    /// register a series per kind at zero).
    pub const NAMES: [&'static str; 14] = [
        "not_found",
        "already_exists",
        "throttled",
        "capacity_or_quota",
        "unauthenticated",
        "permission_denied",
        "invalid_config",
        "operation_failed",
        "timeout",
        "transient",
        "conflict",
        "identity_rejected",
        "internal",
        "lease_lost",
    ];

    /// A short stable name for the kind, used in stores, metrics and JSON
    /// summaries (`"throttled"`, `"capacity_or_quota"`, ...).
    pub fn name(&self) -> &'static str {
        match self {
            ErrorKind::NotFound => "not_found",
            ErrorKind::AlreadyExists => "already_exists",
            ErrorKind::Throttled { .. } => "throttled",
            ErrorKind::CapacityOrQuota => "capacity_or_quota",
            ErrorKind::Unauthenticated => "unauthenticated",
            ErrorKind::PermissionDenied => "permission_denied",
            ErrorKind::InvalidConfig { .. } => "invalid_config",
            ErrorKind::OperationFailed => "operation_failed",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Transient => "transient",
            ErrorKind::Conflict => "conflict",
            ErrorKind::IdentityRejected { .. } => "identity_rejected",
            ErrorKind::Internal => "internal",
            ErrorKind::LeaseLost => "lease_lost",
        }
    }

    /// The kind whose [`ErrorKind::name`] is `name`, for records stored by
    /// name. Details a name does not carry are empty (`Throttled` without a
    /// delay, `InvalidConfig` with an empty field); an unknown name is
    /// [`ErrorKind::Internal`].
    pub fn from_name(name: &str) -> ErrorKind {
        match name {
            "not_found" => ErrorKind::NotFound,
            "already_exists" => ErrorKind::AlreadyExists,
            "throttled" => ErrorKind::Throttled { retry_after: None },
            "capacity_or_quota" => ErrorKind::CapacityOrQuota,
            "unauthenticated" => ErrorKind::Unauthenticated,
            "permission_denied" => ErrorKind::PermissionDenied,
            "invalid_config" => ErrorKind::InvalidConfig {
                field: String::new(),
            },
            "operation_failed" => ErrorKind::OperationFailed,
            "timeout" => ErrorKind::Timeout,
            "transient" => ErrorKind::Transient,
            "conflict" => ErrorKind::Conflict,
            "identity_rejected" => ErrorKind::IdentityRejected { reason: "" },
            "lease_lost" => ErrorKind::LeaseLost,
            _ => ErrorKind::Internal,
        }
    }
}

/// Compares a kind with a stable name (`kind == "timeout"`), as records
/// read back from a store are compared.
impl PartialEq<&str> for ErrorKind {
    fn eq(&self, other: &&str) -> bool {
        self.name() == *other
    }
}

/// Stored by [`ErrorKind::name`], as every store and JSON summary has done.
impl serde::Serialize for ErrorKind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

/// Read with [`ErrorKind::from_name`]: an unknown name is `Internal`.
impl<'de> serde::Deserialize<'de> for ErrorKind {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let name = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Ok(ErrorKind::from_name(&name))
    }
}

/// A classified failure, with the provider's own code and message kept.
///
/// ```
/// use skyfleet_core::{Error, ErrorKind};
/// let err = Error::new(ErrorKind::CapacityOrQuota, "no capacity in westus")
///     .with_code("AllocationFailed")
///     .with_provider("azure");
/// assert_eq!(err.kind(), &ErrorKind::CapacityOrQuota);
/// assert_eq!(err.code(), Some("AllocationFailed"));
/// assert!(!err.is_retryable());
/// ```
///
/// `Clone` (the source is shared behind an `Arc`), so one failure can be
/// recorded, returned to several waiters and kept for a report.
#[derive(Clone)]
pub struct Error {
    kind: ErrorKind,
    message: String,
    provider: Option<String>,
    code: Option<String>,
    source: Option<Arc<dyn std::error::Error + Send + Sync + 'static>>,
}

impl Error {
    /// A new error of `kind` with a human-readable `message`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
            provider: None,
            code: None,
            source: None,
        }
    }

    /// An [`ErrorKind::InvalidConfig`] error naming `field`.
    pub fn invalid_config(field: impl Into<String>, message: impl Into<String>) -> Self {
        Error::new(
            ErrorKind::InvalidConfig {
                field: field.into(),
            },
            message,
        )
    }

    /// An [`ErrorKind::NotFound`] error.
    pub fn not_found(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::NotFound, message)
    }

    /// An [`ErrorKind::Internal`] error.
    pub fn internal(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Internal, message)
    }

    /// The message every identity rejection carries, whatever failed.
    pub const IDENTITY_REJECTED_MESSAGE: &'static str = "signature validation error";

    /// An [`ErrorKind::IdentityRejected`] error: its message is always
    /// [`Error::IDENTITY_REJECTED_MESSAGE`]; `reason` (a stable label such as
    /// `bad_signature`) is kept in the kind, which `Display` never shows.
    ///
    /// ```
    /// use skyfleet_core::Error;
    /// let e = Error::identity_rejected("wrong_audience").with_provider("gcp");
    /// assert_eq!(e.kind(), &"identity_rejected");
    /// assert_eq!(e.to_string(), "gcp: identity rejected: signature validation error");
    /// assert_eq!(e.rejection_reason(), Some("wrong_audience"));
    /// ```
    pub fn identity_rejected(reason: &'static str) -> Self {
        Error::new(
            ErrorKind::IdentityRejected { reason },
            Self::IDENTITY_REJECTED_MESSAGE,
        )
    }

    /// Records the cloud's own error code (`AllocationFailed`,
    /// `InvalidInstanceID.NotFound`, `ZONE_RESOURCE_POOL_EXHAUSTED`).
    pub fn with_code(mut self, code: impl Into<String>) -> Self {
        self.code = Some(code.into());
        self
    }

    /// Records which provider (`aws`, `azure`, `gcp`, ...) reported the error.
    pub fn with_provider(mut self, provider: impl Into<String>) -> Self {
        self.provider = Some(provider.into());
        self
    }

    /// Attaches the underlying cause.
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Arc::new(source));
        self
    }

    /// The classification.
    pub fn kind(&self) -> &ErrorKind {
        &self.kind
    }

    /// The human-readable message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The cloud's own error code, when it gave one.
    pub fn code(&self) -> Option<&str> {
        self.code.as_deref()
    }

    /// The provider that reported the error, when known.
    pub fn provider(&self) -> Option<&str> {
        self.provider.as_deref()
    }

    /// Why an identity proof was rejected (for logs and metrics; never in
    /// `Display`), for an [`ErrorKind::IdentityRejected`] error.
    pub fn rejection_reason(&self) -> Option<&'static str> {
        match self.kind {
            ErrorKind::IdentityRejected { reason } => Some(reason),
            _ => None,
        }
    }

    /// Whether trying the same request again later may succeed: throttles,
    /// timeouts, transient failures and optimistic-concurrency conflicts.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self.kind,
            ErrorKind::Throttled { .. }
                | ErrorKind::Timeout
                | ErrorKind::Transient
                | ErrorKind::Conflict
        )
    }

    /// The delay the cloud asked for, when this is a throttle that said.
    pub fn retry_after(&self) -> Option<Duration> {
        match self.kind {
            ErrorKind::Throttled { retry_after } => retry_after,
            _ => None,
        }
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Error");
        d.field("kind", &self.kind).field("message", &self.message);
        if let Some(p) = &self.provider {
            d.field("provider", p);
        }
        if let Some(c) = &self.code {
            d.field("code", c);
        }
        if let Some(s) = &self.source {
            d.field("source", s);
        }
        d.finish()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(p) = &self.provider {
            write!(f, "{p}: ")?;
        }
        write!(f, "{}: {}", self.kind, self.message)?;
        if let Some(c) = &self.code {
            write!(f, " [{c}]")?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|s| s as &(dyn std::error::Error + 'static))
    }
}

impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Self {
        Error::internal(format!("JSON: {e}")).with_source(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retryable_kinds() {
        let throttled = Error::new(
            ErrorKind::Throttled {
                retry_after: Some(Duration::from_secs(3)),
            },
            "slow down",
        );
        assert!(throttled.is_retryable());
        assert_eq!(throttled.retry_after(), Some(Duration::from_secs(3)));
        assert!(!Error::not_found("x").is_retryable());
        assert!(!Error::invalid_config("a.b", "bad").is_retryable());
        assert_eq!(Error::not_found("x").retry_after(), None);
    }

    #[test]
    fn names_round_trip() {
        let kinds = [
            ErrorKind::NotFound,
            ErrorKind::AlreadyExists,
            ErrorKind::Throttled { retry_after: None },
            ErrorKind::CapacityOrQuota,
            ErrorKind::Unauthenticated,
            ErrorKind::PermissionDenied,
            ErrorKind::InvalidConfig {
                field: String::new(),
            },
            ErrorKind::OperationFailed,
            ErrorKind::Timeout,
            ErrorKind::Transient,
            ErrorKind::Conflict,
            ErrorKind::IdentityRejected { reason: "" },
            ErrorKind::Internal,
            ErrorKind::LeaseLost,
        ];
        let names: Vec<&str> = kinds.iter().map(ErrorKind::name).collect();
        assert_eq!(names, ErrorKind::NAMES, "NAMES lists every kind");
        for k in kinds {
            assert_eq!(ErrorKind::from_name(k.name()), k);
            assert_eq!(k, k.name());
        }
        assert_eq!(ErrorKind::from_name("no_such_kind"), ErrorKind::Internal);
        let json = serde_json::to_string(&ErrorKind::CapacityOrQuota).unwrap();
        assert_eq!(json, r#""capacity_or_quota""#);
        let back: ErrorKind = serde_json::from_str(r#""something_new""#).unwrap();
        assert_eq!(back, ErrorKind::Internal);
    }

    #[test]
    fn clones_share_the_source() {
        let io = std::io::Error::other("reset");
        let e = Error::new(ErrorKind::Transient, "x").with_source(io);
        let c = e.clone();
        assert_eq!(c.to_string(), e.to_string());
        assert!(std::error::Error::source(&c).is_some());
    }

    #[test]
    fn identity_rejections_hide_their_reason_from_display() {
        let e = Error::identity_rejected("bad_signature").with_provider("aws");
        assert_eq!(
            e.to_string(),
            "aws: identity rejected: signature validation error"
        );
        assert!(!e.to_string().contains("bad_signature"));
        assert_eq!(e.rejection_reason(), Some("bad_signature"));
        assert!(format!("{e:?}").contains("bad_signature"));
        assert!(!e.is_retryable());
        assert_eq!(e.kind(), &"identity_rejected");
    }

    #[test]
    fn display_keeps_code_and_provider() {
        let e = Error::new(ErrorKind::OperationFailed, "VM failed")
            .with_code("AllocationFailed")
            .with_provider("azure");
        assert_eq!(
            e.to_string(),
            "azure: operation failed: VM failed [AllocationFailed]"
        );
    }
}
