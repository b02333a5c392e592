//! Issuers of self-made proofs, shaped as the clouds' (for tests,
//! benchmarks and fuzz seeds): **not a stable API**.
//!
//! Keys are generated per issuer (aws-lc-rs RSA-2048 for every signature a
//! cloud makes with RSA, rcgen ECDSA P-256 for the certificate authorities
//! above them); signatures are aws-lc-rs'; CMS messages are built from the
//! `cms` crate's types. [`MemoryFetch`] answers fetches from memory and
//! counts them.

pub mod aws;
pub mod azure;
pub mod cms;
pub mod gcp;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use async_trait::async_trait;
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeyPair, KeySize};
use aws_lc_rs::signature::{KeyPair as _, RSA_PKCS1_SHA256};

use crate::fetch::{Fetch, FetchError};

/// An RSA-2048 signing key.
#[derive(Debug)]
pub struct RsaKey(KeyPair);

impl RsaKey {
    /// A fresh key.
    pub fn generate() -> Self {
        // Key generation fails only if the system RNG does.
        RsaKey(KeyPair::generate(KeySize::Rsa2048).expect("RSA-2048 key generation"))
    }

    /// RSA-SHA256 (PKCS#1 v1.5) over `msg`.
    pub fn sign(&self, msg: &[u8]) -> Vec<u8> {
        let mut sig = vec![0u8; self.0.public_modulus_len()];
        self.0
            .sign(&RSA_PKCS1_SHA256, &SystemRandom::new(), msg, &mut sig)
            .expect("RSA signing with a valid key");
        sig
    }

    /// The public key as an X.509 SubjectPublicKeyInfo (DER).
    pub fn spki_der(&self) -> Vec<u8> {
        self.0
            .public_key()
            .as_der()
            .expect("an RSA public key encodes")
            .as_ref()
            .to_vec()
    }

    /// The public key for rcgen (to put it in a certificate).
    pub fn rcgen_public(&self) -> RsaPublic {
        RsaPublic(self.0.public_key().as_ref().to_vec())
    }

    /// The modulus and exponent, big-endian (for a JWK).
    pub fn components(&self) -> (Vec<u8>, Vec<u8>) {
        let c = aws_lc_rs::rsa::PublicKeyComponents::<Vec<u8>>::from(self.0.public_key());
        (c.n, c.e)
    }
}

/// An RSA public key (PKCS#1 `RSAPublicKey` DER) rcgen puts in a
/// certificate.
#[derive(Debug, Clone)]
pub struct RsaPublic(Vec<u8>);

impl rcgen::PublicKeyData for RsaPublic {
    fn der_bytes(&self) -> &[u8] {
        &self.0
    }

    fn algorithm(&self) -> &rcgen::SignatureAlgorithm {
        &rcgen::PKCS_RSA_SHA256
    }
}

/// A [`Fetch`] answering from memory, counting requests.
#[derive(Debug, Default)]
pub struct MemoryFetch {
    bodies: Mutex<HashMap<String, Vec<u8>>>,
    gets: AtomicU64,
}

impl MemoryFetch {
    /// An empty one (every URL fails).
    pub fn new() -> Self {
        MemoryFetch::default()
    }

    /// Answers `body` for `url` from now on.
    pub fn set(&self, url: &str, body: impl Into<Vec<u8>>) {
        self.lock().insert(url.to_string(), body.into());
    }

    /// Fails `url` from now on.
    pub fn remove(&self, url: &str) {
        self.lock().remove(url);
    }

    /// How many fetches were asked for.
    pub fn gets(&self) -> u64 {
        self.gets.load(Ordering::Relaxed)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Vec<u8>>> {
        self.bodies.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[async_trait]
impl Fetch for MemoryFetch {
    async fn get(&self, url: &str) -> Result<Vec<u8>, FetchError> {
        self.gets.fetch_add(1, Ordering::Relaxed);
        self.lock()
            .get(url)
            .cloned()
            .ok_or_else(|| FetchError::new(format!("GET {url}: HTTP 404")))
    }
}

/// A certificate authority for the issuers' chains (ECDSA P-256).
pub(crate) struct Ca {
    pub(crate) cert: rcgen::Certificate,
    pub(crate) key: rcgen::KeyPair,
}

impl Ca {
    /// A self-signed root named `cn`.
    pub(crate) fn root(cn: &str) -> Ca {
        let key = rcgen::KeyPair::generate().expect("ECDSA key generation");
        let cert = ca_params(cn).self_signed(&key).expect("a self-signed root");
        Ca { cert, key }
    }

    /// An intermediate named `cn` under `self`.
    pub(crate) fn intermediate(&self, cn: &str) -> Ca {
        let key = rcgen::KeyPair::generate().expect("ECDSA key generation");
        let cert = ca_params(cn)
            .signed_by(&key, &self.cert, &self.key)
            .expect("an intermediate");
        Ca { cert, key }
    }
}

fn ca_params(cn: &str) -> rcgen::CertificateParams {
    let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).expect("no SAN to check");
    p.distinguished_name = rcgen::DistinguishedName::new();
    p.distinguished_name.push(rcgen::DnType::CommonName, cn);
    p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    p.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    let now = time::OffsetDateTime::now_utc();
    p.not_before = now - time::Duration::days(1);
    p.not_after = now + time::Duration::days(3650);
    p
}

/// Standard base64.
pub(crate) fn b64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}
