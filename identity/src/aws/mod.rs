//! AWS: the instance identity document, signed two ways an agent can fetch
//! from IMDS (as the EC2 User Guide's "Verify the instance identity
//! document" describes):
//!
//! - `{document, signature}`: `/latest/dynamic/instance-identity/signature`
//!   is base64 RSA-SHA256 (PKCS#1 v1.5) over the exact document bytes,
//!   checked with the region's "RSA" certificate;
//! - `rsa2048`: `/latest/dynamic/instance-identity/rsa2048` is a PKCS#7
//!   SignedData carrying the document, signed with the region's "RSA-2048"
//!   certificate (the DSA `/pkcs7` form is not accepted).
//!
//! The certificate is the one of the region the *provider* launched the
//! worker in, never the region the document claims. Then every field the
//! provider knows is compared ([`AwsExpected`]). A document never expires:
//! its replay is stopped by one-time registration, not here.

mod document;
mod trust;

pub use document::{parse_document, AwsExpected, InstanceIdentityDocument, MAX_DOCUMENT_BYTES};
pub use trust::{AwsTrust, SignatureForm};

use crate::encoding::{decode_base64, strip_pem_armour};
use crate::error::{Reason, Rejected};
use crate::pkcs7;
use crate::x509::{verify_rsa, Digest, KeySize};

/// Verifies AWS instance identity documents against an [`AwsTrust`].
///
/// Stateless and cheap to share: verification reads only the trust.
#[derive(Debug, Clone)]
pub struct AwsVerifier {
    trust: AwsTrust,
}

impl Default for AwsVerifier {
    fn default() -> Self {
        AwsVerifier::new(AwsTrust::bundled())
    }
}

impl AwsVerifier {
    /// A verifier trusting `trust`.
    pub fn new(trust: AwsTrust) -> Self {
        AwsVerifier { trust }
    }

    /// The certificates it trusts.
    pub fn trust(&self) -> &AwsTrust {
        &self.trust
    }

    /// Verifies `{document, signature}` (the `/signature` form) for the
    /// instance described by `want`.
    pub fn verify_document(
        &self,
        document: &str,
        signature: &str,
        want: &AwsExpected,
    ) -> Result<InstanceIdentityDocument, Rejected> {
        if document.len() > MAX_DOCUMENT_BYTES {
            return Err(Reason::Malformed.into());
        }
        let sig = decode_base64(signature)?;
        let certs = self.trust.certificates(SignatureForm::Rsa, &want.region);
        if certs.is_empty() {
            return Err(Reason::UnknownSigner.into());
        }
        let signed = certs.iter().any(|c| {
            verify_rsa(
                &c.tbs_certificate.subject_public_key_info,
                Digest::Sha256,
                KeySize::Legacy1024,
                document.as_bytes(),
                &sig,
            )
            .is_ok()
        });
        if !signed {
            return Err(Reason::BadSignature.into());
        }
        let doc = parse_document(document.as_bytes())?;
        document::check(&doc, want)?;
        Ok(doc)
    }

    /// Verifies the `rsa2048` PKCS#7 form (base64, with or without PEM
    /// armour) for the instance described by `want`; the document is the
    /// signed content.
    pub fn verify_pkcs7(
        &self,
        pkcs7_text: &str,
        want: &AwsExpected,
    ) -> Result<InstanceIdentityDocument, Rejected> {
        let der_bytes = decode_base64(strip_pem_armour(pkcs7_text))?;
        let msg = pkcs7::parse(&der_bytes)?;
        let certs = self
            .trust
            .certificates(SignatureForm::Rsa2048, &want.region);
        let signer = certs
            .iter()
            .find(|c| msg.is_signer(c))
            .ok_or(Reason::UnknownSigner)?;
        msg.verify(
            &signer.tbs_certificate.subject_public_key_info,
            KeySize::Modern,
        )?;
        let doc = parse_document(&msg.content)?;
        document::check(&doc, want)?;
        Ok(doc)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_region_has_no_signer() {
        let v = AwsVerifier::default();
        let want = AwsExpected {
            instance_id: "i-1".into(),
            region: "xx-nowhere-1".into(),
            ..AwsExpected::default()
        };
        let e = v.verify_document("{}", "QUJD", &want).unwrap_err();
        assert_eq!(e.reason(), Reason::UnknownSigner);
        let e = v.verify_pkcs7("QUJD", &want).unwrap_err();
        assert_eq!(e.reason(), Reason::Malformed);
    }
}
