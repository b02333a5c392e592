//! JSON kept as its compact text.
//!
//! ARM resources store what the request sent (properties, tags, `sku`,
//! `zones`) and answer it back. As a `serde_json::Value` tree that costs a
//! B-tree node of about 600 bytes for every object, however few keys it
//! holds, plus an allocation per string: a VM's properties nest about ten
//! objects and took about 7 KB, a public IP's `sku` alone 600 bytes. As
//! text the same VM properties take about 500 bytes. A read parses the text
//! again, a few microseconds for a VM, which a GET can afford; what is read
//! for every resource on a hot path (a VM's size and priority) is kept typed
//! beside it instead (see `Links::Vm`).

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

/// A JSON value held as its compact text; the empty object is held as no
/// text at all, which allocates nothing (most resources have no tags).
#[derive(Clone, PartialEq, Eq)]
pub struct Compact(Box<str>);

impl Compact {
    /// The compact text of `v`.
    pub fn of(v: &Value) -> Self {
        match v {
            Value::Object(m) if m.is_empty() => Compact::empty(),
            _ => Compact(v.to_string().into_boxed_str()),
        }
    }

    /// The compact text of the object `m`.
    pub fn object(m: Map<String, Value>) -> Self {
        Compact::of(&Value::Object(m))
    }

    /// The empty object.
    pub fn empty() -> Self {
        Compact(Box::default())
    }

    /// True for the empty object.
    pub fn is_empty_object(&self) -> bool {
        self.0.is_empty()
    }

    /// The value, parsed again.
    pub fn value(&self) -> Value {
        if self.0.is_empty() {
            return Value::Object(Map::new());
        }
        // The text was written by `Value::to_string`, so it parses; `Null`
        // only guards that invariant.
        serde_json::from_str(&self.0).unwrap_or(Value::Null)
    }

    /// The value as an object (empty when it is not one).
    pub fn map(&self) -> Map<String, Value> {
        match self.value() {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    /// The value at `path` of object keys.
    pub fn at(&self, path: &[&str]) -> Option<Value> {
        let mut v = self.value();
        for k in path {
            v = match v {
                Value::Object(mut m) => m.remove(*k)?,
                _ => return None,
            };
        }
        Some(v)
    }
}

impl Default for Compact {
    fn default() -> Self {
        Compact::empty()
    }
}

impl fmt::Debug for Compact {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &*self.0 {
            "" => f.write_str("{}"),
            text => f.write_str(text),
        }
    }
}

impl Serialize for Compact {
    /// As the value itself, so a snapshot holds JSON, not a string of it.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.value().serialize(s)
    }
}

impl<'de> Deserialize<'de> for Compact {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Value::deserialize(d).map(|v| Compact::of(&v))
    }
}

/// Reads a field that must hold a JSON object (`#[serde(deserialize_with)]`),
/// so a snapshot with anything else is refused as it was when the field
/// was a `Map`.
pub fn object<'de, D: Deserializer<'de>>(d: D) -> Result<Compact, D::Error> {
    Map::<String, Value>::deserialize(d).map(Compact::object)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keeps_the_value_and_reads_paths() {
        let v = json!({"hardwareProfile": {"vmSize": "Standard_D2s_v5"}, "n": [1, 2]});
        let c = Compact::of(&v);
        assert_eq!(c.value(), v);
        assert_eq!(
            c.at(&["hardwareProfile", "vmSize"]),
            Some(json!("Standard_D2s_v5"))
        );
        assert_eq!(c.at(&["n", "x"]), None);
        assert_eq!(c.map().len(), 2);
        assert!(!c.is_empty_object());
        assert!(Compact::empty().is_empty_object());
        assert!(Compact::of(&json!({})).is_empty_object());
        assert_eq!(Compact::empty().value(), json!({}));
        assert_eq!(format!("{:?}", Compact::empty()), "{}");
    }

    #[test]
    fn serializes_as_json_not_as_a_string() {
        let c = Compact::of(&json!({"a": "b"}));
        assert_eq!(serde_json::to_value(&c).unwrap(), json!({"a": "b"}));
        let back: Compact = serde_json::from_value(json!({"a": "b"})).unwrap();
        assert_eq!(back, c);
        assert_eq!(format!("{c:?}"), r#"{"a":"b"}"#);
    }

    #[test]
    fn object_fields_refuse_other_values() {
        #[derive(Deserialize)]
        struct Holder {
            #[serde(deserialize_with = "object")]
            props: Compact,
        }
        let ok: Holder = serde_json::from_value(json!({"props": {"x": 1}})).unwrap();
        assert_eq!(ok.props.value(), json!({"x": 1}));
        let err = serde_json::from_value::<Holder>(json!({"props": [1]}))
            .err()
            .expect("an array is not an object");
        assert!(err.to_string().contains("map"), "{err}");
    }
}
