//! The context every cloud module of the mock shares: the clock and time
//! scale, fault rules, throttle buckets, id generation and the resource view
//! that `/_mock/resources` lists.
//!
//! Cloud modules (`ec2`, `arm`, `gce`) never talk to each other; they only
//! talk to a [`Ctx`]. Resource state is derived lazily from timestamps
//! (created at + scaled duration), so the mock answers deterministically for
//! a given seed and clock; its one background task draws random spot
//! interruptions when rates are set (the `capacity` module).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

/// Which cloud a request, rule or resource belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Cloud {
    /// EC2 Query API.
    Aws,
    /// Azure Resource Manager.
    Azure,
    /// Compute Engine.
    Gcp,
}

impl Cloud {
    /// The lowercase name used on the wire of the control API.
    pub fn as_str(self) -> &'static str {
        match self {
            Cloud::Aws => "aws",
            Cloud::Azure => "azure",
            Cloud::Gcp => "gcp",
        }
    }
}

pub use crate::faults::{FaultEffect, FaultRule};

/// Matches `text` against a glob with `*` (any run) and `?` (any one char).
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0usize, 0usize);
    let (mut star, mut mark) = (None::<usize>, 0usize);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

struct RuleState {
    rule: FaultRule,
    remaining: Option<u64>,
}

struct Faults {
    rules: Vec<RuleState>,
    rng: StdRng,
    /// Ids drawn from `rng` since it was (re)seeded.
    ids_drawn: u64,
    /// The seed `rng` was last (re)seeded with.
    rng_seed: u64,
}

/// A key of a throttle bucket: (cloud, partition, class).
type BucketKey = (Cloud, String, String);

struct Bucket {
    tokens: f64,
    at: Instant,
}

struct Window {
    started: Instant,
    used: u64,
    /// The last call counted (or refused) in it.
    used_at: Instant,
}

/// Shared mock context; cheap to clone.
#[derive(Clone)]
pub struct Ctx {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Ctx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ctx").field("seed", &self.inner.seed).finish_non_exhaustive()
    }
}

struct Inner {
    time_scale: RwLock<f64>,
    max_hang: RwLock<Duration>,
    faults: Mutex<Faults>,
    buckets: Mutex<HashMap<BucketKey, Bucket>>,
    windows: Mutex<HashMap<BucketKey, Window>>,
    capacity: crate::capacity::Capacity,
    seed: u64,
}

impl Ctx {
    /// A new context with the RNG seeded by `seed` and time scale 1.0.
    pub fn new(seed: u64) -> Self {
        Ctx {
            inner: Arc::new(Inner {
                time_scale: RwLock::new(1.0),
                max_hang: RwLock::new(Duration::from_secs(300)),
                faults: Mutex::new(Faults {
                    rules: Vec::new(),
                    rng: StdRng::seed_from_u64(seed),
                    ids_drawn: 0,
                    rng_seed: seed,
                }),
                buckets: Mutex::new(HashMap::new()),
                windows: Mutex::new(HashMap::new()),
                capacity: crate::capacity::Capacity::new(seed),
                seed,
            }),
        }
    }

    /// The seed the context was made with.
    pub fn seed(&self) -> u64 {
        self.inner.seed
    }

    /// Stockouts, interruption rates and the interruption log.
    pub fn capacity(&self) -> &crate::capacity::Capacity {
        &self.inner.capacity
    }

    /// The global time scale: every configured duration is multiplied by it
    /// (0.001 makes a 60 s VM creation take 60 ms).
    pub fn time_scale(&self) -> f64 {
        *self
            .inner
            .time_scale
            .read()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Sets the global time scale; must be finite and >= 0.
    pub fn set_time_scale(&self, scale: f64) -> Result<(), String> {
        if !scale.is_finite() || scale < 0.0 {
            return Err(format!(
                "time_scale must be a finite number >= 0, got {scale}"
            ));
        }
        *self
            .inner
            .time_scale
            .write()
            .unwrap_or_else(|e| e.into_inner()) = scale;
        Ok(())
    }

    /// `d` multiplied by the time scale.
    pub fn scaled(&self, d: Duration) -> Duration {
        crate::bounded::scale(d, self.time_scale())
    }

    /// The longest a `hang` fault holds a request before giving up itself.
    pub fn max_hang(&self) -> Duration {
        *self
            .inner
            .max_hang
            .read()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Sets the hang cap.
    pub fn set_max_hang(&self, d: Duration) {
        *self
            .inner
            .max_hang
            .write()
            .unwrap_or_else(|e| e.into_inner()) = d;
    }

    /// Waits as a `hang` fault does: until the client drops the request, or
    /// the hang cap passes (so a forgotten request cannot live forever).
    pub async fn hang(&self) {
        tokio::time::sleep(self.max_hang()).await;
    }

    /// Replaces the fault rules (validated first; nothing changes on error).
    pub fn set_faults(&self, rules: Vec<FaultRule>) -> Result<(), String> {
        for (i, r) in rules.iter().enumerate() {
            r.validate().map_err(|e| format!("rule {i}: {e}"))?;
        }
        let mut f = self.inner.faults.lock().unwrap_or_else(|e| e.into_inner());
        f.rules = rules
            .into_iter()
            .map(|rule| RuleState {
                remaining: rule.count,
                rule,
            })
            .collect();
        Ok(())
    }

    /// The current fault rules, with `count` showing what is left of each.
    pub fn faults(&self) -> Vec<FaultRule> {
        let f = self.inner.faults.lock().unwrap_or_else(|e| e.into_inner());
        f.rules
            .iter()
            .map(|s| FaultRule {
                count: s.remaining,
                ..s.rule.clone()
            })
            .collect()
    }

    /// The effect of the first rule that matches this request, if any fires.
    /// A `count` rule that is used up no longer matches.
    pub fn fault(&self, cloud: Cloud, operation: &str, resource: &str) -> Option<FaultEffect> {
        let mut f = self.inner.faults.lock().unwrap_or_else(|e| e.into_inner());
        let Faults { rules, rng, .. } = &mut *f;
        for s in rules.iter_mut() {
            let r = &s.rule;
            if r.cloud != cloud {
                continue;
            }
            if r.operation != "*" && r.operation != operation {
                continue;
            }
            if let Some(g) = &r.resource {
                if !glob_match(g, resource) {
                    continue;
                }
            }
            if s.remaining == Some(0) {
                continue;
            }
            if let Some(p) = r.probability {
                if !rng.random_bool(p) {
                    // A probabilistic rule that does not fire this time
                    // lets later rules be considered, so independent fault
                    // mixes (5 % throttles, 10 % errors) compose.
                    continue;
                }
            }
            if let Some(n) = s.remaining.as_mut() {
                *n -= 1;
            }
            return Some(r.effect.clone());
        }
        None
    }

    /// Token bucket check: `rate` tokens per second refill up to `burst`;
    /// each call takes one. `Err(wait)` when empty, with the time until a
    /// token is available (at least one second, as clouds round up).
    pub fn take_token(
        &self,
        cloud: Cloud,
        partition: &str,
        class: &str,
        rate: f64,
        burst: f64,
    ) -> Result<(), Duration> {
        self.take_tokens(cloud, partition, class, rate, burst, 1.0)
    }

    /// Like [`Ctx::take_token`], but the call costs `cost` tokens (EC2's
    /// resource buckets charge one token per instance). A cost above `burst`
    /// is charged as `burst`, so a large request can still pass a full bucket.
    pub fn take_tokens(
        &self,
        cloud: Cloud,
        partition: &str,
        class: &str,
        rate: f64,
        burst: f64,
        cost: f64,
    ) -> Result<(), Duration> {
        let now = Instant::now();
        let cost = cost.min(burst).max(0.0);
        let mut b = self.inner.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let key = (cloud, partition.to_string(), class.to_string());
        if !b.contains_key(&key) {
            crate::bounded::make_room(&mut b, crate::bounded::MAX_ENTRIES, |v| v.at);
        }
        let bucket = b.entry(key).or_insert(Bucket {
            tokens: burst,
            at: now,
        });
        let elapsed = now.duration_since(bucket.at).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * rate).min(burst);
        bucket.at = now;
        let need = cost.max(1.0).min(burst.max(1.0));
        if bucket.tokens >= need {
            bucket.tokens -= cost;
            Ok(())
        } else {
            let wait = if rate > 0.0 {
                (need - bucket.tokens) / rate
            } else {
                60.0
            };
            Err(crate::bounded::secs_f64(wait.max(1.0).ceil()))
        }
    }

    /// Fixed one-minute window check: at most `limit` calls per window.
    /// `Err(wait)` with the time left in the window when exceeded.
    pub fn take_window(
        &self,
        cloud: Cloud,
        partition: &str,
        class: &str,
        limit: u64,
    ) -> Result<(), Duration> {
        let now = Instant::now();
        let mut w = self.inner.windows.lock().unwrap_or_else(|e| e.into_inner());
        let key = (cloud, partition.to_string(), class.to_string());
        if !w.contains_key(&key) {
            crate::bounded::make_room(&mut w, crate::bounded::MAX_ENTRIES, |v| v.used_at);
        }
        let win = w.entry(key).or_insert(Window {
            started: now,
            used: 0,
            used_at: now,
        });
        win.used_at = now;
        if now.duration_since(win.started) >= Duration::from_secs(60) {
            win.started = now;
            win.used = 0;
        }
        if win.used < limit {
            win.used += 1;
            Ok(())
        } else {
            let left = Duration::from_secs(60).saturating_sub(now.duration_since(win.started));
            Err(Duration::from_secs(left.as_secs().max(1)))
        }
    }

    /// Forgets throttle state for one partition, or all when `None`.
    pub fn reset_throttles(&self, partition: Option<&str>) {
        let keep = |k: &BucketKey| partition.is_some_and(|p| k.1 != p);
        self.inner
            .buckets
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|k, _| keep(k));
        self.inner
            .windows
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|k, _| keep(k));
    }

    /// Where the id stream stands: the seed it was last (re)seeded with and
    /// how many ids were drawn since (what a snapshot records).
    pub fn id_stream(&self) -> (u64, u64) {
        let f = self.inner.faults.lock().unwrap_or_else(|e| e.into_inner());
        (f.rng_seed, f.ids_drawn)
    }

    /// Moves the id stream past a restored snapshot's: reseeds it from the
    /// snapshot's `(seed, drawn)` mixed together, so the ids made after a
    /// restore are not the ones the snapshotted mock made (which a restored
    /// mock started with the same seed would otherwise repeat).
    pub fn reseed_ids(&self, (seed, drawn): (u64, u64)) {
        // splitmix64 of the pair: a different stream for every position.
        let mut z = seed ^ drawn.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        let next = z ^ (z >> 31);
        let mut f = self.inner.faults.lock().unwrap_or_else(|e| e.into_inner());
        f.rng = StdRng::seed_from_u64(next);
        f.rng_seed = next;
        f.ids_drawn = 0;
    }

    /// A random lowercase hex string of `len` characters (ids, request ids).
    pub fn hex_id(&self, len: usize) -> String {
        let mut f = self.inner.faults.lock().unwrap_or_else(|e| e.into_inner());
        f.ids_drawn = f.ids_drawn.wrapping_add(1);
        (0..len)
            .map(|_| char::from_digit(f.rng.random_range(0..16u32), 16).unwrap_or('0'))
            .collect()
    }
}

/// One live resource, as `GET /_mock/resources` lists it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ResourceView {
    /// The cloud.
    pub cloud: Cloud,
    /// The partition: account, subscription or project.
    pub partition: String,
    /// The kind: `instance`, `publicIPAddress`, `networkInterface`, `disk`,
    /// `virtualMachine`, `resourceGroup`, `virtualNetwork`, ...
    pub kind: String,
    /// The cloud's id (instance id, ARM id, numeric GCE id).
    pub id: String,
    /// The name (ARM and GCE name; EC2 instance id).
    pub name: String,
    /// The cloud's state string (`running`, `Succeeded`, `RUNNING`).
    pub state: String,
    /// Tags or labels.
    pub tags: BTreeMap<String, String>,
    /// Creation time, RFC 3339.
    pub created: String,
    /// For a VM, the path of its instance-metadata service under
    /// [`crate::MockCloud::imds_url`]: `/_imds/aws/{instance-id}`,
    /// `/_imds/gcp/{project}/{zone}/{name}` or `/_imds/azure/{vmId}`, so a
    /// test or an in-process agent finds each VM's metadata from the
    /// listing alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata_path: Option<String>,
    /// For a VM: `spot` or `on_demand`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity_type: Option<String>,
    /// For a VM: EC2 availability zone, GCE zone, ARM location.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// For a VM: EC2 instance type, GCE machine type, ARM vmSize.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_type: Option<String>,
}

/// Set by a cloud module on its response so the journal and stats know the
/// cloud's own operation name.
#[derive(Debug, Clone)]
pub struct OperationName(pub String);

/// Set by a cloud module on a response to ask the server to drop the
/// connection instead of sending it (the `reset` fault).
#[derive(Debug, Clone, Copy)]
pub struct DropConnection;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob_match("*", "anything"));
        assert!(glob_match("vm-*", "vm-123"));
        assert!(!glob_match("vm-*", "nic-123"));
        assert!(glob_match("a?c", "abc"));
        assert!(glob_match("*-nic", "w1-nic"));
        assert!(!glob_match("", "x"));
    }

    #[test]
    fn count_rules_run_out_and_first_match_wins() {
        let ctx = Ctx::new(1);
        let rules: Vec<FaultRule> = serde_json::from_str(
            r#"[{"cloud":"aws","operation":"RunInstances","count":2,"effect":{"kind":"throttle","retry_after_s":2}},
                {"cloud":"aws","operation":"*","effect":{"kind":"latency","ms":5}}]"#,
        )
        .unwrap();
        ctx.set_faults(rules).unwrap();
        let t = FaultEffect::Throttle { retry_after_s: 2 };
        assert_eq!(
            ctx.fault(Cloud::Aws, "RunInstances", "i-1"),
            Some(t.clone())
        );
        assert_eq!(ctx.fault(Cloud::Aws, "RunInstances", "i-1"), Some(t));
        assert_eq!(
            ctx.fault(Cloud::Aws, "RunInstances", "i-1"),
            Some(FaultEffect::Latency { ms: 5 })
        );
        assert_eq!(ctx.fault(Cloud::Gcp, "RunInstances", "i-1"), None);
        assert_eq!(ctx.faults()[0].count, Some(0));
    }

    #[test]
    fn invalid_rules_are_refused() {
        let ctx = Ctx::new(1);
        let bad = FaultRule {
            cloud: Cloud::Azure,
            operation: "*".into(),
            resource: None,
            count: None,
            probability: Some(2.0),
            effect: FaultEffect::Hang,
        };
        assert!(ctx
            .set_faults(vec![bad])
            .unwrap_err()
            .contains("probability"));
    }

    #[test]
    fn buckets_and_windows() {
        let ctx = Ctx::new(1);
        for _ in 0..3 {
            ctx.take_token(Cloud::Aws, "acct", "mutating", 0.001, 3.0)
                .unwrap();
        }
        assert!(ctx
            .take_token(Cloud::Aws, "acct", "mutating", 0.001, 3.0)
            .is_err());
        assert!(ctx
            .take_token(Cloud::Aws, "other", "mutating", 0.001, 3.0)
            .is_ok());
        ctx.take_window(Cloud::Gcp, "p", "read", 1).unwrap();
        assert!(ctx.take_window(Cloud::Gcp, "p", "read", 1).is_err());
        ctx.reset_throttles(Some("p"));
        assert!(ctx.take_window(Cloud::Gcp, "p", "read", 1).is_ok());
    }
}
