//! CMS SignedData (PKCS#7) with RSA-SHA256, as AWS's `/rsa2048` and
//! Azure's attested document carry: the content embedded (`id-data`),
//! signed attributes (content type, signing time, message digest), the
//! signer named by issuer and serial number, and optionally certificates.
//!
//! The structures are the `cms` and `x509-cert` crates' own types, encoded
//! by `der`; the signature comes from aws-lc-rs.

use std::time::SystemTime;

use cms::cert::{CertificateChoices, IssuerAndSerialNumber};
use cms::content_info::{CmsVersion, ContentInfo};
use cms::signed_data::{
    CertificateSet, EncapsulatedContentInfo, SignedData, SignerIdentifier, SignerInfo, SignerInfos,
};
use const_oid::db::{rfc5911, rfc5912};
use der::asn1::{OctetString, SetOfVec, UtcTime};
use der::{Any, Decode, Encode, Tag};
use x509_cert::attr::Attribute;
use x509_cert::spki::AlgorithmIdentifierOwned;
use x509_cert::Certificate;

use super::keys::RsaKey;

/// Why a SignedData could not be built.
#[derive(Debug, thiserror::Error)]
pub enum CmsError {
    /// A certificate or structure did not encode or decode.
    #[error("CMS encoding: {0}")]
    Der(#[from] der::Error),
    /// The signer key failed.
    #[error("CMS signature: {0}")]
    Key(#[from] super::keys::KeyError),
}

/// `sha256`, parameters absent (RFC 5754).
fn sha256() -> AlgorithmIdentifierOwned {
    AlgorithmIdentifierOwned {
        oid: rfc5912::ID_SHA_256,
        parameters: None,
    }
}

/// `rsaEncryption` with NULL parameters, as OpenSSL writes signer infos.
fn rsa() -> AlgorithmIdentifierOwned {
    AlgorithmIdentifierOwned {
        oid: rfc5912::RSA_ENCRYPTION,
        parameters: Some(Any::null()),
    }
}

fn attribute(oid: const_oid::ObjectIdentifier, value: Any) -> Result<Attribute, CmsError> {
    Ok(Attribute {
        oid,
        values: SetOfVec::try_from(vec![value])?,
    })
}

/// A DER `ContentInfo` holding a SignedData over `content`, signed by `key`
/// whose certificate is `signer_der`, carrying `certificates` (DER; may be
/// empty, AWS carries none, Azure the signer and its intermediate).
pub fn signed_data(
    content: &[u8],
    key: &RsaKey,
    signer_der: &[u8],
    certificates: &[&[u8]],
    signed_at: SystemTime,
) -> Result<Vec<u8>, CmsError> {
    let signer = Certificate::from_der(signer_der)?;
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, content);
    let signed_attrs = SetOfVec::try_from(vec![
        attribute(
            rfc5911::ID_CONTENT_TYPE,
            Any::encode_from(&rfc5911::ID_DATA)?,
        )?,
        attribute(
            rfc5911::ID_SIGNING_TIME,
            Any::encode_from(&UtcTime::from_system_time(signed_at)?)?,
        )?,
        attribute(
            rfc5911::ID_MESSAGE_DIGEST,
            Any::encode_from(&OctetString::new(digest.as_ref())?)?,
        )?,
    ])?;
    // The signature covers the attributes' DER with the SET tag (RFC 5652
    // section 5.4), not the [0] IMPLICIT tag they carry in the SignerInfo.
    let signature = key.sign_sha256(&signed_attrs.to_der()?)?;
    let signer_info = SignerInfo {
        version: CmsVersion::V1,
        sid: SignerIdentifier::IssuerAndSerialNumber(IssuerAndSerialNumber {
            issuer: signer.tbs_certificate.issuer.clone(),
            serial_number: signer.tbs_certificate.serial_number.clone(),
        }),
        digest_alg: sha256(),
        signed_attrs: Some(signed_attrs),
        signature_algorithm: rsa(),
        signature: OctetString::new(signature)?,
        unsigned_attrs: None,
    };
    let certificates = if certificates.is_empty() {
        None
    } else {
        let mut set = Vec::with_capacity(certificates.len());
        for der in certificates {
            set.push(CertificateChoices::Certificate(Certificate::from_der(der)?));
        }
        Some(CertificateSet(SetOfVec::try_from(set)?))
    };
    let signed = SignedData {
        version: CmsVersion::V1,
        digest_algorithms: SetOfVec::try_from(vec![sha256()])?,
        encap_content_info: EncapsulatedContentInfo {
            econtent_type: rfc5911::ID_DATA,
            econtent: Some(Any::new(Tag::OctetString, content)?),
        },
        certificates,
        crls: None,
        signer_infos: SignerInfos(SetOfVec::try_from(vec![signer_info])?),
    };
    let info = ContentInfo {
        content_type: rfc5911::ID_SIGNED_DATA,
        content: Any::encode_from(&signed)?,
    };
    Ok(info.to_der()?)
}
