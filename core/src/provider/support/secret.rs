//! [`Secret`]: a string (password, client secret, bearer token, worker
//! registration secret) that never shows in `Debug`, `Display` or logs, and
//! is never serialized by accident (it has no `Serialize`).

use std::fmt;

use serde::Deserialize;

/// A secret string. `Debug` and `Display` print `[redacted]`; only
/// [`Secret::expose`] gives the value, for the one place that sends it.
/// It reads from configuration (`Deserialize`, transparent) but has no
/// `Serialize`: a config holding one cannot be written out with it.
///
/// ```
/// use skyfleet_core::provider::support::Secret;
/// let s = Secret::new("hunter2");
/// assert_eq!(format!("{s:?} {s}"), "Secret([redacted]) [redacted]");
/// assert_eq!(s.expose(), "hunter2");
/// ```
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret value, for the one place that needs it. Never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether the secret is the empty string (a missing value).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Serializes a secret's value: only for wire types that carry one to its
/// owner (a proof to the manager, a worker secret to its worker); stored
/// records never use it.
pub(crate) fn serialize_exposed<S: serde::Serializer>(
    secret: &Secret,
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_str(secret.expose())
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Secret(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Secret(value.to_owned())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_shows_and_reads_from_config() {
        let s: Secret = serde_json::from_str(r#""top-secret""#).unwrap();
        assert_eq!(s.expose(), "top-secret");
        let shown = format!("{s} {s:?} {:?}", Some(&s));
        assert!(!shown.contains("top-secret"), "{shown}");
        assert!(!s.is_empty());
        assert!(Secret::from("").is_empty());
        assert_eq!(Secret::from(String::from("a")), Secret::new("a"));
    }
}
