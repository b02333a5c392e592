//! The body `instances.bulkInsert` takes (`BulkInsertInstanceResource`),
//! validated as Compute validates it: `count` (1 to 1000) and `minCount`
//! (1 to `count`, default `count`); the names, from `perInstanceProperties`
//! keys and then `namePattern` (one run of 1 to 18 `#`, each a digit:
//! `vm-###` gives `vm-001`, `vm-002`...); `instanceProperties`, the
//! instance body without its name (`machineType` may be a bare name such as
//! `e2-small`). `sourceInstanceTemplate` names a template, and the mock has
//! none.

use serde_json::{Map, Value};

use super::error::GceError;
use super::links::relative;
use super::spec::valid_name;

/// The most instances one bulk insert creates.
pub(crate) const MAX_COUNT: u64 = 1000;

/// The longest run of `#` a name pattern may hold.
const MAX_DIGITS: usize = 18;

const FIELD: &str = "bulkInsertInstanceResource";

/// A `namePattern`: the text around the run of `#` and the run's length.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Pattern {
    prefix: String,
    digits: usize,
    suffix: String,
}

impl Pattern {
    /// Parses a pattern with exactly one run of 1 to 18 `#` whose names are
    /// valid instance names.
    pub(crate) fn parse(p: &str) -> Result<Pattern, GceError> {
        let bad = |why: &str| GceError::invalid_field(&format!("{FIELD}.namePattern"), p, why);
        let start = p
            .find('#')
            .ok_or_else(|| bad("The pattern must contain a sequence of '#' characters."))?;
        let digits = p[start..].bytes().take_while(|b| *b == b'#').count();
        let suffix = &p[start + digits..];
        if suffix.contains('#') {
            return Err(bad(
                "The pattern must contain one continuous sequence of '#' characters.",
            ));
        }
        if digits > MAX_DIGITS {
            return Err(bad("The sequence of '#' characters is at most 18 long."));
        }
        let pattern = Pattern {
            prefix: p[..start].to_string(),
            digits,
            suffix: suffix.to_string(),
        };
        // Every generated name has the same shape: one checks them all.
        if !valid_name(&pattern.name_unchecked(0)) {
            return Err(bad(
                "Generated names must be a match of regex '(?:[a-z](?:[-a-z0-9]{0,61}[a-z0-9])?)'",
            ));
        }
        Ok(pattern)
    }

    fn name_unchecked(&self, n: u64) -> String {
        format!(
            "{}{:0width$}{}",
            self.prefix,
            n,
            self.suffix,
            width = self.digits
        )
    }

    /// The `n`th name, if `n` fits in the digits.
    pub(crate) fn name(&self, n: u64) -> Option<String> {
        // 10^18 fits a u64 (max about 1.8 * 10^19).
        let limit = 10u64.checked_pow(self.digits as u32)?;
        (n < limit).then(|| self.name_unchecked(n))
    }

    /// The number in `name`, if the pattern generated it.
    pub(crate) fn number(&self, name: &str) -> Option<u64> {
        let mid = name
            .strip_prefix(&self.prefix)?
            .strip_suffix(&self.suffix)?;
        (mid.len() == self.digits && mid.bytes().all(|b| b.is_ascii_digit()))
            .then(|| mid.parse().ok())
            .flatten()
    }
}

/// A validated bulk insert request.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct BulkRequest {
    /// How many instances to create.
    pub count: u64,
    /// The fewest that must be created for the request to succeed.
    pub min_count: u64,
    /// The names given in `perInstanceProperties`, in key order.
    pub names: Vec<String>,
    /// How to name the other `count - names.len()` instances.
    pub pattern: Option<Pattern>,
    /// The insert body every instance shares, without `name`, with the
    /// machine type as a zone-relative link.
    pub properties: Map<String, Value>,
}

/// An int64 field: a JSON number or a decimal string (how proto3 JSON
/// writes int64).
fn int_field(obj: &Map<String, Value>, key: &str) -> Result<Option<u64>, GceError> {
    let path = format!("{FIELD}.{key}");
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_u64()
            .map(Some)
            .ok_or_else(|| GceError::invalid_field(&path, &n.to_string(), "Must be at least 1.")),
        Some(Value::String(s)) => s
            .parse::<u64>()
            .map(Some)
            .map_err(|_| GceError::invalid_field(&path, s, "Must be an integer.")),
        Some(other) => Err(GceError::invalid(format!(
            "Invalid value at '{path}' (TYPE_INT64), {other}"
        ))),
    }
}

fn str_field<'a>(obj: &'a Map<String, Value>, key: &str) -> Result<Option<&'a str>, GceError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(GceError::invalid(format!(
            "Invalid value at '{FIELD}.{key}' (TYPE_STRING), {other}"
        ))),
    }
}

/// The keys of `perInstanceProperties`: each a valid name, each value an
/// object.
fn per_instance_names(obj: &Map<String, Value>) -> Result<Vec<String>, GceError> {
    let path = format!("{FIELD}.perInstanceProperties");
    let map = match obj.get("perInstanceProperties") {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Object(m)) => m,
        Some(other) => {
            return Err(GceError::invalid(format!(
                "Invalid value at '{path}', {other}: expected an object"
            )))
        }
    };
    let mut names = Vec::with_capacity(map.len());
    for (name, props) in map {
        if !valid_name(name) {
            return Err(GceError::invalid_field(
                &path,
                name,
                "Instance names must be a match of regex '(?:[a-z](?:[-a-z0-9]{0,61}[a-z0-9])?)'",
            ));
        }
        if !matches!(props, Value::Object(_) | Value::Null) {
            return Err(GceError::invalid(format!(
                "Invalid value at '{path}[{name}]', {props}: expected an object"
            )));
        }
        names.push(name.clone());
    }
    Ok(names)
}

impl BulkRequest {
    /// Validates a bulk insert body for `project`/`zone`. Whether each
    /// instance body is valid is up to `Spec::parse`, with its name.
    pub(crate) fn parse(body: &Value, project: &str, zone: &str) -> Result<BulkRequest, GceError> {
        let Value::Object(obj) = body else {
            return Err(GceError::invalid(format!(
                "Invalid value at '{FIELD}', {}: expected an object",
                type_name(body)
            )));
        };
        let count = int_field(obj, "count")?.ok_or_else(|| GceError::required(&format!("{FIELD}.count")))?;
        if !(1..=MAX_COUNT).contains(&count) {
            return Err(GceError::invalid_field(
                &format!("{FIELD}.count"),
                &count.to_string(),
                "Must be between 1 and 1000.",
            ));
        }
        let min_count = int_field(obj, "minCount")?.unwrap_or(count);
        if !(1..=count).contains(&min_count) {
            return Err(GceError::invalid_field(
                &format!("{FIELD}.minCount"),
                &min_count.to_string(),
                "Must be between 1 and count.",
            ));
        }
        let names = per_instance_names(obj)?;
        if names.len() as u64 > count {
            return Err(GceError::invalid_field(
                &format!("{FIELD}.perInstanceProperties"),
                &names.len().to_string(),
                "More instances are named than count.",
            ));
        }
        let pattern = str_field(obj, "namePattern")?
            .map(Pattern::parse)
            .transpose()?;
        if pattern.is_none() && (names.len() as u64) < count {
            return Err(GceError::required(&format!("{FIELD}.namePattern")));
        }
        if let Some(template) = str_field(obj, "sourceInstanceTemplate")? {
            // Checked as a link, then: the mock keeps no templates.
            let rel = relative(project, &format!("{FIELD}.sourceInstanceTemplate"), template)?;
            return Err(GceError::not_found(&rel));
        }
        let mut properties = match obj.get("instanceProperties") {
            None | Some(Value::Null) => {
                return Err(GceError::required(&format!("{FIELD}.instanceProperties")))
            }
            Some(Value::Object(m)) => m.clone(),
            Some(other) => {
                return Err(GceError::invalid(format!(
                    "Invalid value at '{FIELD}.instanceProperties', {}: expected an object",
                    type_name(other)
                )))
            }
        };
        // `InstanceProperties.machineType` is a bare name; links are taken
        // too, as `Spec::parse` checks them.
        if let Some(Value::String(mt)) = properties.get("machineType") {
            if !mt.is_empty() && !mt.contains('/') {
                let link = format!("zones/{zone}/machineTypes/{mt}");
                properties.insert("machineType".into(), Value::String(link));
            }
        }
        properties.remove("name");
        Ok(BulkRequest {
            count,
            min_count,
            names,
            pattern,
            properties,
        })
    }

    /// The insert body of the instance `name`.
    pub(crate) fn body(&self, name: &str) -> Value {
        let mut m = self.properties.clone();
        m.insert("name".into(), Value::String(name.to_string()));
        Value::Object(m)
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn patterns_name_and_number() {
        let p = Pattern::parse("vm-###-x").unwrap();
        assert_eq!(p.name(7).as_deref(), Some("vm-007-x"));
        assert_eq!(p.name(999).as_deref(), Some("vm-999-x"));
        assert_eq!(p.name(1000), None);
        assert_eq!(p.number("vm-042-x"), Some(42));
        assert_eq!(p.number("vm-42-x"), None);
        assert_eq!(p.number("vm-0a2-x"), None);
        assert_eq!(Pattern::parse(&format!("v{}", "#".repeat(18))).unwrap().name(5).unwrap().len(), 19);
        for bad in ["vm", "vm-#-#", "#vm", "VM-#", &format!("v{}", "#".repeat(19)), "vm-#-"] {
            assert!(Pattern::parse(bad).is_err(), "{bad}");
        }
    }

    fn props() -> Value {
        json!({"machineType": "e2-small", "disks": [], "name": "ignored"})
    }

    #[test]
    fn bodies_validate() {
        let ok = BulkRequest::parse(
            &json!({"count": "3", "namePattern": "w-##", "perInstanceProperties": {"a-1": {}},
                    "instanceProperties": props()}),
            "p",
            "z-a",
        )
        .unwrap();
        assert_eq!((ok.count, ok.min_count), (3, 3));
        assert_eq!(ok.names, ["a-1"]);
        assert_eq!(ok.body("w-01")["name"], "w-01");
        assert_eq!(ok.body("w-01")["machineType"], "zones/z-a/machineTypes/e2-small");
        let reason = |body: Value| match BulkRequest::parse(&body, "p", "z-a") {
            Err(GceError::Api { status, reason, .. }) => (status, reason),
            other => panic!("{other:?}"),
        };
        let with = |extra: Value| {
            let mut b = json!({"count": 2, "namePattern": "w-#", "instanceProperties": props()});
            for (k, v) in extra.as_object().unwrap() {
                b[k] = v.clone();
            }
            b
        };
        assert_eq!(reason(json!([])), (400, "invalid".to_string()));
        assert_eq!(reason(json!({"namePattern": "w-#"})), (400, "required".into()));
        assert_eq!(reason(with(json!({"count": 0}))), (400, "invalid".into()));
        assert_eq!(reason(with(json!({"count": 1001}))), (400, "invalid".into()));
        assert_eq!(reason(with(json!({"count": -1}))), (400, "invalid".into()));
        assert_eq!(reason(with(json!({"count": "x"}))), (400, "invalid".into()));
        assert_eq!(reason(with(json!({"minCount": 3}))), (400, "invalid".into()));
        assert_eq!(reason(with(json!({"namePattern": null}))), (400, "required".into()));
        assert_eq!(reason(with(json!({"namePattern": 5}))), (400, "invalid".into()));
        assert_eq!(reason(with(json!({"instanceProperties": null}))), (400, "required".into()));
        assert_eq!(reason(with(json!({"instanceProperties": "x"}))), (400, "invalid".into()));
        assert_eq!(
            reason(with(json!({"perInstanceProperties": {"a": {}, "b": {}, "c": {}}}))),
            (400, "invalid".into())
        );
        assert_eq!(
            reason(with(json!({"perInstanceProperties": {"Bad": {}}}))),
            (400, "invalid".into())
        );
        assert_eq!(
            reason(with(json!({"sourceInstanceTemplate": "global/instanceTemplates/t"}))),
            (404, "notFound".into())
        );
    }
}
