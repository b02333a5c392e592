//! CMS `SignedData` (PKCS#7) as AWS's `rsa2048` form and Azure's attested
//! data use it: one signer, identified by issuer and serial number, over
//! attached `id-data` content, with or without signed attributes
//! (RFC 5652 §5). Parsed with the `cms` crate; the checks that make a
//! flipped byte anywhere fail are here:
//!
//! - the structure is DER and of the versions these clouds send
//!   (`SignedData` and `SignerInfo` version 1);
//! - the signer's digest algorithm is SHA-2 and listed in
//!   `digestAlgorithms`; algorithm parameters are absent or NULL;
//! - the signer certificate is found by exact issuer and serial number;
//! - with signed attributes, `contentType` is `id-data` and
//!   `messageDigest` is the content's digest, and the signature covers the
//!   attributes' DER; without them, it covers the content.

use cms::cert::IssuerAndSerialNumber;
use cms::content_info::{CmsVersion, ContentInfo};
use cms::signed_data::{CertificateSet, SignedData, SignerIdentifier};
use der::asn1::{ObjectIdentifier, OctetString};
use der::{Decode, Encode, Tagged};
use x509_cert::spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};
use x509_cert::Certificate;

use crate::error::Reason;
use crate::x509::{self, Digest, KeySize, RSA_ENCRYPTION};

/// `id-signedData`.
const SIGNED_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.2");
/// `id-data`.
const DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.1");
/// `id-contentType`.
const CONTENT_TYPE: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.3");
/// `id-messageDigest`.
const MESSAGE_DIGEST: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.4");

/// The largest PKCS#7 message accepted (DER bytes).
pub(crate) const MAX_PKCS7_BYTES: usize = 64 * 1024;

/// A parsed, not yet verified, signed message.
#[derive(Debug, Clone)]
pub(crate) struct SignedMessage {
    /// The signed content (the document).
    pub(crate) content: Vec<u8>,
    /// The certificates the message carries.
    pub(crate) certificates: Vec<Certificate>,
    /// Who signed it.
    signer: IssuerAndSerialNumber,
    /// The digest of the signature.
    digest: Digest,
    /// What the signature covers (the signed attributes' DER, or the content).
    signed_bytes: Vec<u8>,
    /// The signature.
    signature: Vec<u8>,
}

/// Parameters must be absent or NULL.
fn plain(alg: &AlgorithmIdentifierOwned) -> bool {
    match &alg.parameters {
        None => true,
        Some(p) => p.tag() == der::Tag::Null && p.value().is_empty(),
    }
}

/// Reads a DER `ContentInfo` holding a `SignedData`.
pub(crate) fn parse(der_bytes: &[u8]) -> Result<SignedMessage, Reason> {
    if der_bytes.len() > MAX_PKCS7_BYTES {
        return Err(Reason::Malformed);
    }
    let info = ContentInfo::from_der(der_bytes).map_err(|_| Reason::Malformed)?;
    if info.content_type != SIGNED_DATA {
        return Err(Reason::Malformed);
    }
    let sd: SignedData = info.content.decode_as().map_err(|_| Reason::Malformed)?;
    if sd.version != CmsVersion::V1 || sd.crls.is_some() {
        return Err(Reason::Malformed);
    }
    if sd.encap_content_info.econtent_type != DATA {
        return Err(Reason::Malformed);
    }
    let content = match &sd.encap_content_info.econtent {
        Some(any) => any
            .decode_as::<OctetString>()
            .map_err(|_| Reason::Malformed)?
            .into_bytes(),
        None => return Err(Reason::Malformed),
    };
    let mut signers = sd.signer_infos.0.iter();
    let (Some(si), None) = (signers.next(), signers.next()) else {
        return Err(Reason::Malformed);
    };
    if si.version != CmsVersion::V1 {
        return Err(Reason::Malformed);
    }
    let SignerIdentifier::IssuerAndSerialNumber(signer) = &si.sid else {
        return Err(Reason::Malformed);
    };
    let digest = Digest::from_oid(&si.digest_alg.oid).ok_or(Reason::Malformed)?;
    let listed = sd
        .digest_algorithms
        .iter()
        .any(|a| a.oid == si.digest_alg.oid && plain(a));
    if !listed || !plain(&si.digest_alg) || !plain(&si.signature_algorithm) {
        return Err(Reason::Malformed);
    }
    // rsaEncryption, or the sha*WithRSAEncryption matching the digest.
    let sig_oid = si.signature_algorithm.oid;
    if sig_oid != RSA_ENCRYPTION && Digest::from_oid(&sig_oid) != Some(digest) {
        return Err(Reason::Malformed);
    }
    let signed_bytes = match &si.signed_attrs {
        None => content.clone(),
        Some(attrs) => {
            check_signed_attributes(attrs, digest, &content)?;
            attrs.to_der().map_err(|_| Reason::Malformed)?
        }
    };
    let certificates = certificates(sd.certificates.as_ref())?;
    Ok(SignedMessage {
        content,
        certificates,
        signer: signer.clone(),
        digest,
        signed_bytes,
        signature: si.signature.as_bytes().to_vec(),
    })
}

/// `contentType` must be `id-data` and `messageDigest` the content's.
fn check_signed_attributes(
    attrs: &cms::signed_data::SignedAttributes,
    digest: Digest,
    content: &[u8],
) -> Result<(), Reason> {
    let single = |oid: ObjectIdentifier| {
        let mut found = attrs.iter().filter(|a| a.oid == oid);
        match (found.next(), found.next()) {
            (Some(a), None) if a.values.len() == 1 => a.values.iter().next().cloned(),
            _ => None,
        }
    };
    let ct = single(CONTENT_TYPE).ok_or(Reason::Malformed)?;
    let ct: ObjectIdentifier = ct.decode_as().map_err(|_| Reason::Malformed)?;
    if ct != DATA {
        return Err(Reason::Malformed);
    }
    let md = single(MESSAGE_DIGEST).ok_or(Reason::Malformed)?;
    let md: OctetString = md.decode_as().map_err(|_| Reason::Malformed)?;
    if md.as_bytes() != digest.of(content).as_slice() {
        return Err(Reason::BadSignature);
    }
    Ok(())
}

/// The X.509 certificates of a certificate set (other formats refused).
fn certificates(set: Option<&CertificateSet>) -> Result<Vec<Certificate>, Reason> {
    let Some(set) = set else {
        return Ok(Vec::new());
    };
    if set.0.len() > 8 {
        return Err(Reason::Malformed);
    }
    set.0
        .iter()
        .map(|c| match c {
            cms::cert::CertificateChoices::Certificate(cert) => Ok(cert.clone()),
            _ => Err(Reason::Malformed),
        })
        .collect()
}

impl SignedMessage {
    /// Whether `cert` is the one the signer names (issuer and serial).
    pub(crate) fn is_signer(&self, cert: &Certificate) -> bool {
        let tbs = &cert.tbs_certificate;
        tbs.serial_number == self.signer.serial_number && tbs.issuer == self.signer.issuer
    }

    /// The carried certificate the signer names.
    pub(crate) fn signer_certificate(&self) -> Option<&Certificate> {
        self.certificates.iter().find(|c| self.is_signer(c))
    }

    /// Verifies the signature with `spki`.
    pub(crate) fn verify(
        &self,
        spki: &SubjectPublicKeyInfoOwned,
        size: KeySize,
    ) -> Result<(), Reason> {
        x509::verify_rsa(spki, self.digest, size, &self.signed_bytes, &self.signature)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;

    /// Microsoft's published sample of an attested document (its
    /// certificate is a 2018 test certificate, RSA-1024): the real wire
    /// shape parses, its signature verifies with the certificate it
    /// carries, and the content is the attested JSON.
    #[test]
    fn microsofts_sample_attested_document_parses_and_verifies() {
        let sample: serde_json::Value =
            serde_json::from_str(include_str!("../tests/fixtures/azure_attested_sample.json"))
                .unwrap();
        let der_bytes = base64::engine::general_purpose::STANDARD
            .decode(sample["signature"].as_str().unwrap())
            .unwrap();
        let msg = parse(&der_bytes).unwrap();
        let content: serde_json::Value = serde_json::from_slice(&msg.content).unwrap();
        assert_eq!(content["nonce"], "1234566766");
        assert_eq!(content["timeStamp"]["expiresOn"], "11/20/18 22:08:24 -0000");
        let cert = msg.signer_certificate().unwrap();
        assert_eq!(x509::dns_names(cert), ["testsubdomain.metadata.azure.com"]);
        let spki = &cert.tbs_certificate.subject_public_key_info;
        msg.verify(spki, KeySize::Legacy1024).unwrap();
        // A modern verification refuses its 1024-bit key.
        assert!(msg.verify(spki, KeySize::Modern).is_err());
        // Garbage and other content types are malformed.
        assert_eq!(parse(b"\x30\x00").unwrap_err(), Reason::Malformed);
        assert_eq!(parse(&der_bytes[..200]).unwrap_err(), Reason::Malformed);
    }
}
