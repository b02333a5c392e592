//! Waiting for a fleet to reach a state: the one poll loop the demo and the
//! benchmarks share (provisioning until N run, teardown until all are final).

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

/// Calls `check` every `every` until it answers `true` or `limit` has
/// passed; returns the last answer (so `false` means the limit passed). An
/// error from `check` ends the wait and is returned.
pub async fn until<E, F, Fut>(limit: Duration, every: Duration, mut check: F) -> Result<bool, E>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<bool, E>>,
{
    let end = Instant::now() + limit;
    loop {
        if check().await? {
            return Ok(true);
        }
        if Instant::now() >= end {
            return Ok(false);
        }
        tokio::time::sleep(every).await;
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn stops_when_the_check_holds_or_at_the_limit() {
        let calls = Cell::new(0);
        let held = until::<(), _, _>(Duration::from_secs(10), Duration::from_secs(1), || {
            calls.set(calls.get() + 1);
            let n = calls.get();
            async move { Ok(n == 3) }
        })
        .await;
        assert_eq!((held, calls.get()), (Ok(true), 3));

        let start = Instant::now();
        let held = until::<(), _, _>(Duration::from_secs(5), Duration::from_secs(1), || async {
            Ok(false)
        })
        .await;
        assert_eq!(held, Ok(false));
        assert!(start.elapsed() >= Duration::from_secs(5));

        let err = until(Duration::from_secs(5), Duration::from_secs(1), || async {
            Err::<bool, _>("store down")
        })
        .await;
        assert_eq!(err, Err("store down"));
    }
}
