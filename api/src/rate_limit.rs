//! Rate limits per source: one GCRA limiter ([`governor`]) per endpoint,
//! keyed by [`Source`], whose state lives in a [`BoundedStore`] that never
//! holds more than a fixed number of sources.
//!
//! governor's own keyed stores grow with every new key until
//! `retain_recent` is called, and an attacker with many addresses (an IPv6
//! block is cheap) can make them grow between calls. [`BoundedStore`] caps
//! the map instead: when it is full, stale sources are dropped
//! (`retain_recent`, by the limiter that knows the time); if it is still
//! full, sources it does not know share one overflow bucket, so a flood of
//! new addresses throttles itself rather than growing memory or locking out
//! the workers already tracked.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock, Reference};
use governor::middleware::NoOpMiddleware;
use governor::nanos::Nanos;
use governor::state::keyed::ShrinkableKeyedStateStore;
use governor::state::StateStore;
use governor::{Quota, RateLimiter};

use crate::config::ApiConfig;

/// The longest `Retry-After` the API sends (a limiter never needs longer
/// than one cell's refill, but a huge burst or a tiny rate could ask for it).
pub(crate) const MAX_RETRY_AFTER_SECS: u64 = 3600;

/// Who a request is counted against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Source {
    /// An IPv4 address.
    V4(std::net::Ipv4Addr),
    /// The /64 network of an IPv6 address (one host usually holds a whole
    /// /64, so counting addresses would let it multiply its budget).
    V6Net(u64),
    /// Requests whose peer address is unknown (the router was mounted
    /// without `ConnectInfo`): one shared bucket.
    Unknown,
}

impl Source {
    /// The source of a request from `peer`, or [`Source::Unknown`].
    pub(crate) fn of(peer: Option<SocketAddr>) -> Source {
        match peer.map(|p| p.ip()) {
            None => Source::Unknown,
            Some(IpAddr::V4(v4)) => Source::V4(v4),
            Some(IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
                Some(v4) => Source::V4(v4),
                None => Source::V6Net(v6_network(v6)),
            },
        }
    }
}

/// The upper 64 bits of an IPv6 address.
fn v6_network(addr: Ipv6Addr) -> u64 {
    (u128::from(addr) >> 64) as u64
}

/// The inner state of a [`BoundedStore`].
#[derive(Debug)]
struct Inner<K> {
    /// Each tracked key's theoretical arrival time.
    map: HashMap<K, Nanos>,
    /// The shared state of keys that found the map full.
    overflow: Option<Nanos>,
}

/// A governor keyed state store that tracks at most `max` keys; keys that
/// arrive when it is full share one overflow state. Clones share the state
/// (the limiter owns one, its owner keeps another to ask about fullness).
#[derive(Debug)]
pub(crate) struct BoundedStore<K> {
    inner: Arc<Mutex<Inner<K>>>,
    max: usize,
}

impl<K> Clone for BoundedStore<K> {
    fn clone(&self) -> Self {
        BoundedStore {
            inner: Arc::clone(&self.inner),
            max: self.max,
        }
    }
}

impl<K: Hash + Eq + Clone> BoundedStore<K> {
    /// An empty store that holds at most `max` keys (at least 1).
    pub(crate) fn new(max: usize) -> Self {
        BoundedStore {
            inner: Arc::new(Mutex::new(Inner {
                map: HashMap::new(),
                overflow: None,
            })),
            max: max.max(1),
        }
    }

    /// Whether `key` would land in the overflow bucket now.
    pub(crate) fn is_full_for(&self, key: &K) -> bool {
        let inner = self.lock();
        !inner.map.contains_key(key) && inner.map.len() >= self.max
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner<K>> {
        // A panic while holding the lock cannot leave the map inconsistent
        // (every update is a single insert or assignment), so a poisoned
        // lock is still usable.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl<K: Hash + Eq + Clone> StateStore for BoundedStore<K> {
    type Key = K;

    fn measure_and_replace<T, F, E>(&self, key: &K, f: F) -> Result<T, E>
    where
        F: Fn(Option<Nanos>) -> Result<(T, Nanos), E>,
    {
        let mut inner = self.lock();
        let tracked = inner.map.contains_key(key);
        if tracked || inner.map.len() < self.max {
            let previous = inner.map.get(key).copied();
            let (result, next) = f(previous)?;
            inner.map.insert(key.clone(), next);
            Ok(result)
        } else {
            let (result, next) = f(inner.overflow)?;
            inner.overflow = Some(next);
            Ok(result)
        }
    }
}

impl<K: Hash + Eq + Clone> ShrinkableKeyedStateStore<K> for BoundedStore<K> {
    fn retain_recent(&self, drop_below: Nanos) {
        let mut inner = self.lock();
        inner.map.retain(|_, tat| *tat > drop_below);
        if inner.overflow.is_some_and(|tat| tat <= drop_below) {
            inner.overflow = None;
        }
    }

    fn shrink_to_fit(&self) {
        self.lock().map.shrink_to_fit();
    }

    fn len(&self) -> usize {
        self.lock().map.len()
    }

    fn is_empty(&self) -> bool {
        self.lock().map.is_empty()
    }
}

/// One endpoint's limiter.
pub(crate) struct Limiter<C: Clock = DefaultClock> {
    limiter: RateLimiter<Source, BoundedStore<Source>, C, NoOpMiddleware<C::Instant>>,
    /// The limiter's store, shared, to ask whether a source would overflow.
    store: BoundedStore<Source>,
    /// When stale sources were last dropped (a flood of new sources would
    /// otherwise sweep the whole map on every request).
    last_sweep: Mutex<Option<C::Instant>>,
}

impl<C: Clock> std::fmt::Debug for Limiter<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limiter")
            .field("tracked", &self.limiter.len())
            .finish()
    }
}

/// The shortest pause between two sweeps of stale sources.
const SWEEP_INTERVAL: Duration = Duration::from_millis(100);

impl Limiter<DefaultClock> {
    /// A limiter with `config`'s rate, burst and source bound on the real
    /// clock.
    pub(crate) fn new(config: &ApiConfig) -> Self {
        Limiter::with_clock(config, DefaultClock::default())
    }
}

impl<C: Clock> Limiter<C> {
    /// A limiter on `clock` (tests pass a fake one). Zero limits are raised
    /// to 1.
    pub(crate) fn with_clock(config: &ApiConfig, clock: C) -> Self {
        let rate = NonZeroU32::new(config.per_source_per_second).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(config.burst).unwrap_or(NonZeroU32::MIN);
        let quota = Quota::per_second(rate).allow_burst(burst);
        let store = BoundedStore::new(config.max_tracked_sources);
        Limiter {
            limiter: RateLimiter::new(quota, store.clone(), clock),
            store,
            last_sweep: Mutex::new(None),
        }
    }

    /// Counts one request from `source`: `Ok` when it may go on, `Err` with
    /// the whole seconds to wait (at least 1, at most
    /// [`MAX_RETRY_AFTER_SECS`]) when it may not.
    pub(crate) fn check(&self, source: Source) -> Result<(), u64> {
        // Full for a new source: drop the sources whose buckets are back to
        // fresh before it falls into the shared overflow bucket.
        if self.store.is_full_for(&source) && self.sweep_due() {
            self.limiter.retain_recent();
            self.limiter.shrink_to_fit();
        }
        match self.limiter.check_key(&source) {
            Ok(()) => Ok(()),
            Err(not_until) => {
                let wait: Duration = not_until.wait_time_from(self.limiter.clock().now());
                Err(retry_after_secs(wait))
            }
        }
    }

    /// Whether [`SWEEP_INTERVAL`] has passed since the last sweep (and if
    /// so, records this one).
    fn sweep_due(&self) -> bool {
        let now = self.limiter.clock().now();
        let mut last = self
            .last_sweep
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let due = match *last {
            None => true,
            Some(at) => Duration::from(now.duration_since(at)) >= SWEEP_INTERVAL,
        };
        if due {
            *last = Some(now);
        }
        due
    }

    /// How many sources the limiter tracks now.
    #[cfg(test)]
    pub(crate) fn tracked(&self) -> usize {
        self.limiter.len()
    }
}

/// A wait as whole seconds for `Retry-After`: rounded up, at least 1, at
/// most [`MAX_RETRY_AFTER_SECS`].
pub(crate) fn retry_after_secs(wait: Duration) -> u64 {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    secs.clamp(1, MAX_RETRY_AFTER_SECS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use governor::clock::FakeRelativeClock;
    use std::net::Ipv4Addr;

    fn v4(n: u32) -> Source {
        Source::V4(Ipv4Addr::from(n))
    }

    fn config(rate: u32, burst: u32, max: usize) -> ApiConfig {
        ApiConfig::default()
            .with_rate(rate, burst)
            .with_max_tracked_sources(max)
    }

    #[test]
    fn a_source_gets_its_burst_then_waits_for_the_refill() {
        let clock = FakeRelativeClock::default();
        let limiter = Limiter::with_clock(&config(1, 3, 10), clock.clone());
        for _ in 0..3 {
            assert_eq!(limiter.check(v4(1)), Ok(()));
        }
        assert_eq!(limiter.check(v4(1)), Err(1));
        // Another source has its own bucket.
        assert_eq!(limiter.check(v4(2)), Ok(()));
        clock.advance(Duration::from_millis(1001));
        assert_eq!(limiter.check(v4(1)), Ok(()));
        assert_eq!(limiter.check(v4(1)), Err(1));
    }

    #[test]
    fn the_map_never_outgrows_its_bound_and_new_sources_share_the_overflow() {
        let clock = FakeRelativeClock::default();
        let limiter = Limiter::with_clock(&config(1, 2, 4), clock.clone());
        for n in 0..4 {
            assert_eq!(limiter.check(v4(n)), Ok(()));
        }
        assert_eq!(limiter.tracked(), 4);
        // 1000 new sources, all within the same instant: the map stays at 4,
        // and the newcomers share one bucket of burst 2.
        let admitted = (100..1100)
            .filter(|n| limiter.check(v4(*n)).is_ok())
            .count();
        assert_eq!(limiter.tracked(), 4);
        assert_eq!(
            admitted, 2,
            "the overflow bucket has the burst of one source"
        );
        // The tracked sources keep their own budget.
        assert_eq!(limiter.check(v4(0)), Ok(()));
        // Once the tracked buckets are back to fresh, a sweep frees room.
        clock.advance(Duration::from_secs(5));
        assert_eq!(limiter.check(v4(5000)), Ok(()));
        assert!(limiter.tracked() <= 4);
        assert_eq!(limiter.tracked(), 1, "stale sources were dropped");
    }

    #[test]
    fn ipv6_sources_count_per_64_and_mapped_v4_as_v4() {
        let a: SocketAddr = "[2001:db8:1:2::1]:5".parse().unwrap();
        let b: SocketAddr = "[2001:db8:1:2:ffff::9]:6".parse().unwrap();
        let c: SocketAddr = "[2001:db8:1:3::1]:5".parse().unwrap();
        assert_eq!(Source::of(Some(a)), Source::of(Some(b)));
        assert_ne!(Source::of(Some(a)), Source::of(Some(c)));
        let mapped: SocketAddr = "[::ffff:10.0.0.1]:1".parse().unwrap();
        let plain: SocketAddr = "10.0.0.1:2".parse().unwrap();
        assert_eq!(Source::of(Some(mapped)), Source::of(Some(plain)));
        assert_eq!(Source::of(None), Source::Unknown);
    }

    #[test]
    fn retry_after_is_whole_clamped_seconds() {
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1001)), 2);
        assert_eq!(retry_after_secs(Duration::from_secs(2)), 2);
        assert_eq!(
            retry_after_secs(Duration::from_secs(1_000_000)),
            MAX_RETRY_AFTER_SECS
        );
    }
}
