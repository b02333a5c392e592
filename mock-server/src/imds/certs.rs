//! The certificates the metadata service signs with, made with rcgen from
//! the keys in [`super::keys`]:
//!
//! - AWS: one self-signed certificate for every region (the mock's stand-in
//!   for the per-region "AWS public certificate" of the identity document);
//! - Google: one self-signed certificate per JWKS key (the
//!   `/oauth2/v1/certs` form of the same keys);
//! - Azure: a root, an intermediate under it, and a `metadata.azure.com`
//!   leaf under the intermediate (serverAuth and clientAuth EKUs, as the
//!   real signer has).
//!
//! Certificates made from a pinned key (AWS, Google, the Azure root) have a
//! fixed serial and validity, so the same key gives byte-identical
//! certificates on every start: a suite that pins the keys can pin the
//! certificates too.

use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};
use time::{Duration, OffsetDateTime};

use super::keys::RsaKey;
use super::trust::TrustError;

/// The signer name of Azure's attested data.
pub const AZURE_SIGNER: &str = "metadata.azure.com";

/// A certificate in both encodings.
#[derive(Debug, Clone)]
pub struct Issued {
    /// DER.
    pub der: Vec<u8>,
    /// PEM.
    pub pem: String,
}

impl Issued {
    fn of(cert: &Certificate) -> Issued {
        Issued {
            der: cert.der().to_vec(),
            pem: cert.pem(),
        }
    }
}

/// A CA that can sign: its rcgen certificate (the issuer name and key id)
/// and key.
pub struct Authority {
    cert: Certificate,
    key: KeyPair,
    /// The certificate as served.
    pub issued: Issued,
}

impl std::fmt::Debug for Authority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authority")
            .field("der_len", &self.issued.der.len())
            .finish_non_exhaustive()
    }
}

fn name(org: &str, cn: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CountryName, "US");
    dn.push(DnType::OrganizationName, org);
    dn.push(DnType::CommonName, cn);
    dn
}

/// Parameters with a fixed serial and a validity that does not depend on
/// when the mock started.
fn pinned(dn: DistinguishedName, serial: u8) -> CertificateParams {
    let mut p = CertificateParams::default();
    p.distinguished_name = dn;
    p.serial_number = Some(SerialNumber::from(vec![serial]));
    p.not_before = rcgen::date_time_ymd(2024, 1, 1);
    p.not_after = rcgen::date_time_ymd(2049, 12, 31);
    p
}

fn cert_err(what: &str) -> impl FnOnce(rcgen::Error) -> TrustError + '_ {
    move |e| TrustError::Certificate(format!("{what}: {e}"))
}

/// The AWS signing certificate (self-signed, one for all regions).
pub fn aws(key: &RsaKey) -> Result<Issued, TrustError> {
    let params = pinned(
        name(
            "skyfleet mock (Amazon Web Services LLC)",
            "skyfleet mock EC2 instance identity",
        ),
        1,
    );
    let cert = params
        .self_signed(&key.rcgen()?)
        .map_err(cert_err("AWS certificate"))?;
    Ok(Issued::of(&cert))
}

/// A self-signed certificate for a Google JWKS key (`/oauth2/v1/certs`).
pub fn google(key: &RsaKey, kid: &str) -> Result<Issued, TrustError> {
    let params = pinned(name("skyfleet mock (Google LLC)", kid), 1);
    let cert = params
        .self_signed(&key.rcgen()?)
        .map_err(cert_err("Google certificate"))?;
    Ok(Issued::of(&cert))
}

/// The Azure root.
pub fn azure_root(key: &RsaKey) -> Result<Authority, TrustError> {
    let mut params = pinned(
        name(
            "skyfleet mock (DigiCert Inc)",
            "skyfleet mock Azure Root G2",
        ),
        1,
    );
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let key = key.rcgen()?;
    let cert = params.self_signed(&key).map_err(cert_err("Azure root"))?;
    Ok(Authority {
        issued: Issued::of(&cert),
        cert,
        key,
    })
}

/// The Azure intermediate number `generation` (1, 2, ... as it rotates),
/// valid from a day before `now` for a year.
pub fn azure_intermediate(
    root: &Authority,
    key: &RsaKey,
    generation: u32,
    now: OffsetDateTime,
) -> Result<Authority, TrustError> {
    let mut params = CertificateParams::default();
    params.distinguished_name = name(
        "skyfleet mock (Microsoft Corporation)",
        &format!("skyfleet mock Azure RSA TLS Issuing CA {generation:02}"),
    );
    params.serial_number = Some(SerialNumber::from(generation.to_be_bytes().to_vec()));
    params.not_before = now - Duration::days(1);
    params.not_after = now + Duration::days(365);
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params.use_authority_key_identifier_extension = true;
    let key = key.rcgen()?;
    let cert = params
        .signed_by(&key, &root.cert, &root.key)
        .map_err(cert_err("Azure intermediate"))?;
    Ok(Authority {
        issued: Issued::of(&cert),
        cert,
        key,
    })
}

/// The Azure signer: CN and SAN `metadata.azure.com`, serverAuth and
/// clientAuth, valid from an hour before `now` for 180 days.
pub fn azure_leaf(
    intermediate: &Authority,
    key: &RsaKey,
    serial: u32,
    now: OffsetDateTime,
) -> Result<Issued, TrustError> {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CountryName, "US");
    dn.push(DnType::StateOrProvinceName, "WA");
    dn.push(DnType::LocalityName, "Redmond");
    dn.push(
        DnType::OrganizationName,
        "skyfleet mock (Microsoft Corporation)",
    );
    dn.push(DnType::CommonName, AZURE_SIGNER);
    params.distinguished_name = dn;
    params.subject_alt_names = vec![SanType::DnsName(
        AZURE_SIGNER
            .try_into()
            .map_err(cert_err("Azure signer name"))?,
    )];
    params.serial_number = Some(SerialNumber::from(serial.to_be_bytes().to_vec()));
    params.not_before = now - Duration::hours(1);
    params.not_after = now + Duration::days(180);
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params.use_authority_key_identifier_extension = true;
    let cert = params
        .signed_by(&key.rcgen()?, &intermediate.cert, &intermediate.key)
        .map_err(cert_err("Azure signer"))?;
    Ok(Issued::of(&cert))
}
