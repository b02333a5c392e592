//! The trust material's control API (`/_mock/trust`, rotation), pinned
//! keys (`trust_keys`, `--trust-keys`, `--write-trust-keys`), the plain
//! metadata listener of a TLS mock, and the binary's second stdout line.

mod imds_support;

use std::io::{BufRead, BufReader};

use imds_support::*;
use jsonwebtoken::{decode, decode_header, Algorithm, DecodingKey, Validation};
use serde_json::{json, Value};
use skyfleet_mock::{MockCloud, MockError, TrustKeys};

async fn identity(mock: &MockCloud, project: &str) -> String {
    let url = format!(
        "{}/_imds/gcp/{project}/{ZONE}/vm-1/computeMetadata/v1/instance/service-accounts/default/identity?audience=aud",
        mock.imds_url()
    );
    get(&url, &[("metadata-flavor", "Google")]).await.text()
}

/// Verifies `token` against the JWKS the mock serves now.
async fn verifies_now(mock: &MockCloud, token: &str) -> bool {
    let kid = decode_header(token).unwrap().kid.unwrap();
    let jwks = get(&format!("{}/oauth2/v3/certs", mock.url()), &[])
        .await
        .json();
    let Some(k) = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == kid.as_str())
    else {
        return false;
    };
    let key = DecodingKey::from_rsa_components(k["n"].as_str().unwrap(), k["e"].as_str().unwrap())
        .unwrap();
    let mut v = Validation::new(Algorithm::RS256);
    v.set_audience(&["aud"]);
    decode::<Value>(token, &key, &v).is_ok()
}

#[tokio::test]
async fn trust_names_what_a_verifier_needs_and_rotation_changes_the_kid() {
    let mock = mock().await;
    let t = trust(&mock).await;
    assert!(t["aws"]["certificate_pem"]
        .as_str()
        .unwrap()
        .contains("BEGIN CERTIFICATE"));
    assert_eq!(
        t["gcp"]["jwks_url"],
        format!("{}/oauth2/v3/certs", mock.url())
    );
    assert_eq!(t["gcp"]["issuer"], "https://accounts.google.com");
    assert!(t["azure"]["root_pem"]
        .as_str()
        .unwrap()
        .contains("BEGIN CERTIFICATE"));
    assert_eq!(t["azure"]["signer_cn"], "metadata.azure.com");
    let kid = t["gcp"]["kids"][0].as_str().unwrap().to_string();
    assert_eq!(kid.len(), 40);
    let jwks = get(&format!("{}/oauth2/v3/certs", mock.url()), &[])
        .await
        .json();
    assert_eq!(jwks["keys"][0]["kid"], kid.as_str());
    let v1 = get(&format!("{}/oauth2/v1/certs", mock.url()), &[])
        .await
        .json();
    assert!(v1[&kid].as_str().unwrap().contains("BEGIN CERTIFICATE"));

    gce_instance(&mock, "proj-r", "vm-1", json!([])).await;
    let before = identity(&mock, "proj-r").await;
    assert!(verifies_now(&mock, &before).await);
    let rotated = call("POST", &format!("{}/_mock/trust/rotate", mock.url()), &[])
        .await
        .json();
    let new_kid = rotated["gcp"]["kids"][0].as_str().unwrap();
    assert_ne!(new_kid, kid);
    assert_eq!(
        rotated["aws"]["certificate_pem"], t["aws"]["certificate_pem"],
        "AWS does not rotate"
    );
    let jwks = get(&format!("{}/oauth2/v3/certs", mock.url()), &[])
        .await
        .json();
    assert_eq!(
        jwks["keys"].as_array().unwrap().len(),
        1,
        "the old kid is gone"
    );
    assert_eq!(jwks["keys"][0]["kid"], new_kid);
    assert!(
        !verifies_now(&mock, &before).await,
        "a token of the old key no longer verifies"
    );
    let after = identity(&mock, "proj-r").await;
    assert_eq!(decode_header(&after).unwrap().kid.as_deref(), Some(new_kid));
    assert!(verifies_now(&mock, &after).await);
}

#[tokio::test]
async fn pinned_keys_give_the_same_trust_on_every_start() {
    let dir = tempfile::tempdir().unwrap();
    TrustKeys::generate().unwrap().write(dir.path()).unwrap();
    let a = MockCloud::builder()
        .trust_keys(dir.path())
        .start()
        .await
        .unwrap();
    let b = MockCloud::builder()
        .trust_keys(dir.path())
        .start()
        .await
        .unwrap();
    let (ta, tb) = (trust(&a).await, trust(&b).await);
    assert_eq!(ta["aws"], tb["aws"]);
    assert_eq!(ta["azure"]["root_pem"], tb["azure"]["root_pem"]);
    assert!(ta["azure"]["intermediate_pem"].as_str().is_some());
    assert_eq!(ta["gcp"]["kids"], tb["gcp"]["kids"]);
    // A fresh mock trusts something else.
    let c = mock().await;
    assert_ne!(trust(&c).await["aws"], ta["aws"]);

    // A missing or broken key file is refused, naming the file.
    std::fs::remove_file(dir.path().join("google.key.pem")).unwrap();
    let err = MockCloud::builder()
        .trust_keys(dir.path())
        .start()
        .await
        .err()
        .unwrap();
    assert!(matches!(err, MockError::Trust(_)));
    assert!(err.to_string().contains("google.key.pem"), "{err}");
    std::fs::write(dir.path().join("google.key.pem"), "not a key").unwrap();
    let err = MockCloud::builder()
        .trust_keys(dir.path())
        .start()
        .await
        .err()
        .unwrap();
    assert!(err.to_string().contains("google.key.pem"), "{err}");
}

#[tokio::test]
async fn a_tls_mock_serves_metadata_on_a_plain_listener() {
    let mock = MockCloud::builder()
        .tls(true)
        .time_scale(0.001)
        .start()
        .await
        .unwrap();
    assert!(mock.url().starts_with("https://"));
    assert!(mock.imds_url().starts_with("http://"));
    assert_ne!(mock.imds_url(), mock.url().replace("https", "http"));
    let plain = imds_support::mock().await;
    assert_eq!(plain.imds_url(), plain.url());

    // An instance made over TLS has its metadata on the plain listener.
    let cert = reqwest::Certificate::from_pem(mock.cert_pem().unwrap().as_bytes()).unwrap();
    let tls = reqwest::Client::builder()
        .add_root_certificate(cert)
        .build()
        .unwrap();
    let resp = tls
        .post(format!("{}/compute/v1/projects/p/zones/{ZONE}/instances", mock.url()))
        .header("authorization", "Bearer t")
        .json(&json!({"name": "vm-1", "machineType": format!("zones/{ZONE}/machineTypes/e2-small"),
            "disks": [{"boot": true, "initializeParams": {"sourceImage": "projects/debian-cloud/global/images/family/debian-12"}}],
            "networkInterfaces": [{"network": "global/networks/default"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let url = format!(
        "{}/_imds/gcp/p/{ZONE}/vm-1/computeMetadata/v1/instance/name",
        mock.imds_url()
    );
    let mut name = String::new();
    for _ in 0..500 {
        let got = get(&url, &[("metadata-flavor", "Google")]).await;
        if got.status == 200 {
            name = got.text();
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(name, "vm-1");
    // The plain listener serves metadata only.
    let other = get(&format!("{}/_mock/health", mock.imds_url()), &[]).await;
    assert_eq!(other.status, 404);
}

#[test]
fn the_binary_writes_and_loads_trust_keys_and_prints_the_metadata_url() {
    let exe = env!("CARGO_BIN_EXE_skyfleet-mock");
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    let out = std::process::Command::new(exe)
        .arg("--write-trust-keys")
        .arg(&keys)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for f in [
        "aws.key.pem",
        "google.key.pem",
        "azure-root.key.pem",
        "azure-intermediate.key.pem",
        "azure-signer.key.pem",
    ] {
        let text = std::fs::read_to_string(keys.join(f)).unwrap();
        assert!(text.contains("BEGIN PRIVATE KEY"), "{f}");
    }
    let mut child = std::process::Command::new(exe)
        .args(["--listen", "127.0.0.1:0", "--tls", "--trust-keys"])
        .arg(&keys)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let (mut url, mut imds) = (String::new(), String::new());
    out.read_line(&mut url).unwrap();
    out.read_line(&mut imds).unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert!(url.trim().starts_with("https://127.0.0.1:"), "{url}");
    assert!(imds.trim().starts_with("http://127.0.0.1:"), "{imds}");

    let bad = std::process::Command::new(exe)
        .args(["--listen", "127.0.0.1:0", "--trust-keys"])
        .arg(dir.path().join("nowhere"))
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("aws.key.pem"));
}

/// `GET /_mock/resources` names each VM's metadata path, and the path
/// serves that VM's metadata (what an in-process agent or a test needs to
/// reach a VM's metadata from the listing alone).
#[tokio::test]
async fn the_resource_listing_names_each_vms_metadata_path() {
    let mock = mock().await;
    let instance = run_instance(&mock, &[]).await;
    gce_instance(&mock, "proj-listing", "vm-listed", json!([])).await;
    let vm = azure_vm(&mock, "vm-listed", None).await;
    let vm_id = vm["properties"]["vmId"].as_str().unwrap().to_string();
    let listed = get(&format!("{}/_mock/resources", mock.url()), &[])
        .await
        .json();
    let path_of = |kind: &str, name: &str| -> String {
        let r = listed
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["kind"] == kind && r["name"] == name)
            .unwrap_or_else(|| panic!("{kind} {name} not listed: {listed}"));
        r["metadata_path"].as_str().unwrap().to_string()
    };
    let aws = path_of("instance", &instance);
    assert_eq!(aws, format!("/_imds/aws/{instance}"));
    let gcp = path_of("instance", "vm-listed");
    assert_eq!(gcp, format!("/_imds/gcp/proj-listing/{ZONE}/vm-listed"));
    let azure = path_of("virtualMachine", "vm-listed");
    assert_eq!(azure, format!("/_imds/azure/{vm_id}"));
    // Only VMs have one.
    for r in listed.as_array().unwrap() {
        let vm = matches!(r["kind"].as_str(), Some("instance" | "virtualMachine"));
        assert_eq!(r.get("metadata_path").is_some(), vm, "{r}");
    }

    let imds = mock.imds_url();
    let token = call(
        "PUT",
        &format!("{imds}{aws}/latest/api/token"),
        &[("x-aws-ec2-metadata-token-ttl-seconds", "60")],
    )
    .await
    .text();
    let got = get(
        &format!("{imds}{aws}/latest/meta-data/instance-id"),
        &[("x-aws-ec2-metadata-token", &token)],
    )
    .await;
    assert_eq!(got.text(), instance);
    let got = get(
        &format!("{imds}{gcp}/computeMetadata/v1/instance/name"),
        &[("metadata-flavor", "Google")],
    )
    .await;
    assert_eq!(got.text(), "vm-listed");
    let got = get(
        &format!("{imds}{azure}/metadata/instance/compute/vmId?api-version=2021-02-01&format=text"),
        &[("metadata", "true")],
    )
    .await;
    assert_eq!(got.text(), vm_id);
}
