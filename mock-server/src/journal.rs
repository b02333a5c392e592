//! Request accounting: counts per (cloud, operation, status) for
//! `GET /_mock/stats`, a bounded ring of recent requests for
//! `GET /_mock/requests`, and the live feed of those requests for
//! `GET /_mock/events` (see [`crate::ui::feed`]).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use serde::Serialize;

use crate::ui::feed::{Feed, FeedEvent, Subscription, TooManyClients};

/// How many requests the journal keeps; older ones are forgotten.
pub const JOURNAL_CAPACITY: usize = 2000;

/// Longest path kept in a journal entry (longer ones are cut).
const MAX_PATH: usize = 256;

/// One request, as `GET /_mock/requests` lists it.
#[derive(Debug, Clone, Serialize)]
pub struct JournalEntry {
    /// Increasing sequence number, starting at 1.
    pub seq: u64,
    /// When the answer was sent, RFC 3339.
    pub time: String,
    /// HTTP method.
    pub method: String,
    /// Request path (without the query), cut to 256 characters.
    pub path: String,
    /// `aws`, `azure` or `gcp` (the control API is not recorded).
    pub cloud: &'static str,
    /// The cloud's own operation name, `unrouted` when no cloud handler
    /// named one (unknown paths, bodies over the limit).
    pub operation: String,
    /// HTTP status answered (0 when the connection was dropped).
    pub status: u16,
    /// Time spent answering, in milliseconds.
    pub ms: f64,
}

/// One row of `GET /_mock/stats`.
#[derive(Debug, Clone, Serialize)]
pub struct StatRow {
    /// Cloud name.
    pub cloud: &'static str,
    /// Operation name.
    pub operation: String,
    /// HTTP status.
    pub status: u16,
    /// Number of requests.
    pub count: u64,
}

/// The body of `GET /_mock/stats`.
#[derive(Debug, Clone, Serialize)]
pub struct Stats {
    /// Requests recorded since start.
    pub total: u64,
    /// Requests per cloud.
    pub by_cloud: BTreeMap<&'static str, u64>,
    /// Requests per cloud, operation and status, sorted.
    pub operations: Vec<StatRow>,
}

/// Stats and journal behind one lock (one short critical section per
/// request).
#[derive(Default)]
pub struct Recorder {
    inner: Mutex<RecorderInner>,
    feed: Feed,
}

#[derive(Default)]
struct RecorderInner {
    next_seq: u64,
    total: u64,
    counts: HashMap<(&'static str, String, u16), u64>,
    ring: VecDeque<JournalEntry>,
}

impl Recorder {
    /// Records one answered request.
    pub fn record(
        &self,
        method: &str,
        path: &str,
        cloud: &'static str,
        operation: &str,
        status: u16,
        ms: f64,
    ) {
        let time = crate::now_rfc3339();
        let mut path = path.to_string();
        if path.len() > MAX_PATH {
            let mut cut = MAX_PATH;
            while !path.is_char_boundary(cut) {
                cut -= 1;
            }
            path.truncate(cut);
        }
        let mut r = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        r.next_seq += 1;
        r.total += 1;
        *r.counts
            .entry((cloud, operation.to_string(), status))
            .or_insert(0) += 1;
        let seq = r.next_seq;
        if r.ring.len() >= JOURNAL_CAPACITY {
            r.ring.pop_front();
        }
        let entry = JournalEntry {
            seq,
            time,
            method: method.to_string(),
            path,
            cloud,
            operation: operation.to_string(),
            status,
            ms,
        };
        // Published under the lock, so every client sees entries in
        // sequence order; publishing never waits.
        self.feed
            .publish(|| FeedEvent::Request(Arc::new(entry.clone())));
        r.ring.push_back(entry);
    }

    /// Subscribes to the live feed. Answers the sequence number of the last
    /// entry recorded before the subscription: every later entry comes
    /// through the subscription, so `since(that)` plus the feed misses
    /// nothing.
    pub fn subscribe(&self) -> Result<(u64, Subscription), TooManyClients> {
        let r = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let sub = self.feed.subscribe()?;
        Ok((r.next_seq, sub))
    }

    /// The live feed (for control events and its counters).
    pub fn feed(&self) -> &Feed {
        &self.feed
    }

    /// Journal entries with a sequence number above `since`, oldest first.
    pub fn since(&self, since: u64) -> Vec<JournalEntry> {
        let r = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        r.ring.iter().filter(|e| e.seq > since).cloned().collect()
    }

    /// Counts so far.
    pub fn stats(&self) -> Stats {
        let r = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let mut by_cloud = BTreeMap::new();
        let mut operations: Vec<StatRow> = r
            .counts
            .iter()
            .map(|((cloud, op, status), n)| {
                *by_cloud.entry(*cloud).or_insert(0) += n;
                StatRow {
                    cloud,
                    operation: op.clone(),
                    status: *status,
                    count: *n,
                }
            })
            .collect();
        operations.sort_by(|a, b| {
            (a.cloud, &a.operation, a.status).cmp(&(b.cloud, &b.operation, b.status))
        });
        Stats {
            total: r.total,
            by_cloud,
            operations,
        }
    }

    /// Forgets counts and journal.
    // Read by the tests (with the `testing` feature) only.
    #[cfg_attr(not(feature = "testing"), allow(dead_code))]
    pub fn clear(&self) {
        let mut r = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        r.total = 0;
        r.counts.clear();
        r.ring.clear();
    }
}
