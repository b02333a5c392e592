//! CMS SignedData built from the `cms` crate's types and signed with
//! aws-lc-rs (the crate's builder would need the `rsa` crate).

use cms::cert::{CertificateChoices, IssuerAndSerialNumber};
use cms::content_info::{CmsVersion, ContentInfo};
use cms::signed_data::{
    CertificateSet, EncapsulatedContentInfo, SignedData, SignerIdentifier, SignerInfo, SignerInfos,
};
use der::asn1::{ObjectIdentifier, OctetString, SetOfVec};
use der::{Any, Decode, Encode, Tag};
use x509_cert::attr::Attribute;
use x509_cert::spki::AlgorithmIdentifierOwned;
use x509_cert::Certificate;

use super::RsaKey;

const SIGNED_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.2");
const DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.1");
const CONTENT_TYPE: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.3");
const MESSAGE_DIGEST: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.4");
const RSA_ENCRYPTION: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
/// `id-sha256`, the digest RFC 5652 names.
pub const SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");
/// `sha256WithRSAEncryption`, the digest Azure's documents name.
pub const SHA256_WITH_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.11");

/// How to build a message.
#[derive(Debug, Clone)]
pub struct Build<'a> {
    /// The content.
    pub content: &'a [u8],
    /// The signer's certificate (DER).
    pub signer_cert: &'a [u8],
    /// Its key.
    pub key: &'a RsaKey,
    /// Certificates to carry (DER): the signer's, intermediates.
    pub carry: Vec<&'a [u8]>,
    /// The digest algorithm OID to name.
    pub digest_oid: ObjectIdentifier,
    /// Sign attributes (contentType, messageDigest) instead of the content.
    pub signed_attributes: bool,
}

fn alg(oid: ObjectIdentifier) -> AlgorithmIdentifierOwned {
    AlgorithmIdentifierOwned {
        oid,
        parameters: Some(Any::new(Tag::Null, Vec::<u8>::new()).expect("NULL")),
    }
}

fn attribute(oid: ObjectIdentifier, value: Any) -> Attribute {
    Attribute {
        oid,
        values: SetOfVec::try_from(vec![value]).expect("one value"),
    }
}

/// The DER of a `ContentInfo` holding the signed message.
pub fn signed_data(b: &Build<'_>) -> Vec<u8> {
    use sha2::Digest as _;
    let cert = Certificate::from_der(b.signer_cert).expect("the signer certificate parses");
    let sid = SignerIdentifier::IssuerAndSerialNumber(IssuerAndSerialNumber {
        issuer: cert.tbs_certificate.issuer.clone(),
        serial_number: cert.tbs_certificate.serial_number.clone(),
    });
    let (signed_attrs, to_sign) = if b.signed_attributes {
        let digest = sha2::Sha256::digest(b.content).to_vec();
        let attrs = SetOfVec::try_from(vec![
            attribute(CONTENT_TYPE, Any::encode_from(&DATA).expect("an OID")),
            attribute(
                MESSAGE_DIGEST,
                Any::encode_from(&OctetString::new(digest).expect("a digest"))
                    .expect("an octet string"),
            ),
        ])
        .expect("two attributes");
        let der = attrs.to_der().expect("attributes encode");
        (Some(attrs), der)
    } else {
        (None, b.content.to_vec())
    };
    let signature = b.key.sign(&to_sign);
    let si = SignerInfo {
        version: CmsVersion::V1,
        sid,
        digest_alg: alg(b.digest_oid),
        signed_attrs,
        signature_algorithm: alg(RSA_ENCRYPTION),
        signature: OctetString::new(signature).expect("a signature"),
        unsigned_attrs: None,
    };
    let certs: Vec<CertificateChoices> = b
        .carry
        .iter()
        .map(|d| CertificateChoices::Certificate(Certificate::from_der(d).expect("a certificate")))
        .collect();
    let sd = SignedData {
        version: CmsVersion::V1,
        digest_algorithms: SetOfVec::try_from(vec![alg(b.digest_oid)]).expect("one digest"),
        encap_content_info: EncapsulatedContentInfo {
            econtent_type: DATA,
            econtent: Some(
                Any::encode_from(&OctetString::new(b.content).expect("content")).expect("content"),
            ),
        },
        certificates: if certs.is_empty() {
            None
        } else {
            Some(CertificateSet(
                SetOfVec::try_from(certs).expect("certificates"),
            ))
        },
        crls: None,
        signer_infos: SignerInfos(SetOfVec::try_from(vec![si]).expect("one signer")),
    };
    ContentInfo {
        content_type: SIGNED_DATA,
        content: Any::encode_from(&sd).expect("SignedData encodes"),
    }
    .to_der()
    .expect("ContentInfo encodes")
}
