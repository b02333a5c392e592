//! In-memory state, partitioned by project so parallel tests using
//! different projects never see each other, and `reset` can clear one.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, RwLock};
use std::time::Instant;

use super::instances::Instance;
use super::operations::Operation;

/// One project's instances, operations and seen request ids.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub(crate) struct Project {
    /// Instances by zone, then by name (ordered: lists page by name).
    pub zones: HashMap<String, BTreeMap<String, Instance>>,
    /// Operations by name (the name shared with `order` and `request_ids`).
    pub operations: HashMap<Arc<str>, Operation>,
    /// `requestId` -> the name of the operation it created.
    pub request_ids: HashMap<String, Arc<str>>,
    /// Operation names (and their request ids) oldest first, to forget the
    /// oldest beyond `GceConfig::operation_limit`.
    order: VecDeque<(Arc<str>, Option<String>)>,
}

impl Project {
    /// Records an operation (and the request id that created it), then
    /// forgets the oldest ones beyond `limit`, so no sequence of requests
    /// grows memory without bound (Compute keeps operations for a limited
    /// time too).
    pub(crate) fn add_operation(&mut self, op: Operation, request_id: Option<String>, limit: u32) {
        if let Some(rid) = &request_id {
            self.request_ids.insert(rid.clone(), Arc::clone(&op.name));
        }
        self.order.push_back((Arc::clone(&op.name), request_id));
        self.operations.insert(Arc::clone(&op.name), op);
        let limit = usize::try_from(limit).unwrap_or(usize::MAX).max(1);
        // `order` may also hold names already dropped (a preemption's
        // operation ended early): forgetting them is a no-op.
        while self.order.len() > limit {
            if let Some((name, rid)) = self.order.pop_front() {
                self.operations.remove(&name);
                if let Some(rid) = rid {
                    self.request_ids.remove(&rid);
                }
            }
        }
    }

    /// How many more instances fit under `limit` (the `INSTANCES` quota) at
    /// `now`. Counting walks the instances only when the stored ones come
    /// near the limit; it then forgets the deleted ones, so the store never
    /// holds more than `limit` instances plus one request's worth (a
    /// deleted instance in its list-lag window may so leave lists early).
    pub(crate) fn room(&mut self, now: Instant, limit: u32, wanted: usize) -> usize {
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        let stored: usize = self.zones.values().map(BTreeMap::len).sum();
        if stored.saturating_add(wanted) <= limit {
            return limit - stored;
        }
        for zone in self.zones.values_mut() {
            zone.retain(|_, i| i.live(now));
        }
        self.zones.retain(|_, z| !z.is_empty());
        let live: usize = self.zones.values().map(BTreeMap::len).sum();
        limit.saturating_sub(live)
    }

    /// The live instance `name` in `zone`.
    pub(crate) fn instance(&self, zone: &str, name: &str, now: Instant) -> Option<&Instance> {
        self.zones
            .get(zone)
            .and_then(|z| z.get(name))
            .filter(|i| i.live(now))
    }

    /// The live instance `name` in `zone`, for a change.
    pub(crate) fn instance_mut(
        &mut self,
        zone: &str,
        name: &str,
        now: Instant,
    ) -> Option<&mut Instance> {
        self.zones
            .get_mut(zone)
            .and_then(|z| z.get_mut(name))
            .filter(|i| i.live(now))
    }
}

/// Every project.
#[derive(Debug, Default)]
pub(crate) struct Store {
    projects: RwLock<HashMap<String, Project>>,
}

impl Store {
    /// Runs `f` on the project under a shared lock (`None` if it has no state).
    pub(crate) fn read<R>(&self, project: &str, f: impl FnOnce(Option<&Project>) -> R) -> R {
        let guard = self.projects.read().unwrap_or_else(|e| e.into_inner());
        f(guard.get(project))
    }

    /// Runs `f` on the project (created if needed) under the write lock.
    pub(crate) fn write<R>(&self, project: &str, f: impl FnOnce(&mut Project) -> R) -> R {
        let mut guard = self.projects.write().unwrap_or_else(|e| e.into_inner());
        f(guard.entry(project.to_string()).or_default())
    }

    /// Runs `f` on every project under a shared lock.
    pub(crate) fn each<R>(&self, f: impl FnMut((&String, &Project)) -> R) -> Vec<R> {
        let guard = self.projects.read().unwrap_or_else(|e| e.into_inner());
        guard.iter().map(f).collect()
    }

    /// Replaces every project at once (a snapshot restore).
    pub(crate) fn replace_all(&self, projects: HashMap<String, Project>) {
        *self.projects.write().unwrap_or_else(|e| e.into_inner()) = projects;
    }

    /// Forgets one project, or all.
    pub(crate) fn clear(&self, project: Option<&str>) {
        let mut guard = self.projects.write().unwrap_or_else(|e| e.into_inner());
        match project {
            Some(p) => {
                guard.remove(p);
            }
            None => guard.clear(),
        }
    }
}
