//! The per-worker registration secret: generated once, shown to the caller
//! once (core's [`Secret`]), kept on the record only as a SHA-256 digest
//! bound to the worker id, and checked in constant time
//! (`skyfleet_identity::static_secret`).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;
use skyfleet_core::provider::support::Secret;

/// A new random registration secret (32 bytes, base64url), as core's
/// [`Secret`]: `Debug` and `Display` never show it.
pub(crate) fn generate() -> Secret {
    let mut bytes = [0u8; 32];
    // ThreadRng is a CSPRNG seeded from the operating system.
    rand::rng().fill_bytes(&mut bytes);
    Secret::new(URL_SAFE_NO_PAD.encode(bytes))
}

/// The digest stored for `secret` on `worker_id`'s record (hex): the
/// identity crate's, so that any replica verifies it the same way.
pub(crate) fn stored_digest(secret: &Secret, worker_id: &str) -> String {
    skyfleet_identity::static_secret::digest(worker_id, secret.expose())
}

/// Whether `secret`, presented for `worker_id`, matches the `stored` digest
/// (compared in constant time; no digest matches nothing).
pub(crate) fn verify(worker_id: &str, secret: &str, stored: Option<&str>) -> bool {
    skyfleet_identity::static_secret::verify(worker_id, secret, stored).is_ok()
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
