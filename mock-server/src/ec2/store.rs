//! EC2's in-memory state: the instances, ClientTokens, launch templates and
//! volumes of each account in each region, one lock per partition.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use super::instances::{Instance, State};
use super::Caller;

/// (account, region).
type PartitionKey = (String, String);

/// A partition and when a request last used it.
#[derive(Debug)]
struct Entry {
    partition: Arc<Mutex<Partition>>,
    used_at: Mutex<Instant>,
}

impl Entry {
    fn touch(&self) -> Arc<Mutex<Partition>> {
        *self.used_at.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
        self.partition.clone()
    }

    fn used_at(&self) -> Instant {
        *self.used_at.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Every partition, created on first launch. At most
/// [`MAX_ENTRIES`](crate::bounded::MAX_ENTRIES) (one per access key and
/// region): a new one evicts the partition idle longest, so callers
/// inventing access keys cannot grow the mock without bound.
#[derive(Debug, Default)]
pub struct Store {
    partitions: RwLock<HashMap<PartitionKey, Entry>>,
}

impl Store {
    /// The caller's partition, if it has launched anything.
    pub fn partition(&self, caller: &Caller) -> Option<Arc<Mutex<Partition>>> {
        self.partitions
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&(caller.account.clone(), caller.region.clone()))
            .map(Entry::touch)
    }

    /// The caller's partition, created if need be.
    pub fn partition_or_create(&self, caller: &Caller) -> Arc<Mutex<Partition>> {
        if let Some(p) = self.partition(caller) {
            return p;
        }
        let key = (caller.account.clone(), caller.region.clone());
        let mut map = self.partitions.write().unwrap_or_else(|e| e.into_inner());
        if !map.contains_key(&key) {
            crate::bounded::make_room(&mut map, crate::bounded::MAX_ENTRIES, Entry::used_at);
        }
        map.entry(key)
            .or_insert_with(|| Entry {
                partition: Arc::default(),
                used_at: Mutex::new(Instant::now()),
            })
            .touch()
    }

    /// How many partitions are kept.
    #[cfg(test)]
    fn partition_count(&self) -> usize {
        self.partitions
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .len()
    }

    /// Every partition with its account.
    pub fn all(&self) -> Vec<(String, Arc<Mutex<Partition>>)> {
        self.partitions
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|((account, _region), v)| (account.clone(), v.partition.clone()))
            .collect()
    }

    /// Every partition with its account and region.
    pub fn all_with_region(&self) -> Vec<(PartitionKey, Arc<Mutex<Partition>>)> {
        self.partitions
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(k, v)| (k.clone(), v.partition.clone()))
            .collect()
    }

    /// Replaces every partition at once (a snapshot restore).
    pub fn replace_all(&self, parts: Vec<(PartitionKey, Partition)>) {
        let now = Instant::now();
        let map = parts
            .into_iter()
            .map(|(k, p)| {
                let entry = Entry {
                    partition: Arc::new(Mutex::new(p)),
                    used_at: Mutex::new(now),
                };
                (k, entry)
            })
            .collect();
        *self.partitions.write().unwrap_or_else(|e| e.into_inner()) = map;
    }

    /// Keeps only the partitions of the accounts `keep` accepts.
    pub fn retain_accounts(&self, keep: impl Fn(&str) -> bool) {
        self.partitions
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|(account, _), _| keep(account));
    }
}

/// A launch's record for ClientToken idempotency.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct TokenEntry {
    /// Every parameter of the original request except the token.
    pub fingerprint: Vec<(String, String)>,
    /// The reservation it made.
    pub reservation_id: String,
    /// The instances it made.
    pub instance_ids: Vec<String>,
}

/// The instances, launch templates and volumes of one account in one
/// region.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct Partition {
    /// Instances by creation order.
    pub instances: BTreeMap<u64, Instance>,
    /// Instance id to creation order (rebuilt on restore).
    #[serde(skip)]
    pub by_id: HashMap<String, u64>,
    /// ClientToken to launch.
    pub tokens: HashMap<String, TokenEntry>,
    /// Next creation number.
    pub next_seq: u64,
    /// When gone instances were last swept out.
    #[serde(skip)]
    pub last_sweep: Option<Instant>,
    /// Launch templates.
    pub templates: super::templates::Templates,
    /// EBS volumes.
    pub volumes: super::volumes::Volumes,
    /// CreateFleet ClientTokens.
    pub fleet_tokens: super::fleets::FleetTokens,
}

impl Partition {
    /// The instance with this id, unless gone.
    pub fn get(&self, id: &str, now: Instant) -> Option<&Instance> {
        let seq = self.by_id.get(id)?;
        self.instances.get(seq).filter(|i| !i.seen(now).gone)
    }

    /// The instance with this id, mutable, unless gone.
    pub fn get_mut(&mut self, id: &str, now: Instant) -> Option<&mut Instance> {
        let seq = self.by_id.get(id)?;
        self.instances.get_mut(seq).filter(|i| !i.seen(now).gone)
    }

    /// Adds a new instance (its `seq` is assigned here).
    pub fn insert(&mut self, mut inst: Instance) {
        inst.seq = self.next_seq;
        self.next_seq += 1;
        self.by_id.insert(inst.id.clone(), inst.seq);
        self.instances.insert(inst.seq, inst);
    }

    /// Settles the volumes (`Volumes::settle`): an instance that is
    /// terminated or no longer kept has ended.
    pub fn settle_volumes(&mut self, now: Instant) {
        let (instances, by_id) = (&self.instances, &self.by_id);
        self.volumes.settle(now, |id| {
            by_id
                .get(id)
                .and_then(|seq| instances.get(seq))
                .is_none_or(|i| i.seen(now).state == State::Terminated)
        });
    }

    /// Instances that are not terminated.
    pub fn live_count(&self, now: Instant) -> usize {
        self.instances
            .values()
            .filter(|i| i.seen(now).state != State::Terminated)
            .count()
    }

    /// Removes instances past their describable time, and ClientTokens
    /// whose instances are all removed. Runs at most once a second.
    pub fn sweep(&mut self, now: Instant) {
        if self
            .last_sweep
            .is_some_and(|t| now.duration_since(t) < Duration::from_secs(1))
        {
            return;
        }
        self.last_sweep = Some(now);
        let gone: Vec<u64> = self
            .instances
            .values()
            .filter(|i| i.seen(now).gone)
            .map(|i| i.seq)
            .collect();
        if gone.is_empty() {
            return;
        }
        for seq in gone {
            if let Some(i) = self.instances.remove(&seq) {
                self.by_id.remove(&i.id);
            }
        }
        let by_id = &self.by_id;
        self.tokens
            .retain(|_, t| t.instance_ids.iter().any(|id| by_id.contains_key(id)));
    }
}

#[cfg(test)]
mod bound_tests {
    use super::*;
    use crate::bounded::MAX_ENTRIES;

    fn caller(i: usize) -> Caller {
        Caller {
            account: format!("{i:012}"),
            region: "us-east-1".into(),
        }
    }

    #[test]
    fn partitions_are_bounded_and_the_one_idle_longest_goes_first() {
        let store = Store::default();
        for i in 0..MAX_ENTRIES {
            store.partition_or_create(&caller(i));
        }
        // Account 0 is used again: account 1 is now the idle one.
        std::thread::sleep(Duration::from_millis(2));
        assert!(store.partition(&caller(0)).is_some());
        store.partition_or_create(&caller(MAX_ENTRIES));
        assert_eq!(store.partition_count(), MAX_ENTRIES);
        assert!(store.partition(&caller(0)).is_some(), "recently used, kept");
        assert!(store.partition(&caller(1)).is_none(), "idle longest, evicted");
        assert!(store.partition(&caller(MAX_ENTRIES)).is_some());
    }
}
