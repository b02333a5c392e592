//! Worker identity on Compute Engine: the instance's identity token (RS256
//! JWT with `format=full` claims) checked against Google's JWKS, for the
//! configured audience, then its `google.compute_engine` facts against what
//! this provider stored for the worker: the project, the instance id once
//! seen (else the instance name and zone), and the worker service account
//! when one is configured.

use skyfleet_core::provider::identity::{self, IdentityProof, VerifiedIdentity};
use skyfleet_core::provider::names::GCP;
use skyfleet_core::{Error, Result, Worker};
use skyfleet_identity::gcp::{GcpConfig, GcpExpected, GcpVerifier, ServiceAccount};
use skyfleet_identity::ConfigError;
use time::OffsetDateTime;

use crate::state::GceState;

/// The identity settings of a provider.
#[derive(Debug)]
pub(crate) struct Identity {
    verifier: GcpVerifier,
    service_account: Option<ServiceAccount>,
}

/// A configuration error of the identity settings as a skyfleet error.
pub(crate) fn config_error(e: ConfigError) -> Error {
    Error::invalid_config(format!("identity.{}", e.field()), e.message()).with_provider(GCP)
}

impl Identity {
    /// The verifier over `config`.
    pub(crate) fn new(config: GcpConfig, service_account: Option<ServiceAccount>) -> Result<Self> {
        Ok(Identity {
            verifier: GcpVerifier::new(config).map_err(config_error)?,
            service_account,
        })
    }
}

/// [`Provider::verify_identity`](skyfleet_core::Provider::verify_identity)
/// for Compute Engine.
pub(crate) async fn verify(
    provider_id: &str,
    project: &str,
    id: Option<&Identity>,
    worker: &Worker,
    proof: &IdentityProof,
    now: OffsetDateTime,
) -> Result<VerifiedIdentity> {
    let reject = |reason: &'static str| identity::rejected(provider_id, worker, reason);
    let IdentityProof::GcpToken { jwt } = proof else {
        return Err(reject(identity::WRONG_PROOF_TYPE));
    };
    let Some(id) = id else {
        return Err(Error::invalid_config(
            "identity",
            "no identity audience configured (GcpBuilder::with_identity)",
        )
        .with_provider(GCP));
    };
    if !identity::may_register(worker) {
        return Err(reject(identity::NOT_REGISTRABLE));
    }
    let st = GceState::of(worker)?;
    if st.teardown.is_some() || st.delete_sent || st.foreign {
        return Err(reject(identity::NOT_REGISTRABLE));
    }
    if st.instance_id.is_none() && (st.name.is_none() || st.zone.is_none()) {
        return Err(reject(identity::UNKNOWN_WORKER));
    }
    let want = GcpExpected {
        project_id: project.to_string(),
        instance_id: st.instance_id.clone(),
        instance_name: st.name.clone(),
        zone: st.zone.clone(),
        service_account: id.service_account.clone(),
    };
    let claims = id
        .verifier
        .verify(jwt, &want, now)
        .await
        .map_err(|r| reject(r.reason().label()))?;
    let mut out = VerifiedIdentity::new(worker, provider_id);
    if let Some(ce) = claims
        .google
        .as_ref()
        .and_then(|g| g.compute_engine.as_ref())
    {
        out = out
            .with_instance(ce.instance_id.clone())
            .with_location(ce.zone.clone());
    }
    if let Ok(exp) = OffsetDateTime::from_unix_timestamp(claims.exp) {
        out = out.with_proof_expiry(exp);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use skyfleet_core::testing::fixtures;
    use skyfleet_core::ErrorKind;
    use skyfleet_identity::testing::gcp::GcpIssuer;
    use skyfleet_identity::testing::MemoryFetch;

    const JWKS: &str = "http://127.0.0.1:1/oauth2/v3/certs";
    const AUD: &str = "https://manager.example.com";

    fn worker(id: &str, facts: &GcpExpected) -> Worker {
        let mut w = fixtures::worker(id).provider("gcp").build_now();
        let st = GceState {
            name: facts.instance_name.clone(),
            zone: facts.zone.clone(),
            insert_sent: true,
            instance_id: facts.instance_id.clone(),
            ..GceState::default()
        };
        w.provider_state = serde_json::to_value(st).unwrap();
        w
    }

    fn label(e: Error) -> String {
        assert!(matches!(e.kind(), ErrorKind::IdentityRejected { .. }));
        assert_eq!(e.message(), "signature validation error");
        e.rejection_reason().unwrap_or_default().to_string()
    }

    #[tokio::test]
    async fn tokens_verify_against_the_stored_instance() {
        let issuer = GcpIssuer::new("proj-1");
        let fetch = Arc::new(MemoryFetch::new());
        fetch.set(JWKS, issuer.jwks());
        let config = GcpConfig::new(AUD)
            .with_jwks_url(JWKS)
            .with_fetcher(fetch.clone());
        let id = Identity::new(
            config,
            Some(ServiceAccount::Id(issuer.service_account_id.clone())),
        )
        .unwrap();
        let now = OffsetDateTime::now_utc();
        let facts = issuer.instance(3, "us-central1-a");
        let proof = IdentityProof::GcpToken {
            jwt: issuer.token(&facts, AUD, now),
        };
        let w = worker("w-1", &facts);
        let ok = verify("gcp", "proj-1", Some(&id), &w, &proof, now)
            .await
            .unwrap();
        assert_eq!(ok.instance_id, facts.instance_id);
        assert!(ok.proof_expires_at.is_some());

        let other = worker("w-2", &issuer.instance(4, "us-central1-a"));
        let e = verify("gcp", "proj-1", Some(&id), &other, &proof, now)
            .await
            .unwrap_err();
        assert_eq!(label(e), "wrong_instance");
        let e = verify("gcp", "proj-2", Some(&id), &w, &proof, now)
            .await
            .unwrap_err();
        assert_eq!(label(e), "wrong_instance");
        let later = now + time::Duration::hours(2);
        let e = verify("gcp", "proj-1", Some(&id), &w, &proof, later)
            .await
            .unwrap_err();
        assert_eq!(label(e), "expired");
        let fresh = fixtures::worker("w-3").provider("gcp").build_now();
        let e = verify("gcp", "proj-1", Some(&id), &fresh, &proof, now)
            .await
            .unwrap_err();
        assert_eq!(label(e), "unknown_worker");
        // Without an audience configured, nothing can be verified.
        let e = verify("gcp", "proj-1", None, &w, &proof, now)
            .await
            .unwrap_err();
        assert!(matches!(e.kind(), ErrorKind::InvalidConfig { .. }));
    }
}
