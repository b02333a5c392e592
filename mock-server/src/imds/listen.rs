//! Per-VM metadata ports: google-auth's `GCE_METADATA_HOST` names a host,
//! not a URL, so a client that must find Compute Engine's metadata at
//! `http://HOST/computeMetadata/v1/` gets a plain-HTTP port of its own
//! serving one instance's metadata at `/` (`POST /_mock/imds/listen`).
//!
//! At most [`MAX_LISTENERS`] are open at once; they close on
//! `DELETE /_mock/imds/listen/{port}`, on reset (of the project, or all),
//! and when the mock stops. While the instance is gone or not running, a
//! connection is closed without an answer, as if nothing listened.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, Weak};

use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::gce::{self, Missing, VmKey};
use super::{segments, Imds};
use crate::ctx::DropConnection;

/// The most per-VM ports open at once.
pub const MAX_LISTENERS: usize = 64;

/// Why a port could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    /// [`MAX_LISTENERS`] are open.
    #[error("at most {MAX_LISTENERS} metadata ports may be open at once; close one (DELETE /_mock/imds/listen/PORT) or reset")]
    Full,
    /// The port could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
}

struct Entry {
    key: VmKey,
    shutdown: watch::Sender<()>,
    task: JoinHandle<()>,
}

impl Drop for Entry {
    fn drop(&mut self) {
        // Dropping `shutdown` wakes the accept loop and its connections.
        self.task.abort();
    }
}

/// The open per-VM ports, by port.
#[derive(Default)]
pub struct Listeners {
    open: Mutex<BTreeMap<u16, Entry>>,
}

impl Listeners {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u16, Entry>> {
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A port serving `key`'s metadata on `ip`: the one already open for
    /// it, or a new one.
    pub async fn open(&self, imds: &Arc<Imds>, key: VmKey, ip: IpAddr) -> Result<u16, ListenError> {
        if let Some(port) = self.port_of(&key) {
            return Ok(port);
        }
        if self.lock().len() >= MAX_LISTENERS {
            return Err(ListenError::Full);
        }
        let addr = SocketAddr::new(ip, 0);
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| ListenError::Bind { addr, source })?;
        let port = listener
            .local_addr()
            .map_err(|source| ListenError::Bind { addr, source })?
            .port();
        let mut open = self.lock();
        // Another request may have opened one for the same VM, or filled
        // the table, while this one was binding.
        if let Some((p, _)) = open.iter().find(|(_, e)| e.key == key) {
            return Ok(*p);
        }
        if open.len() >= MAX_LISTENERS {
            return Err(ListenError::Full);
        }
        let (shutdown, shutdown_rx) = watch::channel(());
        let router = vm_router(Arc::downgrade(imds), key.clone());
        let task = tokio::spawn(crate::serve::serve(
            listener,
            None,
            router,
            shutdown_rx,
            crate::serve::ServerLimits::default(),
        ));
        open.insert(
            port,
            Entry {
                key,
                shutdown,
                task,
            },
        );
        Ok(port)
    }

    fn port_of(&self, key: &VmKey) -> Option<u16> {
        self.lock()
            .iter()
            .find(|(_, e)| e.key == *key)
            .map(|(p, _)| *p)
    }

    /// Every open port with its instance.
    pub fn list(&self) -> Vec<(u16, VmKey)> {
        self.lock()
            .iter()
            .map(|(p, e)| (*p, e.key.clone()))
            .collect()
    }

    /// Closes `port`; false if it was not open.
    pub fn close_port(&self, port: u16) -> bool {
        let entry = self.lock().remove(&port);
        entry.is_some_and(|e| {
            let _ = e.shutdown.send(());
            true
        })
    }

    /// Closes the ports of `project`'s instances, or every port.
    pub fn close(&self, project: Option<&str>) {
        let closed: Vec<Entry> = {
            let mut open = self.lock();
            let ports: Vec<u16> = open
                .iter()
                .filter(|(_, e)| project.is_none_or(|p| e.key.project == p))
                .map(|(p, _)| *p)
                .collect();
            ports.iter().filter_map(|p| open.remove(p)).collect()
        };
        for e in closed {
            let _ = e.shutdown.send(());
        }
    }
}

/// Serves `key`'s metadata at `/` (the whole path is the metadata path).
fn vm_router(imds: Weak<Imds>, key: VmKey) -> Router {
    Router::new().fallback(move |req: Request| {
        let imds = imds.clone();
        let key = key.clone();
        async move {
            let Some(imds) = imds.upgrade() else {
                return dropped();
            };
            let (req, _) = req.into_parts();
            let path = req.uri.path().to_string();
            let rest = segments(&path);
            gce::serve(&imds, &key, &rest, &req, Missing::Drop).await
        }
    })
}

fn dropped() -> Response {
    let mut resp = http::StatusCode::SERVICE_UNAVAILABLE.into_response();
    resp.extensions_mut().insert(DropConnection);
    resp
}
