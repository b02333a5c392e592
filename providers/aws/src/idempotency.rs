//! Idempotency: the EC2 `ClientToken` of a worker's RunInstances.
//!
//! EC2 answers a RunInstances whose token it has already seen (with the same
//! parameters, in the same region or zone) with the instance it launched the
//! first time, instead of launching another. skyfleet derives the token from
//! the worker's identity, so the token is the same on every retry, in every
//! process, after any restart: a crash between RunInstances and recording its
//! answer leaves nothing orphaned or duplicated, because the next attempt gets
//! the same instance back. Taskcluster sent no token (its issue #2888).
//!
//! The token is `sf-{worker id}-{16 hex digits}`, the digits a SHA-256 of
//! the manager, provider, pool and worker ids, so two fleets sharing an
//! account never collide even when their worker ids do. It is at most 64
//! ASCII characters, EC2's limit.

use sha2::{Digest, Sha256};
use skyfleet_core::OwnershipTags;

/// EC2's limit on a client token's length.
pub(crate) const MAX_TOKEN_LEN: usize = 64;

/// The client token of the worker whose resources carry `tags`: the same
/// on every retry, in every process.
pub(crate) fn client_token(tags: &OwnershipTags) -> String {
    let mut h = Sha256::new();
    for part in [
        &tags.manager_id,
        &tags.provider_id,
        &tags.pool_id,
        &tags.worker_id,
    ] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part.as_bytes());
    }
    let digest = h.finalize();
    let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    // Keep the readable part ASCII and short enough for the whole token to
    // fit in 64 characters: "sf-" + stem + "-" + 16 hex digits.
    let room = MAX_TOKEN_LEN - 3 - 1 - hex.len();
    let stem: String = tags
        .worker_id
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .take(room)
        .collect();
    format!("sf-{stem}-{hex}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn tags(manager: &str, worker: &str) -> OwnershipTags {
        OwnershipTags {
            manager_id: manager.into(),
            pool_id: "pool".into(),
            worker_id: worker.into(),
            provider_id: "aws".into(),
            store_id: None,
            extra: BTreeMap::new(),
        }
    }

    #[test]
    fn stable_bounded_and_distinct() {
        let a = client_token(&tags("m1", "w-1"));
        assert!(a.starts_with("sf-w-1-"), "{a}");
        assert_eq!(a, client_token(&tags("m1", "w-1")));
        assert_ne!(a, client_token(&tags("m2", "w-1")));
        assert_ne!(a, client_token(&tags("m1", "w-2")));
        let long = client_token(&tags("m1", &"ü-x".repeat(60)));
        assert!(long.len() <= MAX_TOKEN_LEN, "{long}");
        assert!(long.is_ascii());
    }
}
