//! Worker identity for static machines: the per-worker secret handed out at
//! creation, checked against the digest on the worker's record (so any
//! replica verifies it), in constant time.

use skyfleet_core::provider::identity::{self, IdentityProof, VerifiedIdentity};
use skyfleet_core::{Result, Worker};

use crate::state::StaticState;

/// [`Provider::verify_identity`](skyfleet_core::Provider::verify_identity)
/// for static machines.
pub(crate) fn verify(
    provider_id: &str,
    worker: &Worker,
    proof: &IdentityProof,
) -> Result<VerifiedIdentity> {
    let reject = |reason: &'static str| identity::rejected(provider_id, worker, reason);
    let IdentityProof::StaticSecret { secret } = proof else {
        return Err(reject(identity::WRONG_PROOF_TYPE));
    };
    if !identity::may_register(worker) {
        return Err(reject(identity::NOT_REGISTRABLE));
    }
    let st = StaticState::of(worker)?;
    skyfleet_identity::static_secret::verify(
        worker.id(),
        secret.expose(),
        st.secret_sha256.as_deref(),
    )
    .map_err(|r| reject(r.reason().label()))?;
    Ok(VerifiedIdentity::new(worker, provider_id))
}

#[cfg(test)]
mod tests {
    use skyfleet_core::provider::support::Secret;
    use skyfleet_core::{DesiredState, ErrorKind, IdentityProof, Provider};

    use crate::{example_worker, StaticBuilder};

    fn secret(s: &str) -> IdentityProof {
        serde_json::from_value(serde_json::json!({"kind": "static_secret", "secret": s})).unwrap()
    }

    #[tokio::test]
    async fn the_secret_verifies_for_its_worker_only() {
        let p = StaticBuilder::new("static").build();
        let mut w = example_worker("w-1");
        let s: Secret = p.prepare(&mut w).unwrap();
        let ok = p.verify_identity(&w, &secret(s.expose())).await.unwrap();
        assert_eq!(ok.worker_id, "w-1");
        assert_eq!(ok.provider_id, "static");
        let reason = |e: skyfleet_core::Error| {
            assert!(matches!(e.kind(), ErrorKind::IdentityRejected { .. }));
            assert_eq!(e.message(), "signature validation error");
            e.rejection_reason().unwrap().to_string()
        };
        let e = p.verify_identity(&w, &secret("wrong")).await.unwrap_err();
        assert_eq!(reason(e), "bad_signature");
        let other = example_worker("w-2");
        let e = p
            .verify_identity(&other, &secret(s.expose()))
            .await
            .unwrap_err();
        assert_eq!(reason(e), "unknown_worker");
        let jwt =
            serde_json::from_value(serde_json::json!({"kind": "gcp_token", "jwt": "x"})).unwrap();
        let e = p.verify_identity(&w, &jwt).await.unwrap_err();
        assert_eq!(reason(e), "wrong_proof_type");
        w.desired = DesiredState::Removed;
        let e = p
            .verify_identity(&w, &secret(s.expose()))
            .await
            .unwrap_err();
        assert_eq!(reason(e), "not_registrable");
    }
}
