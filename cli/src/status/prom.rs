//! Reading the replicas' `/metrics`: the Prometheus text format parsed into
//! samples, scrapes of several endpoints, and the two figures `status`
//! shows from them (scanner lag p99 and API calls per minute), computed
//! from the change between two scrapes and summed over replicas.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// A series: metric name and labels (sorted).
pub type Series = (String, BTreeMap<String, String>);

/// One scrape of one endpoint: every series' value.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Scrape {
    /// Values by series.
    pub values: BTreeMap<Series, f64>,
}

/// The largest `/metrics` body read (a fleet's is tens of kilobytes).
const MAX_BODY: usize = 16 << 20;

/// How long one scrape may take.
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(5);

/// Parses Prometheus text exposition. Comments and blank lines are skipped;
/// a malformed line is an error naming its number.
pub fn parse(text: &str) -> Result<Scrape, String> {
    let mut out = Scrape::default();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (series, value) = parse_line(line).map_err(|e| format!("line {}: {e}", i + 1))?;
        out.values.insert(series, value);
    }
    Ok(out)
}

fn parse_line(line: &str) -> Result<(Series, f64), String> {
    let name_end = line
        .find(|c: char| c == '{' || c.is_whitespace())
        .ok_or("a sample needs a value")?;
    let name = &line[..name_end];
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
    {
        return Err(format!("bad metric name `{name}`"));
    }
    let mut rest = &line[name_end..];
    let mut labels = BTreeMap::new();
    if let Some(body) = rest.strip_prefix('{') {
        let (parsed, after) = parse_labels(body)?;
        labels = parsed;
        rest = after;
    }
    let value = rest
        .split_whitespace()
        .next()
        .ok_or("a sample needs a value")?;
    let value = match value {
        "+Inf" | "Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse::<f64>().map_err(|_| format!("bad value `{v}`"))?,
    };
    Ok(((name.to_string(), labels), value))
}

/// Parses `a="x",b="y"}` and answers the labels and what follows the `}`.
fn parse_labels(mut s: &str) -> Result<(BTreeMap<String, String>, &str), String> {
    let mut labels = BTreeMap::new();
    loop {
        s = s.trim_start();
        if let Some(after) = s.strip_prefix('}') {
            return Ok((labels, after));
        }
        let eq = s.find('=').ok_or("a label needs `=`")?;
        let key = s[..eq].trim().to_string();
        s = s[eq + 1..]
            .trim_start()
            .strip_prefix('"')
            .ok_or("a label value must be quoted")?;
        let mut value = String::new();
        let mut chars = s.char_indices();
        let end = loop {
            match chars.next() {
                None => return Err("unterminated label value".into()),
                Some((i, '"')) => break i,
                Some((_, '\\')) => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, c)) => value.push(c),
                    None => return Err("unterminated label value".into()),
                },
                Some((_, c)) => value.push(c),
            }
        };
        labels.insert(key, value);
        s = s[end + 1..].trim_start();
        s = s.strip_prefix(',').unwrap_or(s);
    }
}

/// The URL to scrape for an endpoint given as `http://host:port` (adds
/// `/metrics`) or with its path.
pub fn metrics_url(endpoint: &str) -> String {
    let trimmed = endpoint.trim_end_matches('/');
    let has_path = trimmed
        .split_once("://")
        .is_some_and(|(_, rest)| rest.contains('/'));
    if has_path {
        trimmed.to_string()
    } else {
        format!("{trimmed}/metrics")
    }
}

/// Scrapes `endpoint` once: at most [`MAX_BODY`] bytes within
/// [`SCRAPE_TIMEOUT`].
pub async fn scrape(client: &reqwest::Client, endpoint: &str) -> Result<Scrape, String> {
    let url = metrics_url(endpoint);
    let fetch = async {
        let mut resp = client
            .get(&url)
            .send()
            .await
            .map_err(|e| format!("{url}: {e}"))?;
        if !resp.status().is_success() {
            return Err(format!("{url}: HTTP {}", resp.status()));
        }
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| format!("{url}: {e}"))? {
            if body.len() + chunk.len() > MAX_BODY {
                return Err(format!("{url}: more than {MAX_BODY} bytes"));
            }
            body.extend_from_slice(&chunk);
        }
        let text = String::from_utf8(body).map_err(|_| format!("{url}: not UTF-8"))?;
        parse(&text).map_err(|e| format!("{url}: {e}"))
    };
    tokio::time::timeout(SCRAPE_TIMEOUT, fetch)
        .await
        .map_err(|_| format!("{url}: no answer within {} s", SCRAPE_TIMEOUT.as_secs()))?
}

/// Scrapes of every endpoint at one instant (`None` where one failed).
#[derive(Debug, Clone)]
pub struct Round {
    /// When.
    pub at: Instant,
    /// Per endpoint, in the order given.
    pub scrapes: Vec<Option<Scrape>>,
}

/// How much each series grew from `before` to `after` on one endpoint; a
/// series that shrank was reset (the replica restarted), so its growth is
/// its current value.
fn growth(before: &Scrape, after: &Scrape) -> BTreeMap<Series, f64> {
    after
        .values
        .iter()
        .map(|(k, v)| {
            let b = before.values.get(k).copied().unwrap_or(0.0);
            (k.clone(), if *v >= b { v - b } else { *v })
        })
        .collect()
}

/// The growth of every series between two rounds, summed over the
/// endpoints answering in both.
pub fn summed_growth(before: &Round, after: &Round) -> BTreeMap<Series, f64> {
    let mut sum: BTreeMap<Series, f64> = BTreeMap::new();
    for (b, a) in before.scrapes.iter().zip(&after.scrapes) {
        if let (Some(b), Some(a)) = (b, a) {
            for (k, v) in growth(b, a) {
                *sum.entry(k).or_default() += v;
            }
        }
    }
    sum
}

/// The `q` quantile of a histogram from its cumulative bucket counts
/// (`le` upper bounds, ascending, `+Inf` last), interpolating linearly
/// within the bucket as Prometheus' `histogram_quantile` does. `None`
/// without observations.
pub fn quantile(q: f64, buckets: &[(f64, f64)]) -> Option<f64> {
    let total = buckets.last()?.1;
    if total <= 0.0 {
        return None;
    }
    let rank = q * total;
    let mut prev = (0.0, 0.0);
    for &(le, count) in buckets {
        if count >= rank {
            if le.is_infinite() {
                // Above the highest finite bound: that bound is all we know.
                return Some(prev.0);
            }
            let in_bucket = count - prev.1;
            if in_bucket <= 0.0 {
                return Some(le);
            }
            return Some(prev.0 + (le - prev.0) * (rank - prev.1) / in_bucket);
        }
        prev = (le, count);
    }
    Some(prev.0)
}

/// Groups the buckets of histogram `name` in `growth` by the values of
/// `by` labels, each sorted by bound.
pub fn histograms(
    growth: &BTreeMap<Series, f64>,
    name: &str,
    by: &[&str],
) -> BTreeMap<Vec<String>, Vec<(f64, f64)>> {
    let bucket = format!("{name}_bucket");
    let mut out: BTreeMap<Vec<String>, BTreeMap<String, (f64, f64)>> = BTreeMap::new();
    for ((n, labels), v) in growth {
        if *n != bucket {
            continue;
        }
        let Some(le) = labels.get("le") else { continue };
        let bound = match le.as_str() {
            "+Inf" | "Inf" => f64::INFINITY,
            s => match s.parse::<f64>() {
                Ok(b) => b,
                Err(_) => continue,
            },
        };
        let key: Vec<String> = by
            .iter()
            .map(|l| labels.get(*l).cloned().unwrap_or_default())
            .collect();
        let e = out
            .entry(key)
            .or_default()
            .entry(le.clone())
            .or_insert((bound, 0.0));
        e.1 += v;
    }
    out.into_iter()
        .map(|(k, m)| {
            let mut v: Vec<(f64, f64)> = m.into_values().collect();
            v.sort_by(|a, b| a.0.total_cmp(&b.0));
            (k, v)
        })
        .collect()
}

/// Sums counter `name` in `growth` by the values of `by` labels.
pub fn sum_by(
    growth: &BTreeMap<Series, f64>,
    name: &str,
    by: &[&str],
) -> BTreeMap<Vec<String>, f64> {
    let mut out = BTreeMap::new();
    for ((n, labels), v) in growth {
        if n != name {
            continue;
        }
        let key: Vec<String> = by
            .iter()
            .map(|l| labels.get(*l).cloned().unwrap_or_default())
            .collect();
        *out.entry(key).or_default() += v;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"
# HELP skyfleet_transport_calls_total Cloud API calls
# TYPE skyfleet_transport_calls_total counter
skyfleet_transport_calls_total{provider="aws",account="1",region="us-east-1",class="read",status="200"} 10
skyfleet_transport_calls_total{provider="aws",account="1",region="us-east-1",class="write",status="200"} 4
skyfleet_orphans_deleted_total 3
skyfleet_scanner_lag_seconds_bucket{provider="aws",partition="us-east-1",le="0.1"} 5
skyfleet_scanner_lag_seconds_bucket{provider="aws",partition="us-east-1",le="1"} 9
skyfleet_scanner_lag_seconds_bucket{provider="aws",partition="us-east-1",le="+Inf"} 10
odd{msg="a \"quoted\", comma\\ and }"} 1.5e3 1700000000
"#;

    #[test]
    fn parses_the_text_format() {
        let s = parse(TEXT).unwrap();
        assert_eq!(s.values.len(), 7);
        let odd = s.values.iter().find(|((n, _), _)| n == "odd").expect("odd");
        assert_eq!(odd.0 .1["msg"], r#"a "quoted", comma\ and }"#);
        assert_eq!(*odd.1, 1500.0);
        let e = parse("ok 1\nbad{x=\"1\" \n").unwrap_err();
        assert!(e.starts_with("line 2"), "{e}");
        assert!(parse("name_only\n").is_err());
        assert!(parse("x{a=1} 2\n").is_err());
    }

    #[test]
    fn growth_is_summed_over_replicas_and_survives_restarts() {
        let a0 = parse("c{k=\"x\"} 10\n").unwrap();
        let a1 = parse("c{k=\"x\"} 16\n").unwrap();
        let b0 = parse("c{k=\"x\"} 100\n").unwrap();
        let b1 = parse("c{k=\"x\"} 3\n").unwrap(); // restarted
        let at = Instant::now();
        let before = Round {
            at,
            scrapes: vec![Some(a0), Some(b0), None],
        };
        let after = Round {
            at,
            scrapes: vec![Some(a1), Some(b1), Some(Scrape::default())],
        };
        let g = summed_growth(&before, &after);
        let by = sum_by(&g, "c", &["k"]);
        assert_eq!(by[&vec!["x".to_string()]], 9.0, "6 + 3 (reset)");
    }

    #[test]
    fn quantiles_interpolate_like_prometheus() {
        let g: BTreeMap<Series, f64> = parse(TEXT).unwrap().values;
        let h = histograms(
            &g,
            "skyfleet_scanner_lag_seconds",
            &["provider", "partition"],
        );
        let b = &h[&vec!["aws".to_string(), "us-east-1".to_string()]];
        assert_eq!(b.len(), 3);
        // p50: rank 5 falls at the top of the first bucket.
        assert_eq!(quantile(0.5, b), Some(0.1));
        // p90: rank 9 is the top of the second.
        assert_eq!(quantile(0.9, b), Some(1.0));
        // p70: rank 7 is halfway through the second bucket.
        let p70 = quantile(0.7, b).unwrap();
        assert!((p70 - 0.55).abs() < 1e-9, "{p70}");
        // p99 lands in +Inf: the highest finite bound.
        assert_eq!(quantile(0.99, b), Some(1.0));
        assert_eq!(quantile(0.99, &[(1.0, 0.0), (f64::INFINITY, 0.0)]), None);
        assert_eq!(quantile(0.99, &[]), None);
    }

    #[test]
    fn endpoints_get_the_metrics_path() {
        assert_eq!(
            metrics_url("http://127.0.0.1:9000"),
            "http://127.0.0.1:9000/metrics"
        );
        assert_eq!(
            metrics_url("http://127.0.0.1:9000/"),
            "http://127.0.0.1:9000/metrics"
        );
        assert_eq!(metrics_url("http://h:1/custom"), "http://h:1/custom");
    }
}
