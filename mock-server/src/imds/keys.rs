//! RSA signing keys: generated with aws-lc-rs or loaded from PKCS#8 PEM,
//! and what the rest of the metadata service needs from them (RSA-SHA256
//! signatures, the public key for JWKS, an rcgen key pair to sign
//! certificates with).

use std::fmt;

use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der, PublicKeyX509Der};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeyPair, KeySize};
use aws_lc_rs::signature::{KeyPair as _, RSA_PKCS1_SHA256};

/// Why a key could not be made, read or used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// RSA key generation failed.
    #[error("cannot generate an RSA key")]
    Generate,
    /// The PEM text is not a PKCS#8 RSA private key.
    #[error("not a PKCS#8 RSA private key (\"BEGIN PRIVATE KEY\"): {0}")]
    Parse(String),
    /// Signing failed.
    #[error("cannot sign")]
    Sign,
}

/// An RSA private key (2048 bits when generated).
pub struct RsaKey {
    key: KeyPair,
    pkcs8: Vec<u8>,
}

impl fmt::Debug for RsaKey {
    // Never the private key: only the size.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RsaKey({} bits)", self.key.public_modulus_len() * 8)
    }
}

impl RsaKey {
    /// A fresh 2048-bit key.
    pub fn generate() -> Result<RsaKey, KeyError> {
        let key = KeyPair::generate(KeySize::Rsa2048).map_err(|_| KeyError::Generate)?;
        let pkcs8: Pkcs8V1Der<'static> = key.as_der().map_err(|_| KeyError::Generate)?;
        Ok(RsaKey {
            pkcs8: pkcs8.as_ref().to_vec(),
            key,
        })
    }

    /// A key from PKCS#8 DER.
    pub fn from_pkcs8(der: &[u8]) -> Result<RsaKey, KeyError> {
        let key = KeyPair::from_pkcs8(der).map_err(|e| KeyError::Parse(e.to_string()))?;
        Ok(RsaKey {
            key,
            pkcs8: der.to_vec(),
        })
    }

    /// A key from PEM (`-----BEGIN PRIVATE KEY-----`, PKCS#8).
    pub fn from_pem(pem: &str) -> Result<RsaKey, KeyError> {
        let pair = rcgen::KeyPair::from_pem(pem).map_err(|e| KeyError::Parse(e.to_string()))?;
        RsaKey::from_pkcs8(pair.serialized_der())
    }

    /// The key as PKCS#8 PEM, for `--write-trust-keys`.
    pub fn to_pem(&self) -> Result<String, KeyError> {
        Ok(self.rcgen()?.serialize_pem())
    }

    /// An RSA PKCS#1 v1.5 SHA-256 signature of `message`.
    pub fn sign_sha256(&self, message: &[u8]) -> Result<Vec<u8>, KeyError> {
        let mut sig = vec![0; self.key.public_modulus_len()];
        self.key
            .sign(&RSA_PKCS1_SHA256, &SystemRandom::new(), message, &mut sig)
            .map_err(|_| KeyError::Sign)?;
        Ok(sig)
    }

    /// The modulus, big-endian without leading zeros (JWK `n`).
    pub fn modulus(&self) -> Vec<u8> {
        self.key
            .public_key()
            .modulus()
            .big_endian_without_leading_zero()
            .to_vec()
    }

    /// The public exponent, big-endian without leading zeros (JWK `e`).
    pub fn exponent(&self) -> Vec<u8> {
        self.key
            .public_key()
            .exponent()
            .big_endian_without_leading_zero()
            .to_vec()
    }

    /// The public key as an X.509 SubjectPublicKeyInfo, DER.
    pub fn public_key_der(&self) -> Result<Vec<u8>, KeyError> {
        let spki: PublicKeyX509Der<'static> =
            self.key.public_key().as_der().map_err(|_| KeyError::Sign)?;
        Ok(spki.as_ref().to_vec())
    }

    /// The same key for rcgen, to sign certificates with (RSA-SHA256).
    pub fn rcgen(&self) -> Result<rcgen::KeyPair, KeyError> {
        let der = rustls::pki_types::PrivatePkcs8KeyDer::from(self.pkcs8.as_slice());
        rcgen::KeyPair::from_pkcs8_der_and_sign_algo(&der, &rcgen::PKCS_RSA_SHA256)
            .map_err(|e| KeyError::Parse(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::signature::{UnparsedPublicKey, RSA_PKCS1_2048_8192_SHA256};

    #[test]
    fn a_generated_key_signs_and_survives_pem() {
        let key = RsaKey::generate().unwrap();
        let sig = key.sign_sha256(b"hello").unwrap();
        assert_eq!(sig.len(), 256);
        let again = RsaKey::from_pem(&key.to_pem().unwrap()).unwrap();
        assert_eq!(again.modulus(), key.modulus());
        assert_eq!(key.exponent(), vec![1, 0, 1]);
        // The modulus and exponent are those of the signing key.
        let public = aws_lc_rs::rsa::PublicKeyComponents {
            n: key.modulus(),
            e: key.exponent(),
        };
        public
            .verify(&RSA_PKCS1_2048_8192_SHA256, b"hello", &sig)
            .unwrap();
        assert!(format!("{key:?}").contains("2048 bits"));
        // The SPKI carries the same key.
        let spki = key.public_key_der().unwrap();
        let pair = rcgen::KeyPair::from_pem(&key.to_pem().unwrap()).unwrap();
        assert_eq!(spki, pair.public_key_der());
        let _ = UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, &spki);
    }

    #[test]
    fn garbage_pem_is_refused() {
        assert!(matches!(
            RsaKey::from_pem("not a key"),
            Err(KeyError::Parse(_))
        ));
    }
}
