//! Capacity as the clouds ration it: stockouts (`/_mock/stockouts`) that
//! make creates of matching offerings fail with each cloud's capacity
//! error, and interruptions of spot instances (`/_mock/interrupt`,
//! `/_mock/interruptions`) with each cloud's notice and ending.
//!
//! The rules and the interruption log live here, in the [`Ctx`](crate::Ctx)
//! every cloud module shares; the cloud modules check [`Capacity::stockout`]
//! on create and keep each interrupted instance's [`Notice`], from which its
//! state is derived lazily as everything else in the mock is.

pub mod control;
mod ticker;

pub use ticker::run as run_ticker;

use std::collections::VecDeque;
use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::ctx::{glob_match, Cloud};

/// The most interruptions [`Capacity`] remembers (the oldest go first).
pub const MAX_INTERRUPTIONS: usize = 10_000;

/// The longest a stockout's `code` may be.
const MAX_CODE_LEN: usize = 128;

/// Which launches a stockout applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CapacityMatch {
    /// Spot (EC2 market spot, GCE SPOT or preemptible, Azure Spot or Low).
    Spot,
    /// Anything else.
    OnDemand,
    /// Both.
    #[default]
    Any,
}

impl CapacityMatch {
    /// Whether a launch that is spot (or not) matches.
    pub fn matches(self, spot: bool) -> bool {
        match self {
            CapacityMatch::Spot => spot,
            CapacityMatch::OnDemand => !spot,
            CapacityMatch::Any => true,
        }
    }
}

/// The `capacity_type` of a VM in `GET /_mock/resources`: `spot` or
/// `on_demand`.
pub fn capacity_type(spot: bool) -> Option<String> {
    Some(if spot { "spot" } else { "on_demand" }.to_string())
}

/// One stockout rule, as `PUT /_mock/stockouts` takes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Stockout {
    /// The cloud.
    pub cloud: Cloud,
    /// A glob on the location: EC2 availability zone, GCE zone, ARM location.
    pub location: String,
    /// A glob on the instance type (EC2 type, GCE machine type, ARM vmSize).
    pub instance_type: String,
    /// `spot`, `on_demand` or `any` (default).
    #[serde(default)]
    pub capacity_type: CapacityMatch,
    /// The error code to answer; `null` for the cloud's stockout code
    /// ([`default_code`]).
    #[serde(default)]
    pub code: Option<String>,
}

impl Stockout {
    /// Checks the rule; the message names the bad field.
    pub fn validate(&self) -> Result<(), String> {
        if self.location.is_empty() {
            return Err("location: must not be empty (use \"*\" for any)".into());
        }
        if self.instance_type.is_empty() {
            return Err("instance_type: must not be empty (use \"*\" for any)".into());
        }
        if let Some(code) = &self.code {
            let ok = !code.is_empty()
                && code.len() <= MAX_CODE_LEN
                && code
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.');
            if !ok {
                return Err(format!(
                    "code: must be 1 to {MAX_CODE_LEN} letters, digits, '_' or '.', or null"
                ));
            }
        }
        Ok(())
    }
}

/// The code a stockout answers with when it names none: EC2
/// `InsufficientInstanceCapacity`, GCE `ZONE_RESOURCE_POOL_EXHAUSTED`,
/// ARM `AllocationFailed`.
pub fn default_code(cloud: Cloud) -> &'static str {
    match cloud {
        Cloud::Aws => "InsufficientInstanceCapacity",
        Cloud::Gcp => "ZONE_RESOURCE_POOL_EXHAUSTED",
        Cloud::Azure => "AllocationFailed",
    }
}

/// How long before its end an interruption is announced, unscaled: AWS
/// two minutes, GCE and Azure 30 seconds.
pub fn lead_time(cloud: Cloud) -> Duration {
    match cloud {
        Cloud::Aws => Duration::from_secs(120),
        Cloud::Gcp | Cloud::Azure => Duration::from_secs(30),
    }
}

/// A random interruption rate of one cloud, as `PUT /_mock/interruptions`
/// takes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rate {
    /// The cloud.
    pub cloud: Cloud,
    /// Interruptions per running spot instance per (real-time) hour.
    pub per_instance_per_hour: f64,
}

impl Rate {
    /// Checks the rate; the message names the bad field.
    pub fn validate(&self) -> Result<(), String> {
        let r = self.per_instance_per_hour;
        if !r.is_finite() || !(0.0..=1_000_000.0).contains(&r) {
            return Err(format!(
                "per_instance_per_hour: must be a finite number within [0, 1000000], got {r}"
            ));
        }
        Ok(())
    }
}

/// An interruption of one instance: when it is announced and when the
/// instance goes.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Notice {
    /// When the notice shows in the instance's metadata.
    #[serde(with = "crate::snapshot::clock::at")]
    pub notice_at: Instant,
    /// When the instance is stopped, terminated, deleted or deallocated.
    #[serde(with = "crate::snapshot::clock::at")]
    pub ends_at: Instant,
    /// `notice_at` on the wall clock.
    pub notice_wall: OffsetDateTime,
    /// `ends_at` on the wall clock.
    pub ends_wall: OffsetDateTime,
    /// A fresh UUID (Azure's `EventId`).
    pub event_id: String,
}

impl Notice {
    /// A notice given now, ending after the cloud's lead time scaled by
    /// `time_scale`.
    pub fn now(cloud: Cloud, time_scale: f64) -> Notice {
        let lead = crate::bounded::scale(lead_time(cloud), time_scale);
        let now = Instant::now();
        let wall = OffsetDateTime::now_utc();
        Notice {
            notice_at: now,
            ends_at: now + lead,
            notice_wall: wall,
            ends_wall: wall + lead,
            event_id: uuid::Uuid::new_v4().to_string(),
        }
    }

    /// Whether the notice is out at `now`.
    pub fn noticed(&self, now: Instant) -> bool {
        now >= self.notice_at
    }

    /// Whether the instance is gone (or going) at `now`.
    pub fn ended(&self, now: Instant) -> bool {
        now >= self.ends_at
    }
}

/// A running spot instance a cloud module offers for interruption, or one
/// it interrupted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// What `POST /_mock/interrupt` names it by: EC2 instance id, GCE
    /// instance name, ARM VM name.
    pub id: String,
    /// Its name (EC2: the instance id).
    pub name: String,
    /// EC2 availability zone, GCE zone, ARM location.
    pub location: String,
    /// EC2 instance type, GCE machine type, ARM vmSize.
    pub instance_type: String,
}

/// One interruption, as `GET /_mock/interruptions` lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InterruptionView {
    /// The cloud.
    pub cloud: Cloud,
    /// EC2 instance id, GCE instance name, ARM VM name.
    pub id: String,
    /// The name.
    pub name: String,
    /// Zone or location.
    pub location: String,
    /// Instance type or size.
    pub instance_type: String,
    /// When the notice was given, RFC 3339.
    pub notice_at: String,
    /// When the instance goes, RFC 3339.
    pub ends_at: String,
    /// `ends_at` once it has passed, else `null`.
    pub ended_at: Option<String>,
}

struct Record {
    view: InterruptionView,
    ends_at: Instant,
}

/// Stockouts, interruption rates and the interruption log.
pub struct Capacity {
    stockouts: RwLock<Vec<Stockout>>,
    rates: RwLock<Vec<Rate>>,
    log: Mutex<VecDeque<Record>>,
    rng: Mutex<StdRng>,
}

impl std::fmt::Debug for Capacity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Capacity")
            .field("stockouts", &self.stockouts())
            .field("rates", &self.rates())
            .finish_non_exhaustive()
    }
}

impl Capacity {
    /// No stockouts, no rates; the RNG behind random picks seeded by `seed`.
    pub fn new(seed: u64) -> Self {
        Capacity {
            stockouts: RwLock::new(Vec::new()),
            rates: RwLock::new(Vec::new()),
            log: Mutex::new(VecDeque::new()),
            rng: Mutex::new(StdRng::seed_from_u64(seed ^ 0x5107_0c47)),
        }
    }

    /// Replaces the stockouts (validated first; nothing changes on error).
    pub fn set_stockouts(&self, rules: Vec<Stockout>) -> Result<(), String> {
        for (i, r) in rules.iter().enumerate() {
            r.validate().map_err(|e| format!("stockouts[{i}].{e}"))?;
        }
        *self.stockouts.write().unwrap_or_else(|e| e.into_inner()) = rules;
        Ok(())
    }

    /// The stockouts in force.
    pub fn stockouts(&self) -> Vec<Stockout> {
        self.stockouts
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The error code of the first stockout matching a create of
    /// `instance_type` in `location` on `cloud`, spot or not; `None` when
    /// capacity is there.
    pub fn stockout(
        &self,
        cloud: Cloud,
        location: &str,
        instance_type: &str,
        spot: bool,
    ) -> Option<String> {
        let rules = self.stockouts.read().unwrap_or_else(|e| e.into_inner());
        rules
            .iter()
            .find(|r| {
                r.cloud == cloud
                    && r.capacity_type.matches(spot)
                    && glob_match(&r.location, location)
                    && glob_match(&r.instance_type, instance_type)
            })
            .map(|r| {
                r.code
                    .clone()
                    .unwrap_or_else(|| default_code(cloud).to_string())
            })
    }

    /// Replaces the random interruption rates (validated first).
    pub fn set_rates(&self, rates: Vec<Rate>) -> Result<(), String> {
        for (i, r) in rates.iter().enumerate() {
            r.validate().map_err(|e| format!("rates[{i}].{e}"))?;
        }
        *self.rates.write().unwrap_or_else(|e| e.into_inner()) = rates;
        Ok(())
    }

    /// The random interruption rates in force.
    pub fn rates(&self) -> Vec<Rate> {
        self.rates.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Records an interruption (keeping the last [`MAX_INTERRUPTIONS`]) and
    /// returns its view.
    pub fn record(&self, cloud: Cloud, target: &Target, notice: &Notice) -> InterruptionView {
        let view = InterruptionView {
            cloud,
            id: target.id.clone(),
            name: target.name.clone(),
            location: target.location.clone(),
            instance_type: target.instance_type.clone(),
            notice_at: crate::format_rfc3339(notice.notice_wall),
            ends_at: crate::format_rfc3339(notice.ends_wall),
            ended_at: None,
        };
        let mut log = self.log.lock().unwrap_or_else(|e| e.into_inner());
        log.push_back(Record {
            view: view.clone(),
            ends_at: notice.ends_at,
        });
        while log.len() > MAX_INTERRUPTIONS {
            log.pop_front();
        }
        view
    }

    /// Every interruption remembered, oldest first, `ended_at` set on those
    /// past their end.
    pub fn interruptions(&self) -> Vec<InterruptionView> {
        let now = Instant::now();
        let log = self.log.lock().unwrap_or_else(|e| e.into_inner());
        log.iter()
            .map(|r| {
                let mut v = r.view.clone();
                if now >= r.ends_at {
                    v.ended_at = Some(v.ends_at.clone());
                }
                v
            })
            .collect()
    }

    /// Runs `f` with the seeded RNG of random picks.
    pub fn with_rng<R>(&self, f: impl FnOnce(&mut StdRng) -> R) -> R {
        f(&mut self.rng.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Forgets stockouts, rates and the log.
    pub fn reset(&self) {
        self.stockouts
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        self.rates.write().unwrap_or_else(|e| e.into_inner()).clear();
        self.log.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(json: &str) -> Stockout {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn stockouts_match_by_glob_and_capacity_type() {
        let c = Capacity::new(1);
        c.set_stockouts(vec![
            rule(r#"{"cloud":"aws","location":"us-east-1a","instance_type":"m5.*","capacity_type":"spot"}"#),
            rule(r#"{"cloud":"gcp","location":"*","instance_type":"*","code":"QUOTA_EXCEEDED"}"#),
        ])
        .unwrap();
        assert_eq!(
            c.stockout(Cloud::Aws, "us-east-1a", "m5.large", true).as_deref(),
            Some("InsufficientInstanceCapacity")
        );
        assert_eq!(c.stockout(Cloud::Aws, "us-east-1a", "m5.large", false), None);
        assert_eq!(c.stockout(Cloud::Aws, "us-east-1b", "m5.large", true), None);
        assert_eq!(
            c.stockout(Cloud::Gcp, "x", "e2-small", false).as_deref(),
            Some("QUOTA_EXCEEDED")
        );
        assert_eq!(c.stockout(Cloud::Azure, "x", "y", true), None);
    }

    #[test]
    fn bad_rules_name_the_field() {
        let c = Capacity::new(1);
        let e = c
            .set_stockouts(vec![rule(
                r#"{"cloud":"aws","location":"","instance_type":"*"}"#,
            )])
            .unwrap_err();
        assert!(e.starts_with("stockouts[0].location"), "{e}");
        let e = c
            .set_rates(vec![Rate {
                cloud: Cloud::Aws,
                per_instance_per_hour: f64::NAN,
            }])
            .unwrap_err();
        assert!(e.starts_with("rates[0].per_instance_per_hour"), "{e}");
    }
}
