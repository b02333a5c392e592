//! Resource links: the absolute base URL a request was made to, the
//! relative paths the store keeps, and the RFC 3339 timestamps Compute
//! writes.
//!
//! The store keeps links relative (`projects/p/zones/z/instances/vm`) and
//! renders them against the base of the request being answered, so a client
//! that reached the mock as `https://localhost:8600` reads links it can
//! follow.

use http::request::Parts;
use time::format_description::FormatItem;
use time::macros::format_description;
use time::OffsetDateTime;

use super::error::GceError;

/// The absolute prefix of every link in an answer, ending in `/compute/v1/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Base(String);

/// Set on a request (by whoever terminates TLS) to say it came over HTTPS;
/// without it the scheme comes from `X-Forwarded-Proto` or the URI, else
/// `http`.
#[derive(Debug, Clone, Copy)]
pub struct Https;

impl Base {
    /// The base URL of the request: its scheme and `Host`.
    pub(crate) fn of(parts: &Parts) -> Base {
        let scheme = if parts.extensions.get::<Https>().is_some() {
            "https"
        } else if let Some(proto) = parts
            .headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .filter(|p| *p == "https" || *p == "http")
        {
            proto
        } else {
            parts.uri.scheme_str().unwrap_or("http")
        };
        let host = parts
            .headers
            .get(http::header::HOST)
            .and_then(|v| v.to_str().ok())
            .filter(|h| !h.is_empty() && h.bytes().all(|b| b.is_ascii_graphic()))
            .or_else(|| parts.uri.authority().map(|a| a.as_str()))
            .unwrap_or("localhost");
        Base(format!("{scheme}://{host}/compute/v1/"))
    }

    /// `rel` made absolute.
    pub(crate) fn link(&self, rel: &str) -> String {
        let mut s = String::with_capacity(self.0.len() + rel.len());
        s.push_str(&self.0);
        s.push_str(rel);
        s
    }
}

/// A client-given resource reference made relative to `/compute/v1/`:
/// accepts a full URL (any host), `projects/...`, or a path relative to the
/// project (`zones/z/machineTypes/e2-small`, `global/networks/default`).
pub(crate) fn relative(project: &str, field: &str, value: &str) -> Result<String, GceError> {
    let bad = || {
        GceError::invalid_field(
            field,
            value,
            "Must be a URL to a valid Compute resource of the correct type.",
        )
    };
    let rel = if let Some(i) = value.find("/compute/v1/") {
        &value[i + "/compute/v1/".len()..]
    } else {
        value
    };
    let rel = if rel.starts_with("projects/") {
        rel.to_string()
    } else if rel.starts_with("zones/") || rel.starts_with("global/") || rel.starts_with("regions/")
    {
        format!("projects/{project}/{rel}")
    } else {
        return Err(bad());
    };
    let ok = rel.split('/').count() >= 4
        && rel.split('/').all(|seg| !seg.is_empty())
        && rel.bytes().all(|b| b.is_ascii_graphic());
    if ok {
        Ok(rel)
    } else {
        Err(bad())
    }
}

const RFC3339_MILLIS: &[FormatItem<'static>] = format_description!(
    "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3][offset_hour sign:mandatory]:[offset_minute]"
);

/// A timestamp as Compute writes it: RFC 3339 with milliseconds and an offset.
pub(crate) fn rfc3339(t: OffsetDateTime) -> String {
    t.format(RFC3339_MILLIS).unwrap_or_default()
}
