//! The live feed behind `/_mock/events`: every journal entry and every
//! change made through the control API, fanned out to the connected
//! dashboards.
//!
//! Memory stays bounded whatever the clients do: at most [`MAX_CLIENTS`]
//! streams at once, each with a buffer of [`CLIENT_BUFFER`] events. A client
//! that does not keep up fills its buffer and is dropped (its stream ends
//! once the buffer is drained); it reconnects and fetches what it missed from
//! `/_mock/requests?since=SEQ`. Publishing never waits for a client.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::mpsc::{self, Receiver, Sender};

use crate::journal::JournalEntry;

/// Most live event streams at once.
pub const MAX_CLIENTS: usize = 32;
/// Events buffered per client; a client this far behind is dropped.
pub const CLIENT_BUFFER: usize = 256;
/// Longest control path kept in a [`FeedEvent::Control`].
const MAX_PATH: usize = 128;

/// One event of the feed.
#[derive(Debug, Clone)]
pub enum FeedEvent {
    /// A cloud request was answered (and journaled).
    Request(Arc<JournalEntry>),
    /// A control call changed something (faults, config, a reset).
    Control {
        /// HTTP method.
        method: String,
        /// The control path, e.g. `/_mock/faults`.
        path: String,
    },
}

impl FeedEvent {
    /// A control event, with the path cut to a sane length.
    pub fn control(method: &str, path: &str) -> FeedEvent {
        let mut end = path.len().min(MAX_PATH);
        while !path.is_char_boundary(end) {
            end -= 1;
        }
        FeedEvent::Control {
            method: method.to_string(),
            path: path[..end].to_string(),
        }
    }
}

/// The feed is full: [`MAX_CLIENTS`] streams are open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooManyClients;

/// The fan-out to connected clients.
#[derive(Default)]
pub struct Feed {
    clients: Mutex<Vec<Sender<FeedEvent>>>,
    live: Arc<AtomicUsize>,
    dropped_slow: AtomicU64,
}

impl Feed {
    /// A new subscription, or [`TooManyClients`]. A subscription counts
    /// until it is dropped (its stream closed), even after the feed has
    /// stopped sending to it.
    pub fn subscribe(&self) -> Result<Subscription, TooManyClients> {
        let taken = self
            .live
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < MAX_CLIENTS).then_some(n + 1)
            });
        if taken.is_err() {
            return Err(TooManyClients);
        }
        let live = LiveSlot(self.live.clone());
        let (tx, rx) = mpsc::channel(CLIENT_BUFFER);
        self.clients
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(tx);
        Ok(Subscription { rx, _live: live })
    }

    /// Sends an event to every client without waiting; `make` runs only
    /// when someone listens. Clients whose buffer is full are dropped.
    pub fn publish(&self, make: impl FnOnce() -> FeedEvent) {
        let mut clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        if clients.is_empty() {
            return;
        }
        let event = make();
        let before = clients.len();
        let mut slow = 0u64;
        clients.retain(|tx| match tx.try_send(event.clone()) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) => {
                slow += 1;
                false
            }
            Err(TrySendError::Closed(_)) => false,
        });
        if slow > 0 {
            self.dropped_slow.fetch_add(slow, Ordering::Relaxed);
            tracing::warn!(
                dropped = slow,
                clients = before,
                buffer = CLIENT_BUFFER,
                "event stream client too slow: dropped"
            );
        }
    }

    /// Streams open now.
    // Read by the tests (with the `testing` feature) only.
    #[cfg_attr(not(feature = "testing"), allow(dead_code))]
    pub fn clients(&self) -> usize {
        self.live.load(Ordering::Acquire)
    }

    /// Clients dropped so far because they fell [`CLIENT_BUFFER`] events
    /// behind.
    #[cfg_attr(not(feature = "testing"), allow(dead_code))]
    pub fn dropped_slow(&self) -> u64 {
        self.dropped_slow.load(Ordering::Relaxed)
    }
}

/// Releases a client slot when its subscription is dropped.
struct LiveSlot(Arc<AtomicUsize>);

impl Drop for LiveSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// One client's end of the feed.
pub struct Subscription {
    rx: Receiver<FeedEvent>,
    _live: LiveSlot,
}

impl Subscription {
    /// The next event; `None` once the feed has dropped this client and its
    /// buffer is drained.
    pub async fn recv(&mut self) -> Option<FeedEvent> {
        self.rx.recv().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(i: usize) -> FeedEvent {
        FeedEvent::control("PUT", &format!("/_mock/{i}"))
    }

    #[tokio::test]
    async fn a_client_that_does_not_read_is_dropped_and_its_buffer_is_bounded() {
        let feed = Feed::default();
        let mut slow = feed.subscribe().unwrap();
        let mut fast = feed.subscribe().unwrap();
        let mut fast_got = 0;
        for i in 0..CLIENT_BUFFER * 4 {
            feed.publish(|| ev(i));
            // The fast client reads as it goes.
            while let Ok(e) = fast.rx.try_recv() {
                assert!(matches!(e, FeedEvent::Control { .. }));
                fast_got += 1;
            }
        }
        assert_eq!(fast_got, CLIENT_BUFFER * 4);
        assert_eq!(feed.dropped_slow(), 1);
        // The slow one keeps what fitted, then its stream ends.
        let mut slow_got = 0;
        while slow.recv().await.is_some() {
            slow_got += 1;
        }
        assert_eq!(slow_got, CLIENT_BUFFER);
        assert_eq!(feed.clients(), 2, "a dropped client holds its slot until it closes");
        drop(slow);
        assert_eq!(feed.clients(), 1);
    }

    #[test]
    fn at_most_max_clients_and_slots_come_back() {
        let feed = Feed::default();
        let subs: Vec<_> = (0..MAX_CLIENTS).map(|_| feed.subscribe().unwrap()).collect();
        assert_eq!(feed.subscribe().err(), Some(TooManyClients));
        drop(subs);
        assert_eq!(feed.clients(), 0);
        let _again = feed.subscribe().unwrap();
        // Closed receivers are forgotten on the next publish.
        feed.publish(|| ev(0));
        assert_eq!(feed.clients.lock().unwrap().len(), 1);
    }

    #[test]
    fn nothing_is_built_without_clients() {
        let feed = Feed::default();
        feed.publish(|| panic!("no client listens: the event must not be built"));
    }
}
