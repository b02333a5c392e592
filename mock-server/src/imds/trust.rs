//! The trust material the metadata service signs with: the AWS key and
//! certificate, the Google JWKS key, and Azure's root, intermediate and
//! `metadata.azure.com` signer.
//!
//! Generated keys are made on first use (RSA key generation is the
//! expensive part of a mock start, and most mocks never serve an identity
//! document), then kept until [`Trust::rotate`]. Keys loaded from a
//! directory ([`TrustKeys::load`], `--trust-keys DIR`) are used from the
//! start, so a test suite can pin what it trusts:
//!
//! | file | key | required |
//! | --- | --- | --- |
//! | `aws.key.pem` | signs the EC2 identity document (one key for every region) | yes |
//! | `google.key.pem` | signs GCE identity tokens; its kid is derived from it | yes |
//! | `azure-root.key.pem` | the Azure root | yes |
//! | `azure-intermediate.key.pem` | the first Azure intermediate | no (generated) |
//! | `azure-signer.key.pem` | the first `metadata.azure.com` signer | no (generated) |
//!
//! Every file is an unencrypted PKCS#8 RSA key in PEM (`BEGIN PRIVATE KEY`,
//! as `openssl genpkey -algorithm RSA` writes); [`TrustKeys::write`]
//! (`--write-trust-keys DIR`) writes a fresh set. Certificates made from
//! the required keys have a fixed serial and validity, so the same keys
//! give the same certificates on every start.
//!
//! Rotation makes a new Azure intermediate (the next generation, under the
//! same root) with a new signer, and a new Google key. The old Google key
//! leaves the JWKS at once: Google keeps a retired key published for a
//! while, but removing it at once is the harsher case a verifier's cache
//! must survive (a token signed before the rotation no longer verifies
//! against a fresh JWKS). The AWS key never rotates (AWS's certificates
//! last years).

use std::path::Path;
use std::sync::{Arc, RwLock};

use time::OffsetDateTime;

use super::certs::{self, Authority, Issued};
use super::keys::{KeyError, RsaKey};

/// Why trust material could not be made, loaded or written.
#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    /// A key failed.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// A key file could not be read or parsed.
    #[error("{file}: {reason}")]
    File {
        /// The file.
        file: String,
        /// What went wrong.
        reason: String,
    },
    /// A certificate could not be made.
    #[error("certificate: {0}")]
    Certificate(String),
    /// The background task making keys failed.
    #[error("key generation task: {0}")]
    Task(String),
}

const AWS_FILE: &str = "aws.key.pem";
const GOOGLE_FILE: &str = "google.key.pem";
const AZURE_ROOT_FILE: &str = "azure-root.key.pem";
const AZURE_INTERMEDIATE_FILE: &str = "azure-intermediate.key.pem";
const AZURE_SIGNER_FILE: &str = "azure-signer.key.pem";

/// Keys to start from, loaded from a directory (see the module docs).
#[derive(Debug)]
pub struct TrustKeys {
    aws: RsaKey,
    google: RsaKey,
    azure_root: RsaKey,
    azure_intermediate: Option<RsaKey>,
    azure_signer: Option<RsaKey>,
}

fn read_key(dir: &Path, file: &str, required: bool) -> Result<Option<RsaKey>, TrustError> {
    let path = dir.join(file);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => return Ok(None),
        Err(e) => {
            return Err(TrustError::File {
                file: path.display().to_string(),
                reason: e.to_string(),
            })
        }
    };
    RsaKey::from_pem(&text)
        .map(Some)
        .map_err(|e| TrustError::File {
            file: path.display().to_string(),
            reason: e.to_string(),
        })
}

impl TrustKeys {
    /// Reads the key files of `dir`; the error names the file at fault.
    pub fn load(dir: &Path) -> Result<TrustKeys, TrustError> {
        let required = |file| {
            read_key(dir, file, true)?.ok_or_else(|| TrustError::File {
                file: dir.join(file).display().to_string(),
                reason: "missing".into(),
            })
        };
        Ok(TrustKeys {
            aws: required(AWS_FILE)?,
            google: required(GOOGLE_FILE)?,
            azure_root: required(AZURE_ROOT_FILE)?,
            azure_intermediate: read_key(dir, AZURE_INTERMEDIATE_FILE, false)?,
            azure_signer: read_key(dir, AZURE_SIGNER_FILE, false)?,
        })
    }

    /// A fresh set of every key.
    pub fn generate() -> Result<TrustKeys, TrustError> {
        Ok(TrustKeys {
            aws: RsaKey::generate()?,
            google: RsaKey::generate()?,
            azure_root: RsaKey::generate()?,
            azure_intermediate: Some(RsaKey::generate()?),
            azure_signer: Some(RsaKey::generate()?),
        })
    }

    /// Writes every key to `dir` (created if need be), one file each.
    pub fn write(&self, dir: &Path) -> Result<(), TrustError> {
        let io = |file: &str, e: std::io::Error| TrustError::File {
            file: dir.join(file).display().to_string(),
            reason: e.to_string(),
        };
        std::fs::create_dir_all(dir).map_err(|e| io("", e))?;
        let mut files = vec![
            (AWS_FILE, &self.aws),
            (GOOGLE_FILE, &self.google),
            (AZURE_ROOT_FILE, &self.azure_root),
        ];
        if let Some(k) = &self.azure_intermediate {
            files.push((AZURE_INTERMEDIATE_FILE, k));
        }
        if let Some(k) = &self.azure_signer {
            files.push((AZURE_SIGNER_FILE, k));
        }
        for (file, key) in files {
            std::fs::write(dir.join(file), key.to_pem()?).map_err(|e| io(file, e))?;
        }
        Ok(())
    }
}

/// A key with its certificate.
#[derive(Debug)]
pub struct Signer {
    /// The key.
    pub key: RsaKey,
    /// Its certificate.
    pub cert: Issued,
}

/// A Google JWKS key.
#[derive(Debug)]
pub struct GoogleKey {
    /// Key id: 40 hex digits derived from the public key, as Google's look.
    pub kid: String,
    /// The key.
    pub key: RsaKey,
    /// A self-signed certificate of it (`/oauth2/v1/certs`).
    pub cert: Issued,
}

impl GoogleKey {
    fn new(key: RsaKey) -> Result<GoogleKey, TrustError> {
        let spki = key.public_key_der()?;
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &spki);
        let kid: String = digest.as_ref()[..20]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let cert = certs::google(&key, &kid)?;
        Ok(GoogleKey { kid, key, cert })
    }
}

/// Azure's chain below the root.
#[derive(Debug)]
pub struct AzureChain {
    /// The intermediate.
    pub intermediate: Authority,
    /// Its number: 1 at start, +1 at every rotation.
    pub generation: u32,
    /// The `metadata.azure.com` signer under it.
    pub signer: Signer,
}

impl AzureChain {
    fn new(
        root: &Authority,
        generation: u32,
        intermediate_key: RsaKey,
        signer_key: RsaKey,
    ) -> Result<AzureChain, TrustError> {
        let now = OffsetDateTime::now_utc();
        let intermediate = certs::azure_intermediate(root, &intermediate_key, generation, now)?;
        let cert = certs::azure_leaf(&intermediate, &signer_key, generation, now)?;
        Ok(AzureChain {
            intermediate,
            generation,
            signer: Signer {
                key: signer_key,
                cert,
            },
        })
    }
}

/// Everything the metadata service signs with, at one moment.
#[derive(Debug)]
pub struct Material {
    /// The AWS signer (one for all regions).
    pub aws: Arc<Signer>,
    /// The Google key the JWKS publishes.
    pub google: GoogleKey,
    /// The Azure root.
    pub azure_root: Arc<Authority>,
    /// The Azure intermediate and signer.
    pub azure: AzureChain,
}

impl Material {
    fn from_keys(keys: TrustKeys) -> Result<Material, TrustError> {
        let aws_cert = certs::aws(&keys.aws)?;
        let root = certs::azure_root(&keys.azure_root)?;
        let intermediate_key = match keys.azure_intermediate {
            Some(k) => k,
            None => RsaKey::generate()?,
        };
        let signer_key = match keys.azure_signer {
            Some(k) => k,
            None => RsaKey::generate()?,
        };
        let azure = AzureChain::new(&root, 1, intermediate_key, signer_key)?;
        Ok(Material {
            aws: Arc::new(Signer {
                key: keys.aws,
                cert: aws_cert,
            }),
            google: GoogleKey::new(keys.google)?,
            azure_root: Arc::new(root),
            azure,
        })
    }

    /// The next generation: a new Google key, a new Azure intermediate and
    /// signer under the same root; AWS unchanged.
    fn rotated(&self) -> Result<Material, TrustError> {
        let azure = AzureChain::new(
            &self.azure_root,
            self.azure.generation.saturating_add(1),
            RsaKey::generate()?,
            RsaKey::generate()?,
        )?;
        Ok(Material {
            aws: self.aws.clone(),
            google: GoogleKey::new(RsaKey::generate()?)?,
            azure_root: self.azure_root.clone(),
            azure,
        })
    }
}

/// The trust material of one mock: made on first use (or from pinned keys
/// at start) and rotated on demand.
#[derive(Debug, Default)]
pub struct Trust {
    current: RwLock<Option<Arc<Material>>>,
    /// Serializes generation and rotation, so concurrent first uses make
    /// one set of keys.
    change: tokio::sync::Mutex<()>,
}

/// Runs key generation off the async workers.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, TrustError> + Send + 'static,
) -> Result<T, TrustError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| TrustError::Task(e.to_string()))?
}

impl Trust {
    /// Trust that starts from pinned keys (certificates are made now).
    pub fn pinned(keys: TrustKeys) -> Result<Trust, TrustError> {
        let material = Material::from_keys(keys)?;
        Ok(Trust {
            current: RwLock::new(Some(Arc::new(material))),
            change: tokio::sync::Mutex::new(()),
        })
    }

    fn loaded(&self) -> Option<Arc<Material>> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn set(&self, m: Arc<Material>) {
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Some(m);
    }

    /// The material in force, made on first use.
    pub async fn material(&self) -> Result<Arc<Material>, TrustError> {
        if let Some(m) = self.loaded() {
            return Ok(m);
        }
        let _guard = self.change.lock().await;
        if let Some(m) = self.loaded() {
            return Ok(m);
        }
        let m = Arc::new(blocking(|| Material::from_keys(TrustKeys::generate()?)).await?);
        self.set(m.clone());
        Ok(m)
    }

    /// Rotates (see the module docs) and answers the new material.
    pub async fn rotate(&self) -> Result<Arc<Material>, TrustError> {
        let current = self.material().await?;
        let _guard = self.change.lock().await;
        // Rotate what is in force now (another rotation may have run while
        // this one waited for the lock).
        let current = self.loaded().unwrap_or(current);
        let next = Arc::new(blocking(move || current.rotated()).await?);
        self.set(next.clone());
        Ok(next)
    }
}
