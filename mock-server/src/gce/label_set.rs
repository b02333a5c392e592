//! An instance's labels, stored compactly: one sorted slice of key/value
//! pairs (a `BTreeMap` spends a node of hundreds of bytes on even one
//! label, and the store keeps many instances). It serializes as the JSON
//! object and hashes as the `BTreeMap` of the same labels, so fingerprints
//! and answers are those a map would give.

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};

use serde::ser::{Serialize, SerializeMap, Serializer};

/// Labels sorted by key, keys unique.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Labels(Box<[(Box<str>, Box<str>)]>);

impl Labels {
    /// The value of `key`.
    pub(crate) fn get(&self, key: &str) -> Option<&str> {
        self.0
            .binary_search_by(|(k, _)| (**k).cmp(key))
            .ok()
            .map(|i| &*self.0[i].1)
    }

    /// The keys, in order.
    pub(crate) fn keys(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|(k, _)| &**k)
    }

    /// Whether there are none.
    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The labels as a map.
    pub(crate) fn to_map(&self) -> BTreeMap<String, String> {
        self.0
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }
}

impl From<BTreeMap<String, String>> for Labels {
    fn from(map: BTreeMap<String, String>) -> Self {
        // A map iterates in key order: the slice is sorted.
        Labels(
            map.into_iter()
                .map(|(k, v)| (k.into_boxed_str(), v.into_boxed_str()))
                .collect(),
        )
    }
}

impl Hash for Labels {
    /// As `BTreeMap<String, String>` hashes: the length, then each pair.
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_usize(self.0.len());
        for (k, v) in self.0.iter() {
            (&**k, &**v).hash(state);
        }
    }
}

impl Serialize for Labels {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (k, v) in self.0.iter() {
            map.serialize_entry(&**k, &**v)?;
        }
        map.end()
    }
}

impl<'de> serde::Deserialize<'de> for Labels {
    /// From the map [`Serialize`] writes (a snapshot).
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        BTreeMap::<String, String>::deserialize(d).map(Labels::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::DefaultHasher;

    fn hash<T: Hash>(v: &T) -> u64 {
        let mut h = DefaultHasher::new();
        v.hash(&mut h);
        h.finish()
    }

    #[test]
    fn labels_read_serialize_and_hash_as_the_map() {
        let map: BTreeMap<String, String> = [("pool", "a"), ("env", "test"), ("z", "")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let labels = Labels::from(map.clone());
        assert_eq!(labels.get("env"), Some("test"));
        assert_eq!(labels.get("z"), Some(""));
        assert_eq!(labels.get("nope"), None);
        assert_eq!(labels.keys().collect::<Vec<_>>(), ["env", "pool", "z"]);
        assert_eq!(
            serde_json::to_string(&labels).unwrap(),
            serde_json::to_string(&map).unwrap()
        );
        assert_eq!(hash(&labels), hash(&map));
        assert_eq!(hash(&(&labels, 3u64)), hash(&(&map, 3u64)));
        assert_eq!(hash(&Labels::default()), hash(&BTreeMap::<String, String>::new()));
        assert_eq!(labels.to_map(), map);
        assert!(Labels::default().is_empty() && !labels.is_empty());
    }
}
