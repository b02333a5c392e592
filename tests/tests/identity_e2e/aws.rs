//! AWS end to end: a worker launched by the AWS provider on the mock (over
//! TLS), its instance identity document fetched from the mock's IMDS over
//! plain HTTP with an IMDSv2 session token (document + `signature`, and the
//! `rsa2048` PKCS#7), verified by the provider trusting only the
//! certificate `/_mock/trust` publishes.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use skyfleet_aws::{AwsBuilder, AwsProvider, AwsState, Timings};
use skyfleet_core::provider::identity::IdentityProof;
use skyfleet_core::Worker;
use skyfleet_identity::aws::{AwsTrust, SignatureForm};
use skyfleet_mock::MockCloud;
use skyfleet_tests::{MockCloudKind, Subject};

use crate::support::{self, *};

const REGION: &str = "us-east-1";

/// The proofs an agent on the instance can fetch.
struct Proofs {
    document: String,
    signature: String,
    rsa2048: String,
}

impl Proofs {
    fn document(&self) -> IdentityProof {
        IdentityProof::AwsDocument {
            document: self.document.clone(),
            signature: self.signature.clone(),
        }
    }

    fn pkcs7(&self) -> IdentityProof {
        IdentityProof::AwsPkcs7 {
            pkcs7: self.rsa2048.clone(),
        }
    }
}

/// The trust a verifier reads from the mock: its one certificate, for both
/// signature forms, in the region workers run in.
async fn mock_trust(mock: &MockCloud) -> AwsTrust {
    let t = support::trust(mock).await;
    let pem = t["aws"]["certificate_pem"]
        .as_str()
        .expect("AWS certificate");
    AwsTrust::empty()
        .with_certificate(SignatureForm::Rsa, REGION, pem)
        .and_then(|t| t.with_certificate(SignatureForm::Rsa2048, REGION, pem))
        .expect("the mock's certificate parses")
}

async fn provider(mock: &MockCloud) -> Arc<AwsProvider> {
    let p = AwsBuilder::new()
        .with_regions([REGION])
        .with_endpoint_url(mock.url())
        .with_static_credentials("AKIDSKYFLEETTEST", "not-a-real-secret", None)
        .with_timings(Timings {
            poll_interval: Duration::from_millis(20),
            check_interval: Duration::from_secs(5),
            not_found_grace: Duration::from_millis(800),
        })
        .with_transport(transport(mock, "aws"))
        .with_identity_trust(mock_trust(mock).await)
        .build()
        .await
        .expect("valid config");
    Arc::new(p)
}

fn launch() -> Value {
    json!({"region": REGION, "ImageId": "ami-0123456789abcdef0", "InstanceType": "t3.micro"})
}

fn instance_id(w: &Worker) -> String {
    AwsState::of(w)
        .expect("readable state")
        .and_then(|s| s.instance_id)
        .expect("an instance")
}

/// The instance's IMDS prefix.
fn imds(mock: &MockCloud, w: &Worker) -> String {
    format!("{}/_imds/aws/{}", mock.imds_url(), instance_id(w))
}

/// IMDSv2: a session token, then the three identity endpoints.
async fn fetch(mock: &MockCloud, w: &Worker) -> Proofs {
    let base = imds(mock, w);
    let (status, token) = imds_try(
        reqwest::Method::PUT,
        &format!("{base}/latest/api/token"),
        &[("X-aws-ec2-metadata-token-ttl-seconds", "21600")],
    )
    .await;
    assert_eq!(status, 200, "{token}");
    let h = [("X-aws-ec2-metadata-token", token.as_str())];
    let get = |leaf: &'static str| {
        let url = format!("{base}/latest/dynamic/instance-identity/{leaf}");
        async move { imds_get(&url, &h).await }
    };
    Proofs {
        document: get("document").await,
        signature: get("signature").await,
        rsa2048: get("rsa2048").await,
    }
}

async fn setup(mock: &MockCloud) -> Subject {
    let p = provider(mock).await;
    support::subject(mock, "aws", p, MockCloudKind::aws(), launch())
}

#[tokio::test]
async fn aws_identity_end_to_end() {
    let mock = mock_tls().await;
    let s = setup(&mock).await;
    let p = &s.provider;
    let mut w1 = running(&s, "id-aws-1").await;
    let w2 = running(&s, "id-aws-2").await;
    let proofs = fetch(&mock, &w1).await;

    // Both forms verify and name the instance.
    for proof in [proofs.document(), proofs.pkcs7()] {
        let ok = p.verify_identity(&w1, &proof).await.expect("verifies");
        assert_eq!(ok.instance_id.as_deref(), Some(instance_id(&w1).as_str()));
        assert_eq!(ok.worker_id, "id-aws-1");
    }

    // The provider stored the private IP from its describe, and the
    // document names the same one; a different stored IP is refused.
    let doc = parse(&proofs.document);
    let stored_ip = AwsState::of(&w1).unwrap().unwrap().private_ip;
    assert!(stored_ip.is_some(), "the describe's private IP is stored");
    assert_eq!(doc["privateIp"].as_str(), stored_ip.as_deref());
    let mut moved = w1.clone();
    let mut st = AwsState::of(&moved).unwrap().unwrap();
    st.private_ip = Some("192.0.2.77".into());
    moved.provider_state = st.to_value().unwrap();
    for proof in [proofs.document(), proofs.pkcs7()] {
        assert_eq!(
            reason(p.verify_identity(&moved, &proof).await),
            "wrong_instance"
        );
    }

    // Another worker's proof.
    for proof in [proofs.document(), proofs.pkcs7()] {
        assert_eq!(
            reason(p.verify_identity(&w2, &proof).await),
            "wrong_instance"
        );
    }

    // A flipped byte anywhere: in the document, its signature, the PKCS#7.
    for at in positions(proofs.document.len()) {
        let proof = IdentityProof::AwsDocument {
            document: flip_text(&proofs.document, at),
            signature: proofs.signature.clone(),
        };
        let r = reason(p.verify_identity(&w1, &proof).await);
        assert_eq!(r, "bad_signature", "document byte {at}");
    }
    for at in positions(base64_len(&proofs.signature)) {
        let proof = IdentityProof::AwsDocument {
            document: proofs.document.clone(),
            signature: flip_base64(&proofs.signature, at),
        };
        let r = reason(p.verify_identity(&w1, &proof).await);
        assert_eq!(r, "bad_signature", "signature byte {at}");
    }
    for at in positions(base64_len(&proofs.rsa2048)) {
        let proof = IdentityProof::AwsPkcs7 {
            pkcs7: flip_base64(&proofs.rsa2048, at),
        };
        let r = reason(p.verify_identity(&w1, &proof).await);
        assert!(
            ["bad_signature", "malformed", "unknown_signer"].contains(&r),
            "rsa2048 byte {at}: {r}"
        );
    }

    // A second mock's instance: signed by a key outside the trust.
    let other = mock_tls().await;
    let so = setup(&other).await;
    let wo = running(&so, "id-aws-other").await;
    let foreign = fetch(&other, &wo).await;
    assert_eq!(
        reason(p.verify_identity(&w1, &foreign.document()).await),
        "bad_signature"
    );
    // The mock's certificates share issuer and serial (as a region's
    // successive AWS certificates may), so the signer is found and its
    // signature fails.
    assert_eq!(
        reason(p.verify_identity(&w1, &foreign.pkcs7()).await),
        "bad_signature"
    );

    // A rotation of the mock's trust leaves AWS's certificate alone (AWS's
    // last years): a new proof still verifies with the trust read before.
    rotate(&mock).await;
    let fresh = fetch(&mock, &w1).await;
    for proof in [fresh.document(), fresh.pkcs7()] {
        p.verify_identity(&w1, &proof)
            .await
            .expect("verifies after rotation");
    }

    // The VM deleted (the proof fetched before): no longer registrable, and
    // its metadata service is gone.
    let base = imds(&mock, &w1);
    remove(&s, &mut w1).await;
    for proof in [proofs.document(), proofs.pkcs7()] {
        assert_eq!(
            reason(p.verify_identity(&w1, &proof).await),
            "not_registrable"
        );
    }
    let (status, _) = imds_try(
        reqwest::Method::PUT,
        &format!("{base}/latest/api/token"),
        &[("X-aws-ec2-metadata-token-ttl-seconds", "60")],
    )
    .await;
    assert_eq!(status, 404, "a deleted instance has no metadata");
}
