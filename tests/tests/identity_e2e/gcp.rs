//! Compute Engine end to end: a worker created by the GCP provider on the
//! mock (over TLS), its identity token (`format=full`, with an audience)
//! fetched from the mock's metadata server over plain HTTP with
//! `Metadata-Flavor: Google`, verified by the provider against the JWKS
//! whose URL `/_mock/trust` publishes (fetched over TLS by the verifier's
//! own fetcher).

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use skyfleet_core::provider::identity::IdentityProof;
use skyfleet_core::{PollPolicy, Provider, Worker};
use skyfleet_gcp::{Credentials, GcpBuilder};
use skyfleet_identity::gcp::GcpConfig;
use skyfleet_identity::HttpFetch;
use skyfleet_mock::MockCloud;
use skyfleet_tests::{MockCloudKind, Subject};

use crate::support::{self, *};

const PROJECT: &str = "identity-e2e";
const ZONE: &str = "us-central1-a";
/// The manager's root URL: the audience its workers ask tokens for.
const AUDIENCE: &str = "https://manager.skyfleet.test";

async fn provider(mock: &MockCloud, clock: Arc<ShiftedClock>) -> Arc<dyn Provider> {
    let t = support::trust(mock).await;
    let jwks = t["gcp"]["jwks_url"].as_str().expect("JWKS URL");
    assert!(jwks.starts_with("https://"), "{jwks}");
    let fetch = HttpFetch::with_extra_roots_pem(Duration::from_secs(5), ca_pem(mock).as_bytes())
        .expect("fetcher");
    let identity = GcpConfig::new(AUDIENCE)
        .with_jwks_url(jwks)
        .with_fetcher(Arc::new(fetch));
    let p = GcpBuilder::new(PROJECT)
        .with_endpoint(mock.url())
        .with_credentials(Credentials::static_token("test-token"))
        .with_zones([ZONE])
        .with_poll(PollPolicy {
            min_interval: Duration::from_millis(10),
            max_interval: Duration::from_millis(100),
            default_interval: Duration::from_millis(20),
            deadline: Duration::from_secs(30),
            max_consecutive_errors: 5,
        })
        .with_check_intervals(Duration::from_secs(60), Duration::from_millis(20))
        .with_transport(transport(mock, "gcp"))
        .with_clock(clock)
        .with_identity(identity)
        .build()
        .expect("valid config");
    Arc::new(p)
}

fn launch() -> Value {
    json!({
        "zone": ZONE,
        "machineType": "e2-small",
        "disks": [{"boot": true, "autoDelete": true,
                   "initializeParams": {"sourceImage": "projects/debian-cloud/global/images/family/debian-12"}}],
        // An instance without a service account has no identity token.
        "serviceAccount": {"email": "default"}
    })
}

/// The instance's metadata prefix, from the provider's state.
fn imds(mock: &MockCloud, w: &Worker) -> String {
    let st = &w.provider_state;
    let name = st["name"].as_str().expect("an instance name");
    let zone = st["zone"].as_str().expect("a zone");
    format!("{}/_imds/gcp/{PROJECT}/{zone}/{name}", mock.imds_url())
}

/// The identity token for `audience`, as an agent asks for it.
async fn token(mock: &MockCloud, w: &Worker, audience: &str) -> String {
    let url = format!(
        "{}/computeMetadata/v1/instance/service-accounts/default/identity?audience={}&format=full",
        imds(mock, w),
        urlencode(audience)
    );
    imds_get(&url, &[("Metadata-Flavor", "Google")]).await
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn proof(jwt: &str) -> IdentityProof {
    IdentityProof::GcpToken {
        jwt: jwt.to_string(),
    }
}

async fn setup(mock: &MockCloud, clock: Arc<ShiftedClock>) -> Subject {
    let p = provider(mock, clock).await;
    support::subject(mock, "gcp", p, MockCloudKind::gcp(), launch())
}

#[tokio::test]
async fn gcp_identity_end_to_end() {
    let mock = mock_tls().await;
    let clock = Arc::new(ShiftedClock::default());
    let s = setup(&mock, clock.clone()).await;
    let p = &s.provider;
    let mut w1 = running(&s, "id-gcp-1").await;
    let w2 = running(&s, "id-gcp-2").await;
    let jwt = token(&mock, &w1, AUDIENCE).await;

    let ok = p
        .verify_identity(&w1, &proof(&jwt))
        .await
        .expect("verifies");
    let want_id = w1.provider_state["instance_id"]
        .as_str()
        .map(str::to_string);
    assert!(want_id.is_some(), "the provider saw the instance id");
    assert_eq!(ok.instance_id, want_id);
    assert_eq!(ok.location.as_deref(), Some(ZONE));
    assert!(ok.proof_expires_at.is_some());

    // Another worker; another audience.
    assert_eq!(
        reason(p.verify_identity(&w2, &proof(&jwt)).await),
        "wrong_instance"
    );
    let elsewhere = token(&mock, &w1, "https://elsewhere.skyfleet.test").await;
    assert_eq!(
        reason(p.verify_identity(&w1, &proof(&elsewhere)).await),
        "wrong_audience"
    );

    // A flipped byte in the header, the claims, the signature.
    for seg in 0..3 {
        for at in positions(jwt_segment_len(&jwt, seg)) {
            let r = reason(
                p.verify_identity(&w1, &proof(&flip_jwt(&jwt, seg, at)))
                    .await,
            );
            if seg == 0 {
                assert!(
                    ["malformed", "unknown_signer", "bad_signature"].contains(&r),
                    "header byte {at}: {r}"
                );
            } else {
                assert_eq!(r, "bad_signature", "segment {seg} byte {at}");
            }
        }
    }

    // Past `exp` (iat + 3600 s) beyond the 60 s of skew; then back.
    clock.shift(Duration::from_secs(3600 + 61));
    assert_eq!(
        reason(p.verify_identity(&w1, &proof(&jwt)).await),
        "expired"
    );
    clock.shift(Duration::from_secs(3600 - 120));
    p.verify_identity(&w1, &proof(&jwt))
        .await
        .expect("still within exp");
    clock.reset();

    // A second mock's token (its key is not in this JWKS).
    let other = mock_tls().await;
    let so = setup(&other, Arc::new(ShiftedClock::default())).await;
    let wo = running(&so, "id-gcp-other").await;
    let foreign = token(&other, &wo, AUDIENCE).await;
    assert_eq!(
        reason(p.verify_identity(&w1, &proof(&foreign)).await),
        "unknown_signer"
    );

    // Rotation: a new key id. A token signed after it verifies with the
    // provider configured before (the JWKS is refetched for the unknown
    // kid, the refetch allowed once a minute has passed); the old token's
    // key has left the JWKS.
    let before = support::trust(&mock).await["gcp"]["kids"].clone();
    let after = rotate(&mock).await["gcp"]["kids"].clone();
    assert_ne!(before, after, "a new kid");
    let fresh = token(&mock, &w1, AUDIENCE).await;
    clock.shift(Duration::from_secs(120));
    p.verify_identity(&w1, &proof(&fresh))
        .await
        .expect("a token of the new key verifies");
    assert_eq!(
        reason(p.verify_identity(&w1, &proof(&jwt)).await),
        "unknown_signer"
    );
    clock.reset();

    // The VM deleted, the token fetched before.
    let base = imds(&mock, &w1);
    remove(&s, &mut w1).await;
    assert_eq!(
        reason(p.verify_identity(&w1, &proof(&fresh)).await),
        "not_registrable"
    );
    let (status, _) = imds_try(
        reqwest::Method::GET,
        &format!("{base}/computeMetadata/v1/instance/id"),
        &[("Metadata-Flavor", "Google")],
    )
    .await;
    assert_eq!(status, 404, "a deleted instance has no metadata");
}
