//! The instance identity document (`/latest/dynamic/instance-identity/document`)
//! and its comparison with what the provider stored for the worker.

use serde::Deserialize;

use crate::error::Reason;

/// The largest document accepted (real ones are well under 1 KiB).
pub const MAX_DOCUMENT_BYTES: usize = 16 * 1024;

/// The fields of an instance identity document skyfleet reads (EC2's own
/// names; others, such as `billingProducts` or `kernelId`, are ignored).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct InstanceIdentityDocument {
    /// The account that owns the instance.
    pub account_id: String,
    /// `x86_64`, `arm64`, ...
    #[serde(default)]
    pub architecture: Option<String>,
    /// The availability zone.
    pub availability_zone: String,
    /// The AMI.
    pub image_id: String,
    /// The instance id (`i-0123...`).
    pub instance_id: String,
    /// The instance type.
    pub instance_type: String,
    /// When the instance was launched.
    #[serde(default)]
    pub pending_time: Option<String>,
    /// The primary private IPv4 address.
    #[serde(default)]
    pub private_ip: Option<String>,
    /// The region.
    pub region: String,
    /// The document format version.
    #[serde(default)]
    pub version: Option<String>,
}

/// What the provider knows of the worker's instance; `None` fields are not
/// compared (not known to the provider).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AwsExpected {
    /// The instance id the provider recorded.
    pub instance_id: String,
    /// The region the worker was launched in (its certificate is used).
    pub region: String,
    /// The account the provider launches in.
    pub account_id: Option<String>,
    /// The availability zone the launch config asked for.
    pub availability_zone: Option<String>,
    /// The launch config's AMI.
    pub image_id: Option<String>,
    /// The launch config's instance type.
    pub instance_type: Option<String>,
    /// The instance's private IP, when the provider saw it.
    pub private_ip: Option<String>,
}

/// Parses the signed document bytes (JSON; duplicate keys refused).
pub fn parse_document(bytes: &[u8]) -> Result<InstanceIdentityDocument, Reason> {
    if bytes.len() > MAX_DOCUMENT_BYTES {
        return Err(Reason::Malformed);
    }
    serde_json::from_slice(bytes).map_err(|_| Reason::Malformed)
}

/// Compares every known fact.
pub(crate) fn check(doc: &InstanceIdentityDocument, want: &AwsExpected) -> Result<(), Reason> {
    let same = |got: &str, want: &Option<String>| want.as_deref().is_none_or(|w| w == got);
    let ok = doc.instance_id == want.instance_id
        && doc.region == want.region
        && same(&doc.account_id, &want.account_id)
        && same(&doc.availability_zone, &want.availability_zone)
        && same(&doc.image_id, &want.image_id)
        && same(&doc.instance_type, &want.instance_type)
        && match (&want.private_ip, &doc.private_ip) {
            (None, _) => true,
            (Some(w), Some(g)) => w == g,
            (Some(_), None) => false,
        };
    if ok {
        Ok(())
    } else {
        Err(Reason::WrongInstance)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example document of the EC2 User Guide.
    const EXAMPLE: &str = r#"{
        "devpayProductCodes" : null,
        "marketplaceProductCodes" : [ "1abc2defghijklm3nopqrs4tu" ],
        "availabilityZone" : "us-west-2b",
        "privateIp" : "10.158.112.84",
        "version" : "2017-09-30",
        "instanceId" : "i-1234567890abcdef0",
        "billingProducts" : null,
        "instanceType" : "t2.micro",
        "accountId" : "123456789012",
        "imageId" : "ami-5fb8c835",
        "pendingTime" : "2016-11-19T16:32:11Z",
        "architecture" : "x86_64",
        "kernelId" : null,
        "ramdiskId" : null,
        "region" : "us-west-2"
    }"#;

    #[test]
    fn the_documented_example_reads_and_compares() {
        let doc = parse_document(EXAMPLE.as_bytes()).unwrap();
        assert_eq!(doc.instance_id, "i-1234567890abcdef0");
        let mut want = AwsExpected {
            instance_id: "i-1234567890abcdef0".into(),
            region: "us-west-2".into(),
            account_id: Some("123456789012".into()),
            availability_zone: Some("us-west-2b".into()),
            image_id: Some("ami-5fb8c835".into()),
            instance_type: Some("t2.micro".into()),
            private_ip: Some("10.158.112.84".into()),
        };
        check(&doc, &want).unwrap();
        want.image_id = Some("ami-other".into());
        assert_eq!(check(&doc, &want), Err(Reason::WrongInstance));
        want.image_id = None;
        want.instance_id = "i-other".into();
        assert_eq!(check(&doc, &want), Err(Reason::WrongInstance));
    }

    #[test]
    fn duplicate_keys_and_missing_fields_are_malformed() {
        let dup = r#"{"accountId":"1","availabilityZone":"a","imageId":"i","instanceId":"i-1",
            "instanceId":"i-2","instanceType":"t","region":"r"}"#;
        assert_eq!(parse_document(dup.as_bytes()), Err(Reason::Malformed));
        assert_eq!(parse_document(b"{}"), Err(Reason::Malformed));
        assert_eq!(
            parse_document(&vec![b' '; MAX_DOCUMENT_BYTES + 1]),
            Err(Reason::Malformed)
        );
    }
}
