//! Worker identity on AWS: the instance identity document (with its base64
//! `signature` or as the `rsa2048` PKCS#7) checked with the region's AWS
//! certificate, then compared with what this provider stored for the
//! worker: the instance id, region and private IP (its state, the IP once a
//! describe saw it), the AMI, instance type and availability zone (its
//! launch config) and the account (when
//! configured with [`AwsBuilder::with_account_id`](crate::AwsBuilder::with_account_id)).

use skyfleet_core::provider::identity::{self, IdentityProof, VerifiedIdentity};
use skyfleet_core::{Result, Worker};
use skyfleet_identity::aws::{AwsExpected, AwsTrust, AwsVerifier};

use crate::launch::Ec2Launch;
use crate::state::AwsState;

/// The identity settings of a provider.
#[derive(Debug, Clone, Default)]
pub(crate) struct Identity {
    pub(crate) verifier: AwsVerifier,
    pub(crate) account_id: Option<String>,
}

impl Identity {
    pub(crate) fn new(trust: AwsTrust, account_id: Option<String>) -> Self {
        Identity {
            verifier: AwsVerifier::new(trust),
            account_id,
        }
    }
}

/// What the proof must say about `worker`, or the label of why nothing can
/// match. An unreadable state or launch config is an error of its own.
fn expected(
    worker: &Worker,
    account_id: Option<&str>,
) -> Result<Result<AwsExpected, &'static str>> {
    let Some(st) = AwsState::of(worker)? else {
        return Ok(Err(identity::UNKNOWN_WORKER));
    };
    let Some(instance_id) = st.instance_id.clone() else {
        return Ok(Err(identity::UNKNOWN_WORKER));
    };
    if st.teardown.is_some() {
        return Ok(Err(identity::NOT_REGISTRABLE));
    }
    let launch = Ec2Launch::parse(&worker.spec.launch)?;
    Ok(Ok(AwsExpected {
        instance_id,
        region: st.region,
        account_id: account_id.map(str::to_string),
        availability_zone: launch.placement.and_then(|p| p.availability_zone),
        image_id: Some(launch.image_id),
        instance_type: Some(launch.instance_type),
        private_ip: st.private_ip,
    }))
}

/// [`Provider::verify_identity`](skyfleet_core::Provider::verify_identity)
/// for AWS.
pub(crate) fn verify(
    provider_id: &str,
    id: &Identity,
    worker: &Worker,
    proof: &IdentityProof,
) -> Result<VerifiedIdentity> {
    let reject = |reason: &'static str| identity::rejected(provider_id, worker, reason);
    if !matches!(
        proof,
        IdentityProof::AwsDocument { .. } | IdentityProof::AwsPkcs7 { .. }
    ) {
        return Err(reject(identity::WRONG_PROOF_TYPE));
    }
    if !identity::may_register(worker) {
        return Err(reject(identity::NOT_REGISTRABLE));
    }
    let want = match expected(worker, id.account_id.as_deref())? {
        Ok(want) => want,
        Err(label) => return Err(reject(label)),
    };
    let checked = match proof {
        IdentityProof::AwsDocument {
            document,
            signature,
        } => id.verifier.verify_document(document, signature, &want),
        IdentityProof::AwsPkcs7 { pkcs7 } => id.verifier.verify_pkcs7(pkcs7, &want),
        _ => return Err(reject(identity::WRONG_PROOF_TYPE)),
    };
    let doc = checked.map_err(|r| reject(r.reason().label()))?;
    Ok(VerifiedIdentity::new(worker, provider_id)
        .with_instance(doc.instance_id)
        .with_location(doc.availability_zone))
}

#[cfg(test)]
mod tests {
    use super::*;
    use skyfleet_core::testing::fixtures;
    use skyfleet_core::{DesiredState, ErrorKind};
    use skyfleet_identity::testing::aws::AwsIssuer;
    use time::OffsetDateTime;

    fn worker(id: &str, instance_id: Option<&str>) -> Worker {
        let mut w = fixtures::worker(id)
            .provider("aws")
            .launch(serde_json::json!({
                "region": "us-east-1",
                "ImageId": "ami-0123456789abcdef0",
                "InstanceType": "m5.large",
                "Placement": {"AvailabilityZone": "us-east-1a"}
            }))
            .build_now();
        let st = AwsState {
            region: "us-east-1".into(),
            client_token: format!("sf-{id}"),
            token_at: OffsetDateTime::now_utc(),
            instance_id: instance_id.map(str::to_string),
            launched_at: None,
            last_state: Some("running".into()),
            seen_running: true,
            teardown: None,
            private_ip: None,
        };
        w.provider_state = st.to_value().unwrap();
        w
    }

    fn label(e: skyfleet_core::Error) -> String {
        assert!(matches!(e.kind(), ErrorKind::IdentityRejected { .. }));
        assert_eq!(e.message(), "signature validation error");
        e.rejection_reason().unwrap_or_default().to_string()
    }

    #[test]
    fn documents_verify_against_the_stored_facts() {
        let issuer = AwsIssuer::new("us-east-1");
        let id = Identity::new(issuer.trust(), Some("123456789012".into()));
        let facts = issuer.instance(7);
        let doc = issuer.document(&facts);
        let proof = IdentityProof::AwsDocument {
            document: doc.clone(),
            signature: issuer.signature(&doc),
        };
        let pkcs7 = IdentityProof::AwsPkcs7 {
            pkcs7: issuer.rsa2048(&doc),
        };
        let w = worker("w-1", Some(&facts.instance_id));
        let ok = verify("aws", &id, &w, &proof).unwrap();
        assert_eq!(ok.instance_id.as_deref(), Some(facts.instance_id.as_str()));
        assert_eq!(ok.location.as_deref(), Some("us-east-1a"));
        verify("aws", &id, &w, &pkcs7).unwrap();

        // Another worker's instance, another account, no instance yet.
        let other = worker("w-2", Some("i-0000000000000dead"));
        assert_eq!(
            label(verify("aws", &id, &other, &proof).unwrap_err()),
            "wrong_instance"
        );
        let elsewhere = Identity::new(issuer.trust(), Some("210987654321".into()));
        assert_eq!(
            label(verify("aws", &elsewhere, &w, &proof).unwrap_err()),
            "wrong_instance"
        );
        let pending = worker("w-1", None);
        assert_eq!(
            label(verify("aws", &id, &pending, &proof).unwrap_err()),
            "unknown_worker"
        );
        // A worker being removed may not register.
        let mut removed = w.clone();
        removed.desired = DesiredState::Removed;
        assert_eq!(
            label(verify("aws", &id, &removed, &proof).unwrap_err()),
            "not_registrable"
        );
        // Another cloud's proof; AWS's real certificates for a self-made document.
        let jwt = IdentityProof::GcpToken {
            jwt: "a.b.c".into(),
        };
        assert_eq!(
            label(verify("aws", &id, &w, &jwt).unwrap_err()),
            "wrong_proof_type"
        );
        let bundled = Identity::default();
        assert_eq!(
            label(verify("aws", &bundled, &w, &proof).unwrap_err()),
            "bad_signature"
        );
    }

    #[test]
    fn the_private_ip_is_compared_when_stored() {
        let issuer = AwsIssuer::new("us-east-1");
        let id = Identity::new(issuer.trust(), None);
        let facts = issuer.instance(9);
        let doc = issuer.document(&facts);
        let ip = facts.private_ip.clone().expect("the issuer gives an IP");
        let proof = IdentityProof::AwsDocument {
            document: doc.clone(),
            signature: issuer.signature(&doc),
        };
        let with_ip = |ip: Option<&str>| {
            let mut w = worker("w-ip", Some(&facts.instance_id));
            let mut st = AwsState::of(&w).unwrap().unwrap();
            st.private_ip = ip.map(str::to_string);
            w.provider_state = st.to_value().unwrap();
            w
        };
        // Unknown (a state persisted before the field): not compared.
        verify("aws", &id, &with_ip(None), &proof).unwrap();
        verify("aws", &id, &with_ip(Some(&ip)), &proof).unwrap();
        assert_eq!(
            label(verify("aws", &id, &with_ip(Some("10.255.255.254")), &proof).unwrap_err()),
            "wrong_instance"
        );
    }
}
