//! What the agent's tests share: a stub manager implementing the four
//! worker endpoints with the protocol types, and bounded waits.

#![allow(dead_code)]

pub mod manager;

use std::time::{Duration, Instant};

/// Polls `cond` every 50 ms until it holds; panics with `what` after
/// `limit`.
pub async fn wait_for(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
