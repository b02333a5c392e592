//! Worker secrets: 256 random bits handed to a worker once at registration,
//! kept in the store only as a SHA-256 digest bound to the worker id, and
//! compared in constant time.
//!
//! A digest (rather than a slow password hash) is enough: the secret is
//! uniformly random, so nothing short of 2^256 guesses inverts it, and a
//! heartbeat from every worker every few tens of seconds must stay cheap.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::provider::support::Secret;

/// A fresh secret: 32 bytes from the thread's CSPRNG, hex.
pub(crate) fn generate() -> Secret {
    let bytes: [u8; 32] = rand::random();
    Secret::new(hex(&bytes))
}

/// The stored digest of `secret` for `worker_id` (hex). The worker id is in
/// the digest, so a digest copied to another worker's record matches nothing.
pub(crate) fn digest(worker_id: &str, secret: &Secret) -> String {
    let mut h = Sha256::new();
    h.update(b"skyfleet-worker-secret\0");
    h.update(worker_id.as_bytes());
    h.update(b"\0");
    h.update(secret.expose().as_bytes());
    hex(&h.finalize())
}

/// Whether `secret`, presented for `worker_id`, matches `stored` (constant
/// time in the digest).
pub(crate) fn matches(worker_id: &str, secret: &Secret, stored: &str) -> bool {
    let got = digest(worker_id, secret);
    got.len() == stored.len() && bool::from(got.as_bytes().ct_eq(stored.as_bytes()))
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_random_and_digests_bound_to_the_worker() {
        let a = generate();
        let b = generate();
        assert_eq!(a.expose().len(), 64);
        assert_ne!(a.expose(), b.expose());
        let d = digest("w-1", &a);
        assert!(matches("w-1", &a, &d));
        assert!(!matches("w-1", &b, &d));
        assert!(!matches("w-2", &a, &d), "a digest is bound to its worker");
        assert!(!matches("w-1", &a, &d[..10]));
        assert!(!d.contains(a.expose()));
        assert_eq!(
            hex(&[0x00, 0xff, 0x1a]),
            "00ff1a",
            "hex is lower-case, two digits a byte"
        );
    }
}
