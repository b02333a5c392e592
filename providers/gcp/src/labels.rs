//! Ownership labels under Compute Engine's label rules: keys start with a
//! lowercase letter, keys and values hold only `a-z`, `0-9`, `_` and `-`, at
//! most 63 characters each.
//!
//! skyfleet's ownership tags (manager, pool, worker, provider) may not obey
//! them (`proj-ci/Linux`). Such a value is made valid by lowercasing and
//! replacing other characters with `_`; when that changed it, a short hash of
//! the original is appended so that two different values never collide.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};
use skyfleet_core::model::tag;
use skyfleet_core::OwnershipTags;

/// The most characters of a key or value.
const MAX: usize = 63;

/// Whether `k` is a valid label key.
pub(crate) fn valid_key(k: &str) -> bool {
    k.starts_with(|c: char| c.is_ascii_lowercase()) && valid_value(k) && !k.is_empty()
}

/// Whether `v` is a valid label value.
pub(crate) fn valid_value(v: &str) -> bool {
    v.len() <= MAX
        && v.bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_' || c == b'-')
}

/// `v` made a valid label value (unchanged when it already is one).
pub(crate) fn value(v: &str) -> String {
    if valid_value(v) {
        return v.to_string();
    }
    let mut s: String = v
        .chars()
        .map(|c| {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let digest = Sha256::digest(v.as_bytes());
    let tag: String = digest[..4].iter().map(|b| format!("{b:02x}")).collect();
    s.truncate(MAX - 9);
    s.push('-');
    s.push_str(&tag);
    s
}

/// `k` made a valid label key.
pub(crate) fn key(k: &str) -> String {
    let v = value(k);
    if v.starts_with(|c: char| c.is_ascii_lowercase()) {
        v
    } else {
        let mut s = format!("k{v}");
        s.truncate(MAX);
        s
    }
}

/// The labels every instance of a worker carries.
pub(crate) fn ownership(tags: &OwnershipTags) -> BTreeMap<String, String> {
    tags.to_map()
        .into_iter()
        .map(|(k, v)| (key(&k), value(&v)))
        .collect()
}

/// The `instances.list` filter selecting the instances of `manager_id` made
/// by provider `provider_id`.
pub(crate) fn owner_filter(manager_id: &str, provider_id: &str) -> String {
    format!(
        "(labels.{} = \"{}\") AND (labels.{} = \"{}\")",
        tag::MANAGER,
        value(manager_id),
        tag::PROVIDER,
        value(provider_id)
    )
}

/// A list filter matching the instances named `names`:
/// `(name = "a") OR (name = "b")`. Names are RFC 1035 labels (lowercase
/// letters, digits, hyphens), so quoting them is enough.
pub(crate) fn names_filter(names: &[&str]) -> String {
    names
        .iter()
        .map(|n| format!("(name = \"{n}\")"))
        .collect::<Vec<_>>()
        .join(" OR ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_names_filter_ors_one_clause_per_name() {
        assert_eq!(
            names_filter(&["sf-a", "sf-b"]),
            r#"(name = "sf-a") OR (name = "sf-b")"#
        );
        assert_eq!(names_filter(&["sf-a"]), r#"(name = "sf-a")"#);
    }

    #[test]
    fn invalid_values_become_valid_and_distinct() {
        assert_eq!(value("w-1"), "w-1");
        let a = value("proj-ci/Linux");
        let b = value("proj-ci/linux");
        assert!(valid_value(&a) && valid_value(&b) && a != b, "{a} {b}");
        let long = value(&"x/".repeat(100));
        assert!(valid_value(&long));
        assert!(valid_key(&key("9lives")));
        assert!(!valid_key(""));
        assert_eq!(
            owner_filter("mgr", "gcp"),
            "(labels.skyfleet-manager = \"mgr\") AND (labels.skyfleet-provider = \"gcp\")"
        );
    }
}
