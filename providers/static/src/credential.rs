//! The per-worker registration secret: generated once, shown to the caller
//! once ([`WorkerSecret`]), kept on the record only as a SHA-256 digest
//! bound to the worker id, and checked in constant time.

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// A worker's registration secret, shown to the caller once. `Debug` and
/// `Display` never show it; [`WorkerSecret::expose`] does.
#[derive(Clone, PartialEq, Eq)]
pub struct WorkerSecret(String);

impl WorkerSecret {
    /// The secret text, to hand to the machine.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// A new random secret (32 bytes, base64url).
    pub(crate) fn generate() -> Self {
        let mut bytes = [0u8; 32];
        // ThreadRng is a CSPRNG seeded from the operating system.
        rand::rng().fill_bytes(&mut bytes);
        WorkerSecret(URL_SAFE_NO_PAD.encode(bytes))
    }

    /// The digest stored for this secret on `worker_id`'s record (hex).
    pub(crate) fn stored_digest(&self, worker_id: &str) -> String {
        hex(&digest(worker_id, self.expose()))
    }
}

impl fmt::Debug for WorkerSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WorkerSecret(****)")
    }
}

impl fmt::Display for WorkerSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("****")
    }
}

/// Whether `secret`, presented for `worker_id`, matches the `stored` digest
/// (compared in constant time; no digest matches nothing).
pub(crate) fn verify(worker_id: &str, secret: &str, stored: Option<&str>) -> bool {
    let given = digest(worker_id, secret);
    match stored.and_then(unhex) {
        Some(s) => bool::from(s.as_slice().ct_eq(&given)),
        None => false,
    }
}

fn digest(worker_id: &str, secret: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"skyfleet-static/v1\0");
    h.update(worker_id.as_bytes());
    h.update(b"\0");
    h.update(secret.as_bytes());
    h.finalize().into()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_verifies_only_for_its_worker() {
        let s = WorkerSecret::generate();
        let stored = s.stored_digest("w-1");
        assert!(verify("w-1", s.expose(), Some(&stored)));
        assert!(!verify("w-2", s.expose(), Some(&stored)));
        assert!(!verify("w-1", "wrong", Some(&stored)));
        assert!(!verify("w-1", s.expose(), None));
        assert!(!verify("w-1", s.expose(), Some("zz")));
        assert_eq!(format!("{s:?} {s}"), "WorkerSecret(****) ****");
    }
}
