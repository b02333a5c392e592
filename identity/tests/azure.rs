//! Azure attested data documents: a good document verifies for its VM
//! only; the signer's name, chain, expiry and nonce are checked;
//! intermediates come from the document, the cache or an allow-listed AIA
//! URL; a rotated intermediate under the same root still verifies; a
//! failed fetch corrupts nothing; no byte can change.

use std::sync::Arc;

use proptest::prelude::*;
use skyfleet_identity::azure::{AzureConfig, AzureExpected, AzureVerifier};
use skyfleet_identity::testing::azure::AzureIssuer;
use skyfleet_identity::testing::MemoryFetch;
use skyfleet_identity::Reason;
use time::OffsetDateTime;

const VM: &str = "0f7a9c4e-8f2b-4c1d-9e3a-5b6c7d8e9f01";
const NONCE: &str = "1234567890";

fn issuer() -> &'static AzureIssuer {
    static I: std::sync::OnceLock<AzureIssuer> = std::sync::OnceLock::new();
    I.get_or_init(AzureIssuer::new)
}

fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

fn want() -> AzureExpected {
    AzureExpected {
        vm_id: VM.into(),
        nonce: Some(NONCE.into()),
    }
}

/// A verifier trusting `issuer`'s root, fetching from `fetch`.
fn verifier(issuer: &AzureIssuer, fetch: &Arc<MemoryFetch>) -> AzureVerifier {
    AzureVerifier::new(
        AzureConfig::new()
            .with_roots_pem(issuer.root_pem())
            .unwrap()
            .with_fetcher(fetch.clone()),
    )
    .unwrap()
}

async fn reason(v: &AzureVerifier, sig: &str, want: &AzureExpected) -> Reason {
    let e = v.verify(sig, want, now()).await.unwrap_err();
    assert_eq!(e.to_string(), "signature validation error");
    e.reason()
}

#[tokio::test]
async fn a_good_document_verifies_for_its_vm_only() {
    let i = issuer();
    let fetch = Arc::new(MemoryFetch::new());
    let v = verifier(i, &fetch);
    let sig = i.sign(&i.content(VM, NONCE, now()), true);
    let doc = v.verify(&sig, &want(), now()).await.unwrap();
    assert_eq!(doc.vm_id, VM);
    assert_eq!(fetch.gets(), 0, "the intermediate was carried");
    // vmIds compare without case; no nonce issued, none compared.
    let upper = AzureExpected {
        vm_id: VM.to_uppercase(),
        nonce: None,
    };
    v.verify(&sig, &upper, now()).await.unwrap();

    let other_vm = AzureExpected {
        vm_id: "11111111-2222-3333-4444-555555555555".into(),
        nonce: Some(NONCE.into()),
    };
    assert_eq!(reason(&v, &sig, &other_vm).await, Reason::WrongInstance);
    let other_nonce = AzureExpected {
        vm_id: VM.into(),
        nonce: Some("9999999999".into()),
    };
    assert_eq!(reason(&v, &sig, &other_nonce).await, Reason::WrongNonce);

    // Expired: `expiresOn` passed.
    let old = i.content_expiring(
        VM,
        NONCE,
        now() - time::Duration::hours(7),
        now() - time::Duration::hours(1),
    );
    assert_eq!(
        reason(&v, &i.sign(&old, true), &want()).await,
        Reason::Expired
    );
    // Created in the future.
    let future = i.content(VM, NONCE, now() + time::Duration::hours(1));
    assert_eq!(
        reason(&v, &i.sign(&future, true), &want()).await,
        Reason::NotYetValid
    );
    // Garbage.
    assert_eq!(reason(&v, "MIIE", &want()).await, Reason::Malformed);
    assert_eq!(reason(&v, "!!!", &want()).await, Reason::Malformed);
}

#[tokio::test]
async fn a_signer_outside_the_roots_or_the_name_is_refused() {
    let i = issuer();
    let fetch = Arc::new(MemoryFetch::new());
    let v = verifier(i, &fetch);
    // Another root (a second mock's): unknown once its AIA URL has nothing
    // better to offer either.
    let stranger = AzureIssuer::new();
    let sig = stranger.sign(&stranger.content(VM, NONCE, now()), true);
    fetch.set(&stranger.aia_url(), stranger.intermediate_der());
    let r = reason(&v, &sig, &want()).await;
    assert!(
        matches!(r, Reason::UnknownSigner | Reason::BadSignature),
        "{r:?}"
    );
    assert_eq!(v.cached_intermediates(), 0);
    // The right chain, the wrong name.
    let evil = AzureIssuer::with_leaf_name("metadata.azure.com.evil.example");
    let v_evil = verifier(&evil, &fetch);
    let sig = evil.sign(&evil.content(VM, NONCE, now()), true);
    assert_eq!(reason(&v_evil, &sig, &want()).await, Reason::UnknownSigner);
    // A subdomain is fine.
    let sub = AzureIssuer::with_leaf_name("eastus.metadata.azure.com");
    let v_sub = verifier(&sub, &fetch);
    let sig = sub.sign(&sub.content(VM, NONCE, now()), true);
    v_sub.verify(&sig, &want(), now()).await.unwrap();
    // Microsoft's real roots do not trust a self-made chain.
    let real = AzureVerifier::new(AzureConfig::new().without_aia()).unwrap();
    let sig = i.sign(&i.content(VM, NONCE, now()), true);
    assert_eq!(reason(&real, &sig, &want()).await, Reason::UnknownSigner);
}

#[tokio::test]
async fn intermediates_come_from_aia_and_are_cached() {
    let i = issuer();
    let fetch = Arc::new(MemoryFetch::new());
    let v = verifier(i, &fetch);
    let sig = i.sign(&i.content(VM, NONCE, now()), false);

    // Not published yet: the fetch fails, the cache stays empty, and the
    // URL is not fetched again within a minute.
    assert_eq!(reason(&v, &sig, &want()).await, Reason::KeysUnavailable);
    assert_eq!(reason(&v, &sig, &want()).await, Reason::KeysUnavailable);
    assert_eq!(fetch.gets(), 1);
    assert_eq!(v.cached_intermediates(), 0);

    // Published: fetched once, then cached.
    let v = verifier(i, &fetch);
    fetch.set(&i.aia_url(), i.intermediate_der());
    v.verify(&sig, &want(), now()).await.unwrap();
    assert_eq!(fetch.gets(), 2);
    assert_eq!(v.cached_intermediates(), 1);
    v.verify(&sig, &want(), now()).await.unwrap();
    assert_eq!(fetch.gets(), 2);

    // Hostile answers (garbage, another root's intermediate) never enter
    // the cache.
    let stranger = AzureIssuer::new();
    let v = verifier(i, &fetch);
    fetch.set(&i.aia_url(), stranger.intermediate_der());
    let r = reason(&v, &sig, &want()).await;
    assert!(
        matches!(r, Reason::UnknownSigner | Reason::BadSignature),
        "{r:?}"
    );
    assert_eq!(v.cached_intermediates(), 0);
    let v = verifier(i, &fetch);
    fetch.set(&i.aia_url(), b"<html>403 Forbidden</html>".to_vec());
    assert_eq!(reason(&v, &sig, &want()).await, Reason::KeysUnavailable);
    assert_eq!(v.cached_intermediates(), 0);

    // A URL outside the allow-list is never fetched.
    let before = fetch.gets();
    let strict = AzureVerifier::new(
        AzureConfig::new()
            .with_roots_pem(i.root_pem())
            .unwrap()
            .with_aia_prefixes(["http://cacerts.digicert.com/"])
            .with_fetcher(fetch.clone()),
    )
    .unwrap();
    fetch.set(&i.aia_url(), i.intermediate_der());
    assert_eq!(reason(&strict, &sig, &want()).await, Reason::UnknownSigner);
    assert_eq!(fetch.gets(), before);
}

#[tokio::test]
async fn a_rotated_intermediate_under_the_same_root_still_verifies() {
    let mut i = AzureIssuer::new();
    let fetch = Arc::new(MemoryFetch::new());
    fetch.set(&i.aia_url(), i.intermediate_der());
    let v = verifier(&i, &fetch);
    v.verify(&i.sign(&i.content(VM, NONCE, now()), false), &want(), now())
        .await
        .unwrap();
    assert_eq!(v.cached_intermediates(), 1);

    // Churn: a new intermediate, carried in the document.
    i.rotate_intermediate();
    v.verify(&i.sign(&i.content(VM, NONCE, now()), true), &want(), now())
        .await
        .unwrap();
    assert_eq!(v.cached_intermediates(), 2);

    // Churn again: a new intermediate, only at its AIA URL.
    i.rotate_intermediate();
    fetch.set(&i.aia_url(), i.intermediate_der());
    v.verify(&i.sign(&i.content(VM, NONCE, now()), false), &want(), now())
        .await
        .unwrap();
    assert_eq!(v.cached_intermediates(), 3);

    // Pinned intermediates also work, with no fetch at all.
    let pinned = AzureVerifier::new(
        AzureConfig::new()
            .with_roots_pem(i.root_pem())
            .unwrap()
            .with_intermediates_pem(x509_pem(&i.intermediate_der()))
            .unwrap()
            .without_aia(),
    )
    .unwrap();
    pinned
        .verify(&i.sign(&i.content(VM, NONCE, now()), false), &want(), now())
        .await
        .unwrap();
}

fn x509_pem(der: &[u8]) -> String {
    use base64::Engine as _;
    let b = base64::engine::general_purpose::STANDARD.encode(der);
    let lines: Vec<&str> = b
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    format!(
        "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
        lines.join("\n")
    )
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
        let fetch = Arc::new(MemoryFetch::new());
        let sig = i.sign(&i.content(VM, NONCE, now()), true);
        rt.block_on(async {
            // A fresh verifier each time: nothing cached from the genuine
            // document stands in for a corrupted carried intermediate.
            verifier(i, &fetch).verify(&sig, &want(), now()).await.unwrap();
            let bad = flip(&sig, at, bit);
            let v = verifier(i, &fetch);
            prop_assert!(v.verify(&bad, &want(), now()).await.is_err(), "{}", bad);
            Ok(())
        })?;
    }
}
