//! EC2 Query parameters: the `application/x-www-form-urlencoded` body (or
//! query string) with EC2's list encoding (`InstanceId.1`, `Filter.1.Name`,
//! `Filter.1.Value.1`, `TagSpecification.1.Tag.1.Key`).

use std::collections::{BTreeSet, HashMap};

use super::error::Ec2Error;

/// The parameters of one request. When a name repeats, the first wins.
#[derive(Debug, Clone, Default)]
pub struct Params {
    map: HashMap<String, String>,
}

impl Params {
    /// Parses a form-encoded body or query string. Never fails: invalid
    /// UTF-8 is replaced, as form decoding does.
    pub fn parse(body: &[u8]) -> Params {
        let mut map = HashMap::new();
        for (k, v) in form_pairs(body) {
            map.entry(k).or_insert(v);
        }
        Params { map }
    }

    /// A parameter's value.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.map.get(name).map(String::as_str)
    }

    /// A required parameter, or `MissingParameter`.
    pub fn require(&self, name: &str) -> Result<&str, Ec2Error> {
        self.get(name).ok_or_else(|| Ec2Error::missing(name))
    }

    /// A boolean parameter (`true`/`false`, any case).
    pub fn bool(&self, name: &str) -> Result<Option<bool>, Ec2Error> {
        match self.get(name) {
            None => Ok(None),
            Some(v) if v.eq_ignore_ascii_case("true") => Ok(Some(true)),
            Some(v) if v.eq_ignore_ascii_case("false") => Ok(Some(false)),
            Some(v) => Err(Ec2Error::invalid_value(format!(
                "Invalid value '{v}' for {name}. Expected a boolean."
            ))),
        }
    }

    /// An integer parameter.
    pub fn int(&self, name: &str) -> Result<Option<i64>, Ec2Error> {
        match self.get(name) {
            None => Ok(None),
            Some(v) => v.trim().parse::<i64>().map(Some).map_err(|_| {
                Ec2Error::invalid_value(format!(
                    "Invalid value '{v}' for {name}. Expected an integer."
                ))
            }),
        }
    }

    /// `DryRun=true`.
    pub fn dry_run(&self) -> Result<bool, Ec2Error> {
        Ok(self.bool("DryRun")?.unwrap_or(false))
    }

    /// The sorted distinct indices `N` of parameters named `prefix.N` or
    /// `prefix.N.*`.
    pub fn indices(&self, prefix: &str) -> Vec<u32> {
        let mut out = BTreeSet::new();
        for key in self.map.keys() {
            let Some(rest) = key.strip_prefix(prefix).and_then(|r| r.strip_prefix('.')) else {
                continue;
            };
            let digits = rest.split('.').next().unwrap_or("");
            if let Ok(n) = digits.parse::<u32>() {
                out.insert(n);
            }
        }
        out.into_iter().collect()
    }

    /// The values of `prefix.1`, `prefix.2`, ... in index order.
    pub fn list(&self, prefix: &str) -> Vec<&str> {
        let mut items: Vec<(u32, &str)> = self
            .map
            .iter()
            .filter_map(|(k, v)| {
                let n = k
                    .strip_prefix(prefix)?
                    .strip_prefix('.')?
                    .parse::<u32>()
                    .ok()?;
                Some((n, v.as_str()))
            })
            .collect();
        items.sort_unstable_by_key(|(n, _)| *n);
        items.into_iter().map(|(_, v)| v).collect()
    }

    /// The parameters under `prefix.`, as (name without the prefix,
    /// value), sorted by name.
    pub fn under(&self, prefix: &str) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = self
            .map
            .iter()
            .filter_map(|(k, v)| {
                let rest = k.strip_prefix(prefix)?.strip_prefix('.')?;
                Some((rest.to_string(), v.clone()))
            })
            .collect();
        out.sort();
        out
    }

    /// Parameters made of these pairs (the first of a repeated name wins).
    pub fn from_pairs(pairs: impl IntoIterator<Item = (String, String)>) -> Params {
        let mut map = HashMap::new();
        for (k, v) in pairs {
            map.entry(k).or_insert(v);
        }
        Params { map }
    }

    /// These parameters with `defaults` added. A default is left out when
    /// the request has any parameter of its group (the name up to the
    /// first `.`), so a request's `SecurityGroupId.1` replaces every
    /// default `SecurityGroupId.N`.
    pub fn with_defaults(&self, defaults: &[(String, String)]) -> Params {
        let group = |k: &str| k.split('.').next().unwrap_or("").to_string();
        let present: BTreeSet<String> = self.map.keys().map(|k| group(k)).collect();
        let mut map = self.map.clone();
        for (k, v) in defaults {
            if !present.contains(&group(k)) {
                map.entry(k.clone()).or_insert_with(|| v.clone());
            }
        }
        Params { map }
    }

    /// A stable digest of every parameter except those named in `skip`
    /// (ClientToken comparison).
    pub fn fingerprint(&self, skip: &[&str]) -> Vec<(String, String)> {
        let mut pairs: Vec<(String, String)> = self
            .map
            .iter()
            .filter(|(k, _)| !skip.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        pairs.sort();
        pairs
    }
}

/// Decodes `a=b&c=d` pairs (`+` is a space, `%XX` escapes).
fn form_pairs(body: &[u8]) -> Vec<(String, String)> {
    body.split(|b| *b == b'&')
        .filter(|part| !part.is_empty())
        .map(|part| {
            let (k, v) = match part.iter().position(|b| *b == b'=') {
                Some(i) => (&part[..i], &part[i + 1..]),
                None => (part, &part[..0]),
            };
            (decode(k), decode(v))
        })
        .collect()
}

fn decode(s: &[u8]) -> String {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        match s[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < s.len() => match (hex(s[i + 1]), hex(s[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h * 16 + l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_and_escapes() {
        let p = Params::parse(
            b"Action=DescribeInstances&InstanceId.2=i-b&InstanceId.1=i-a&Filter.1.Name=tag%3AName&Filter.1.Value.1=a+b%2Fc&x=%zz&y=%4",
        );
        assert_eq!(p.get("Action"), Some("DescribeInstances"));
        assert_eq!(p.list("InstanceId"), vec!["i-a", "i-b"]);
        assert_eq!(p.indices("Filter"), vec![1]);
        assert_eq!(p.get("Filter.1.Name"), Some("tag:Name"));
        assert_eq!(p.list("Filter.1.Value"), vec!["a b/c"]);
        assert_eq!(p.get("x"), Some("%zz"));
        assert_eq!(p.get("y"), Some("%4"));
    }
}
