//! The per-worker registration secret: generated once, shown to the caller
//! once (core's [`Secret`]), kept on the record only as a SHA-256 digest
//! bound to the worker id, and checked in constant time.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};
use skyfleet_core::provider::support::Secret;
use subtle::ConstantTimeEq;

/// A new random registration secret (32 bytes, base64url), as core's
/// [`Secret`]: `Debug` and `Display` never show it.
pub(crate) fn generate() -> Secret {
    let mut bytes = [0u8; 32];
    // ThreadRng is a CSPRNG seeded from the operating system.
    rand::rng().fill_bytes(&mut bytes);
    Secret::new(URL_SAFE_NO_PAD.encode(bytes))
}

/// The digest stored for `secret` on `worker_id`'s record (hex).
pub(crate) fn stored_digest(secret: &Secret, worker_id: &str) -> String {
    hex(&digest(worker_id, secret.expose()))
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
        let s = generate();
        let stored = stored_digest(&s, "w-1");
        assert!(verify("w-1", s.expose(), Some(&stored)));
        assert!(!verify("w-2", s.expose(), Some(&stored)));
        assert!(!verify("w-1", "wrong", Some(&stored)));
        assert!(!verify("w-1", s.expose(), None));
        assert!(!verify("w-1", s.expose(), Some("zz")));
        let shown = format!("{s:?} {s}");
        assert_eq!(shown, "Secret([redacted]) [redacted]");
        assert!(!shown.contains(s.expose()));
    }
}
