//! `compute.instances.aggregatedList`
//! (`GET /compute/v1/projects/{project}/aggregated/instances`): the
//! project's instances in every zone, as `items` keyed `zones/{zone}` ->
//! `{"instances": [...]}`.
//!
//! A zone with nothing on the page carries instead a `warning` with code
//! `NO_RESULTS_ON_PAGE`, as Compute answers. Compute lists every zone there
//! is; the mock has no zone catalogue, so the scopes are the zones where the
//! project has ever had an instance. The `filter` syntax is that of
//! `instances.list`; `maxResults` counts instances across zones, and pages
//! run in (zone, name) order. `returnPartialSuccess` and `includeAllScopes`
//! are accepted (every zone answers, so the result is never partial).

use std::collections::BTreeMap;
use std::ops::Bound;

use serde_json::{json, Value};

use crate::gce::error::GceError;
use crate::gce::filters::{Fields, Filter};
use crate::gce::request::{Call, Reply};
use crate::gce::Gce;

use super::instances::ms;
use super::paging;

/// Checks a boolean query parameter (`true` or `false`, any case).
fn check_bool(call: &Call, key: &str) -> Result<(), GceError> {
    match call.query(key) {
        None => Ok(()),
        Some(v) if v.eq_ignore_ascii_case("true") || v.eq_ignore_ascii_case("false") => Ok(()),
        Some(v) => Err(GceError::invalid_field(
            key,
            v,
            "Must be a boolean (true or false).",
        )),
    }
}

/// The `(zone, name)` a page token says the previous page ended at.
fn after(call: &Call) -> Result<Option<(String, String)>, GceError> {
    let Some(key) = paging::after(call)? else {
        return Ok(None);
    };
    match key.split_once('/') {
        Some((zone, name)) if !zone.is_empty() => Ok(Some((zone.to_string(), name.to_string()))),
        _ => Err(GceError::invalid_field(
            "pageToken",
            call.query("pageToken").unwrap_or_default(),
            "Invalid page token.",
        )),
    }
}

/// The entry of a zone with nothing on this page.
fn no_results(scope: &str) -> Value {
    json!({"warning": {
        "code": "NO_RESULTS_ON_PAGE",
        "message": format!("There are no results for scope '{scope}' on this page."),
        "data": [{"key": "scope", "value": scope}],
    }})
}

/// One page: instances by zone (every known zone, possibly with none) and
/// the next page's token.
type Page = (BTreeMap<String, Vec<Value>>, Option<String>);

/// `compute.instances.aggregatedList`: `filter`, `maxResults`,
/// `pageToken`, `returnPartialSuccess`, `includeAllScopes`.
pub(crate) fn aggregated_list(gce: &Gce, call: &Call) -> Result<Reply, GceError> {
    let filter = Filter::parse(call.query("filter").unwrap_or(""))?;
    let max = paging::max_results(call)?;
    let after = after(call)?;
    check_bool(call, "returnPartialSuccess")?;
    check_bool(call, "includeAllScopes")?;
    let (by_zone, next): Page = gce.store.read(&call.project, |p| {
        let mut by_zone: BTreeMap<String, Vec<Value>> = BTreeMap::new();
        let mut next = None;
        let Some(p) = p else {
            return (by_zone, next);
        };
        let mut zones: Vec<_> = p.zones.iter().collect();
        zones.sort_by(|a, b| a.0.cmp(b.0));
        let mut count = 0;
        let mut last: Option<String> = None;
        'zones: for (zone, instances) in zones {
            let items = by_zone.entry(zone.clone()).or_default();
            if next.is_some() {
                continue;
            }
            let range = match &after {
                Some((z, _)) if zone < z => continue,
                Some((z, name)) if zone == z => {
                    instances.range::<String, _>((Bound::Excluded(name.clone()), Bound::Unbounded))
                }
                _ => instances.range::<String, _>(..),
            };
            for (name, inst) in range {
                let status = inst.status(call.now);
                if !inst.listed(call.now, ms(gce, call.config.consistency_window_ms)) {
                    continue;
                }
                if let Some(f) = &filter {
                    let fields = Fields {
                        name,
                        status: status.as_str(),
                        id: inst.id,
                        zone,
                        machine_type: inst.spec_machine_type(),
                        labels: &inst.spec.labels,
                    };
                    if !f.matches(&fields) {
                        continue;
                    }
                }
                if count == max {
                    // There is at least one more: the page ends at the last
                    // item returned.
                    next = last.as_deref().map(paging::token);
                    continue 'zones;
                }
                count += 1;
                last = Some(format!("{zone}/{name}"));
                items.push(inst.to_value(&call.base, &call.project, call.now));
            }
        }
        (by_zone, next)
    });
    let path = format!("projects/{}/aggregated/instances", call.project);
    let items: serde_json::Map<String, Value> = by_zone
        .into_iter()
        .map(|(zone, instances)| {
            let scope = format!("zones/{zone}");
            let entry = if instances.is_empty() {
                no_results(&scope)
            } else {
                json!({ "instances": instances })
            };
            (scope, entry)
        })
        .collect();
    let mut out = json!({
        "kind": "compute#instanceAggregatedList",
        "id": path,
        "selfLink": call.base.link(&path),
    });
    if !items.is_empty() {
        out["items"] = Value::Object(items);
    }
    if let Some(next) = next {
        out["nextPageToken"] = Value::from(next);
    }
    Ok(Reply::Json(out.to_string().into_bytes()))
}
