//! Azure end to end: a worker created by the Azure provider on the mock
//! (over TLS), its attested data document (with a nonce) fetched from the
//! mock's IMDS over plain HTTP with `Metadata: true`, verified by the
//! provider trusting only the root `/_mock/trust` publishes (the signer and
//! its intermediate travel in the document; no AIA fetch).

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use skyfleet_azure::{AttestationConfig, AzureBuilder, AzureConfig, CredentialConfig, Secret};
use skyfleet_core::provider::identity::IdentityProof;
use skyfleet_core::{PollPolicy, Provider, Worker};
use skyfleet_mock::MockCloud;
use skyfleet_tests::{MockCloudKind, Subject};

use crate::support::{self, *};

const SUB: &str = "00000000-0000-0000-0000-0000000000e2";
const RG: &str = "workers";
const NONCE: &str = "4711081542";

/// The resource group and network the workers go into.
async fn scaffold(mock: &MockCloud) {
    let http = api_client(mock);
    let base = format!("{}/subscriptions/{SUB}/resourceGroups/{RG}", mock.url());
    for (path, body) in [
        (
            format!("{base}?api-version=2021-04-01"),
            json!({"location": "eastus"}),
        ),
        (
            format!(
                "{base}/providers/Microsoft.Network/virtualNetworks/vnet?api-version=2024-05-01"
            ),
            json!({"location": "eastus", "properties": {
                "addressSpace": {"addressPrefixes": ["10.0.0.0/16"]},
                "subnets": [{"name": "default", "properties": {"addressPrefix": "10.0.0.0/24"}}]}}),
        ),
    ] {
        let r = http
            .put(path)
            .bearer_auth("test")
            .json(&body)
            .send()
            .await
            .expect("seed");
        assert!(r.status().is_success(), "seed: {}", r.status());
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
}

async fn provider(mock: &MockCloud, clock: Arc<ShiftedClock>) -> Arc<dyn Provider> {
    let t = support::trust(mock).await;
    let root = t["azure"]["root_pem"].as_str().expect("Azure root");
    let attestation = AttestationConfig::new()
        .with_roots_pem(root)
        .expect("the mock's root parses")
        .without_aia();
    let mut config = AzureConfig::new(SUB);
    config.endpoint = mock.url().to_string();
    config.resource_groups = vec![RG.into()];
    config.credential = CredentialConfig::StaticToken {
        token: Secret::new("test-token"),
    };
    config.ca_pem = Some(ca_pem(mock));
    config.poll = PollPolicy {
        min_interval: Duration::from_millis(20),
        max_interval: Duration::from_millis(300),
        default_interval: Duration::from_millis(50),
        deadline: Duration::from_secs(60),
        max_consecutive_errors: 5,
    };
    config.busy_retry_s = 0.2;
    let p = AzureBuilder::from_config(config)
        .with_attestation(attestation)
        .with_clock(clock)
        .build()
        .expect("valid config");
    Arc::new(p)
}

async fn setup(mock: &MockCloud, clock: Arc<ShiftedClock>) -> Subject {
    scaffold(mock).await;
    let p = provider(mock, clock).await;
    support::subject(
        mock,
        "azure",
        p,
        MockCloudKind::azure(),
        azure_launch(SUB, RG),
    )
}

/// The ARM URL of `w`'s VM, from the provider's state.
fn vm_url(mock: &MockCloud, w: &Worker) -> String {
    let st = &w.provider_state;
    let rg = st["resource_group"].as_str().expect("a resource group");
    let vm = st["names"]["vm"].as_str().expect("a VM name");
    format!(
        "{}/subscriptions/{SUB}/resourceGroups/{rg}/providers/Microsoft.Compute/virtualMachines/{vm}?api-version=2024-07-01",
        mock.url()
    )
}

/// The VM's `vmId`, read from ARM as anyone outside the VM would.
async fn vm_id(mock: &MockCloud, w: &Worker) -> String {
    let url = vm_url(mock, w);
    let body: Value = api_client(mock)
        .get(url)
        .bearer_auth("test")
        .send()
        .await
        .expect("GET VM")
        .json()
        .await
        .expect("JSON");
    body["properties"]["vmId"]
        .as_str()
        .expect("a vmId")
        .to_string()
}

/// Deletes `w`'s VM with ARM directly, and waits until a GET finds none.
async fn delete_vm_out_of_band(mock: &MockCloud, w: &Worker) {
    let url = vm_url(mock, w);
    let http = api_client(mock);
    let r = http
        .delete(&url)
        .bearer_auth("test")
        .send()
        .await
        .expect("DELETE VM");
    assert!(r.status().is_success(), "DELETE VM: {}", r.status());
    let give_up = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let r = http
            .get(&url)
            .bearer_auth("test")
            .send()
            .await
            .expect("GET VM");
        if r.status() == 404 {
            return;
        }
        assert!(tokio::time::Instant::now() < give_up, "the VM is not gone");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The attested document's `signature`, asked with `nonce`.
async fn attested(mock: &MockCloud, vm_id: &str, nonce: &str) -> String {
    let url = format!(
        "{}/_imds/azure/{vm_id}/metadata/attested/document?api-version=2020-09-01&nonce={nonce}",
        mock.imds_url()
    );
    let doc = parse(&imds_get(&url, &[("Metadata", "true")]).await);
    assert_eq!(doc["encoding"], "pkcs7");
    doc["signature"].as_str().expect("a signature").to_string()
}

fn proof(signature: &str, nonce: Option<&str>) -> IdentityProof {
    IdentityProof::AzureAttested {
        signature: signature.to_string(),
        nonce: nonce.map(str::to_string),
    }
}

#[tokio::test]
async fn azure_identity_end_to_end() {
    let mock = mock_tls().await;
    let clock = Arc::new(ShiftedClock::default());
    let s = setup(&mock, clock.clone()).await;
    let p = &s.provider;
    let mut w1 = running(&s, "id-az-1").await;
    let w2 = running(&s, "id-az-2").await;
    let id1 = vm_id(&mock, &w1).await;
    let sig = attested(&mock, &id1, NONCE).await;

    let ok = p
        .verify_identity(&w1, &proof(&sig, Some(NONCE)))
        .await
        .expect("verifies");
    assert_eq!(ok.instance_id.as_deref(), Some(id1.as_str()));
    assert!(ok.proof_expires_at.is_some());
    // No nonce issued: the document's is not compared.
    p.verify_identity(&w1, &proof(&sig, None))
        .await
        .expect("verifies without an issued nonce");

    // Another worker; another nonce.
    assert_eq!(
        reason(p.verify_identity(&w2, &proof(&sig, Some(NONCE))).await),
        "wrong_instance"
    );
    assert_eq!(
        reason(
            p.verify_identity(&w1, &proof(&sig, Some("4711081543")))
                .await
        ),
        "wrong_nonce"
    );

    // A flipped byte anywhere in the CMS SignedData. A flip inside the
    // intermediate the document carries is the one exception on a warm
    // cache: that copy is not needed (the intact intermediate cached by the
    // first verification builds the path, and nothing signed changed); a
    // provider with a cold cache must refuse it.
    let mut warm_accepted = 0;
    for at in positions(base64_len(&sig)) {
        let flipped = proof(&flip_base64(&sig, at), Some(NONCE));
        let verdict = p.verify_identity(&w1, &flipped).await;
        let r = if verdict.is_ok() {
            warm_accepted += 1;
            let cold = provider(&mock, Arc::new(ShiftedClock::default())).await;
            reason(cold.verify_identity(&w1, &flipped).await)
        } else {
            reason(verdict)
        };
        assert!(
            ["bad_signature", "malformed", "unknown_signer"].contains(&r),
            "byte {at}: {r}"
        );
    }
    assert!(
        warm_accepted <= 1,
        "{warm_accepted} flips accepted on a warm cache"
    );

    // Past `expiresOn` (six hours after `createdOn`); then just before it.
    clock.shift(Duration::from_secs(6 * 3600 + 60));
    assert_eq!(
        reason(p.verify_identity(&w1, &proof(&sig, Some(NONCE))).await),
        "expired"
    );
    clock.shift(Duration::from_secs(6 * 3600 - 120));
    p.verify_identity(&w1, &proof(&sig, Some(NONCE)))
        .await
        .expect("still before expiresOn");
    clock.reset();

    // A second mock's document: another root. The two mocks' certificates
    // have the same names, so the path is built and a signature fails.
    let other = mock_tls().await;
    let so = setup(&other, Arc::new(ShiftedClock::default())).await;
    let wo = running(&so, "id-az-other").await;
    let foreign = attested(&other, &vm_id(&other, &wo).await, NONCE).await;
    assert_eq!(
        reason(p.verify_identity(&w1, &proof(&foreign, Some(NONCE))).await),
        "bad_signature"
    );

    // Rotation: a new intermediate and signer under the same root; a new
    // document verifies with the provider configured before.
    let before = support::trust(&mock).await["azure"].clone();
    let after = rotate(&mock).await["azure"].clone();
    assert_eq!(before["root_pem"], after["root_pem"], "same root");
    assert_ne!(
        before["intermediate_pem"], after["intermediate_pem"],
        "a new intermediate"
    );
    let fresh = attested(&mock, &id1, NONCE).await;
    p.verify_identity(&w1, &proof(&fresh, Some(NONCE)))
        .await
        .expect("a document under the new intermediate verifies");

    // A VM deleted behind the provider's back (its worker record still
    // says running): the GET of the VM finds nothing.
    let id2 = vm_id(&mock, &w2).await;
    let sig2 = attested(&mock, &id2, NONCE).await;
    p.verify_identity(&w2, &proof(&sig2, Some(NONCE)))
        .await
        .expect("verifies before the deletion");
    delete_vm_out_of_band(&mock, &w2).await;
    assert_eq!(
        reason(p.verify_identity(&w2, &proof(&sig2, Some(NONCE))).await),
        "unknown_worker"
    );

    // The VM deleted by the provider, the document fetched before.
    remove(&s, &mut w1).await;
    assert_eq!(
        reason(p.verify_identity(&w1, &proof(&fresh, Some(NONCE))).await),
        "not_registrable"
    );
    let url = format!(
        "{}/_imds/azure/{id1}/metadata/instance?api-version=2021-02-01",
        mock.imds_url()
    );
    let (status, _) = imds_try(reqwest::Method::GET, &url, &[("Metadata", "true")]).await;
    assert_eq!(status, 404, "a deleted VM has no metadata");
}
