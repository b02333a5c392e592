//! EC2's instance metadata service: IMDSv2 tokens, the meta-data tree,
//! user data, and the identity document with both signatures, checked
//! independently (aws-lc-rs against the certificate `/_mock/trust`
//! publishes, and the CMS structure decoded with the `cms` crate), plus
//! aws-config's own IMDS client through its endpoint override.

mod imds_support;

use std::time::Duration;

use aws_config::imds::region::ImdsRegionProvider;
use aws_config::provider_config::ProviderConfig;
use aws_lc_rs::signature::{UnparsedPublicKey, RSA_PKCS1_2048_8192_SHA256};
use aws_smithy_runtime_api::client::http::SharedHttpClient;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use cms::content_info::ContentInfo;
use cms::signed_data::SignedData;
use der::{Decode, Encode};
use imds_support::*;
use serde_json::Value;
use x509_cert::Certificate;

mod ec2_support;

fn base(mock: &skyfleet_mock::MockCloud, id: &str) -> String {
    format!("{}/_imds/aws/{id}", mock.imds_url())
}

async fn token(mock: &skyfleet_mock::MockCloud, id: &str) -> String {
    let got = call(
        "PUT",
        &format!("{}/latest/api/token", base(mock, id)),
        &[("x-aws-ec2-metadata-token-ttl-seconds", "60")],
    )
    .await;
    assert_eq!(got.status, 200, "{}", got.text());
    assert_eq!(
        got.header("x-aws-ec2-metadata-token-ttl-seconds"),
        Some("60")
    );
    got.text()
}

async fn read(mock: &skyfleet_mock::MockCloud, id: &str, path: &str, token: &str) -> Got {
    get(
        &format!("{}{path}", base(mock, id)),
        &[("x-aws-ec2-metadata-token", token)],
    )
    .await
}

/// The public key of the AWS certificate `/_mock/trust` publishes.
async fn aws_key(mock: &skyfleet_mock::MockCloud) -> Vec<u8> {
    let pem = trust(mock).await["aws"]["certificate_pem"]
        .as_str()
        .unwrap()
        .to_string();
    let (_, der) = der::pem::decode_vec(pem.as_bytes()).unwrap();
    let cert = Certificate::from_der(&der).unwrap();
    cert.tbs_certificate
        .subject_public_key_info
        .subject_public_key
        .raw_bytes()
        .to_vec()
}

fn verify(key: &[u8], message: &[u8], sig: &[u8]) -> bool {
    UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, key)
        .verify(message, sig)
        .is_ok()
}

#[tokio::test]
async fn the_identity_document_names_the_instance_and_both_signatures_verify() {
    let mock = mock().await;
    let id = run_instance(&mock, &[("Placement.AvailabilityZone", "eu-west-1b")]).await;
    let t = token(&mock, &id).await;
    let doc = read(&mock, &id, "/latest/dynamic/instance-identity/document", &t).await;
    assert_eq!(doc.status, 200, "{}", doc.text());
    let d: Value = doc.json();
    assert_eq!(d["instanceId"], id.as_str());
    assert_eq!(d["accountId"], ACCOUNT);
    assert_eq!(d["region"], REGION);
    assert_eq!(d["availabilityZone"], "eu-west-1b");
    assert_eq!(d["imageId"], "ami-0abcdef1234567890");
    assert_eq!(d["instanceType"], "m5.large");
    assert_eq!(d["architecture"], "x86_64");
    assert_eq!(d["version"], "2017-09-30");
    for null in [
        "billingProducts",
        "devpayProductCodes",
        "marketplaceProductCodes",
        "kernelId",
        "ramdiskId",
    ] {
        assert_eq!(d[null], Value::Null, "{null}");
    }
    let described = ec2(
        &mock,
        &[("Action", "DescribeInstances"), ("InstanceId.1", &id)],
    )
    .await;
    let ip = d["privateIp"].as_str().unwrap();
    assert!(described.contains(&format!("<privateIpAddress>{ip}</privateIpAddress>")));
    assert!(d["pendingTime"].as_str().unwrap().ends_with('Z'));

    let key = aws_key(&mock).await;
    let sig = read(
        &mock,
        &id,
        "/latest/dynamic/instance-identity/signature",
        &t,
    )
    .await;
    let sig = STANDARD.decode(sig.text().trim()).unwrap();
    assert!(
        verify(&key, &doc.body, &sig),
        "signature over the exact document bytes"
    );
    let mut flipped = doc.body.clone();
    flipped[20] ^= 1;
    assert!(!verify(&key, &flipped, &sig), "a flipped byte fails");

    // rsa2048: a SignedData whose content is the document, whose signed
    // attributes carry the document's digest and are signed by the key.
    let p7 = read(&mock, &id, "/latest/dynamic/instance-identity/rsa2048", &t).await;
    let der = STANDARD.decode(p7.text().trim()).unwrap();
    let info = ContentInfo::from_der(&der).unwrap();
    assert_eq!(info.content_type, const_oid::db::rfc5911::ID_SIGNED_DATA);
    let sd: SignedData = info.content.decode_as().unwrap();
    let content = sd.encap_content_info.econtent.as_ref().unwrap().value();
    assert_eq!(content, doc.body.as_slice());
    assert!(sd.certificates.is_none(), "AWS carries no certificate");
    let signer = sd.signer_infos.0.iter().next().unwrap();
    assert_eq!(signer.digest_alg.oid, const_oid::db::rfc5912::ID_SHA_256);
    let attrs = signer.signed_attrs.as_ref().unwrap();
    let digest = attrs
        .iter()
        .find(|a| a.oid == const_oid::db::rfc5911::ID_MESSAGE_DIGEST)
        .unwrap();
    let want = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &doc.body);
    let got: der::asn1::OctetString = digest.values.iter().next().unwrap().decode_as().unwrap();
    assert_eq!(got.as_bytes(), want.as_ref());
    assert!(verify(
        &key,
        &attrs.to_der().unwrap(),
        signer.signature.as_bytes()
    ));

    // The same bytes on every read: a signature stays valid.
    let again = read(&mock, &id, "/latest/dynamic/instance-identity/document", &t).await;
    assert_eq!(again.body, doc.body);
}

#[tokio::test]
async fn aws_config_reads_the_document_and_region_through_its_endpoint_override() {
    let mock = mock().await;
    let id = run_instance(&mock, &[]).await;
    let config = ProviderConfig::without_region()
        .with_http_client(SharedHttpClient::new(ec2_support::ReqwestHttp::new()));
    let client = aws_config::imds::Client::builder()
        .configure(&config)
        .endpoint(base(&mock, &id))
        .unwrap()
        .read_timeout(Duration::from_secs(5))
        .build();
    let doc = client
        .get("/latest/dynamic/instance-identity/document")
        .await
        .unwrap();
    let d: Value = serde_json::from_str(doc.as_ref()).unwrap();
    assert_eq!(d["instanceId"], id.as_str());
    let region = ImdsRegionProvider::builder()
        .imds_client(client.clone())
        .build()
        .region()
        .await;
    assert_eq!(region.map(|r| r.to_string()), Some(REGION.to_string()));
    let iid = client.get("/latest/meta-data/instance-id").await.unwrap();
    assert_eq!(iid.as_ref(), id);
}

#[tokio::test]
async fn meta_data_leaves_directories_and_user_data() {
    let mock = mock().await;
    let script = "#!/bin/sh\necho manager=https://example.invalid\n";
    let id = run_instance(&mock, &[("UserData", &b64(script))]).await;
    let t = token(&mock, &id).await;
    let leaf = |p: &'static str| {
        let (mock, id, t) = (&mock, id.clone(), t.clone());
        async move { read(mock, &id, p, &t).await.text() }
    };
    assert_eq!(leaf("/latest/meta-data/instance-id").await, id);
    assert_eq!(leaf("/latest/meta-data/placement/region").await, REGION);
    // botocore asks with a trailing slash.
    let zone = leaf("/latest/meta-data/placement/availability-zone/").await;
    assert!(
        zone.starts_with(REGION) && zone.len() == REGION.len() + 1,
        "{zone}"
    );
    assert!(leaf("/latest/meta-data/local-ipv4")
        .await
        .starts_with("10."));
    assert_eq!(
        leaf("/latest/meta-data/instance-life-cycle").await,
        "on-demand"
    );
    let listing = leaf("/latest/meta-data/").await;
    assert!(listing.lines().any(|l| l == "placement/"), "{listing}");
    assert_eq!(leaf("/latest/user-data").await, script);
    assert!(leaf("/latest").await.contains("user-data"));
    assert_eq!(
        read(&mock, &id, "/latest/meta-data/nope", &t).await.status,
        404
    );
    assert_eq!(
        read(&mock, &id, "/latest/dynamic/instance-identity/pkcs7", &t)
            .await
            .status,
        404
    );

    let bare = run_instance(&mock, &[]).await;
    let t = token(&mock, &bare).await;
    assert_eq!(
        read(&mock, &bare, "/latest/user-data", &t).await.status,
        404
    );
}

#[tokio::test]
async fn http_tokens_required_means_401_without_a_valid_token() {
    let mock = mock().await;
    let v2 = run_instance(&mock, &[("MetadataOptions.HttpTokens", "required")]).await;
    let v1 = run_instance(&mock, &[]).await;
    let path = "/latest/meta-data/instance-id";
    let described = ec2(
        &mock,
        &[("Action", "DescribeInstances"), ("InstanceId.1", &v2)],
    )
    .await;
    assert!(
        described.contains("<httpTokens>required</httpTokens>"),
        "{described}"
    );

    assert_eq!(
        get(&format!("{}{path}", base(&mock, &v2)), &[])
            .await
            .status,
        401
    );
    assert_eq!(
        get(&format!("{}{path}", base(&mock, &v1)), &[])
            .await
            .status,
        200,
        "IMDSv1 where allowed"
    );
    assert_eq!(read(&mock, &v2, path, "bogus").await.status, 401);
    assert_eq!(
        read(&mock, &v1, path, "bogus").await.status,
        401,
        "a bad token is 401 even where v1 is allowed"
    );
    let t2 = token(&mock, &v2).await;
    assert_eq!(read(&mock, &v2, path, &t2).await.text(), v2);
    assert_eq!(
        read(&mock, &v1, path, &t2).await.status,
        401,
        "a token is bound to its instance"
    );
    let mut tampered = t2.into_bytes();
    tampered[3] = if tampered[3] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    assert_eq!(read(&mock, &v2, path, &tampered).await.status, 401);

    // A two-second token expires.
    let got = call(
        "PUT",
        &format!("{}/latest/api/token", base(&mock, &v2)),
        &[("x-aws-ec2-metadata-token-ttl-seconds", "2")],
    )
    .await;
    let short = got.text();
    assert_eq!(read(&mock, &v2, path, &short).await.status, 200);
    tokio::time::sleep(Duration::from_millis(2300)).await;
    assert_eq!(read(&mock, &v2, path, &short).await.status, 401);
}

#[tokio::test]
async fn token_ttls_outside_one_to_21600_seconds_are_400() {
    let mock = mock().await;
    let id = run_instance(&mock, &[]).await;
    let url = format!("{}/latest/api/token", base(&mock, &id));
    for ttl in ["0", "21601", "-1", "abc", "", "3.5"] {
        let got = call(
            "PUT",
            &url,
            &[("x-aws-ec2-metadata-token-ttl-seconds", ttl)],
        )
        .await;
        assert_eq!(got.status, 400, "ttl {ttl:?}");
    }
    assert_eq!(call("PUT", &url, &[]).await.status, 400, "no TTL");
    let got = call(
        "PUT",
        &url,
        &[("x-aws-ec2-metadata-token-ttl-seconds", "21600")],
    )
    .await;
    assert_eq!(got.status, 200);
    assert_eq!(get(&url, &[]).await.status, 405, "the token is PUT only");
}

#[tokio::test]
async fn x_forwarded_for_is_refused() {
    let mock = mock().await;
    let id = run_instance(&mock, &[]).await;
    let got = call(
        "PUT",
        &format!("{}/latest/api/token", base(&mock, &id)),
        &[
            ("x-aws-ec2-metadata-token-ttl-seconds", "60"),
            ("x-forwarded-for", "203.0.113.9"),
        ],
    )
    .await;
    assert_eq!(got.status, 403);
    let t = token(&mock, &id).await;
    let got = get(
        &format!("{}/latest/meta-data/instance-id", base(&mock, &id)),
        &[
            ("x-aws-ec2-metadata-token", &t),
            ("x-forwarded-for", "203.0.113.9"),
        ],
    )
    .await;
    assert_eq!(got.status, 403);
}

#[tokio::test]
async fn unknown_stopped_and_terminated_instances_have_no_metadata() {
    let mock = mock().await;
    let path = "/latest/meta-data/instance-id";
    let unknown = get(
        &format!("{}{path}", base(&mock, "i-0123456789abcdef0")),
        &[],
    )
    .await;
    assert_eq!(unknown.status, 404);
    assert!(unknown.text().contains("404 - Not Found"));
    let got = call(
        "PUT",
        &format!("{}/latest/api/token", base(&mock, "i-0123456789abcdef0")),
        &[("x-aws-ec2-metadata-token-ttl-seconds", "60")],
    )
    .await;
    assert_eq!(got.status, 404);

    let stopped = run_instance(&mock, &[]).await;
    let gone = run_instance(&mock, &[]).await;
    let disabled = run_instance(&mock, &[("MetadataOptions.HttpEndpoint", "disabled")]).await;
    ec2(
        &mock,
        &[("Action", "StopInstances"), ("InstanceId.1", &stopped)],
    )
    .await;
    ec2(
        &mock,
        &[("Action", "TerminateInstances"), ("InstanceId.1", &gone)],
    )
    .await;
    for id in [&stopped, &gone, &disabled] {
        assert_eq!(
            get(&format!("{}{path}", base(&mock, id)), &[]).await.status,
            404,
            "{id}"
        );
    }
}

#[tokio::test]
async fn bad_metadata_options_are_refused_by_run_instances() {
    let mock = mock().await;
    for (k, v) in [
        ("MetadataOptions.HttpTokens", "sometimes"),
        ("MetadataOptions.HttpEndpoint", "off"),
        ("MetadataOptions.HttpPutResponseHopLimit", "65"),
    ] {
        let resp = client()
            .post(mock.url())
            .form(&[
                ("Version", "2016-11-15"),
                ("Action", "RunInstances"),
                ("ImageId", "ami-12345678"),
                ("MinCount", "1"),
                ("MaxCount", "1"),
                (k, v),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 400, "{k}={v}");
        assert!(resp.text().await.unwrap().contains("InvalidParameterValue"));
    }
}
