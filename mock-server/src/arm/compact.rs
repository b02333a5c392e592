//! JSON kept as its compact text.
//!
//! ARM resources store what the request sent (properties, tags, `sku`,
//! `zones`) and answer it back. As a `serde_json::Value` tree that costs a
//! B-tree node of about 600 bytes for every object, however few keys it
//! holds, plus an allocation per string: a VM's properties nest about ten
//! objects and took about 7 KB, a public IP's `sku` alone 600 bytes. As
//! text the same VM properties take about 500 bytes. A read parses the text
//! only where it needs a field; a GET splices the text into its answer
//! without parsing it ([`Compact::write_with`]). What is read for every resource
//! on a hot path (a VM's size and priority) is kept typed beside it (see
//! `Links::Vm`).

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

    /// Appends the text to `out` (`{}` for the empty object).
    pub fn write(&self, out: &mut Vec<u8>) {
        match &*self.0 {
            "" => out.extend_from_slice(b"{}"),
            text => out.extend_from_slice(text.as_bytes()),
        }
    }

    /// Appends the object with `extra` members added to `out`, without
    /// parsing the stored text. Returns false, appending nothing, when the
    /// text may already hold one of those keys (the caller then merges
    /// parsed maps) or is not an object.
    pub fn write_with(&self, out: &mut Vec<u8>, extra: &[(&str, Value)]) -> bool {
        let inner = match &*self.0 {
            "" => "",
            text => match text.strip_prefix('{').and_then(|t| t.strip_suffix('}')) {
                Some(inner) => inner,
                None => return false,
            },
        };
        let mut keys = Vec::with_capacity(extra.len());
        for (k, _) in extra {
            // A quoted name followed by a colon can only be a member name
            // (inside a string both quotes would be escaped); a nested
            // member of that name makes the caller merge, which is correct,
            // only slower.
            let key = Value::from(*k).to_string();
            if self.0.contains(&format!("{key}:")) {
                return false;
            }
            keys.push(key);
        }
        out.push(b'{');
        out.extend_from_slice(inner.as_bytes());
        let mut first = inner.is_empty();
        for (key, (_, v)) in keys.iter().zip(extra) {
            if !first {
                out.push(b',');
            }
            first = false;
            out.extend_from_slice(key.as_bytes());
            out.push(b':');
            // Writing a JSON value to a Vec cannot fail.
            let _ = serde_json::to_writer(&mut *out, v);
        }
        out.push(b'}');
        true
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

    fn spliced(c: &Compact, extra: &[(&str, Value)]) -> Option<Value> {
        let mut out = b"x".to_vec();
        if !c.write_with(&mut out, extra) {
            assert_eq!(out, b"x", "nothing is written when it merges");
            return None;
        }
        Some(serde_json::from_slice(&out[1..]).unwrap())
    }

    #[test]
    fn splices_computed_members_without_parsing() {
        let c = Compact::of(&json!({"a": {"b": 1}, "z": "x"}));
        assert_eq!(
            spliced(&c, &[("state", json!("Succeeded")), ("n", json!([1]))]),
            Some(json!({"a": {"b": 1}, "z": "x", "state": "Succeeded", "n": [1]}))
        );
        assert_eq!(
            spliced(&Compact::empty(), &[("state", json!("Creating"))]),
            Some(json!({"state": "Creating"}))
        );
        assert_eq!(spliced(&Compact::empty(), &[]), Some(json!({})));
        assert_eq!(spliced(&c, &[]), Some(c.value()));
        // A stored member of a computed name (even nested) is left to a merge.
        assert_eq!(spliced(&c, &[("b", json!(2))]), None);
        // A value that merely contains the name is not a member.
        let s = Compact::of(&json!({"note": "\"b\": no"}));
        assert!(spliced(&s, &[("b", json!(2))]).is_some());
        assert_eq!(spliced(&Compact::of(&json!([1])), &[]), None);
        let mut out = Vec::new();
        Compact::empty().write(&mut out);
        c.write(&mut out);
        assert_eq!(out, br#"{}{"a":{"b":1},"z":"x"}"#);
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
