//! Conformance cases of the shared offering cache: marks upserted without
//! ever shortening, live at `now` only, shared between handles, quota
//! marks covering their scope, bad TTLs refused, expired marks deleted,
//! interruptions counted.

use std::time::Duration;

use super::{t0, StorePair};
use crate::error::ErrorKind;
use crate::offering::{CapacityClass, CapacityType, Offering};
use crate::store::OfferingMark;

/// An offering of provider `aws` in `zone`, type `m5.large`.
pub fn offering(zone: &str, capacity_type: CapacityType) -> Offering {
    Offering {
        provider_id: "aws".into(),
        location: zone.into(),
        instance_type: "m5.large".into(),
        capacity_type,
        quota_scope: Some("us-east-1/standard".into()),
    }
}

/// A mark of `offering` of `class`, from `marked_at` for `ttl`.
pub fn mark(
    offering: Offering,
    class: CapacityClass,
    marked_at: time::OffsetDateTime,
    ttl: Duration,
) -> OfferingMark {
    OfferingMark {
        offering,
        class,
        code: Some("InsufficientInstanceCapacity".into()),
        message: "no capacity".into(),
        marked_at,
        until: marked_at + ttl,
        marked_by: "replica-a".into(),
    }
}

/// Upsert extends `until`, never shortens it; marks are shared between
/// handles; only live marks are listed; expired ones are deleted.
pub(super) async fn marks_upsert_and_expire((a, b): StorePair) {
    let now = t0();
    let spot = offering("us-east-1a", CapacityType::Spot);
    let m = mark(
        spot.clone(),
        CapacityClass::Capacity,
        now,
        Duration::from_secs(180),
    );
    let stored = a.mark_offering(&m).await.expect("mark");
    assert_eq!(stored, m, "marks: a new mark is stored as given");
    let seen = b.live_offering_marks(now).await.expect("live");
    assert_eq!(
        seen,
        vec![m.clone()],
        "marks: the other handle sees the mark"
    );
    // A shorter mark later does not shorten it; the reason is the latest.
    let mut shorter = mark(
        spot.clone(),
        CapacityClass::Capacity,
        now + Duration::from_secs(10),
        Duration::from_secs(5),
    );
    shorter.message = "still none".into();
    let stored = b.mark_offering(&shorter).await.expect("mark again");
    assert_eq!(stored.until, m.until, "marks: until is never shortened");
    assert_eq!(stored.message, "still none", "marks: the latest reason");
    // A longer one extends it.
    let longer = mark(
        spot.clone(),
        CapacityClass::Capacity,
        now + Duration::from_secs(20),
        Duration::from_secs(600),
    );
    let stored = a.mark_offering(&longer).await.expect("extend");
    assert_eq!(stored.until, longer.until, "marks: until is extended");
    // Another class of the same offering is a mark of its own.
    let quota = mark(
        offering("us-east-1b", CapacityType::OnDemand),
        CapacityClass::Quota,
        now,
        Duration::from_secs(900),
    );
    a.mark_offering(&quota).await.expect("quota mark");
    let live = a.live_offering_marks(now).await.expect("live");
    assert_eq!(live.len(), 2, "marks: two live marks: {live:?}");
    // A quota mark blocks every offering of its scope; a capacity mark
    // only its own offering.
    let other_zone = offering("us-east-1c", CapacityType::Spot);
    assert!(live.iter().any(|m| m.blocks(&other_zone)), "quota scope");
    let capacity = live
        .iter()
        .find(|m| m.class == CapacityClass::Capacity)
        .expect("capacity mark");
    assert!(
        !capacity.blocks(&other_zone),
        "a capacity mark is per offering"
    );
    // Past `until`, a mark is no longer live, then deleted.
    let later = longer.until;
    let live = a.live_offering_marks(later).await.expect("live");
    assert_eq!(live.len(), 1, "marks: the capacity mark expired at until");
    assert_eq!(live[0].class, CapacityClass::Quota);
    let deleted = b
        .delete_expired_offering_marks(later)
        .await
        .expect("delete");
    assert_eq!(deleted, 1, "marks: retention deletes the expired mark");
    assert_eq!(
        a.live_offering_marks(now).await.expect("live").len(),
        1,
        "marks: the deleted mark is gone even at an earlier now"
    );
}

/// A mark whose TTL is outside 1 s..24 h is refused on write, naming the
/// field.
pub(super) async fn bad_marks_are_refused((a, _): StorePair) {
    let now = t0();
    for ttl in [
        Duration::ZERO,
        Duration::from_millis(500),
        Duration::from_secs(24 * 3600 + 1),
    ] {
        let m = mark(
            offering("us-east-1a", CapacityType::Spot),
            CapacityClass::Capacity,
            now,
            ttl,
        );
        let e = a.mark_offering(&m).await.expect_err("bad ttl refused");
        assert!(
            matches!(e.kind(), ErrorKind::InvalidConfig { field } if field == "offering_mark.until"),
            "bad marks: {e}"
        );
    }
    assert!(a.live_offering_marks(now).await.expect("live").is_empty());
}

/// Interruptions are counted per offering, with the latest time.
pub(super) async fn interruptions_are_counted((a, b): StorePair) {
    let now = t0();
    let spot = offering("us-east-1a", CapacityType::Spot);
    let other = offering("us-east-1b", CapacityType::Spot);
    let c = a.record_interruption(&spot, now).await.expect("count");
    assert_eq!(c.count, 1, "interruptions: first");
    let c = b
        .record_interruption(&spot, now + Duration::from_secs(5))
        .await
        .expect("count");
    assert_eq!(c.count, 2, "interruptions: second, from the other handle");
    assert_eq!(c.last_at, now + Duration::from_secs(5));
    a.record_interruption(&other, now).await.expect("count");
    let all = b.interruption_counts().await.expect("list");
    let counts: Vec<(String, u64)> = all.iter().map(|c| (c.offering.key(), c.count)).collect();
    assert_eq!(
        counts,
        vec![(spot.key(), 2), (other.key(), 1)],
        "interruptions: per offering, by key"
    );
}
