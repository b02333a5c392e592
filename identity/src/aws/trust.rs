//! [`AwsTrust`]: the public certificates of each region, per signature form,
//! with AWS's published RSA and RSA-2048 certificates bundled.

use std::collections::BTreeMap;

use x509_cert::Certificate;

use crate::error::ConfigError;
use crate::x509;

/// The bundled RSA certificates (`identity/certs/aws-rsa.pem`).
const BUNDLED_RSA: &str = include_str!("../../certs/aws-rsa.pem");

/// The bundled RSA-2048 certificates (`identity/certs/aws-rsa2048.pem`).
const BUNDLED_RSA2048: &str = include_str!("../../certs/aws-rsa2048.pem");

/// Each bundle with the signature form its certificates check.
const BUNDLES: [(SignatureForm, &str); 2] = [
    (SignatureForm::Rsa, BUNDLED_RSA),
    (SignatureForm::Rsa2048, BUNDLED_RSA2048),
];

/// Which signature an AWS proof carries, each checked with its own
/// certificate of the region (as the EC2 User Guide says).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SignatureForm {
    /// `/signature`: base64 RSA-SHA256 over the document, checked with the
    /// region's "RSA" certificate (AWS's are RSA-1024).
    Rsa,
    /// `/rsa2048`: PKCS#7 SignedData, checked with the region's "RSA-2048"
    /// certificate.
    Rsa2048,
}

/// The certificates a verifier trusts, by signature form and region.
///
/// [`AwsTrust::bundled`] holds AWS's published certificates for both
/// forms: RSA (the `/signature` form, `identity/certs/aws-rsa.pem`) and
/// RSA-2048 (the `/rsa2048` PKCS#7 form, `identity/certs/aws-rsa2048.pem`),
/// for every region the EC2 User Guide lists. Add a region AWS opens later,
/// or the mock's certificates, with [`AwsTrust::with_certificate`].
///
/// ```
/// use skyfleet_identity::aws::{AwsTrust, SignatureForm};
/// let trust = AwsTrust::bundled();
/// assert!(!trust.certificates(SignatureForm::Rsa, "us-east-1").is_empty());
/// assert!(!trust.certificates(SignatureForm::Rsa2048, "eu-west-1").is_empty());
/// assert!(trust.certificates(SignatureForm::Rsa2048, "xx-nowhere-1").is_empty());
/// ```
#[derive(Debug, Clone, Default)]
pub struct AwsTrust {
    certs: BTreeMap<(SignatureForm, String), Vec<Certificate>>,
}

impl AwsTrust {
    /// No certificate at all.
    pub fn empty() -> Self {
        AwsTrust::default()
    }

    /// AWS's published RSA and RSA-2048 certificates, by region.
    pub fn bundled() -> Self {
        let mut trust = AwsTrust::empty();
        for (form, bundle) in BUNDLES {
            for (region, pem) in bundled_blocks(bundle) {
                // The bundles are checked by the tests: every block parses.
                if let Ok(certs) = x509::parse_certificates(pem.as_bytes(), "bundled") {
                    trust
                        .certs
                        .entry((form, region.to_string()))
                        .or_default()
                        .extend(certs);
                }
            }
        }
        trust
    }

    /// Adds the certificates in `pem` (PEM text or one DER certificate) for
    /// `form` in `region`.
    pub fn with_certificate(
        mut self,
        form: SignatureForm,
        region: &str,
        pem: impl AsRef<[u8]>,
    ) -> Result<Self, ConfigError> {
        let field = format!("aws.certificates[{region}]");
        if region.is_empty() {
            return Err(ConfigError::new(field, "the region is empty"));
        }
        let certs = x509::parse_certificates(pem.as_ref(), &field)?;
        self.certs
            .entry((form, region.to_string()))
            .or_default()
            .extend(certs);
        Ok(self)
    }

    /// Replaces the certificates of `form` in `region` with those in `pem`.
    pub fn replace_certificate(
        mut self,
        form: SignatureForm,
        region: &str,
        pem: impl AsRef<[u8]>,
    ) -> Result<Self, ConfigError> {
        self.certs.remove(&(form, region.to_string()));
        self.with_certificate(form, region, pem)
    }

    /// The certificates trusted for `form` in `region`.
    pub fn certificates(&self, form: SignatureForm, region: &str) -> &[Certificate] {
        self.certs
            .get(&(form, region.to_string()))
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    /// The regions with a certificate for `form`.
    pub fn regions(&self, form: SignatureForm) -> Vec<&str> {
        self.certs
            .keys()
            .filter(|(f, _)| *f == form)
            .map(|(_, r)| r.as_str())
            .collect()
    }
}

/// The `(region, PEM block)` pairs of `bundle`.
fn bundled_blocks(bundle: &'static str) -> Vec<(&'static str, &'static str)> {
    let mut out = Vec::new();
    let mut region = None;
    let mut rest = bundle;
    while let Some(line_end) = rest.find('\n') {
        let line = &rest[..line_end];
        if let Some(r) = line.strip_prefix("# region: ") {
            region = Some(r.trim());
        } else if line.starts_with("-----BEGIN CERTIFICATE-----") {
            const END: &str = "-----END CERTIFICATE-----";
            if let (Some(r), Some(end)) = (region.take(), rest.find(END)) {
                out.push((r, &rest[..end + END.len()]));
                rest = &rest[end + END.len()..];
                continue;
            }
        }
        rest = &rest[line_end + 1..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::x509::{verify_rsa, Digest, KeySize};
    use aws_lc_rs::signature::{UnparsedPublicKey, RSA_PKCS1_1024_8192_SHA1_FOR_LEGACY_USE_ONLY};
    use der::Encode;

    /// Every bundled certificate of both forms parses, is self-signed (its
    /// signature verifies with its own key: a corrupted byte shows here)
    /// and is filed under one region; the RSA-2048 ones hold modern keys
    /// (2048 bits or more), one certificate per region, all distinct.
    #[test]
    fn every_bundled_certificate_parses_and_is_self_signed() {
        const SHA1_WITH_RSA: der::asn1::ObjectIdentifier =
            der::asn1::ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.5");
        let trust = AwsTrust::bundled();
        let mut sha1 = 0;
        for (form, bundle) in BUNDLES {
            let blocks = bundled_blocks(bundle);
            assert!(blocks.len() >= 36, "{form:?}: {}", blocks.len());
            let size = match form {
                SignatureForm::Rsa => KeySize::Legacy1024,
                SignatureForm::Rsa2048 => KeySize::Modern,
            };
            for (region, _) in &blocks {
                let certs = trust.certificates(form, region);
                assert_eq!(certs.len(), 1, "{form:?} {region}");
                let c = &certs[0];
                let tbs = c.tbs_certificate.to_der().unwrap();
                let Some(digest) = Digest::from_oid(&c.signature_algorithm.oid) else {
                    // Eight opt-in regions' RSA certificates sign
                    // themselves with SHA-1: checked here, never trusted
                    // as a chain (the key itself is what is trusted).
                    assert_eq!(c.signature_algorithm.oid, SHA1_WITH_RSA, "{region}");
                    let key = c
                        .tbs_certificate
                        .subject_public_key_info
                        .subject_public_key
                        .raw_bytes();
                    UnparsedPublicKey::new(&RSA_PKCS1_1024_8192_SHA1_FOR_LEGACY_USE_ONLY, key)
                        .verify(&tbs, c.signature.raw_bytes())
                        .unwrap_or_else(|_| panic!("{form:?} {region}: bad SHA-1 self-signature"));
                    sha1 += 1;
                    continue;
                };
                verify_rsa(
                    &c.tbs_certificate.subject_public_key_info,
                    digest,
                    size,
                    &tbs,
                    c.signature.raw_bytes(),
                )
                .unwrap_or_else(|e| panic!("{form:?} {region}: {e}"));
            }
            for region in ["us-east-1", "eu-west-1", "ap-southeast-7", "us-gov-west-1"] {
                assert!(trust.regions(form).contains(&region), "{form:?} {region}");
            }
        }
        assert_eq!(sha1, 8, "the opt-in regions' SHA-1 self-signatures");
        let keys: std::collections::BTreeSet<Vec<u8>> = trust
            .regions(SignatureForm::Rsa2048)
            .iter()
            .map(|r| {
                trust.certificates(SignatureForm::Rsa2048, r)[0]
                    .to_der()
                    .unwrap()
            })
            .collect();
        assert_eq!(keys.len(), trust.regions(SignatureForm::Rsa2048).len());
    }

    #[test]
    fn added_and_replaced_certificates() {
        let bundle = bundled_blocks(BUNDLED_RSA);
        let (_, pem) = bundle[0];
        let t = AwsTrust::empty()
            .with_certificate(SignatureForm::Rsa2048, "xx-test-1", pem)
            .unwrap()
            .with_certificate(SignatureForm::Rsa2048, "xx-test-1", pem)
            .unwrap();
        assert_eq!(t.certificates(SignatureForm::Rsa2048, "xx-test-1").len(), 2);
        let t = t
            .replace_certificate(SignatureForm::Rsa2048, "xx-test-1", pem)
            .unwrap();
        assert_eq!(t.certificates(SignatureForm::Rsa2048, "xx-test-1").len(), 1);
        let e = AwsTrust::empty()
            .with_certificate(SignatureForm::Rsa, "us-east-1", "garbage")
            .unwrap_err();
        assert_eq!(e.field(), "aws.certificates[us-east-1]");
    }
}
