//! [`ConcurrencyLayer`]: at most N calls in flight per key, shared by every
//! clone.
//!
//! A rate limit bounds how often calls start, not how many are outstanding;
//! when a cloud slows down, calls pile up. A semaphore per key caps that pile
//! (and so the sockets and memory one slow account or region can hold), and
//! because it is per key one cloud's slowness cannot starve another's calls.
//! Like tower's `GlobalConcurrencyLimitLayer`, cloning shares the semaphores.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tower::{Layer, Service, ServiceExt};

use super::key::{Key, KeyMap, RequestExt};
use crate::{Error, ErrorKind};

#[derive(Debug)]
struct Shared {
    max: usize,
    semaphores: Mutex<KeyMap<Arc<Semaphore>>>,
}

impl Shared {
    fn semaphore(&self, key: &Key) -> Arc<Semaphore> {
        let mut map = self
            .semaphores
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        map.entry(key.clone())
            .or_insert_with(|| Arc::new(Semaphore::new(self.max)))
            .clone()
    }
}

/// Limits the calls in flight per key to `max`.
#[derive(Debug, Clone)]
pub struct ConcurrencyLayer {
    shared: Arc<Shared>,
}

impl ConcurrencyLayer {
    /// A layer admitting `max` concurrent calls per key.
    pub fn new(max: usize) -> Self {
        ConcurrencyLayer {
            shared: Arc::new(Shared {
                max,
                semaphores: Mutex::new(KeyMap::default()),
            }),
        }
    }

    /// Takes one of `key`'s permits now, or hands back its semaphore to
    /// queue on (see [`ConcurrencyLayer::acquire`]).
    pub(crate) fn try_acquire(&self, key: &Key) -> Result<OwnedSemaphorePermit, Arc<Semaphore>> {
        let sem = self.shared.semaphore(key);
        ConcurrencyLayer::try_acquire_on(&sem).ok_or(sem)
    }

    /// `key`'s semaphore, for callers that cache it per key.
    pub(crate) fn semaphore(&self, key: &Key) -> Arc<Semaphore> {
        self.shared.semaphore(key)
    }

    /// Takes a permit of `sem` now if one is free. This cannot overtake
    /// queued callers: tokio hands released permits to waiters first.
    pub(crate) fn try_acquire_on(sem: &Arc<Semaphore>) -> Option<OwnedSemaphorePermit> {
        sem.clone().try_acquire_owned().ok()
    }

    /// Queues for a permit of `sem` (fairly: tokio serves waiters in order).
    pub(crate) async fn acquire(sem: Arc<Semaphore>) -> Result<OwnedSemaphorePermit, Error> {
        sem.acquire_owned()
            .await
            .map_err(|_| Error::new(ErrorKind::Internal, "concurrency semaphore closed"))
    }

    /// The permits of `key` not in use now.
    pub fn available(&self, key: &Key) -> usize {
        self.shared.semaphore(key).available_permits()
    }
}

impl<S> Layer<S> for ConcurrencyLayer {
    type Service = Concurrency<S>;
    fn layer(&self, inner: S) -> Concurrency<S> {
        Concurrency {
            inner,
            shared: self.shared.clone(),
        }
    }
}

/// The service of [`ConcurrencyLayer`].
#[derive(Debug, Clone)]
pub struct Concurrency<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S> Service<Request<Bytes>> for Concurrency<S>
where
    S: Service<Request<Bytes>, Response = Response<Bytes>, Error = Error> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response<Bytes>;
    type Error = Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Bytes>, Error>> + Send + 'static>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        // The semaphore depends on the request's key: acquired in `call`.
        // The inner service's readiness is passed on so that `call` may use
        // it at once when a permit is free.
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<Bytes>) -> Self::Future {
        // Fast path (a permit is free): call the ready inner service now.
        // Only a caller that must queue clones the inner service, as
        // `RateLimit` does. `try_acquire` cannot overtake queued callers:
        // tokio hands released permits to waiters first.
        let layer = ConcurrencyLayer {
            shared: self.shared.clone(),
        };
        match layer.try_acquire(&req.transport_key()) {
            Ok(permit) => {
                let fut = self.inner.call(req);
                Box::pin(async move {
                    let _permit = permit;
                    fut.await
                })
            }
            Err(sem) => {
                let inner = self.inner.clone();
                Box::pin(async move {
                    let _permit = ConcurrencyLayer::acquire(sem).await?;
                    inner.oneshot(req).await
                })
            }
        }
    }
}
