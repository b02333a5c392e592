//! EC2's throttle model: a request-token bucket per action class and a
//! resource-token bucket per instance-count class, per account and region
//! (`Ctx::take_tokens`), answered with `RequestLimitExceeded`.

use super::actions::Action;
use super::config::Ec2Config;
use super::error::Ec2Error;
use super::query::Params;
use super::{Caller, Ec2};
use crate::ctx::Cloud;

impl Ec2 {
    /// Takes the request token (and resource tokens) of an action.
    pub(super) fn throttle(
        &self,
        caller: &Caller,
        action: Action,
        p: &Params,
        cfg: &Ec2Config,
    ) -> Result<(), Ec2Error> {
        let mut classes = vec![(action.request_class(p), 1.0)];
        classes.extend(action.resource_class(p));
        for (class, cost) in classes {
            let Some(l) = cfg.throttle.limit(class) else {
                continue;
            };
            let key = format!("{}/{class}", caller.region);
            self.ctx
                .take_tokens(
                    Cloud::Aws,
                    &caller.account,
                    &key,
                    l.refill_per_s,
                    l.capacity,
                    cost,
                )
                .map_err(|wait| {
                    Ec2Error::throttled(crate::delay::Delay::real(wait).millis())
                })?;
        }
        Ok(())
    }
}
