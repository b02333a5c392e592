//! Worker identity on the mock ARM: an attested document naming the VM's
//! `vmId` (read from ARM, as the provider does) verifies for its worker
//! only, with the issued nonce only, and not once the worker is removed or
//! when its VM does not exist.

mod common;

use common::*;
use http::Method;
use serde_json::Value;
use skyfleet_azure::testing::{client, ChainState, ResourceType};
use skyfleet_azure::{AttestationConfig, AzureBuilder, AzureProvider};
use skyfleet_core::provider::apply_step;
use skyfleet_core::{ErrorKind, IdentityProof, Phase, Provider, Worker};
use skyfleet_identity::testing::azure::AzureIssuer;
use time::OffsetDateTime;

async fn vm_id(p: &AzureProvider, w: &Worker) -> String {
    let st = ChainState::from_worker(w).unwrap().unwrap();
    let c = client(p);
    let url = c.resource_url(&st.resource_group, ResourceType::Vm, &st.names.vm);
    let resp = c.request(Method::GET, &url).send().await.unwrap();
    let body: Value = resp.json("get").unwrap();
    body["properties"]["vmId"].as_str().unwrap().to_string()
}

fn proof(issuer: &AzureIssuer, vm_id: &str, nonce: &str) -> IdentityProof {
    let signature = issuer.sign(
        &issuer.content(vm_id, nonce, OffsetDateTime::now_utc()),
        true,
    );
    IdentityProof::AzureAttested {
        signature,
        nonce: Some(nonce.to_string()),
    }
}

fn label(e: skyfleet_core::Error) -> String {
    assert!(
        matches!(e.kind(), ErrorKind::IdentityRejected { .. }),
        "{e:?}"
    );
    assert_eq!(e.message(), "signature validation error");
    e.rejection_reason().unwrap_or_default().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attested_documents_verify_for_their_vm_only() {
    let env = Env::start().await;
    let issuer = AzureIssuer::new();
    let p = AzureBuilder::from_config(env.config())
        .with_attestation(
            AttestationConfig::new()
                .with_roots_pem(issuer.root_pem())
                .unwrap()
                .without_aia(),
        )
        .build()
        .unwrap();
    let mut w1 = worker("id-1", launch(false, 0));
    let mut w2 = worker("id-2", launch(false, 0));
    drive(&p, &mut w1, &[Phase::Running]).await;
    drive(&p, &mut w2, &[Phase::Running]).await;
    let (vm1, vm2) = (vm_id(&p, &w1).await, vm_id(&p, &w2).await);
    assert_ne!(vm1, vm2);

    let ok = p
        .verify_identity(&w1, &proof(&issuer, &vm1, "1234567890"))
        .await
        .unwrap();
    assert_eq!(ok.instance_id.as_deref(), Some(vm1.as_str()));
    assert!(ok.proof_expires_at.is_some());

    // Another worker's VM; another nonce than the one issued.
    let e = p
        .verify_identity(&w2, &proof(&issuer, &vm1, "1234567890"))
        .await
        .unwrap_err();
    assert_eq!(label(e), "wrong_instance");
    let mut wrong_nonce = proof(&issuer, &vm1, "1234567890");
    if let IdentityProof::AzureAttested { nonce, .. } = &mut wrong_nonce {
        *nonce = Some("5555555555".into());
    }
    assert_eq!(
        label(p.verify_identity(&w1, &wrong_nonce).await.unwrap_err()),
        "wrong_nonce"
    );

    // A signer under another root of the same name (a second mock's): its
    // intermediate does not verify under the trusted root.
    let stranger = AzureIssuer::new();
    let e = p
        .verify_identity(&w1, &proof(&stranger, &vm1, "1234567890"))
        .await
        .unwrap_err();
    let l = label(e);
    assert!(l == "bad_signature" || l == "unknown_signer", "{l}");

    // A worker whose VM was never created: unknown.
    let mut w3 = worker("id-3", launch(false, 0));
    let s = p.step(&w3).await.unwrap();
    apply_step(&mut w3, &s, OffsetDateTime::now_utc());
    let e = p
        .verify_identity(&w3, &proof(&issuer, &vm1, "1234567890"))
        .await
        .unwrap_err();
    assert_eq!(label(e), "unknown_worker");

    // Being removed: may not register any more.
    w1.desired = skyfleet_core::DesiredState::Removed;
    let e = p
        .verify_identity(&w1, &proof(&issuer, &vm1, "1234567890"))
        .await
        .unwrap_err();
    assert_eq!(label(e), "not_registrable");
}
