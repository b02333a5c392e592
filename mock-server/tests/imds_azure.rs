//! Azure's Instance Metadata Service: the header and api-version rules,
//! the instance document, and the attested document: its CMS signature
//! checked with aws-lc-rs against the signer it carries, the signer's chain
//! built with rustls-webpki to the root `/_mock/trust` publishes (before
//! and after a rotation), and, where the `openssl` tool is installed,
//! `openssl cms -verify` as a second, independent verifier.

mod imds_support;

use aws_lc_rs::signature::{UnparsedPublicKey, RSA_PKCS1_2048_8192_SHA256};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use cms::cert::CertificateChoices;
use cms::content_info::ContentInfo;
use cms::signed_data::{SignedData, SignerIdentifier};
use der::{Decode, Encode};
use imds_support::*;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use serde_json::Value;
use skyfleet_mock::MockCloud;
use x509_cert::Certificate;

const META: (&str, &str) = ("metadata", "true");

fn url(mock: &MockCloud, vm_id: &str, path: &str) -> String {
    format!("{}/_imds/azure/{vm_id}/metadata/{path}", mock.imds_url())
}

/// What a verifier learns from an attested document.
struct Attested {
    content: Value,
    signer: Vec<u8>,
    intermediates: Vec<Vec<u8>>,
}

/// Decodes `{"encoding","signature"}`, checks the CMS signature with the
/// carried signer's key, and answers the content and certificates.
fn open(doc: &Value) -> Result<Attested, String> {
    assert_eq!(doc["encoding"], "pkcs7");
    let der = STANDARD
        .decode(doc["signature"].as_str().unwrap())
        .map_err(|e| e.to_string())?;
    let info = ContentInfo::from_der(&der).map_err(|e| e.to_string())?;
    let sd: SignedData = info.content.decode_as().map_err(|e| e.to_string())?;
    let content = sd
        .encap_content_info
        .econtent
        .as_ref()
        .unwrap()
        .value()
        .to_vec();
    let certs: Vec<Certificate> = sd
        .certificates
        .as_ref()
        .unwrap()
        .0
        .iter()
        .map(|c| match c {
            CertificateChoices::Certificate(c) => c.clone(),
            CertificateChoices::Other(_) => panic!("unexpected certificate kind"),
        })
        .collect();
    let si = sd.signer_infos.0.iter().next().unwrap();
    let SignerIdentifier::IssuerAndSerialNumber(sid) = &si.sid else {
        panic!("signer named by issuer and serial");
    };
    let signer = certs
        .iter()
        .find(|c| {
            c.tbs_certificate.issuer == sid.issuer
                && c.tbs_certificate.serial_number == sid.serial_number
        })
        .ok_or("the signer is not among the certificates")?;
    let attrs = si.signed_attrs.as_ref().unwrap();
    let md = attrs
        .iter()
        .find(|a| a.oid == const_oid::db::rfc5911::ID_MESSAGE_DIGEST)
        .unwrap();
    let md: der::asn1::OctetString = md.values.iter().next().unwrap().decode_as().unwrap();
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &content);
    if md.as_bytes() != digest.as_ref() {
        return Err("message digest mismatch".into());
    }
    let key = signer
        .tbs_certificate
        .subject_public_key_info
        .subject_public_key
        .raw_bytes();
    UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, key)
        .verify(&attrs.to_der().unwrap(), si.signature.as_bytes())
        .map_err(|_| "bad signature".to_string())?;
    let signer_der = signer.to_der().unwrap();
    Ok(Attested {
        content: serde_json::from_slice(&content).map_err(|e| e.to_string())?,
        intermediates: certs
            .iter()
            .map(|c| c.to_der().unwrap())
            .filter(|d| *d != signer_der)
            .collect(),
        signer: signer_der,
    })
}

/// Checks the signer chains to `root_pem` for server authentication as
/// `metadata.azure.com`.
fn chain(a: &Attested, root_pem: &str) -> Result<(), webpki::Error> {
    let (_, root) = der::pem::decode_vec(root_pem.as_bytes()).unwrap();
    let root = CertificateDer::from(root);
    let anchor = webpki::anchor_from_trusted_cert(&root)?;
    let leaf = CertificateDer::from(a.signer.clone());
    let ee = webpki::EndEntityCert::try_from(&leaf)?;
    let inters: Vec<CertificateDer<'_>> = a
        .intermediates
        .iter()
        .map(|d| CertificateDer::from(d.clone()))
        .collect();
    ee.verify_for_usage(
        webpki::ALL_VERIFICATION_ALGS,
        &[anchor],
        &inters,
        UnixTime::now(),
        webpki::KeyUsage::server_auth(),
        None,
        None,
    )?;
    ee.verify_is_valid_for_subject_name(&ServerName::try_from("metadata.azure.com").unwrap())
}

/// `MM/DD/YY HH:MM:SS -0000` (Azure's format) parsed, as a datetime.
fn azure_time(s: &str) -> time::PrimitiveDateTime {
    let (date, rest) = s.split_once(' ').unwrap();
    let (clock, zone) = rest.split_once(' ').unwrap();
    assert_eq!(zone, "-0000", "{s}");
    let d: Vec<u8> = date.split('/').map(|p| p.parse().unwrap()).collect();
    let t: Vec<u8> = clock.split(':').map(|p| p.parse().unwrap()).collect();
    let month = time::Month::try_from(d[0]).unwrap();
    let date = time::Date::from_calendar_date(2000 + i32::from(d[2]), month, d[1]).unwrap();
    date.with_hms(t[0], t[1], t[2]).unwrap()
}

fn expires_after(created: &str, expires: &str) -> time::Duration {
    azure_time(expires) - azure_time(created)
}

async fn attested(mock: &MockCloud, vm_id: &str, query: &str) -> Got {
    get(
        &url(
            mock,
            vm_id,
            &format!("attested/document?api-version=2020-09-01{query}"),
        ),
        &[META],
    )
    .await
}

#[tokio::test]
async fn the_attested_document_is_signed_by_metadata_azure_com_under_the_root() {
    let mock = mock().await;
    let vm = azure_vm(&mock, "vm-a", None).await;
    let vm_id = vm["properties"]["vmId"].as_str().unwrap();
    let got = attested(&mock, vm_id, "&nonce=1234567890").await;
    assert_eq!(got.status, 200, "{}", got.text());
    let a = open(&got.json()).unwrap();
    let c = &a.content;
    assert_eq!(c["vmId"], vm_id);
    assert_eq!(c["nonce"], "1234567890");
    assert_eq!(c["subscriptionId"], SUB);
    assert_eq!(c["sku"], "server");
    assert_eq!(c["licenseType"], "");
    assert_eq!(c["plan"]["name"], "");
    let created = c["timeStamp"]["createdOn"].as_str().unwrap();
    let expires = c["timeStamp"]["expiresOn"].as_str().unwrap();
    assert_eq!(expires_after(created, expires), time::Duration::hours(6));
    assert_eq!(
        a.intermediates.len(),
        1,
        "the intermediate travels with the signer"
    );
    let signer = Certificate::from_der(&a.signer).unwrap();
    assert!(signer
        .tbs_certificate
        .subject
        .to_string()
        .contains("CN=metadata.azure.com"));

    let t = trust(&mock).await;
    let root = t["azure"]["root_pem"].as_str().unwrap();
    chain(&a, root).unwrap();
    openssl_verifies(&got.json(), root);

    // Without a nonce, the time stands in for it.
    let a = open(&attested(&mock, vm_id, "").await.json()).unwrap();
    let nonce = a.content["nonce"].as_str().unwrap();
    assert_eq!(nonce.len(), 15, "{nonce}");
    assert_eq!(&nonce[8..9], "-");

    // A flipped byte in the signature, or a root from another mock: refused.
    let mut doc = got.json();
    let mut raw = STANDARD.decode(doc["signature"].as_str().unwrap()).unwrap();
    let n = raw.len();
    raw[n - 10] ^= 1;
    doc["signature"] = Value::from(STANDARD.encode(raw));
    assert!(open(&doc).is_err());
    let other = imds_support::mock().await;
    let other_root = trust(&other).await["azure"]["root_pem"]
        .as_str()
        .unwrap()
        .to_string();
    let a = open(&got.json()).unwrap();
    assert!(chain(&a, &other_root).is_err());
}

/// `openssl cms -verify` against `root_pem`, when the tool exists.
fn openssl_verifies(doc: &Value, root_pem: &str) {
    let Ok(out) = std::process::Command::new("openssl")
        .arg("version")
        .output()
    else {
        eprintln!("openssl not installed: skipping the second verifier");
        return;
    };
    assert!(out.status.success());
    let dir = tempfile::tempdir().unwrap();
    let sig = dir.path().join("doc.der");
    let root = dir.path().join("root.pem");
    std::fs::write(
        &sig,
        STANDARD.decode(doc["signature"].as_str().unwrap()).unwrap(),
    )
    .unwrap();
    std::fs::write(&root, root_pem).unwrap();
    let out = std::process::Command::new("openssl")
        .args(["cms", "-verify", "-inform", "DER", "-purpose", "any", "-in"])
        .arg(&sig)
        .arg("-CAfile")
        .arg(&root)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "openssl: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(printed["encoding"], Value::Null);
    assert!(printed["vmId"].is_string(), "{printed}");
}

#[tokio::test]
async fn bad_nonces_headers_versions_and_proxies_are_400() {
    let mock = mock().await;
    let vm = azure_vm(&mock, "vm-b", None).await;
    let vm_id = vm["properties"]["vmId"].as_str().unwrap();
    for nonce in ["12345678901", "12ab", "", "-5"] {
        let got = attested(&mock, vm_id, &format!("&nonce={nonce}")).await;
        assert_eq!(got.status, 400, "nonce {nonce:?}");
        assert!(got.json()["error"].as_str().unwrap().contains("nonce"));
    }
    let instance = url(&mock, vm_id, "instance?api-version=2021-02-01");
    let got = get(&instance, &[]).await;
    assert_eq!(got.status, 400);
    assert!(got.json()["error"]
        .as_str()
        .unwrap()
        .contains("metadata header"));
    let got = get(&url(&mock, vm_id, "instance"), &[META]).await;
    assert_eq!(got.status, 400);
    assert!(got.json()["newest-versions"].is_array());
    assert_eq!(
        get(&url(&mock, vm_id, "instance?api-version=latest"), &[META])
            .await
            .status,
        400
    );
    let got = get(&instance, &[META, ("x-forwarded-for", "203.0.113.9")]).await;
    assert_eq!(got.status, 400);
    assert_eq!(call("POST", &instance, &[META]).await.status, 405);
}

#[tokio::test]
async fn the_instance_document_serves_compute_network_and_user_data() {
    let mock = mock().await;
    let user_data = b64("manager=https://example.invalid worker=w-1");
    let vm = azure_vm(&mock, "vm-c", Some(&user_data)).await;
    let vm_id = vm["properties"]["vmId"].as_str().unwrap();
    let got = get(
        &url(&mock, vm_id, "instance?api-version=2021-02-01"),
        &[META],
    )
    .await;
    assert_eq!(got.status, 200, "{}", got.text());
    let d = got.json();
    let c = &d["compute"];
    assert_eq!(c["vmId"], vm_id);
    assert_eq!(c["name"], "vm-c");
    assert_eq!(c["resourceGroupName"], "rg");
    assert_eq!(c["subscriptionId"], SUB);
    assert_eq!(c["location"], "westeurope");
    assert_eq!(c["vmSize"], "Standard_D2s_v5");
    assert_eq!(c["resourceId"], vm["id"]);
    assert_eq!(c["userData"], user_data.as_str());
    assert_eq!(c["tags"], "pool:p1;worker:vm-c");
    assert_eq!(c["tagsList"][1]["value"], "vm-c");
    assert_eq!(c["osProfile"]["computerName"], "vm-c");
    let ip = d["network"]["interface"][0]["ipv4"]["ipAddress"][0]["privateIpAddress"]
        .as_str()
        .unwrap();
    assert!(ip.starts_with("10.0.1."), "{ip}");

    let leaf = get(
        &url(
            &mock,
            vm_id,
            "instance/compute/userData?api-version=2021-01-01&format=text",
        ),
        &[META],
    )
    .await;
    assert_eq!(leaf.text(), user_data);
    let leaf = get(&url(&mock, vm_id, "instance/network/interface/0/ipv4/ipAddress/0/privateIpAddress?api-version=2021-02-01&format=text"), &[META]).await;
    assert_eq!(leaf.text(), ip);
    let dir = get(
        &url(
            &mock,
            vm_id,
            "instance/compute?api-version=2021-02-01&format=text",
        ),
        &[META],
    )
    .await;
    assert_eq!(dir.status, 400);
    assert_eq!(
        get(
            &url(&mock, vm_id, "instance/compute/nope?api-version=2021-02-01"),
            &[META]
        )
        .await
        .status,
        404
    );
}

#[tokio::test]
async fn unknown_and_deleted_vms_have_no_metadata() {
    let mock = mock().await;
    let q = "instance?api-version=2021-02-01";
    assert_eq!(
        get(
            &url(&mock, "00000000-0000-0000-0000-000000000000", q),
            &[META]
        )
        .await
        .status,
        404
    );
    let vm = azure_vm(&mock, "vm-d", None).await;
    let vm_id = vm["properties"]["vmId"].as_str().unwrap().to_string();
    assert_eq!(
        get(&url(&mock, &vm_id.to_uppercase(), q), &[META])
            .await
            .status,
        200,
        "vmIds are case-insensitive"
    );
    azure_delete(&mock, "vm-d").await;
    assert_eq!(get(&url(&mock, &vm_id, q), &[META]).await.status, 404);
    assert_eq!(attested(&mock, &vm_id, "").await.status, 404);
}

#[tokio::test]
async fn a_rotated_intermediate_still_chains_to_the_same_root() {
    let mock = mock().await;
    let vm = azure_vm(&mock, "vm-e", None).await;
    let vm_id = vm["properties"]["vmId"].as_str().unwrap();
    let before = trust(&mock).await;
    let old = open(&attested(&mock, vm_id, "&nonce=1").await.json()).unwrap();
    let rotated = call("POST", &format!("{}/_mock/trust/rotate", mock.url()), &[])
        .await
        .json();
    assert_eq!(rotated["azure"]["root_pem"], before["azure"]["root_pem"]);
    assert_ne!(
        rotated["azure"]["intermediate_pem"],
        before["azure"]["intermediate_pem"]
    );
    assert_eq!(rotated["azure"]["intermediate_generation"], 2);
    let new = open(&attested(&mock, vm_id, "&nonce=2").await.json()).unwrap();
    assert_ne!(new.intermediates, old.intermediates);
    let root = before["azure"]["root_pem"].as_str().unwrap();
    chain(&new, root).unwrap();
    chain(&old, root).unwrap();
    // The new signer does not chain through the old intermediate alone.
    let mixed = Attested {
        content: Value::Null,
        signer: new.signer.clone(),
        intermediates: old.intermediates.clone(),
    };
    assert!(chain(&mixed, root).is_err());
}
