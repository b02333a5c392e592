//! X.509 helpers over `x509-cert`: reading certificates from PEM or DER,
//! the names a certificate is for (subject CN and SAN DNS names), its AIA
//! "CA Issuers" URLs, and verifying a signature with its public key
//! (aws-lc-rs). No hand-written ASN.1: the structures are `x509-cert`'s.

use aws_lc_rs::signature::{self, VerificationAlgorithm};
use der::asn1::{Ia5StringRef, ObjectIdentifier, PrintableStringRef, Utf8StringRef};
use der::{Decode, Encode, Tag, Tagged};
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::{AuthorityInfoAccessSyntax, SubjectAltName};
use x509_cert::spki::SubjectPublicKeyInfoOwned;
use x509_cert::Certificate;

use crate::error::{ConfigError, Reason};

/// `rsaEncryption`.
pub(crate) const RSA_ENCRYPTION: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
/// `sha256WithRSAEncryption`.
pub(crate) const SHA256_WITH_RSA: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.11");
/// `sha384WithRSAEncryption`.
pub(crate) const SHA384_WITH_RSA: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.12");
/// `sha512WithRSAEncryption`.
pub(crate) const SHA512_WITH_RSA: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.13");
/// `id-sha256`.
pub(crate) const SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");
/// `id-sha384`.
pub(crate) const SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.2");
/// `id-sha512`.
pub(crate) const SHA512: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.3");
/// `id-at-commonName`.
const COMMON_NAME: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.4.3");
/// `id-ce-subjectAltName`.
const SUBJECT_ALT_NAME: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.17");
/// `id-pe-authorityInfoAccess`.
pub(crate) const AUTHORITY_INFO_ACCESS: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.1.1");
/// `id-ad-caIssuers`.
pub(crate) const CA_ISSUERS: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.2");

/// A SHA-2 digest, as named by a CMS `digestAlgorithm`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Digest {
    /// SHA-256.
    Sha256,
    /// SHA-384.
    Sha384,
    /// SHA-512.
    Sha512,
}

impl Digest {
    /// The digest an algorithm OID names. Azure's attested documents name
    /// `sha256WithRSAEncryption` where RFC 5652 wants `id-sha256`, so a
    /// signature algorithm OID names its digest too.
    pub(crate) fn from_oid(oid: &ObjectIdentifier) -> Option<Digest> {
        match *oid {
            o if o == SHA256 || o == SHA256_WITH_RSA => Some(Digest::Sha256),
            o if o == SHA384 || o == SHA384_WITH_RSA => Some(Digest::Sha384),
            o if o == SHA512 || o == SHA512_WITH_RSA => Some(Digest::Sha512),
            _ => None,
        }
    }

    /// The digest of `data`.
    pub(crate) fn of(self, data: &[u8]) -> Vec<u8> {
        use sha2::Digest as _;
        match self {
            Digest::Sha256 => sha2::Sha256::digest(data).to_vec(),
            Digest::Sha384 => sha2::Sha384::digest(data).to_vec(),
            Digest::Sha512 => sha2::Sha512::digest(data).to_vec(),
        }
    }
}

/// Which RSA key sizes a verification accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeySize {
    /// 2048 to 8192 bits.
    Modern,
    /// 1024 to 8192 bits: AWS's RSA certificates for the base64 signature
    /// form are 1024-bit keys.
    Legacy1024,
}

/// Verifies an RSA PKCS#1 v1.5 `signature` of `message` under `spki`.
pub(crate) fn verify_rsa(
    spki: &SubjectPublicKeyInfoOwned,
    digest: Digest,
    size: KeySize,
    message: &[u8],
    signature: &[u8],
) -> Result<(), Reason> {
    if spki.algorithm.oid != RSA_ENCRYPTION {
        return Err(Reason::UnknownSigner);
    }
    let alg: &dyn VerificationAlgorithm = match (size, digest) {
        (KeySize::Modern, Digest::Sha256) => &signature::RSA_PKCS1_2048_8192_SHA256,
        (KeySize::Modern, Digest::Sha384) => &signature::RSA_PKCS1_2048_8192_SHA384,
        (KeySize::Modern, Digest::Sha512) => &signature::RSA_PKCS1_2048_8192_SHA512,
        (KeySize::Legacy1024, Digest::Sha256) => {
            &signature::RSA_PKCS1_1024_8192_SHA256_FOR_LEGACY_USE_ONLY
        }
        (KeySize::Legacy1024, Digest::Sha512) => {
            &signature::RSA_PKCS1_1024_8192_SHA512_FOR_LEGACY_USE_ONLY
        }
        (KeySize::Legacy1024, Digest::Sha384) => &signature::RSA_PKCS1_2048_8192_SHA384,
    };
    let key = spki.subject_public_key.raw_bytes();
    alg.verify_sig(key, message, signature)
        .map_err(|_| Reason::BadSignature)
}

/// Certificates from PEM text (one or more `CERTIFICATE` blocks) or one DER
/// certificate.
pub(crate) fn parse_certificates(
    input: &[u8],
    field: &str,
) -> Result<Vec<Certificate>, ConfigError> {
    let text = std::str::from_utf8(input).ok();
    if let Some(text) = text.filter(|t| t.contains("-----BEGIN")) {
        let certs = Certificate::load_pem_chain(text.trim().as_bytes())
            .map_err(|e| ConfigError::new(field, format!("not PEM certificates: {e}")))?;
        if certs.is_empty() {
            return Err(ConfigError::new(field, "no certificate in the PEM text"));
        }
        return Ok(certs);
    }
    Certificate::from_der(input)
        .map(|c| vec![c])
        .map_err(|e| ConfigError::new(field, format!("not a DER certificate: {e}")))
}

/// The DER encoding of `cert`.
pub(crate) fn to_der(cert: &Certificate) -> Result<Vec<u8>, Reason> {
    cert.to_der().map_err(|_| Reason::Malformed)
}

/// The text of a directory string (UTF8String, PrintableString or
/// IA5String), `None` for other types.
fn any_text(value: &der::asn1::Any) -> Option<String> {
    match value.tag() {
        Tag::Utf8String => value
            .decode_as::<Utf8StringRef<'_>>()
            .ok()
            .map(|s| s.to_string()),
        Tag::PrintableString => value
            .decode_as::<PrintableStringRef<'_>>()
            .ok()
            .map(|s| s.to_string()),
        Tag::Ia5String => value
            .decode_as::<Ia5StringRef<'_>>()
            .ok()
            .map(|s| s.to_string()),
        _ => None,
    }
}

/// The common names of a name.
pub(crate) fn common_names(name: &x509_cert::name::Name) -> Vec<String> {
    name.0
        .iter()
        .flat_map(|rdn| rdn.0.iter())
        .filter(|atv| atv.oid == COMMON_NAME)
        .filter_map(|atv| any_text(&atv.value))
        .collect()
}

/// The names `cert` is for: its subject CNs and SAN DNS names.
pub(crate) fn dns_names(cert: &Certificate) -> Vec<String> {
    let mut names = common_names(&cert.tbs_certificate.subject);
    for ext in cert.tbs_certificate.extensions.iter().flatten() {
        if ext.extn_id != SUBJECT_ALT_NAME {
            continue;
        }
        if let Ok(san) = SubjectAltName::from_der(ext.extn_value.as_bytes()) {
            for n in san.0 {
                if let GeneralName::DnsName(d) = n {
                    names.push(d.to_string());
                }
            }
        }
    }
    names
}

/// The AIA "CA Issuers" URLs of `cert`.
pub(crate) fn ca_issuer_urls(cert: &Certificate) -> Vec<String> {
    let mut urls = Vec::new();
    for ext in cert.tbs_certificate.extensions.iter().flatten() {
        if ext.extn_id != AUTHORITY_INFO_ACCESS {
            continue;
        }
        if let Ok(aia) = AuthorityInfoAccessSyntax::from_der(ext.extn_value.as_bytes()) {
            for d in aia.0 {
                if d.access_method != CA_ISSUERS {
                    continue;
                }
                if let GeneralName::UniformResourceIdentifier(u) = d.access_location {
                    urls.push(u.to_string());
                }
            }
        }
    }
    urls
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_by_oid_include_azures_signature_oid() {
        assert_eq!(Digest::from_oid(&SHA256), Some(Digest::Sha256));
        assert_eq!(Digest::from_oid(&SHA256_WITH_RSA), Some(Digest::Sha256));
        assert_eq!(Digest::from_oid(&SHA512), Some(Digest::Sha512));
        assert_eq!(Digest::from_oid(&RSA_ENCRYPTION), None);
        assert_eq!(Digest::Sha256.of(b"abc").len(), 32);
    }

    #[test]
    fn bad_certificates_are_named() {
        let e = parse_certificates(b"not a cert", "roots[0]").unwrap_err();
        assert_eq!(e.field(), "roots[0]");
        let e = parse_certificates(
            b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
            "x",
        )
        .unwrap_err();
        assert!(e.message().contains("PEM"), "{e}");
    }
}
