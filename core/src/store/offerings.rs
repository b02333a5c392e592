//! The shared offering cache: offerings marked unavailable (capacity,
//! quota, interruption) until some time, and interruptions counted per
//! offering. Every replica on one store reads the same marks, so a
//! stockout seen by one steers all of them.
//!
//! A mark is keyed by its offering's key and class; marking again extends
//! its `until` and never shortens it. A row read back with an unknown
//! capacity type or class, or whose `until - marked_at` lies outside
//! [`MARK_TTL_MIN`]..=[`MARK_TTL_MAX`], is refused: logged once per row and
//! skipped, never trusted (a corrupt row must not block an offering for a
//! year, nor unblock one).

use std::collections::HashSet;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::error::{Error, Result};
use crate::offering::{CapacityClass, CapacityType, Offering};

/// The shortest TTL a mark may have.
pub const MARK_TTL_MIN: Duration = Duration::from_secs(1);

/// The longest TTL a mark may have.
pub const MARK_TTL_MAX: Duration = Duration::from_secs(24 * 3600);

/// An offering marked unavailable until `until`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OfferingMark {
    /// The offering (with the quota scope a quota mark covers).
    pub offering: Offering,
    /// Why: capacity, quota or interruption.
    pub class: CapacityClass,
    /// The cloud's error code, if any.
    #[serde(default)]
    pub code: Option<String>,
    /// The cloud's message (or the interruption's detail).
    pub message: String,
    /// When it was (last) marked.
    #[serde(with = "time::serde::rfc3339")]
    pub marked_at: OffsetDateTime,
    /// When it becomes available again.
    #[serde(with = "time::serde::rfc3339")]
    pub until: OffsetDateTime,
    /// The replica that marked it.
    pub marked_by: String,
}

impl OfferingMark {
    /// The offering's key ([`Offering::key`]).
    pub fn key(&self) -> String {
        self.offering.key()
    }

    /// Whether the mark is in force at `now`.
    pub fn is_live(&self, now: OffsetDateTime) -> bool {
        self.until > now
    }

    /// Whether this mark makes `offering` unavailable: the same offering,
    /// or, for a quota mark with a quota scope, any offering of the same
    /// provider drawing on that quota.
    pub fn blocks(&self, offering: &Offering) -> bool {
        if self.offering.key() == offering.key() {
            return true;
        }
        self.class == CapacityClass::Quota
            && self.offering.provider_id == offering.provider_id
            && self.offering.quota_scope.is_some()
            && self.offering.quota_scope == offering.quota_scope
    }

    /// Checks the mark's TTL (`until - marked_at`) is within
    /// [`MARK_TTL_MIN`]..=[`MARK_TTL_MAX`], naming the bad field.
    pub fn validate(&self) -> Result<()> {
        if ttl_in_range(self.marked_at, self.until) {
            Ok(())
        } else {
            Err(Error::invalid_config(
                "offering_mark.until",
                format!(
                    "the mark of {} lasts {} s: must be between {} s and {} s after marked_at",
                    self.key(),
                    (self.until - self.marked_at).as_seconds_f64(),
                    MARK_TTL_MIN.as_secs(),
                    MARK_TTL_MAX.as_secs()
                ),
            ))
        }
    }
}

/// Interruptions seen on one offering.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InterruptionCount {
    /// The offering.
    pub offering: Offering,
    /// How many interruptions were recorded.
    pub count: u64,
    /// When the latest was.
    #[serde(with = "time::serde::rfc3339")]
    pub last_at: OffsetDateTime,
}

/// Whether `until - marked_at` is a TTL a mark may have.
pub(crate) fn ttl_in_range(marked_at: OffsetDateTime, until: OffsetDateTime) -> bool {
    let ttl = until - marked_at;
    ttl >= MARK_TTL_MIN && ttl <= MARK_TTL_MAX
}

/// A mark's fields as stored, before they are trusted.
pub(crate) struct RawMark {
    pub provider_id: String,
    pub location: String,
    pub instance_type: String,
    pub capacity_type: String,
    pub quota_scope: Option<String>,
    pub class: String,
    pub code: Option<String>,
    pub message: String,
    pub marked_at: OffsetDateTime,
    pub until: OffsetDateTime,
    pub marked_by: String,
}

impl RawMark {
    /// The stored form of `m`.
    pub(crate) fn of(m: &OfferingMark) -> RawMark {
        RawMark {
            provider_id: m.offering.provider_id.clone(),
            location: m.offering.location.clone(),
            instance_type: m.offering.instance_type.clone(),
            capacity_type: m.offering.capacity_type.as_str().into(),
            quota_scope: m.offering.quota_scope.clone(),
            class: m.class.as_str().into(),
            code: m.code.clone(),
            message: m.message.clone(),
            marked_at: m.marked_at,
            until: m.until,
            marked_by: m.marked_by.clone(),
        }
    }

    /// The mark, or `None` (logged once per row) when the row holds an
    /// unknown capacity type or class or a TTL out of range.
    pub(crate) fn trusted(self) -> Option<OfferingMark> {
        let row = format!(
            "{}/{}/{}/{} ({})",
            self.provider_id, self.location, self.instance_type, self.capacity_type, self.class
        );
        let Some(capacity_type) = CapacityType::from_name(&self.capacity_type) else {
            refuse(&row, "unknown capacity type");
            return None;
        };
        let Some(class) = CapacityClass::from_name(&self.class) else {
            refuse(&row, "unknown class");
            return None;
        };
        if !ttl_in_range(self.marked_at, self.until) {
            refuse(&row, "TTL (until - marked_at) outside 1 s..24 h");
            return None;
        }
        Some(OfferingMark {
            offering: Offering {
                provider_id: self.provider_id,
                location: self.location,
                instance_type: self.instance_type,
                capacity_type,
                quota_scope: self.quota_scope,
            },
            class,
            code: self.code,
            message: self.message,
            marked_at: self.marked_at,
            until: self.until,
            marked_by: self.marked_by,
        })
    }
}

/// Logs a refused row, once per row and reason (the set is bounded; once
/// full, refusals are still skipped but no longer logged).
fn refuse(row: &str, why: &str) {
    const KEPT: usize = 1024;
    static SEEN: OnceLock<Mutex<HashSet<String>>> = OnceLock::new();
    let key = format!("{row}: {why}");
    let first = {
        let mut seen = SEEN
            .get_or_init(Mutex::default)
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        seen.len() < KEPT && seen.insert(key)
    };
    if first {
        tracing::warn!(
            row,
            reason = why,
            "store: refused an offering mark row (skipped, not trusted)"
        );
    }
}

/// Merges a new mark into an existing one of the same key and class: the
/// latest reason and marker, the later `until` (never shortened) and the
/// later `marked_at` (so the TTL stays within range).
pub(crate) fn merge(old: &OfferingMark, new: &OfferingMark) -> OfferingMark {
    let mut m = new.clone();
    m.until = m.until.max(old.until);
    m.marked_at = m.marked_at.max(old.marked_at);
    m
}
