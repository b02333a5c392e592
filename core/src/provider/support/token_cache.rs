//! [`TokenCache`]: one bearer token with its expiry, refreshed ahead of it
//! (a margin), by one caller at a time (single flight: concurrent callers
//! wait for that refresh instead of each asking the identity endpoint), and
//! under a timeout, so a hung identity endpoint fails the calls that need a
//! new token, each after the timeout, rather than every call forever.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;
use tokio::sync::Mutex;

use super::secret::Secret;
use crate::clock::{Clock, SystemClock};
use crate::error::{Error, ErrorKind, Result};

/// A bearer token and when it expires (`None`: never, as a fixed token).
#[derive(Debug, Clone, PartialEq)]
pub struct Token {
    /// The token.
    pub secret: Secret,
    /// When it stops being accepted.
    pub expires_at: Option<OffsetDateTime>,
}

/// A cached token (see the module doc).
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
/// use std::time::Duration;
/// use skyfleet_core::provider::support::{Secret, Token, TokenCache};
/// let cache = TokenCache::new(Duration::from_secs(300), Duration::from_secs(30));
/// let t = cache
///     .get(|| async { Ok(Token { secret: Secret::new("t1"), expires_at: None }) })
///     .await
///     .unwrap();
/// assert_eq!(t.expose(), "t1");
/// # });
/// ```
pub struct TokenCache {
    margin: Duration,
    timeout: Duration,
    clock: Arc<dyn Clock>,
    cached: Mutex<Option<Token>>,
}

impl std::fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenCache")
            .field("margin", &self.margin)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl TokenCache {
    /// A cache that refreshes a token `margin` before it expires, each
    /// refresh (waiting for another caller's included) bounded by `timeout`.
    pub fn new(margin: Duration, timeout: Duration) -> Self {
        TokenCache {
            margin,
            timeout,
            clock: Arc::new(SystemClock),
            cached: Mutex::new(None),
        }
    }

    /// Reads expiry against `clock` instead of the system clock.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The cached token, or a fresh one from `fetch` when there is none or
    /// it expires within the margin. Past the timeout (the identity endpoint
    /// hangs, or another caller's refresh does), an error of kind
    /// [`ErrorKind::Timeout`] with code `TokenRefreshTimeout`; the next call
    /// tries again.
    pub async fn get<F, Fut>(&self, fetch: F) -> Result<Secret>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Token>>,
    {
        let refresh = async {
            let mut cached = self.cached.lock().await;
            if let Some(t) = cached.as_ref() {
                if self.is_fresh(t) {
                    return Ok(t.secret.clone());
                }
            }
            let token = fetch().await?;
            let secret = token.secret.clone();
            *cached = Some(token);
            Ok(secret)
        };
        match tokio::time::timeout(self.timeout, refresh).await {
            Ok(r) => r,
            Err(_) => Err(Error::new(
                ErrorKind::Timeout,
                format!(
                    "no token within {} ms: the identity endpoint does not answer",
                    self.timeout.as_millis()
                ),
            )
            .with_code("TokenRefreshTimeout")),
        }
    }

    /// Forgets the cached token (after a 401), so the next call fetches one.
    pub async fn invalidate(&self) {
        *self.cached.lock().await = None;
    }

    fn is_fresh(&self, token: &Token) -> bool {
        token
            .expires_at
            .is_none_or(|at| at - self.clock.now() > self.margin)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;
    use crate::clock::TokioClock;

    fn cache() -> (TokenCache, TokioClock) {
        let clock = TokioClock::new();
        let cache = TokenCache::new(Duration::from_secs(300), Duration::from_secs(10))
            .with_clock(Arc::new(clock));
        (cache, clock)
    }

    #[tokio::test(start_paused = true)]
    async fn cached_until_the_margin_then_refreshed() {
        let (cache, clock) = cache();
        let fetches = AtomicU32::new(0);
        let fetch = || async {
            let n = fetches.fetch_add(1, Ordering::SeqCst) + 1;
            Ok(Token {
                secret: Secret::new(format!("t{n}")),
                expires_at: Some(clock.now() + Duration::from_secs(3600)),
            })
        };
        assert_eq!(cache.get(fetch).await.unwrap().expose(), "t1");
        assert_eq!(cache.get(fetch).await.unwrap().expose(), "t1");
        // Within the margin of expiry: refreshed.
        tokio::time::advance(Duration::from_secs(3600 - 299)).await;
        assert_eq!(cache.get(fetch).await.unwrap().expose(), "t2");
        cache.invalidate().await;
        assert_eq!(cache.get(fetch).await.unwrap().expose(), "t3");
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_callers_share_one_refresh() {
        let (cache, clock) = cache();
        let fetches = AtomicU32::new(0);
        let fetch = || async {
            fetches.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_secs(1)).await;
            Ok(Token {
                secret: Secret::new("t"),
                expires_at: Some(clock.now() + Duration::from_secs(3600)),
            })
        };
        let (a, b, c) = tokio::join!(cache.get(fetch), cache.get(fetch), cache.get(fetch));
        assert!(a.is_ok() && b.is_ok() && c.is_ok());
        assert_eq!(fetches.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_hung_endpoint_fails_the_call_not_every_call() {
        let (cache, _clock) = cache();
        let hung = || std::future::pending::<Result<Token>>();
        let e = cache.get(hung).await.unwrap_err();
        assert_eq!(e.kind(), &ErrorKind::Timeout);
        assert_eq!(e.code(), Some("TokenRefreshTimeout"));
        // The next call is not stuck behind the hung one.
        let t = cache
            .get(|| async {
                Ok(Token {
                    secret: Secret::new("ok"),
                    expires_at: None,
                })
            })
            .await
            .unwrap();
        assert_eq!(t.expose(), "ok");
    }

    #[tokio::test]
    async fn fetch_errors_pass_through() {
        let (cache, _clock) = cache();
        let e = cache
            .get(|| async { Err(Error::new(ErrorKind::Unauthenticated, "bad secret")) })
            .await
            .unwrap_err();
        assert_eq!(e.kind(), &ErrorKind::Unauthenticated);
    }
}
