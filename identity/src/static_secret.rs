//! Static machines: a per-worker secret, handed to the machine once, whose
//! SHA-256 digest (bound to the worker id) is what the store keeps, so any
//! replica verifies it. Compared in constant time (`subtle`).

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::{Reason, Rejected};

/// The digest kept for `secret` on `worker_id`'s record (64 hex digits).
///
/// ```
/// use skyfleet_identity::static_secret::{digest, verify};
/// let stored = digest("w-1", "s3cret");
/// assert!(verify("w-1", "s3cret", Some(&stored)).is_ok());
/// assert!(verify("w-2", "s3cret", Some(&stored)).is_err());
/// ```
pub fn digest(worker_id: &str, secret: &str) -> String {
    raw(worker_id, secret)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Checks `secret`, presented for `worker_id`, against the `stored` digest.
/// No digest (never issued, or revoked) is [`Reason::UnknownWorker`]; a
/// wrong secret [`Reason::BadSignature`].
pub fn verify(worker_id: &str, secret: &str, stored: Option<&str>) -> Result<(), Rejected> {
    let stored = stored.ok_or(Reason::UnknownWorker)?;
    let want = unhex(stored).ok_or(Reason::UnknownWorker)?;
    let given = raw(worker_id, secret);
    if bool::from(want.as_slice().ct_eq(&given)) {
        Ok(())
    } else {
        Err(Reason::BadSignature.into())
    }
}

fn raw(worker_id: &str, secret: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"skyfleet-static/v1\0");
    h.update(worker_id.as_bytes());
    h.update(b"\0");
    h.update(secret.as_bytes());
    h.finalize().into()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if s.len() != 64 {
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
        let stored = digest("w-1", "s");
        assert_eq!(stored.len(), 64);
        verify("w-1", "s", Some(&stored)).unwrap();
        let r = |e: Rejected| e.reason();
        assert_eq!(
            r(verify("w-2", "s", Some(&stored)).unwrap_err()),
            Reason::BadSignature
        );
        assert_eq!(
            r(verify("w-1", "t", Some(&stored)).unwrap_err()),
            Reason::BadSignature
        );
        assert_eq!(
            r(verify("w-1", "s", None).unwrap_err()),
            Reason::UnknownWorker
        );
        assert_eq!(
            r(verify("w-1", "s", Some("zz")).unwrap_err()),
            Reason::UnknownWorker
        );
    }
}
