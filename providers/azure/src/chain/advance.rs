//! One function moves one [`Item`] forward, whichever way the chain runs:
//! [`advance`] creates it (PUT) or deletes it (DELETE), one step at a time.
//!
//! Each step first [`plan`]s from the item alone (an operation not yet due:
//! come back later; one due: poll it; none: send the call), carries out that
//! plan, and lets the pure `decide_*` functions read the answers. An
//! operation whose record expired is replaced by a look at the resource by
//! name. At most one mutating call is sent per step.

use std::time::Duration;

use http::Method;
use serde_json::Value;
use skyfleet_core::clock::until;
use skyfleet_core::provider::support::{self, OnStreak, Rung};
use skyfleet_core::provider::StepError;
use skyfleet_core::transport::ApiClass;
use skyfleet_core::{Error, ErrorKind, FinalState, Operation, Result};
use time::OffsetDateTime;

use super::state::Item;
use super::Ctx;
use crate::classify;
use crate::client::{
    poll_status, reclassify, shown_poll_error, ArmAnswer, ArmOperation, ArmResponse, PollKind,
    ResourceType, Started,
};

/// Which way the chain runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Direction {
    /// PUT each item, in creation order.
    Create,
    /// DELETE each item, in teardown order.
    Delete,
}

impl Direction {
    fn method(self) -> Method {
        match self {
            Direction::Create => Method::PUT,
            Direction::Delete => Method::DELETE,
        }
    }

    fn class(self) -> ApiClass {
        match self {
            Direction::Create => ApiClass::Write,
            Direction::Delete => ApiClass::Delete,
        }
    }

    fn final_state(self) -> FinalState {
        match self {
            Direction::Create => FinalState::OriginalUri,
            Direction::Delete => FinalState::None,
        }
    }

    /// The REST spec's name of the call (`VirtualMachines_CreateOrUpdate`).
    fn operation(self, ty: ResourceType) -> String {
        match self {
            Direction::Create => format!("{}_CreateOrUpdate", ty.op_prefix()),
            Direction::Delete => format!("{}_Delete", ty.op_prefix()),
        }
    }
}

/// What one step made of an item.
#[derive(Debug)]
pub(super) enum Outcome {
    /// Confirmed created (or gone). `sent`: this step sent the item's
    /// mutating call, so the step ends here; `observed`: the item's own
    /// operation was seen to succeed (not a 404, not a look-up by name).
    Done {
        /// The step sent its one mutating call.
        sent: bool,
        /// The operation itself was seen to succeed.
        observed: bool,
        /// Something worth reporting (an expired operation re-requested).
        note: Option<StepError>,
    },
    /// Not yet: step again after `wait`.
    Later {
        /// How long until the next step.
        wait: Duration,
        /// Something worth reporting meanwhile.
        note: Option<StepError>,
    },
    /// Failed: a creation fails the chain; a delete is tried again later.
    Failed(Error),
}

impl Outcome {
    fn later(wait: Duration, note: Option<StepError>) -> Self {
        Outcome::Later { wait, note }
    }
}

/// What an item needs at `now`.
#[derive(Debug, PartialEq)]
enum Plan {
    /// Nothing before `wait` (an operation not yet due, a delete after a
    /// "busy" answer).
    Wait(Duration),
    /// Poll its operation.
    Poll,
    /// Send its mutating call.
    Send,
}

fn plan(item: &Item, now: OffsetDateTime) -> Plan {
    if let Some(op) = &item.op {
        return if op.is_due(now) {
            Plan::Poll
        } else {
            Plan::Wait(op.wait(now))
        };
    }
    match item.retry_at {
        Some(at) if now < at => Plan::Wait(until(now, at)),
        _ => Plan::Send,
    }
}

/// What a GET by name found.
#[derive(Debug)]
pub(super) enum Lookup {
    /// 404.
    Missing,
    /// `provisioningState` succeeded (or none).
    Succeeded,
    /// Still being created or deleted.
    InProgress,
    /// `provisioningState` failed or canceled.
    Failed(String),
}

/// What to do after an expired operation's look-up by name.
#[derive(Debug)]
enum Found {
    /// Nothing more to do for this item.
    Done,
    /// Watch the resource itself until its state settles.
    Watch,
    /// Send the mutating call again (with a note to report).
    Resend(Option<StepError>),
    /// The item failed.
    Failed(Error),
}

fn decide_lookup(dir: Direction, found: Lookup, what: &str, name: &str) -> Found {
    match (dir, found) {
        (_, Lookup::InProgress) => Found::Watch,
        (Direction::Create, Lookup::Succeeded) | (Direction::Delete, Lookup::Missing) => {
            Found::Done
        }
        (Direction::Create, Lookup::Failed(state)) => Found::Failed(classify::operation_failed(
            "ProvisioningFailed",
            &format!("{name} is in provisioningState {state}"),
            what,
        )),
        (Direction::Create, Lookup::Missing) => Found::Resend(Some(StepError {
            kind: ErrorKind::NotFound,
            at: None,
            code: Some("OperationExpired".into()),
            message: format!(
                "{what}: operation URL expired and {name} does not exist; requesting it again"
            ),
        })),
        (Direction::Delete, Lookup::Succeeded | Lookup::Failed(_)) => Found::Resend(None),
    }
}

/// Whether a refused mutating call should be retried later as is (the
/// state is not changed): throttles, transient failures, timeouts, token
/// problems.
fn retry_later(e: &Error) -> bool {
    e.is_retryable() || matches!(e.kind(), ErrorKind::Unauthenticated)
}

/// What the answer to the mutating call means; `Watch` asks the caller to
/// watch the resource itself.
#[derive(Debug)]
enum Answer {
    Outcome(Outcome),
    Pending(Box<ArmOperation>),
    Watch(Option<Duration>, Error),
}

fn decide_answer(
    dir: Direction,
    resp: &ArmResponse,
    started: impl FnOnce() -> Result<Started>,
    what: &str,
) -> Result<Answer> {
    let done = |observed| {
        Answer::Outcome(Outcome::Done {
            sent: true,
            observed,
            note: None,
        })
    };
    if dir == Direction::Delete && resp.status == 404 {
        return Ok(done(false));
    }
    if resp.is_success() {
        return match (dir, started()) {
            (_, Ok(Started::Done)) => Ok(done(true)),
            (_, Ok(Started::Pending(op))) => Ok(Answer::Pending(op)),
            (Direction::Create, Err(e))
                if matches!(
                    e.kind(),
                    ErrorKind::CapacityOrQuota | ErrorKind::OperationFailed
                ) =>
            {
                Ok(Answer::Outcome(Outcome::Failed(e)))
            }
            // Garbled answer: the PUT may have landed; repeating it is safe.
            (Direction::Create, Err(e)) => Err(e),
            // Accepted but unreadable: watch the resource until it is gone.
            (Direction::Delete, Err(e)) => Ok(Answer::Watch(None, e)),
        };
    }
    let e = resp.error(what);
    let code = e.code().unwrap_or_default().to_string();
    match dir {
        // A lost earlier PUT is still creating it: watch the resource.
        Direction::Create
            if resp.status == 409
                && classify::is_busy(&code)
                && e.kind() != &ErrorKind::CapacityOrQuota =>
        {
            Ok(Answer::Watch(resp.retry_after(), e))
        }
        // "Busy" (a dependent or another operation holds it): later.
        Direction::Delete if classify::is_busy(&code) || resp.status == 409 => {
            Ok(Answer::Outcome(Outcome::Failed(e)))
        }
        _ if retry_later(&e) => Err(e),
        _ => Ok(Answer::Outcome(Outcome::Failed(e))),
    }
}

/// An operation that watches the resource itself (after a 409 on a PUT,
/// an unreadable DELETE answer, or an expired operation URL).
fn watch(cx: &Ctx<'_>, dir: Direction, url: &str, retry_after: Option<Duration>) -> ArmOperation {
    let method = dir.method();
    let op = Operation::start(
        url,
        method.as_str(),
        dir.final_state(),
        retry_after,
        cx.now(),
        &cx.config.poll,
    );
    ArmOperation {
        kind: PollKind::Resource,
        resource_url: url.to_string(),
        op,
    }
}

/// GETs a resource by name.
pub(super) async fn lookup(
    cx: &Ctx<'_>,
    rg: &str,
    region: &str,
    ty: ResourceType,
    name: &str,
) -> Result<Lookup> {
    let url = cx.client.resource_url(rg, ty, name);
    let op = format!("{}_Get", ty.op_prefix());
    let resp = cx
        .client
        .request(Method::GET, &url)
        .class(ApiClass::Read)
        .region(region)
        .operation(&op)
        .send()
        .await?;
    match resp.status {
        404 => Ok(Lookup::Missing),
        200..=299 => {
            let body: Value = resp.arm_json(&op)?;
            let state = body
                .get("properties")
                .and_then(|p| p.get("provisioningState"))
                .and_then(Value::as_str)
                .unwrap_or("Succeeded")
                .to_ascii_lowercase();
            Ok(match state.as_str() {
                "succeeded" => Lookup::Succeeded,
                "failed" | "canceled" | "cancelled" => Lookup::Failed(state),
                _ => Lookup::InProgress,
            })
        }
        _ => Err(resp.error(&op)),
    }
}

/// Where a chain's resources live.
pub(super) struct Place<'a> {
    /// The resource group.
    pub rg: &'a str,
    /// The region (the transport key's).
    pub region: &'a str,
}

/// Moves `item` one step `dir`-wards: waits for, polls or looks up its
/// operation, and when that allows sends its one mutating call (`body` is
/// asked for only then; a PUT needs one).
pub(super) async fn advance(
    cx: &Ctx<'_>,
    dir: Direction,
    at: &Place<'_>,
    item: &mut Item,
    body: impl FnOnce() -> Result<Option<Value>>,
) -> Result<Outcome> {
    let url = cx.client.resource_url(at.rg, item.ty, &item.name);
    let what = dir.operation(item.ty);
    let mut note = None;
    match plan(item, cx.now()) {
        Plan::Wait(wait) => return Ok(Outcome::later(wait, None)),
        Plan::Send => {}
        Plan::Poll => {
            let Some(op) = item.op.as_mut() else {
                // `plan` polls only an item with an operation.
                return Ok(Outcome::later(Duration::ZERO, None));
            };
            let (rg, region, ty, name) = (at.rg, at.region, item.ty, item.name.as_str());
            let kind = op.kind;
            let rung = support::advance(
                &mut op.op,
                cx.clock,
                &cx.config.poll,
                OnStreak::Fail,
                // The future may not borrow the handle being recorded on.
                |o| {
                    let o = o.clone();
                    let what = &what;
                    async move { poll_status(cx.client, kind, &o, region, what).await }
                },
                || async { Ok(lookup(cx, rg, region, ty, name).await) },
            )
            .await?;
            let found = match rung {
                Rung::NotDue(wait) => return Ok(Outcome::later(wait, None)),
                Rung::InProgress { wait, error } => {
                    let note = error
                        .as_ref()
                        .map(|e| StepError::from(&shown_poll_error(e)));
                    return Ok(Outcome::later(wait, note));
                }
                Rung::Succeeded => {
                    item.op = None;
                    return Ok(Outcome::Done {
                        sent: false,
                        observed: true,
                        note: None,
                    });
                }
                Rung::Failed(e) => {
                    // A failed status is the cloud's verdict (capacity codes
                    // reclassified); a poll error streak is reported as is.
                    let e = if op.op.consecutive_errors == 0 {
                        reclassify(e, &what)
                    } else {
                        e
                    };
                    item.op = None;
                    return Ok(Outcome::Failed(e));
                }
                // The operation's record expired: what the resource by name says.
                Rung::LookedUp(found) => found,
            };
            let found = match found {
                Ok(found) => found,
                Err(e) if dir == Direction::Delete => {
                    // Keep the expired handle; it is re-checked next time.
                    return Ok(Outcome::later(cx.config.busy_retry, Some((&e).into())));
                }
                Err(e) => return Err(e),
            };
            item.op = None;
            match decide_lookup(dir, found, &what, &item.name) {
                Found::Done => {
                    return Ok(Outcome::Done {
                        sent: false,
                        observed: false,
                        note: None,
                    })
                }
                Found::Watch => {
                    let w = watch(cx, dir, &url, None);
                    let wait = w.wait(cx.now());
                    item.op = Some(w);
                    return Ok(Outcome::later(wait, None));
                }
                Found::Failed(e) => return Ok(Outcome::Failed(e)),
                Found::Resend(n) => note = n,
            }
        }
    }
    // The one mutating call of this step.
    let body = match body() {
        Ok(b) => b,
        Err(e) => return Ok(Outcome::Failed(e)),
    };
    let mut request = cx
        .client
        .request(dir.method(), &url)
        .class(dir.class())
        .region(at.region)
        .operation(&what);
    if let Some(b) = &body {
        request = request.json(b);
    }
    let resp = request.send().await?;
    let now = cx.now();
    item.retry_at = None;
    let started = || {
        ArmOperation::start(
            cx.client,
            &resp,
            &dir.method(),
            &url,
            dir.final_state(),
            now,
            &cx.config.poll,
            &what,
        )
    };
    Ok(match decide_answer(dir, &resp, started, &what)? {
        Answer::Outcome(Outcome::Done { sent, observed, .. }) => Outcome::Done {
            sent,
            observed,
            note,
        },
        Answer::Outcome(o) => o,
        Answer::Pending(op) => {
            let wait = op.wait(now);
            item.op = Some(*op);
            Outcome::later(wait, note)
        }
        Answer::Watch(retry_after, e) => {
            let w = watch(cx, dir, &url, retry_after);
            let wait = match dir {
                Direction::Create => w.wait(now),
                // The delete was accepted: look at once.
                Direction::Delete => Duration::ZERO,
            };
            item.op = Some(w);
            Outcome::later(wait, Some((&e).into()))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item() -> Item {
        Item {
            ty: ResourceType::Nic,
            name: "n".into(),
            done: false,
            op: None,
            retry_at: None,
        }
    }

    #[test]
    fn plan_waits_polls_or_sends() {
        let now = OffsetDateTime::now_utc();
        let mut i = item();
        assert_eq!(plan(&i, now), Plan::Send);
        i.retry_at = Some(now + Duration::from_secs(3));
        assert_eq!(plan(&i, now), Plan::Wait(Duration::from_secs(3)));
        assert_eq!(plan(&i, now + Duration::from_secs(4)), Plan::Send);
    }

    #[test]
    fn an_expired_operation_is_decided_by_what_the_name_finds() {
        let d = |dir, found| decide_lookup(dir, found, "op", "n");
        assert!(matches!(
            d(Direction::Create, Lookup::Succeeded),
            Found::Done
        ));
        assert!(matches!(d(Direction::Delete, Lookup::Missing), Found::Done));
        assert!(matches!(
            d(Direction::Create, Lookup::InProgress),
            Found::Watch
        ));
        assert!(matches!(
            d(Direction::Delete, Lookup::InProgress),
            Found::Watch
        ));
        assert!(matches!(
            d(Direction::Create, Lookup::Missing),
            Found::Resend(Some(StepError { code: Some(c), .. })) if c == "OperationExpired"
        ));
        assert!(matches!(
            d(Direction::Delete, Lookup::Succeeded),
            Found::Resend(None)
        ));
        assert!(matches!(
            d(Direction::Create, Lookup::Failed("failed".into())),
            Found::Failed(e) if e.code() == Some("ProvisioningFailed")
        ));
    }

    fn answer(status: u16, body: &'static str) -> ArmResponse {
        ArmResponse {
            status,
            headers: http::HeaderMap::new(),
            body: bytes::Bytes::from_static(body.as_bytes()),
        }
    }

    #[test]
    fn busy_answers_mean_later() {
        let busy = answer(409, r#"{"error":{"code":"AnotherOperationInProgress"}}"#);
        let never = || -> Result<Started> { unreachable!("not a success") };
        assert!(matches!(
            decide_answer(Direction::Create, &busy, never, "put"),
            Ok(Answer::Watch(..))
        ));
        assert!(matches!(
            decide_answer(Direction::Delete, &busy, never, "delete"),
            Ok(Answer::Outcome(Outcome::Failed(_)))
        ));
        let gone = answer(404, "");
        assert!(matches!(
            decide_answer(Direction::Delete, &gone, never, "delete"),
            Ok(Answer::Outcome(Outcome::Done {
                sent: true,
                observed: false,
                ..
            }))
        ));
        let throttled = answer(429, "");
        assert!(decide_answer(Direction::Delete, &throttled, never, "delete").is_err());
        let refused = answer(400, r#"{"error":{"code":"InvalidParameter"}}"#);
        assert!(matches!(
            decide_answer(Direction::Create, &refused, never, "put"),
            Ok(Answer::Outcome(Outcome::Failed(_)))
        ));
    }
}
