//! The roots Azure's attested-data certificates chain to, picked by subject
//! name from Mozilla's set (`webpki-roots`), and custom roots from PEM.
//!
//! Microsoft's IMDS documentation says the signing certificate chains to a
//! Microsoft or DigiCert root, and that Azure rolls intermediates over
//! without notice: a missing root made whole regions fail registration in
//! Taskcluster (its "uksouth dark" incident), so every current Microsoft
//! TLS root in Mozilla's set is trusted by default.

use der::asn1::AnyRef;
use der::Tag;
use rustls_pki_types::{CertificateDer, TrustAnchor};
use x509_cert::name::RdnSequence;

use crate::error::ConfigError;
use crate::x509;

/// The subject common names of the default roots (those Mozilla still
/// carries are used; a name missing from the set is skipped).
pub const MICROSOFT_ROOT_NAMES: [&str; 6] = [
    "DigiCert Global Root G2",
    "DigiCert Global Root G3",
    "DigiCert Global Root CA",
    "Microsoft RSA Root Certificate Authority 2017",
    "Microsoft ECC Root Certificate Authority 2017",
    "Baltimore CyberTrust Root",
];

/// The common names of a trust anchor's subject (stored as the value of
/// the `Name` SEQUENCE, without its tag).
pub(crate) fn anchor_names(anchor: &TrustAnchor<'_>) -> Vec<String> {
    AnyRef::new(Tag::Sequence, anchor.subject.as_ref())
        .and_then(|any| any.decode_as::<RdnSequence>())
        .map(|name| x509::common_names(&name))
        .unwrap_or_default()
}

/// The default roots: [`MICROSOFT_ROOT_NAMES`] found in Mozilla's set.
pub fn microsoft_roots() -> Vec<TrustAnchor<'static>> {
    webpki_roots::TLS_SERVER_ROOTS
        .iter()
        .filter(|a| {
            anchor_names(a)
                .iter()
                .any(|n| MICROSOFT_ROOT_NAMES.contains(&n.as_str()))
        })
        .cloned()
        .collect()
}

/// Trust anchors from PEM certificates (or one DER certificate).
pub fn roots_from_pem(pem: &[u8], field: &str) -> Result<Vec<TrustAnchor<'static>>, ConfigError> {
    x509::parse_certificates(pem, field)?
        .iter()
        .map(|c| {
            let der = x509::to_der(c)
                .map_err(|_| ConfigError::new(field, "a certificate does not re-encode"))?;
            let der = CertificateDer::from(der);
            webpki::anchor_from_trusted_cert(&der)
                .map(|a| a.to_owned())
                .map_err(|e| ConfigError::new(field, format!("not a usable root: {e}")))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_current_microsoft_roots_are_found() {
        let roots = microsoft_roots();
        let names: Vec<String> = roots.iter().flat_map(anchor_names).collect();
        for must in [
            "DigiCert Global Root G2",
            "Microsoft RSA Root Certificate Authority 2017",
            "Microsoft ECC Root Certificate Authority 2017",
        ] {
            assert!(names.iter().any(|n| n == must), "{must} missing: {names:?}");
        }
        assert!(roots.len() <= MICROSOFT_ROOT_NAMES.len());
    }
}
