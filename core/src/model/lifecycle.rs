//! [`Lifecycle`]: the time and work limits of a worker's life.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::wire_secs::{opt_secs, secs};

/// Time and work limits of a worker's life. The first four lead to removal
/// when exceeded; the heartbeat limits apply to workers registered through
/// the worker API ([`protocol`](crate::protocol)); `idle_timeout`,
/// `max_tasks` and `max_lifetime` drain a worker (it finishes its work
/// first) rather than remove it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lifecycle {
    /// From creation of the record to the cloud reporting the worker running.
    /// Taskcluster had none for the stages before a VM exists (#7422).
    #[serde(with = "secs", default = "Lifecycle::default_provisioning")]
    pub provisioning_deadline: Duration,
    /// From running to the worker registering itself.
    #[serde(with = "secs", default = "Lifecycle::default_registration")]
    pub registration_timeout: Duration,
    /// How long a registration stays valid before the worker must renew it.
    #[serde(with = "secs", default = "Lifecycle::default_reregistration")]
    pub reregistration_timeout: Duration,
    /// Remove a registered worker not heard from this long (counted from its
    /// last heartbeat, or its registration if it never heartbeated), when set.
    #[serde(with = "opt_secs", default, skip_serializing_if = "Option::is_none")]
    pub inactivity_timeout: Option<Duration>,
    /// A worker registered through the worker API that sends no heartbeat
    /// for this long is presumed dead and removed. Its agent is told to
    /// heartbeat four times within it.
    #[serde(
        with = "secs",
        default = "Lifecycle::default_heartbeat",
        skip_serializing_if = "Lifecycle::is_default_heartbeat"
    )]
    pub heartbeat_timeout: Duration,
    /// How long a draining worker may keep reporting busy before it is
    /// removed anyway; unset: it is waited for (until it stops heartbeating).
    #[serde(with = "opt_secs", default, skip_serializing_if = "Option::is_none")]
    pub drain_timeout: Option<Duration>,
    /// Drain a worker idle longer than this (keeping the pool's `min_idle`).
    #[serde(with = "opt_secs", default, skip_serializing_if = "Option::is_none")]
    pub idle_timeout: Option<Duration>,
    /// Drain a worker once it has completed this many tasks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tasks: Option<u64>,
    /// Drain a worker this long after it started running (image rotation).
    #[serde(with = "opt_secs", default, skip_serializing_if = "Option::is_none")]
    pub max_lifetime: Option<Duration>,
}

impl Lifecycle {
    fn default_provisioning() -> Duration {
        Duration::from_secs(30 * 60)
    }
    fn default_registration() -> Duration {
        Duration::from_secs(30 * 60)
    }
    fn default_reregistration() -> Duration {
        Duration::from_secs(4 * 24 * 3600)
    }
    fn default_heartbeat() -> Duration {
        Duration::from_secs(5 * 60)
    }
    /// Records written before heartbeats existed stay byte-identical.
    fn is_default_heartbeat(d: &Duration) -> bool {
        *d == Self::default_heartbeat()
    }

    /// How often a registered worker is asked to heartbeat: a quarter of
    /// [`heartbeat_timeout`](Self::heartbeat_timeout), so three lost
    /// heartbeats in a row are survived.
    pub fn heartbeat_interval(&self) -> Duration {
        (self.heartbeat_timeout / 4).max(Duration::from_secs(1))
    }

    /// Checks that every limit is positive.
    pub fn validate(&self, path: &str) -> Result<()> {
        for (name, d) in [
            ("provisioning_deadline", self.provisioning_deadline),
            ("registration_timeout", self.registration_timeout),
            ("reregistration_timeout", self.reregistration_timeout),
            ("heartbeat_timeout", self.heartbeat_timeout),
        ] {
            if d.is_zero() {
                return Err(Error::invalid_config(
                    format!("{path}.{name}"),
                    "must be greater than zero",
                ));
            }
        }
        for (name, d) in [
            ("inactivity_timeout", self.inactivity_timeout),
            ("drain_timeout", self.drain_timeout),
            ("idle_timeout", self.idle_timeout),
            ("max_lifetime", self.max_lifetime),
        ] {
            if d == Some(Duration::ZERO) {
                return Err(Error::invalid_config(
                    format!("{path}.{name}"),
                    "must be greater than zero when set",
                ));
            }
        }
        if self.max_tasks == Some(0) {
            return Err(Error::invalid_config(
                format!("{path}.max_tasks"),
                "must be at least 1 when set",
            ));
        }
        if self.heartbeat_timeout < Duration::from_secs(4) {
            return Err(Error::invalid_config(
                format!("{path}.heartbeat_timeout"),
                "must be at least 4 s (agents heartbeat four times within it)",
            ));
        }
        Ok(())
    }
}

impl Default for Lifecycle {
    fn default() -> Self {
        Lifecycle {
            provisioning_deadline: Self::default_provisioning(),
            registration_timeout: Self::default_registration(),
            reregistration_timeout: Self::default_reregistration(),
            inactivity_timeout: None,
            heartbeat_timeout: Self::default_heartbeat(),
            drain_timeout: None,
            idle_timeout: None,
            max_tasks: None,
            max_lifetime: None,
        }
    }
}
