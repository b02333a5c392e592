//! `Filter.N.Name` / `Filter.N.Value.M` parsing and matching. Values may
//! use EC2's wildcards `*` and `?`.

use super::error::Ec2Error;
use super::instances::{Instance, State};
use super::query::Params;
use crate::ctx::glob_match;

/// Most `Filter.N` a request may carry.
pub const MAX_FILTERS: usize = 200;

/// One value pattern.
#[derive(Debug, Clone)]
pub enum Pattern {
    /// Matches exactly.
    Exact(String),
    /// Matches with `*` and `?`.
    Glob(String),
}

impl Pattern {
    fn new(v: &str) -> Pattern {
        if v.contains(['*', '?']) {
            Pattern::Glob(v.to_string())
        } else {
            Pattern::Exact(v.to_string())
        }
    }

    /// Whether `text` matches.
    pub fn matches(&self, text: &str) -> bool {
        match self {
            Pattern::Exact(e) => e == text,
            Pattern::Glob(g) => glob_match(g, text),
        }
    }
}

/// A filter: any of its values may match.
#[derive(Debug, Clone)]
pub struct Filter {
    /// The filter name, e.g. `tag:Name`.
    pub name: String,
    /// Value patterns.
    pub values: Vec<Pattern>,
}

impl Filter {
    /// Whether any value matches `text`.
    pub fn any(&self, text: &str) -> bool {
        self.values.iter().any(|p| p.matches(text))
    }
}

/// Parses every `Filter.N`.
pub fn parse(p: &Params) -> Result<Vec<Filter>, Ec2Error> {
    let indices = p.indices("Filter");
    // Each filter scans the parameters once; the cap keeps a crafted body
    // from costing quadratic time.
    if indices.len() > MAX_FILTERS {
        return Err(Ec2Error::invalid_value(format!(
            "The maximum number of filters is {MAX_FILTERS}, got {}",
            indices.len()
        )));
    }
    let mut out = Vec::new();
    for n in indices {
        let name = p
            .get(&format!("Filter.{n}.Name"))
            .ok_or_else(|| Ec2Error::missing(&format!("Filter.{n}.Name")))?;
        let values: Vec<Pattern> = p
            .list(&format!("Filter.{n}.Value"))
            .into_iter()
            .map(Pattern::new)
            .collect();
        if values.is_empty() {
            return Err(Ec2Error::invalid_value(format!(
                "The filter '{name}' requires at least one value"
            )));
        }
        out.push(Filter {
            name: name.to_string(),
            values,
        });
    }
    Ok(out)
}

/// Fails with `InvalidParameterValue` on a filter name outside `known`
/// (`tag:` filters are allowed when `known` contains `tag:`).
pub fn check_names(filters: &[Filter], known: &[&str]) -> Result<(), Ec2Error> {
    for f in filters {
        let ok = known.contains(&f.name.as_str())
            || (f.name.starts_with("tag:") && f.name.len() > 4 && known.contains(&"tag:"));
        if !ok {
            return Err(Ec2Error::invalid_value(format!(
                "The filter '{}' is invalid",
                f.name
            )));
        }
    }
    Ok(())
}

/// Filter names DescribeInstances supports.
pub const INSTANCE_FILTERS: &[&str] = &[
    "instance-state-name",
    "instance-state-code",
    "instance-id",
    "tag:",
    "tag-key",
    "tag-value",
    "instance-type",
    "availability-zone",
    "image-id",
    "reservation-id",
    "instance-lifecycle",
    "client-token",
    "subnet-id",
    "vpc-id",
    "private-ip-address",
    "key-name",
];

/// Whether an instance in `state` passes every filter.
pub fn instance_matches(filters: &[Filter], i: &Instance, state: State) -> bool {
    filters.iter().all(|f| match f.name.as_str() {
        "instance-state-name" => f.any(state.name()),
        "instance-state-code" => f.any(&state.code().to_string()),
        "instance-id" => f.any(&i.id),
        "tag-key" => i.tags.keys().any(|k| f.any(k)),
        "tag-value" => i.tags.values().any(|v| f.any(v)),
        "instance-type" => f.any(&i.instance_type),
        "availability-zone" => f.any(&i.zone),
        "image-id" => f.any(&i.image_id),
        "reservation-id" => f.any(&i.reservation_id),
        "instance-lifecycle" => i.spot.is_some() && f.any("spot"),
        "client-token" => f.any(&i.client_token),
        "subnet-id" => i.subnet_id.as_deref().is_some_and(|s| f.any(s)),
        "vpc-id" => i.vpc_id.as_deref().is_some_and(|s| f.any(s)),
        "private-ip-address" => f.any(&i.private_ip),
        "key-name" => i.key_name.as_deref().is_some_and(|s| f.any(s)),
        name => match name.strip_prefix("tag:") {
            Some(key) => i.tags.get(key).is_some_and(|v| f.any(v)),
            None => false,
        },
    })
}
