//! The `filter` parameter of `instances.list`: comparisons such as
//! `labels.env = "test"`, `status != RUNNING`, `labels.pool:*` (the key
//! exists) or `name eq 'vm-.*'`, joined by `AND`, `OR` or juxtaposed
//! parenthesized terms (implicit `AND`), optionally negated with `NOT`.
//! Fields: `name`, `status`, `id`, `zone`, `machineType`, `labels.KEY`.
//! `=`, `!=` and `:` take a literal with `*` wildcards; `eq`/`ne` take a
//! regular expression of which literal text and `.*` are supported.

use crate::ctx::glob_match;

use super::error::GceError;
use super::label_set::Labels;

/// A parsed filter.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Filter {
    /// Both hold.
    And(Box<Filter>, Box<Filter>),
    /// Either holds.
    Or(Box<Filter>, Box<Filter>),
    /// Does not hold.
    Not(Box<Filter>),
    /// `field op value`.
    Cmp {
        /// Field path.
        field: String,
        /// Negated (`!=`, `ne`).
        negate: bool,
        /// `:` (has) rather than equality.
        has: bool,
        /// Glob pattern.
        pattern: String,
    },
}

/// The fields a filter reads from one instance.
pub(crate) struct Fields<'a> {
    /// Name.
    pub name: &'a str,
    /// Status wire name.
    pub status: &'a str,
    /// Numeric id.
    pub id: u64,
    /// Zone name.
    pub zone: &'a str,
    /// Relative machine type link.
    pub machine_type: &'a str,
    /// Labels.
    pub labels: &'a Labels,
}

fn bad(filter: &str, why: &str) -> GceError {
    GceError::invalid(format!("Invalid list filter expression '{filter}': {why}"))
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Open,
    Close,
    Word(String),
    Quoted(String),
    Op(&'static str),
}

fn lex(s: &str) -> Result<Vec<Tok>, String> {
    let mut out = Vec::new();
    let mut it = s.char_indices().peekable();
    while let Some((_, c)) = it.next() {
        match c {
            c if c.is_whitespace() => {}
            '(' => out.push(Tok::Open),
            ')' => out.push(Tok::Close),
            '=' => out.push(Tok::Op("=")),
            ':' => out.push(Tok::Op(":")),
            '!' => {
                if matches!(it.peek(), Some((_, '='))) {
                    it.next();
                    out.push(Tok::Op("!="));
                } else {
                    return Err("'!' must be followed by '='".into());
                }
            }
            '"' | '\'' => {
                let mut v = String::new();
                let mut closed = false;
                while let Some((_, d)) = it.next() {
                    if d == '\\' {
                        if let Some((_, e)) = it.next() {
                            v.push(e);
                        }
                    } else if d == c {
                        closed = true;
                        break;
                    } else {
                        v.push(d);
                    }
                }
                if !closed {
                    return Err("unterminated string".into());
                }
                out.push(Tok::Quoted(v));
            }
            _ => {
                let mut v = String::from(c);
                while let Some((_, d)) = it.peek() {
                    if d.is_whitespace() || matches!(d, '(' | ')' | '=' | '!' | ':' | '"' | '\'') {
                        break;
                    }
                    v.push(*d);
                    it.next();
                }
                out.push(Tok::Word(v));
            }
        }
    }
    Ok(out)
}

struct Parser {
    toks: Vec<Tok>,
    pos: usize,
    depth: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }

    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.pos).cloned();
        self.pos += 1;
        t
    }

    fn or(&mut self) -> Result<Filter, String> {
        let mut left = self.and()?;
        while matches!(self.peek(), Some(Tok::Word(w)) if w == "OR") {
            self.pos += 1;
            let right = self.and()?;
            left = Filter::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Filter, String> {
        let mut left = self.term()?;
        loop {
            match self.peek() {
                None | Some(Tok::Close) => break,
                Some(Tok::Word(w)) if w == "OR" => break,
                Some(Tok::Word(w)) if w == "AND" => {
                    self.pos += 1;
                }
                _ => {}
            }
            let right = self.term()?;
            left = Filter::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn term(&mut self) -> Result<Filter, String> {
        match self.next() {
            Some(Tok::Open) => {
                self.depth += 1;
                if self.depth > 32 {
                    return Err("nested too deeply".into());
                }
                let inner = self.or()?;
                self.depth -= 1;
                match self.next() {
                    Some(Tok::Close) => Ok(inner),
                    _ => Err("missing ')'".into()),
                }
            }
            Some(Tok::Word(w)) if w == "NOT" || w == "-" => Ok(Filter::Not(Box::new(self.term()?))),
            Some(Tok::Word(field)) => {
                let (negate, has, regex) = match self.next() {
                    Some(Tok::Op("=")) => (false, false, false),
                    Some(Tok::Op("!=")) => (true, false, false),
                    Some(Tok::Op(":")) => (false, true, false),
                    Some(Tok::Word(w)) if w == "eq" => (false, false, true),
                    Some(Tok::Word(w)) if w == "ne" => (true, false, true),
                    _ => return Err(format!("expected an operator after '{field}'")),
                };
                let value = match self.next() {
                    Some(Tok::Word(v)) | Some(Tok::Quoted(v)) => v,
                    _ => return Err(format!("expected a value after '{field}'")),
                };
                let pattern = if regex { regex_to_glob(&value)? } else { value };
                Ok(Filter::Cmp {
                    field,
                    negate,
                    has,
                    pattern,
                })
            }
            Some(t) => Err(format!("unexpected {t:?}")),
            None => Err("unexpected end".into()),
        }
    }
}

/// The supported subset of RE2: literal text and `.*`.
fn regex_to_glob(re: &str) -> Result<String, String> {
    let mut out = String::new();
    let mut chars = re.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '.' if chars.peek() == Some(&'*') => {
                chars.next();
                out.push('*');
            }
            '\\' => match chars.next() {
                Some(e) => out.push(e),
                None => return Err("dangling '\\'".into()),
            },
            '.' | '*' | '+' | '?' | '[' | ']' | '(' | ')' | '{' | '}' | '|' | '^' | '$' => {
                return Err(format!("unsupported regular expression '{re}'"))
            }
            _ => out.push(c),
        }
    }
    Ok(out)
}

impl Filter {
    /// Parses a filter; an empty one is `None`.
    pub(crate) fn parse(s: &str) -> Result<Option<Filter>, GceError> {
        if s.trim().is_empty() {
            return Ok(None);
        }
        let toks = lex(s).map_err(|e| bad(s, &e))?;
        let mut p = Parser {
            toks,
            pos: 0,
            depth: 0,
        };
        let f = p.or().map_err(|e| bad(s, &e))?;
        if p.pos < p.toks.len() {
            return Err(bad(s, "unexpected ')'"));
        }
        f.check_fields().map_err(|e| bad(s, &e))?;
        Ok(Some(f))
    }

    fn check_fields(&self) -> Result<(), String> {
        match self {
            Filter::And(a, b) | Filter::Or(a, b) => {
                a.check_fields()?;
                b.check_fields()
            }
            Filter::Not(a) => a.check_fields(),
            Filter::Cmp { field, .. } => match field.as_str() {
                "name" | "status" | "id" | "zone" | "machineType" => Ok(()),
                f if f.strip_prefix("labels.").is_some_and(|k| !k.is_empty()) => Ok(()),
                "labels" => Ok(()),
                f => Err(format!("unsupported field '{f}'")),
            },
        }
    }

    /// Whether an instance with these fields passes.
    pub(crate) fn matches(&self, x: &Fields<'_>) -> bool {
        match self {
            Filter::And(a, b) => a.matches(x) && b.matches(x),
            Filter::Or(a, b) => a.matches(x) || b.matches(x),
            Filter::Not(a) => !a.matches(x),
            Filter::Cmp {
                field,
                negate,
                has,
                pattern,
            } => {
                let id;
                let value: Option<&str> = match field.as_str() {
                    "name" => Some(x.name),
                    "status" => Some(x.status),
                    "id" => {
                        id = x.id.to_string();
                        Some(&id)
                    }
                    "zone" => Some(x.zone),
                    "machineType" => x.machine_type.rsplit('/').next(),
                    "labels" => {
                        // `labels:KEY` asks whether the key exists.
                        let hit = x.labels.keys().any(|k| glob_match(pattern, k));
                        return hit != *negate;
                    }
                    f => f
                        .strip_prefix("labels.")
                        .and_then(|k| x.labels.get(k)),
                };
                let hit = match value {
                    None => false,
                    Some(_) if *has && pattern == "*" => true,
                    Some(v) => glob_match(pattern, v),
                };
                hit != *negate
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn fields<'a>(labels: &'a Labels) -> Fields<'a> {
        Fields {
            name: "vm-1",
            status: "RUNNING",
            id: 42,
            zone: "us-central1-a",
            machine_type: "projects/p/zones/us-central1-a/machineTypes/e2-small",
            labels,
        }
    }

    #[test]
    fn filters() {
        let mut labels = BTreeMap::new();
        labels.insert("pool".to_string(), "a".to_string());
        let labels = Labels::from(labels);
        let x = fields(&labels);
        let t = |s: &str| Filter::parse(s).unwrap().unwrap().matches(&x);
        assert!(t(r#"labels.pool = "a""#));
        assert!(!t(r#"labels.pool = "b""#));
        assert!(t(r#"(labels.pool = "a") (status = RUNNING)"#));
        assert!(!t(r#"(labels.pool = "a") AND (status != RUNNING)"#));
        assert!(t(r#"(labels.pool = "b") OR (name = vm-*)"#));
        assert!(t("labels.pool:*"));
        assert!(!t("labels.other:*"));
        assert!(t("name eq 'vm-.*'"));
        assert!(t("NOT status = TERMINATED"));
        assert!(t("machineType = e2-small"));
        assert!(Filter::parse("foo = 1").is_err());
        assert!(Filter::parse("name =").is_err());
        assert!(Filter::parse("(name = a").is_err());
        assert!(Filter::parse("name eq 'a[0-9]'").is_err());
        assert!(Filter::parse("  ").unwrap().is_none());
    }
}
