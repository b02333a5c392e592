//! Compute Engine identity tokens: a good token verifies for its instance
//! only; audience, expiry, issuer and signer are checked; an unknown `kid`
//! refetches the key set at most once a minute; no byte can change.

use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;
use skyfleet_identity::gcp::{GcpConfig, GcpExpected, GcpVerifier, ServiceAccount};
use skyfleet_identity::testing::gcp::GcpIssuer;
use skyfleet_identity::testing::MemoryFetch;
use skyfleet_identity::Reason;
use time::OffsetDateTime;

const JWKS: &str = "http://127.0.0.1:1/oauth2/v3/certs";
const AUD: &str = "https://manager.example.com";
const ZONE: &str = "us-central1-a";

fn now() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_900_000_000).unwrap()
}

fn setup(issuer: &GcpIssuer) -> (Arc<MemoryFetch>, GcpVerifier) {
    let fetch = Arc::new(MemoryFetch::new());
    fetch.set(JWKS, issuer.jwks());
    let v = GcpVerifier::new(
        GcpConfig::new(AUD)
            .with_jwks_url(JWKS)
            .with_fetcher(fetch.clone()),
    )
    .unwrap();
    (fetch, v)
}

fn issuer() -> &'static GcpIssuer {
    static I: std::sync::OnceLock<GcpIssuer> = std::sync::OnceLock::new();
    I.get_or_init(|| GcpIssuer::new("proj-1"))
}

async fn reason(v: &GcpVerifier, jwt: &str, want: &GcpExpected, at: OffsetDateTime) -> Reason {
    let e = v.verify(jwt, want, at).await.unwrap_err();
    assert_eq!(e.to_string(), "signature validation error");
    e.reason()
}

#[tokio::test]
async fn a_good_token_verifies_and_is_checked_claim_by_claim() {
    let i = issuer();
    let (fetch, v) = setup(i);
    let facts = i.instance(1, ZONE);
    let jwt = i.token(&facts, AUD, now());
    let claims = v.verify(&jwt, &facts, now()).await.unwrap();
    assert_eq!(claims.sub, i.service_account_id);
    assert_eq!(fetch.gets(), 1);
    // Cached: no second fetch.
    v.verify(&jwt, &facts, now()).await.unwrap();
    assert_eq!(fetch.gets(), 1);

    // By email instead of id; by name and zone when the id is not known.
    let mut by_email = facts.clone();
    by_email.service_account = Some(ServiceAccount::Email(i.service_account_email.clone()));
    by_email.instance_id = None;
    v.verify(&jwt, &by_email, now()).await.unwrap();

    // Another worker, project or service account.
    let other = i.instance(2, ZONE);
    assert_eq!(reason(&v, &jwt, &other, now()).await, Reason::WrongInstance);
    let mut other_project = facts.clone();
    other_project.project_id = "proj-2".into();
    assert_eq!(
        reason(&v, &jwt, &other_project, now()).await,
        Reason::WrongInstance
    );
    let mut other_sa = facts.clone();
    other_sa.service_account = Some(ServiceAccount::Id("1".into()));
    assert_eq!(
        reason(&v, &jwt, &other_sa, now()).await,
        Reason::WrongInstance
    );

    // Another audience.
    let jwt_elsewhere = i.token(&facts, "https://other.example.com", now());
    assert_eq!(
        reason(&v, &jwt_elsewhere, &facts, now()).await,
        Reason::WrongAudience
    );

    // After `exp` (plus the skew), and before `iat` (minus the skew).
    let late = now() + time::Duration::seconds(3600 + 61);
    assert_eq!(reason(&v, &jwt, &facts, late).await, Reason::Expired);
    v.verify(&jwt, &facts, now() + time::Duration::seconds(3600 + 59))
        .await
        .unwrap();
    let early = now() - time::Duration::seconds(61);
    assert_eq!(reason(&v, &jwt, &facts, early).await, Reason::NotYetValid);

    // Another issuer, and claims without the instance.
    let mut c = i.claims(&facts, AUD, now());
    c["iss"] = "https://evil.example.com".into();
    assert_eq!(
        reason(&v, &i.sign_claims(&c), &facts, now()).await,
        Reason::UnknownSigner
    );
    let mut c = i.claims(&facts, AUD, now());
    c.as_object_mut().unwrap().remove("google");
    assert_eq!(
        reason(&v, &i.sign_claims(&c), &facts, now()).await,
        Reason::Malformed
    );
}

#[tokio::test]
async fn a_key_outside_the_key_set_is_refused() {
    let i = issuer();
    let (_, v) = setup(i);
    let facts = i.instance(3, ZONE);
    // Same kid, another key: a bad signature.
    let mut forger = GcpIssuer::new("proj-1");
    let claims = i.claims(&facts, AUD, now());
    let forged = forger.sign_claims(&claims);
    let mut parts: Vec<&str> = forged.split('.').collect();
    let genuine = i.token(&facts, AUD, now());
    let genuine_parts: Vec<&str> = genuine.split('.').collect();
    parts[0] = genuine_parts[0];
    parts[1] = genuine_parts[1];
    let spliced = parts.join(".");
    assert_eq!(
        reason(&v, &spliced, &facts, now()).await,
        Reason::BadSignature
    );
    // Another kid: unknown to the key set (after one refetch).
    forger.rotate();
    let forged = forger.sign_claims(&claims);
    assert_eq!(
        reason(&v, &forged, &facts, now()).await,
        Reason::UnknownSigner
    );
    // HS256 (a key confusion attempt) is not RS256; `none` is no algorithm.
    let hs = format!("eyJhbGciOiJIUzI1NiJ9.{}.c2ln", genuine_parts[1]);
    assert_eq!(reason(&v, &hs, &facts, now()).await, Reason::UnknownSigner);
    let none = format!("eyJhbGciOiJub25lIn0.{}.", genuine_parts[1]);
    assert_eq!(reason(&v, &none, &facts, now()).await, Reason::Malformed);
}

#[tokio::test]
async fn an_unknown_kid_refetches_at_most_once_a_minute() {
    let mut i = GcpIssuer::new("proj-1");
    let (fetch, v) = setup(&i);
    let facts = i.instance(4, ZONE);
    let t0 = now();
    v.verify(&i.token(&facts, AUD, t0), &facts, t0)
        .await
        .unwrap();
    assert_eq!(fetch.gets(), 1);

    // Google rotates; the key set served is still the old one.
    let old_jwks = i.jwks();
    i.rotate();
    let fresh = i.token(&facts, AUD, t0);
    let t1 = t0 + time::Duration::seconds(61);
    for k in 0..20 {
        let r = reason(&v, &fresh, &facts, t1 + time::Duration::seconds(k)).await;
        assert_eq!(r, Reason::UnknownSigner);
    }
    assert_eq!(
        fetch.gets(),
        2,
        "one refetch for twenty unknown kids within a minute"
    );

    // The new key set is published: still no fetch before the minute is up.
    fetch.set(JWKS, i.jwks());
    let r = reason(&v, &fresh, &facts, t1 + time::Duration::seconds(59)).await;
    assert_eq!(r, Reason::UnknownSigner);
    assert_eq!(fetch.gets(), 2);
    // A minute after the last fetch: one refetch, and the token verifies.
    v.verify(&fresh, &facts, t1 + time::Duration::seconds(60))
        .await
        .unwrap();
    assert_eq!(fetch.gets(), 3);

    // A failed fetch keeps the keys it had.
    fetch.set(JWKS, b"not json".to_vec());
    let mut j = GcpIssuer::new("proj-1");
    j.rotate();
    let t2 = t1 + time::Duration::seconds(200);
    assert_eq!(
        reason(&v, &j.token(&facts, AUD, t2), &facts, t2).await,
        Reason::UnknownSigner
    );
    assert_eq!(fetch.gets(), 4);
    v.verify(&i.token(&facts, AUD, t2), &facts, t2)
        .await
        .unwrap();
    let _ = old_jwks;
    assert_eq!(v.cached_keys(), 2);
}

#[tokio::test]
async fn no_key_set_at_all_is_keys_unavailable() {
    let i = issuer();
    let fetch = Arc::new(MemoryFetch::new());
    let v = GcpVerifier::new(
        GcpConfig::new(AUD)
            .with_jwks_url(JWKS)
            .with_fetcher(fetch.clone())
            .with_refetch_interval(Duration::from_secs(60)),
    )
    .unwrap();
    let facts = i.instance(5, ZONE);
    let jwt = i.token(&facts, AUD, now());
    assert_eq!(
        reason(&v, &jwt, &facts, now()).await,
        Reason::KeysUnavailable
    );
    assert_eq!(
        reason(&v, &jwt, &facts, now()).await,
        Reason::KeysUnavailable
    );
    assert_eq!(fetch.gets(), 1);
}

fn flip(text: &str, at: usize, bit: u8) -> String {
    let mut b = text.as_bytes().to_vec();
    let at = at % b.len();
    b[at] ^= 1 << (bit % 8);
    String::from_utf8_lossy(&b).into_owned()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(192))]

    #[test]
    fn a_flipped_bit_anywhere_fails(at in 0usize..100_000, bit in 0u8..8) {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let i = issuer();
        let (_, v) = setup(i);
        let facts = i.instance(6, ZONE);
        let jwt = i.token(&facts, AUD, now());
        rt.block_on(async {
            v.verify(&jwt, &facts, now()).await.unwrap();
            let bad = flip(&jwt, at, bit);
            prop_assert!(v.verify(&bad, &facts, now()).await.is_err(), "{}", bad);
            Ok(())
        })?;
    }
}
