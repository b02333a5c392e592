//! An AWS-shaped issuer: instance identity documents as IMDS prints them,
//! their base64 RSA-SHA256 `signature`, and their `rsa2048` PKCS#7 form,
//! with a certificate per form for one region.

use crate::aws::{AwsExpected, AwsTrust, SignatureForm};

use super::cms::{signed_data, Build, SHA256};
use super::{b64, Ca, RsaKey};

/// Issues signed instance identity documents for one region.
pub struct AwsIssuer {
    region: String,
    rsa_key: RsaKey,
    rsa_cert: rcgen::Certificate,
    rsa2048_key: RsaKey,
    rsa2048_cert: rcgen::Certificate,
}

impl std::fmt::Debug for AwsIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsIssuer")
            .field("region", &self.region)
            .finish_non_exhaustive()
    }
}

fn signing_cert(key: &RsaKey, ca: &Ca) -> rcgen::Certificate {
    let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).expect("no SAN");
    p.distinguished_name = rcgen::DistinguishedName::new();
    p.distinguished_name
        .push(rcgen::DnType::OrganizationName, "Amazon Web Services LLC");
    p.signed_by(&key.rcgen_public(), &ca.cert, &ca.key)
        .expect("a signing certificate")
}

impl AwsIssuer {
    /// An issuer for `region` with fresh keys.
    pub fn new(region: &str) -> Self {
        let ca = Ca::root("Test AWS identity CA");
        let rsa_key = RsaKey::generate();
        let rsa2048_key = RsaKey::generate();
        AwsIssuer {
            region: region.to_string(),
            rsa_cert: signing_cert(&rsa_key, &ca),
            rsa_key,
            rsa2048_cert: signing_cert(&rsa2048_key, &ca),
            rsa2048_key,
        }
    }

    /// The region.
    pub fn region(&self) -> &str {
        &self.region
    }

    /// The certificate of `form` (PEM).
    pub fn certificate_pem(&self, form: SignatureForm) -> String {
        match form {
            SignatureForm::Rsa => self.rsa_cert.pem(),
            SignatureForm::Rsa2048 => self.rsa2048_cert.pem(),
        }
    }

    /// A trust holding this issuer's certificates for its region only.
    pub fn trust(&self) -> AwsTrust {
        AwsTrust::empty()
            .with_certificate(SignatureForm::Rsa, &self.region, self.rsa_cert.pem())
            .and_then(|t| {
                t.with_certificate(
                    SignatureForm::Rsa2048,
                    &self.region,
                    self.rsa2048_cert.pem(),
                )
            })
            .expect("the issuer's certificates parse")
    }

    /// The facts of an instance in this region, numbered `n`.
    pub fn instance(&self, n: u64) -> AwsExpected {
        AwsExpected {
            instance_id: format!("i-{n:017x}"),
            region: self.region.clone(),
            account_id: Some("123456789012".into()),
            availability_zone: Some(format!("{}a", self.region)),
            image_id: Some("ami-0123456789abcdef0".into()),
            instance_type: Some("m5.large".into()),
            private_ip: Some(format!("10.0.{}.{}", (n >> 8) & 0xff, n & 0xff)),
        }
    }

    /// The document IMDS would print for `facts` (its pretty JSON).
    pub fn document(&self, facts: &AwsExpected) -> String {
        let v = serde_json::json!({
            "accountId": facts.account_id.clone().unwrap_or_default(),
            "architecture": "x86_64",
            "availabilityZone": facts.availability_zone.clone().unwrap_or_default(),
            "billingProducts": null,
            "devpayProductCodes": null,
            "marketplaceProductCodes": null,
            "imageId": facts.image_id.clone().unwrap_or_default(),
            "instanceId": facts.instance_id,
            "instanceType": facts.instance_type.clone().unwrap_or_default(),
            "kernelId": null,
            "pendingTime": "2026-01-01T00:00:00Z",
            "privateIp": facts.private_ip,
            "ramdiskId": null,
            "region": facts.region,
            "version": "2017-09-30"
        });
        serde_json::to_string_pretty(&v).expect("JSON")
    }

    /// The `/signature` answer for `document`: base64 with IMDS's line breaks.
    pub fn signature(&self, document: &str) -> String {
        let b = b64(&self.rsa_key.sign(document.as_bytes()));
        b.as_bytes()
            .chunks(64)
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The `/rsa2048` answer for `document`: base64 PKCS#7 (no certificate
    /// carried, as the User Guide's `openssl smime -certfile` implies).
    pub fn rsa2048(&self, document: &str) -> String {
        b64(&signed_data(&Build {
            content: document.as_bytes(),
            signer_cert: self.rsa2048_cert.der(),
            key: &self.rsa2048_key,
            carry: Vec::new(),
            digest_oid: SHA256,
            signed_attributes: true,
        }))
    }
}
