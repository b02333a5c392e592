//! An Azure-shaped issuer: attested data documents signed by a
//! `metadata.azure.com` leaf under an intermediate under a root, the
//! intermediate published at an AIA URL (rotatable under the same root).

use der::asn1::Ia5String;
use der::Encode;
use time::OffsetDateTime;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::{AccessDescription, AuthorityInfoAccessSyntax};

use crate::x509::CA_ISSUERS;

use super::cms::{signed_data, Build, SHA256_WITH_RSA};
use super::{b64, Ca, RsaKey};

/// Issues attested data documents.
pub struct AzureIssuer {
    root: Ca,
    intermediate: Ca,
    leaf_key: RsaKey,
    leaf: rcgen::Certificate,
    generation: u32,
    leaf_name: String,
}

impl std::fmt::Debug for AzureIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AzureIssuer")
            .field("generation", &self.generation)
            .field("leaf_name", &self.leaf_name)
            .finish_non_exhaustive()
    }
}

/// IMDS's timestamp form, in UTC: `MM/DD/YY HH:MM:SS -0000`.
pub fn imds_time(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:02}/{:02}/{:02} {:02}:{:02}:{:02} -0000",
        u8::from(t.month()),
        t.day(),
        t.year().rem_euclid(100),
        t.hour(),
        t.minute(),
        t.second()
    )
}

impl AzureIssuer {
    /// A fresh root, intermediate and `metadata.azure.com` leaf.
    pub fn new() -> Self {
        Self::with_leaf_name("metadata.azure.com")
    }

    /// The same, the leaf named `name` (CN and SAN).
    pub fn with_leaf_name(name: &str) -> Self {
        let root = Ca::root("Test Azure Root G2");
        let intermediate = root.intermediate("Test Azure TLS Issuing CA 1");
        let leaf_key = RsaKey::generate();
        let leaf = leaf_cert(name, &leaf_key, &intermediate, &aia_url(1));
        AzureIssuer {
            root,
            intermediate,
            leaf_key,
            leaf,
            generation: 1,
            leaf_name: name.to_string(),
        }
    }

    /// The root (PEM), to trust.
    pub fn root_pem(&self) -> String {
        self.root.cert.pem()
    }

    /// The current intermediate (DER), as its AIA URL serves it.
    pub fn intermediate_der(&self) -> Vec<u8> {
        self.intermediate.cert.der().to_vec()
    }

    /// The URL the current leaf's AIA names.
    pub fn aia_url(&self) -> String {
        aia_url(self.generation)
    }

    /// A new intermediate under the same root, and a new leaf under it
    /// (Azure's certificate churn).
    pub fn rotate_intermediate(&mut self) {
        self.generation += 1;
        self.intermediate = self
            .root
            .intermediate(&format!("Test Azure TLS Issuing CA {}", self.generation));
        self.leaf_key = RsaKey::generate();
        self.leaf = leaf_cert(
            &self.leaf_name,
            &self.leaf_key,
            &self.intermediate,
            &aia_url(self.generation),
        );
    }

    /// The attested JSON for `vm_id` and `nonce`, created at `created` and
    /// expiring six hours later.
    pub fn content(&self, vm_id: &str, nonce: &str, created: OffsetDateTime) -> String {
        self.content_expiring(vm_id, nonce, created, created + time::Duration::hours(6))
    }

    /// The attested JSON with explicit times.
    pub fn content_expiring(
        &self,
        vm_id: &str,
        nonce: &str,
        created: OffsetDateTime,
        expires: OffsetDateTime,
    ) -> String {
        serde_json::to_string(&serde_json::json!({
            "licenseType": "",
            "nonce": nonce,
            "plan": {"name": "", "product": "", "publisher": ""},
            "sku": "22_04-lts-gen2",
            "subscriptionId": "00000000-0000-0000-0000-000000000000",
            "timeStamp": {"createdOn": imds_time(created), "expiresOn": imds_time(expires)},
            "vmId": vm_id,
        }))
        .expect("JSON")
    }

    /// The `signature` of an attested document with `content`, carrying the
    /// leaf and, when `carry_intermediate`, the intermediate.
    pub fn sign(&self, content: &str, carry_intermediate: bool) -> String {
        let mut carry = vec![self.leaf.der().as_ref()];
        if carry_intermediate {
            carry.push(self.intermediate.cert.der().as_ref());
        }
        b64(&signed_data(&Build {
            content: content.as_bytes(),
            signer_cert: self.leaf.der(),
            key: &self.leaf_key,
            carry,
            digest_oid: SHA256_WITH_RSA,
            signed_attributes: false,
        }))
    }
}

impl Default for AzureIssuer {
    fn default() -> Self {
        AzureIssuer::new()
    }
}

fn aia_url(generation: u32) -> String {
    format!("http://caissuers.microsoft.com/test/issuing-ca-{generation}.crt")
}

fn leaf_cert(name: &str, key: &RsaKey, issuer: &Ca, aia: &str) -> rcgen::Certificate {
    let mut p = rcgen::CertificateParams::new(vec![name.to_string()]).expect("a DNS SAN");
    p.distinguished_name = rcgen::DistinguishedName::new();
    p.distinguished_name.push(rcgen::DnType::CommonName, name);
    p.key_usages = vec![
        rcgen::KeyUsagePurpose::DigitalSignature,
        rcgen::KeyUsagePurpose::KeyEncipherment,
    ];
    p.extended_key_usages = vec![
        rcgen::ExtendedKeyUsagePurpose::ServerAuth,
        rcgen::ExtendedKeyUsagePurpose::ClientAuth,
    ];
    let now = OffsetDateTime::now_utc();
    p.not_before = now - time::Duration::days(1);
    p.not_after = now + time::Duration::days(365);
    let aia_ext = AuthorityInfoAccessSyntax(vec![AccessDescription {
        access_method: CA_ISSUERS,
        access_location: GeneralName::UniformResourceIdentifier(
            Ia5String::new(aia).expect("an ASCII URL"),
        ),
    }])
    .to_der()
    .expect("AIA encodes");
    p.custom_extensions
        .push(rcgen::CustomExtension::from_oid_content(
            &[1, 3, 6, 1, 5, 5, 7, 1, 1],
            aia_ext,
        ));
    p.signed_by(&key.rcgen_public(), &issuer.cert, &issuer.key)
        .expect("a leaf certificate")
}
