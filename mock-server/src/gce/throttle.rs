//! Compute Engine's rate quotas: fixed one-minute windows per project and
//! quota group (`Ctx::take_window`), answered with 403 `rateLimitExceeded`
//! or, when configured, 429 `RESOURCE_EXHAUSTED`.

use crate::ctx::{Cloud, Ctx};
use crate::delay::Delay;

use super::config::GceThrottle;
use super::error::GceError;

/// The quota group a method counts against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Group {
    /// Mutations: `Queries` (`compute.googleapis.com/default`).
    Queries,
    /// `*.get`: `Read requests`.
    Reads,
    /// `*.list`: `List requests`.
    Lists,
    /// `zoneOperations.get` / `wait`: `Operation read requests`.
    OperationReads,
}

impl Group {
    fn metric(self) -> &'static str {
        match self {
            Group::Queries => "Queries",
            Group::Reads => "Read requests",
            Group::Lists => "List requests",
            Group::OperationReads => "Operation read requests",
        }
    }

    fn limit(self, t: &GceThrottle) -> u64 {
        match self {
            Group::Queries => t.queries_per_minute,
            Group::Reads => t.read_requests_per_minute,
            Group::Lists => t.list_requests_per_minute,
            Group::OperationReads => t.operation_read_requests_per_minute,
        }
    }
}

/// The throttle answer for `project`, in the configured status.
pub(crate) fn throttled(
    t: &GceThrottle,
    project: &str,
    group: Group,
    retry_after: Delay,
) -> GceError {
    GceError::Throttled {
        status: if t.status == 429 { 429 } else { 403 },
        metric: group.metric(),
        project: project.to_string(),
        retry_after,
    }
}

/// Counts one request of `group` against `project`'s window, when
/// throttling is on.
pub(crate) fn check(
    ctx: &Ctx,
    t: &GceThrottle,
    project: &str,
    group: Group,
) -> Result<(), GceError> {
    if !t.enabled {
        return Ok(());
    }
    ctx.take_window(Cloud::Gcp, project, group.metric(), group.limit(t))
        // The windows run on the real clock, so the wait is not scaled: a
        // scaled one would only earn another throttle.
        .map_err(|wait| throttled(t, project, group, Delay::real(wait)))
}
