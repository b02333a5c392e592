//! EC2's instance identity document and its two signatures:
//! `/signature` (base64 RSA-SHA256 over the document's exact bytes) and
//! `/rsa2048` (base64 DER CMS SignedData with RSA-SHA256 whose content is
//! the document). The document is laid out as EC2 lays it out (two-space
//! indent, `"key" : value`), and is the same bytes on every read, so a
//! signature fetched later still matches a document fetched earlier.

use std::time::SystemTime;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::Value;

use super::facts::AwsVm;
use super::trust::TrustError;
use super::{cms, Imds};

/// The document's `version` field, as EC2 writes it.
const DOCUMENT_VERSION: &str = "2017-09-30";

/// `2024-01-01T00:00:00.000Z` without the milliseconds, as `pendingTime`.
fn pending_time(launch_time: &str) -> String {
    match launch_time.split_once('.') {
        Some((secs, _)) => format!("{secs}Z"),
        None => launch_time.to_string(),
    }
}

/// The identity document of `vm`.
pub fn document(vm: &AwsVm) -> String {
    let s = |v: &str| Value::from(v);
    let fields: [(&str, Value); 15] = [
        ("accountId", s(&vm.account)),
        ("architecture", s("x86_64")),
        ("availabilityZone", s(&vm.zone)),
        ("billingProducts", Value::Null),
        ("devpayProductCodes", Value::Null),
        ("marketplaceProductCodes", Value::Null),
        ("imageId", s(&vm.image_id)),
        ("instanceId", s(&vm.instance_id)),
        ("instanceType", s(&vm.instance_type)),
        ("kernelId", Value::Null),
        ("pendingTime", s(&pending_time(&vm.launch_time))),
        ("privateIp", s(&vm.private_ip)),
        ("ramdiskId", Value::Null),
        ("region", s(&vm.region)),
        ("version", s(DOCUMENT_VERSION)),
    ];
    let body: Vec<String> = fields
        .iter()
        .map(|(k, v)| format!("  \"{k}\" : {v}"))
        .collect();
    format!("{{\n{}\n}}", body.join(",\n"))
}

/// `/signature`: base64 of the RSA-SHA256 signature of `doc`.
pub async fn signature(imds: &Imds, doc: &str) -> Result<String, TrustError> {
    let m = imds.trust.material().await?;
    Ok(STANDARD.encode(m.aws.key.sign_sha256(doc.as_bytes())?))
}

/// `/rsa2048`: base64 of a DER SignedData holding `doc`, signed by the AWS
/// key and naming its certificate (which it does not carry: verifiers have
/// AWS's certificates).
pub async fn rsa2048(imds: &Imds, doc: &str) -> Result<String, TrustError> {
    let m = imds.trust.material().await?;
    let der = cms::signed_data(
        doc.as_bytes(),
        &m.aws.key,
        &m.aws.cert.der,
        &[],
        SystemTime::now(),
    )
    .map_err(|e| TrustError::Certificate(e.to_string()))?;
    Ok(STANDARD.encode(der))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_is_json_with_ec2s_fields_in_ec2s_layout() {
        let vm = AwsVm {
            account: "123456789012".into(),
            region: "eu-west-1".into(),
            instance_id: "i-0123456789abcdef0".into(),
            image_id: "ami-12345678".into(),
            instance_type: "m5.large".into(),
            zone: "eu-west-1b".into(),
            private_ip: "10.0.0.7".into(),
            private_dns: "ip-10-0-0-7.eu-west-1.compute.internal".into(),
            reservation_id: "r-1".into(),
            launch_index: 0,
            spot: false,
            spot_action: None,
            launch_time: "2025-03-04T05:06:07.890Z".into(),
            user_data: None,
            tokens_required: false,
        };
        let doc = document(&vm);
        assert!(
            doc.starts_with("{\n  \"accountId\" : \"123456789012\",\n"),
            "{doc}"
        );
        let v: Value = serde_json::from_str(&doc).unwrap();
        assert_eq!(v["pendingTime"], "2025-03-04T05:06:07Z");
        assert_eq!(v["availabilityZone"], "eu-west-1b");
        assert_eq!(v["kernelId"], Value::Null);
        assert_eq!(v.as_object().unwrap().len(), 15);
        assert_eq!(document(&vm), doc, "the same bytes every time");
    }
}
