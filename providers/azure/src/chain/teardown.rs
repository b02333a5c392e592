//! Teardown: VM -> NIC -> public IP -> data disks -> OS disk, each item
//! advanced by [`advance`] until every one is gone.

use skyfleet_core::{DesiredState, Phase, Result, Step, Worker};

use super::advance::{advance, Direction, Outcome, Place};
use super::state::{ChainState, Teardown};
use super::{out, Ctx};

/// The last answer: `Failed` when teardown followed a failure of a worker
/// still wanted, else `Stopped`.
fn final_phase(worker: &Worker, st: &ChainState) -> Result<Step> {
    let phase = if st.failure.is_some() && worker.desired == DesiredState::Running {
        Phase::Failed
    } else {
        Phase::Stopped
    };
    let error = st.failure.clone();
    out(st, phase, std::time::Duration::ZERO, error)
}

/// One teardown step: poll the first resource not yet gone, and once it is
/// gone DELETE the next.
pub(super) async fn step(cx: &Ctx<'_>, worker: &Worker, mut st: ChainState) -> Result<Step> {
    let busy = cx.config.busy_retry;
    loop {
        let ChainState {
            resource_group: rg,
            location: region,
            teardown: Some(Teardown { targets, .. }),
            ..
        } = &mut st
        else {
            return final_phase(worker, &st);
        };
        let Some(i) = targets.iter().position(|t| !t.done) else {
            return final_phase(worker, &st);
        };
        let at = Place { rg, region };
        let item = &mut targets[i];
        match advance(cx, Direction::Delete, &at, item, || Ok(None)).await? {
            Outcome::Done {
                sent,
                observed,
                note,
            } => {
                if let Some(td) = st.teardown.as_mut() {
                    td.mark_gone(i, observed);
                }
                if sent {
                    return out(&st, Phase::Stopping, std::time::Duration::ZERO, note);
                }
            }
            Outcome::Later { wait, note } => return out(&st, Phase::Stopping, wait, note),
            Outcome::Failed(e) => {
                // Refused or failed: recorded, and tried again later.
                item.retry_at = Some(cx.clock.now() + busy);
                return out(&st, Phase::Stopping, busy, Some((&e).into()));
            }
        }
    }
}
