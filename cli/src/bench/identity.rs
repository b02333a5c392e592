//! `skyfleet bench identity --json`: how many identity proofs one core
//! verifies per second, per cloud (issue 15, item 4).
//!
//! Each cloud's proofs are issued first (not timed), each distinct and
//! freshly signed by a self-made issuer shaped as the cloud's
//! (`skyfleet_identity::testing`): AWS documents with their `signature`
//! and as `rsa2048` PKCS#7, GCE identity tokens, Azure attested documents
//! signed by a leaf under an intermediate under a root. Then they are
//! verified one after the other on one task (one core), with warm caches
//! (one verifier, its JWKS and intermediates already fetched) and no cache
//! of results; the report gives verifications per second, p50 and p99.
//! A second pass verifies `--cold` proofs each with a new verifier, whose
//! first verification fetches the JWKS or the AIA intermediate (from
//! memory: the fetch's parse and the cache fill are measured, not a
//! network), and reports that p99.

use std::sync::Arc;
use std::time::Instant;

use serde_json::{json, Value};
use skyfleet_identity::aws::{AwsExpected, AwsVerifier};
use skyfleet_identity::azure::{AzureConfig, AzureExpected, AzureVerifier};
use skyfleet_identity::gcp::{GcpConfig, GcpExpected, GcpVerifier};
use skyfleet_identity::testing::aws::AwsIssuer;
use skyfleet_identity::testing::azure::AzureIssuer;
use skyfleet_identity::testing::gcp::GcpIssuer;
use skyfleet_identity::testing::MemoryFetch;
use time::OffsetDateTime;

use super::harness::{BenchError, Report};
use super::stats::Distribution;

/// Arguments of `skyfleet bench identity`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Proofs verified per cloud with warm caches.
    #[arg(long, default_value_t = 2000)]
    pub proofs: usize,
    /// Proofs verified per cloud with cold caches (a new verifier each).
    #[arg(long, default_value_t = 100)]
    pub cold: usize,
    /// Print JSON (the only output format; accepted for uniformity).
    #[arg(long)]
    pub json: bool,
}

/// The targets of issue 15, item 4: verifications per second on one core.
const TARGETS: [(&str, f64); 4] = [
    ("aws", 2000.0),
    ("aws_pkcs7", 2000.0),
    ("gcp", 2000.0),
    ("azure", 500.0),
];
/// The p99 target, in microseconds.
const P99_TARGET_US: f64 = 5000.0;

const JWKS: &str = "http://127.0.0.1:1/oauth2/v3/certs";
const AUD: &str = "https://manager.bench.invalid";

/// Timings of one pass: microseconds per verification, and the wall time.
struct Pass {
    micros: Vec<f64>,
    seconds: f64,
    failures: usize,
}

impl Pass {
    fn new() -> Self {
        Pass {
            micros: Vec::new(),
            seconds: 0.0,
            failures: 0,
        }
    }

    fn record<T, E>(&mut self, started: Instant, result: Result<T, E>) {
        let took = started.elapsed();
        self.micros.push(took.as_secs_f64() * 1e6);
        self.seconds += took.as_secs_f64();
        if result.is_err() {
            self.failures += 1;
        }
    }

    fn summary(self) -> Value {
        let n = self.micros.len();
        let d = Distribution::new(self.micros);
        let round = |v: Option<f64>| v.map(|x| (x * 10.0).round() / 10.0);
        json!({
            "verifications": n,
            "failures": self.failures,
            "per_sec": if self.seconds > 0.0 { (n as f64 / self.seconds).round() } else { 0.0 },
            "p50_us": round(d.median()),
            "p99_us": round(d.percentile(0.99)),
        })
    }
}

async fn aws(args: &Args, pkcs7: bool) -> (Pass, Pass) {
    let issuer = AwsIssuer::new("us-east-1");
    let total = args.proofs + args.cold;
    let proofs: Vec<(String, String, AwsExpected)> = (0..total as u64)
        .map(|n| {
            let facts = issuer.instance(n);
            let doc = issuer.document(&facts);
            let sig = if pkcs7 {
                issuer.rsa2048(&doc)
            } else {
                issuer.signature(&doc)
            };
            (doc, sig, facts)
        })
        .collect();
    let verify = |v: &AwsVerifier, (doc, sig, facts): &(String, String, AwsExpected)| {
        if pkcs7 {
            v.verify_pkcs7(sig, facts)
        } else {
            v.verify_document(doc, sig, facts)
        }
    };
    let warm_v = AwsVerifier::new(issuer.trust());
    let mut warm = Pass::new();
    for p in &proofs[..args.proofs] {
        let t = Instant::now();
        warm.record(t, verify(&warm_v, p));
    }
    // AWS keeps no cache: "cold" is a verifier built (certificates parsed)
    // for each proof.
    let mut cold = Pass::new();
    for p in &proofs[args.proofs..] {
        let t = Instant::now();
        let v = AwsVerifier::new(issuer.trust());
        cold.record(t, verify(&v, p));
    }
    (warm, cold)
}

async fn gcp(args: &Args) -> Result<(Pass, Pass), BenchError> {
    let issuer = GcpIssuer::new("bench-project");
    let now = OffsetDateTime::now_utc();
    let proofs: Vec<(String, GcpExpected)> = (0..(args.proofs + args.cold) as u64)
        .map(|n| {
            let facts = issuer.instance(n, "us-central1-a");
            (issuer.token(&facts, AUD, now), facts)
        })
        .collect();
    let fetch = Arc::new(MemoryFetch::new());
    fetch.set(JWKS, issuer.jwks());
    let config = || {
        GcpConfig::new(AUD)
            .with_jwks_url(JWKS)
            .with_fetcher(fetch.clone())
    };
    let warm_v = GcpVerifier::new(config())?;
    warm_v.warm(now).await;
    let mut warm = Pass::new();
    for (jwt, facts) in &proofs[..args.proofs] {
        let t = Instant::now();
        warm.record(t, warm_v.verify(jwt, facts, now).await);
    }
    let mut cold = Pass::new();
    for (jwt, facts) in &proofs[args.proofs..] {
        let t = Instant::now();
        let v = GcpVerifier::new(config())?;
        cold.record(t, v.verify(jwt, facts, now).await);
    }
    Ok((warm, cold))
}

async fn azure(args: &Args) -> Result<(Pass, Pass), BenchError> {
    let issuer = AzureIssuer::new();
    let now = OffsetDateTime::now_utc();
    let proofs: Vec<(String, AzureExpected)> = (0..args.proofs + args.cold)
        .map(|n| {
            let vm = format!("00000000-0000-4000-8000-{n:012}");
            let nonce = format!("{:010}", n);
            let sig = issuer.sign(&issuer.content(&vm, &nonce, now), false);
            (
                sig,
                AzureExpected {
                    vm_id: vm,
                    nonce: Some(nonce),
                },
            )
        })
        .collect();
    let fetch = Arc::new(MemoryFetch::new());
    fetch.set(&issuer.aia_url(), issuer.intermediate_der());
    let config = || -> Result<AzureConfig, BenchError> {
        Ok(AzureConfig::new()
            .with_roots_pem(issuer.root_pem())?
            .with_fetcher(fetch.clone()))
    };
    let warm_v = AzureVerifier::new(config()?)?;
    // Warm the intermediate cache with one document first.
    if let Some((sig, want)) = proofs.first() {
        warm_v
            .verify(sig, want, now)
            .await
            .map_err(|e| BenchError::Failed(format!("azure warm-up: {e:?}")))?;
    }
    let mut warm = Pass::new();
    for (sig, want) in &proofs[..args.proofs] {
        let t = Instant::now();
        warm.record(t, warm_v.verify(sig, want, now).await);
    }
    let mut cold = Pass::new();
    for (sig, want) in &proofs[args.proofs..] {
        let t = Instant::now();
        let v = AzureVerifier::new(config()?)?;
        cold.record(t, v.verify(sig, want, now).await);
    }
    Ok((warm, cold))
}

/// Runs the benchmark.
pub async fn run(args: &Args) -> Result<Report, BenchError> {
    if args.proofs == 0 {
        return Err(BenchError::Usage("--proofs must be at least 1".into()));
    }
    let mut clouds = serde_json::Map::new();
    let mut failures = 0;
    let mut meets = true;
    let results = [
        ("aws", aws(args, false).await),
        ("aws_pkcs7", aws(args, true).await),
        ("gcp", gcp(args).await?),
        ("azure", azure(args).await?),
    ];
    for (name, (warm, cold)) in results {
        failures += warm.failures + cold.failures;
        let warm = warm.summary();
        let target = TARGETS
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, t)| *t)
            .unwrap_or(0.0);
        let per_sec = warm["per_sec"].as_f64().unwrap_or(0.0);
        let p99 = warm["p99_us"].as_f64().unwrap_or(f64::MAX);
        let met = per_sec >= target && p99 < P99_TARGET_US;
        meets &= met;
        clouds.insert(
            name.to_string(),
            json!({
                "warm": warm,
                "cold": cold.summary(),
                "target_per_sec": target,
                "meets_target": met,
            }),
        );
    }
    let value = json!({
        "scenario": "identity",
        "build": if cfg!(debug_assertions) { "debug" } else { "release" },
        "proofs_per_cloud": args.proofs,
        "cold_per_cloud": args.cold,
        "p99_target_us": P99_TARGET_US,
        "clouds": clouds,
        "meets_targets": meets,
        "failures": failures,
    });
    // The run's own check: every genuine proof verified. The targets are
    // reported (`meets_targets`), for a release build to be judged by.
    Ok(Report {
        ok: failures == 0,
        ..Report::pretty(value)
    })
}
