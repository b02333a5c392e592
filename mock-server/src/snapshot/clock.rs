//! Monotonic instants in a snapshot: the stores keep `Instant`s, which mean
//! nothing outside the process, so a snapshot writes each one as its signed
//! offset in milliseconds from the moment the snapshot was taken, and a
//! restore adds the offset to the moment of the restore. A resource whose
//! creation had 40 s left when the snapshot was taken has 40 s left after
//! the restore.
//!
//! Every instant of one snapshot is measured against the same reference
//! (set by [`with_reference`] around the whole serialization or
//! deserialization), so their order is kept.

use std::cell::Cell;
use std::time::{Duration, Instant};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The furthest an instant may lie from the reference, either way: ten
/// years. A larger offset is refused (it is no time the mock ever makes).
pub const MAX_OFFSET_MS: i64 = 10 * 366 * 24 * 3600 * 1000;

thread_local! {
    static REFERENCE: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// Runs `f` with `now` as the reference of every instant (de)serialized on
/// this thread.
pub fn with_reference<R>(now: Instant, f: impl FnOnce() -> R) -> R {
    let before = REFERENCE.with(|r| r.replace(Some(now)));
    let out = f();
    REFERENCE.with(|r| r.set(before));
    out
}

fn reference() -> Instant {
    REFERENCE.with(Cell::get).unwrap_or_else(Instant::now)
}

/// The offset of `t` from the reference, in milliseconds.
pub fn offset_ms(t: Instant) -> i64 {
    let now = reference();
    if t >= now {
        i64::try_from(t.duration_since(now).as_millis()).unwrap_or(i64::MAX)
    } else {
        i64::try_from(now.duration_since(t).as_millis()).map_or(i64::MIN, |ms| -ms)
    }
}

/// The instant `ms` milliseconds from the reference. An instant before the
/// monotonic clock's origin cannot be made: it is moved forward to the
/// earliest one that can, which keeps it in the past and keeps order.
pub fn from_offset_ms(ms: i64) -> Result<Instant, String> {
    if !(-MAX_OFFSET_MS..=MAX_OFFSET_MS).contains(&ms) {
        return Err(format!(
            "an instant offset must be within {MAX_OFFSET_MS} ms of the snapshot time, found {ms}"
        ));
    }
    let now = reference();
    let d = Duration::from_millis(ms.unsigned_abs());
    if ms >= 0 {
        return now
            .checked_add(d)
            .ok_or_else(|| format!("the instant offset {ms} ms is too far in the future"));
    }
    let mut back = d;
    loop {
        if let Some(t) = now.checked_sub(back) {
            return Ok(t);
        }
        back /= 2;
        if back.is_zero() {
            return Ok(now);
        }
    }
}

/// `#[serde(with = "crate::snapshot::clock::at")]` for an `Instant`.
pub mod at {
    use super::*;

    /// Writes the offset.
    pub fn serialize<S: Serializer>(t: &Instant, s: S) -> Result<S::Ok, S::Error> {
        offset_ms(*t).serialize(s)
    }

    /// Reads the offset.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Instant, D::Error> {
        let ms = i64::deserialize(d)?;
        from_offset_ms(ms).map_err(serde::de::Error::custom)
    }
}

/// `#[serde(with = "crate::snapshot::clock::at_opt")]` for an
/// `Option<Instant>`.
pub mod at_opt {
    use super::*;

    /// Writes the offset or `null`.
    pub fn serialize<S: Serializer>(t: &Option<Instant>, s: S) -> Result<S::Ok, S::Error> {
        t.map(offset_ms).serialize(s)
    }

    /// Reads the offset or `null`.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Instant>, D::Error> {
        Option::<i64>::deserialize(d)?
            .map(from_offset_ms)
            .transpose()
            .map_err(serde::de::Error::custom)
    }
}

/// `#[serde(with = "crate::snapshot::clock::steps")]` for a list of
/// `(Instant, T)`.
pub mod steps {
    use super::*;

    /// Writes `[[offset, value], ...]`.
    pub fn serialize<S: Serializer, T: Serialize>(
        v: &[(Instant, T)],
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.collect_seq(v.iter().map(|(t, x)| (offset_ms(*t), x)))
    }

    /// Reads `[[offset, value], ...]`.
    pub fn deserialize<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
        d: D,
    ) -> Result<Vec<(Instant, T)>, D::Error> {
        Vec::<(i64, T)>::deserialize(d)?
            .into_iter()
            .map(|(ms, x)| from_offset_ms(ms).map(|t| (t, x)))
            .collect::<Result<_, _>>()
            .map_err(serde::de::Error::custom)
    }
}

/// `#[serde(with = "crate::snapshot::clock::tagged_opt")]` for an
/// `Option<(T, Instant)>`.
pub mod tagged_opt {
    use super::*;

    /// Writes `[value, offset]` or `null`.
    pub fn serialize<S: Serializer, T: Serialize>(
        v: &Option<(T, Instant)>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        v.as_ref().map(|(x, t)| (x, offset_ms(*t))).serialize(s)
    }

    /// Reads `[value, offset]` or `null`.
    pub fn deserialize<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
        d: D,
    ) -> Result<Option<(T, Instant)>, D::Error> {
        Option::<(T, i64)>::deserialize(d)?
            .map(|(x, ms)| from_offset_ms(ms).map(|t| (x, t)))
            .transpose()
            .map_err(serde::de::Error::custom)
    }
}

/// `#[serde(with = "crate::snapshot::clock::pairs")]` for a map whose keys
/// are not strings: written as a list of `[key, value]`.
pub mod pairs {
    use std::collections::HashMap;
    use std::hash::Hash;

    use super::*;

    /// Writes `[[key, value], ...]`.
    pub fn serialize<S: Serializer, K: Serialize, V: Serialize>(
        m: &HashMap<K, V>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.collect_seq(m.iter())
    }

    /// Reads `[[key, value], ...]`; a repeated key is refused.
    pub fn deserialize<'de, D, K, V>(d: D) -> Result<HashMap<K, V>, D::Error>
    where
        D: Deserializer<'de>,
        K: Deserialize<'de> + Eq + Hash,
        V: Deserialize<'de>,
    {
        let list = Vec::<(K, V)>::deserialize(d)?;
        let n = list.len();
        let map: HashMap<K, V> = list.into_iter().collect();
        if map.len() != n {
            return Err(serde::de::Error::custom("a key is listed twice"));
        }
        Ok(map)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_round_trip_against_the_reference() {
        let now = Instant::now();
        let later = now + Duration::from_millis(1500);
        let ms = with_reference(now, || offset_ms(later));
        assert_eq!(ms, 1500);
        let back = with_reference(now, || offset_ms(now.checked_sub(Duration::from_millis(20)).unwrap_or(now)));
        assert!(back <= 0);
        let restored = with_reference(now, || from_offset_ms(1500)).expect("in range");
        assert_eq!(restored, later);
        assert!(from_offset_ms(MAX_OFFSET_MS + 1).is_err());
        assert!(from_offset_ms(-MAX_OFFSET_MS).expect("clamped, not refused") <= Instant::now());
    }
}
