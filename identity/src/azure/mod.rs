//! Azure: the attested data document a VM gets from
//! `/metadata/attested/document?api-version=...&nonce=N`:
//! `{"encoding":"pkcs7","signature":"<base64 DER>"}`, a CMS SignedData
//! whose content is the attested JSON, signed by a certificate for
//! `metadata.azure.com` (Microsoft's IMDS documentation: "the certificates
//! may not have an exact match of `metadata.azure.com`... validation should
//! allow a common name from any `.metadata.azure.com` subdomain"). Checks,
//! in order:
//!
//! 1. the CMS structure and its signature with the signer certificate it
//!    carries (RSA, 2048 bits or more);
//! 2. the signer's CN or SAN DNS name is `metadata.azure.com`,
//!    `*.metadata.azure.com` or one subdomain of it;
//! 3. its chain to the configured roots (Microsoft's current roots by
//!    default) through carried, cached or AIA-fetched intermediates;
//! 4. the attested JSON: `vmId`, `timeStamp.expiresOn` in the future,
//!    `createdOn` not in the future, the nonce when one was issued.

mod attested;
mod chain;
mod roots;

use std::sync::Arc;
use std::time::Duration;

use rustls_pki_types::{CertificateDer, TrustAnchor};
use time::OffsetDateTime;

pub use attested::{parse_attested, parse_timestamp, AttestedData, AzureExpected, TimeStamp};
pub use chain::DEFAULT_AIA_PREFIXES;
pub use roots::{microsoft_roots, roots_from_pem, MICROSOFT_ROOT_NAMES};

use crate::encoding::decode_base64;
use crate::error::{ConfigError, Reason, Rejected};
use crate::fetch::{Fetch, HttpFetch};
use crate::pkcs7;
use crate::x509::{self, KeySize};
use chain::{Aia, Chain};

/// The signer domain of Azure's public cloud.
pub const PUBLIC_CLOUD_SIGNER: &str = "metadata.azure.com";

/// How many intermediates are cached by default.
pub const DEFAULT_MAX_CACHED: usize = 32;

/// How an [`AzureVerifier`] is set up.
#[derive(Debug, Clone)]
pub struct AzureConfig {
    roots: Vec<TrustAnchor<'static>>,
    pinned: Vec<CertificateDer<'static>>,
    aia_prefixes: Vec<String>,
    fetcher: Option<Arc<dyn Fetch>>,
    aia_enabled: bool,
    signer_domain: String,
    skew: Duration,
    max_cached: usize,
}

impl Default for AzureConfig {
    fn default() -> Self {
        AzureConfig::new()
    }
}

impl AzureConfig {
    /// Microsoft's roots, no pinned intermediate, AIA fetches from
    /// [`DEFAULT_AIA_PREFIXES`] with the default fetcher, signer domain
    /// `metadata.azure.com`, 60 s of skew on `createdOn`.
    pub fn new() -> Self {
        AzureConfig {
            roots: microsoft_roots(),
            pinned: Vec::new(),
            aia_prefixes: DEFAULT_AIA_PREFIXES.iter().map(|s| s.to_string()).collect(),
            fetcher: None,
            aia_enabled: true,
            signer_domain: PUBLIC_CLOUD_SIGNER.into(),
            skew: Duration::from_secs(60),
            max_cached: DEFAULT_MAX_CACHED,
        }
    }

    /// Trusts only the roots in `pem` (a mock's, a sovereign cloud's).
    pub fn with_roots_pem(mut self, pem: impl AsRef<[u8]>) -> Result<Self, ConfigError> {
        self.roots = roots_from_pem(pem.as_ref(), "azure.roots")?;
        Ok(self)
    }

    /// Trusts the roots in `pem` as well.
    pub fn with_extra_roots_pem(mut self, pem: impl AsRef<[u8]>) -> Result<Self, ConfigError> {
        self.roots
            .extend(roots_from_pem(pem.as_ref(), "azure.extra_roots")?);
        Ok(self)
    }

    /// Starts the intermediate cache with the certificates in `pem` (pinned
    /// intermediates, for hosts that cannot fetch).
    pub fn with_intermediates_pem(mut self, pem: impl AsRef<[u8]>) -> Result<Self, ConfigError> {
        for c in x509::parse_certificates(pem.as_ref(), "azure.intermediates")? {
            let der = x509::to_der(&c)
                .map_err(|_| ConfigError::new("azure.intermediates", "does not re-encode"))?;
            self.pinned.push(CertificateDer::from(der));
        }
        Ok(self)
    }

    /// Fetches AIA intermediates only under these URL prefixes (each must
    /// end the host with `/`).
    pub fn with_aia_prefixes<I, S>(mut self, prefixes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.aia_prefixes = prefixes.into_iter().map(Into::into).collect();
        self
    }

    /// Never fetches intermediates.
    pub fn without_aia(mut self) -> Self {
        self.aia_enabled = false;
        self
    }

    /// Fetches intermediates with `fetcher`.
    pub fn with_fetcher(mut self, fetcher: Arc<dyn Fetch>) -> Self {
        self.fetcher = Some(fetcher);
        self
    }

    /// Accepts signers of `domain` (`metadata.azure.us` in Azure
    /// Government) instead of `metadata.azure.com`.
    pub fn with_signer_domain(mut self, domain: impl Into<String>) -> Self {
        self.signer_domain = domain.into();
        self
    }

    /// Allows `skew` on `createdOn`.
    pub fn with_skew(mut self, skew: Duration) -> Self {
        self.skew = skew;
        self
    }

    /// Caches at most `n` intermediates.
    pub fn with_max_cached(mut self, n: usize) -> Self {
        self.max_cached = n;
        self
    }

    /// Checks the settings, naming the bad one.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.roots.is_empty() {
            return Err(ConfigError::new("azure.roots", "no root to trust"));
        }
        for p in &self.aia_prefixes {
            let host_end = p
                .strip_prefix("http://")
                .or_else(|| p.strip_prefix("https://"))
                .and_then(|rest| rest.find('/'));
            if !matches!(host_end, Some(i) if i > 0) || p.contains('@') {
                return Err(ConfigError::new(
                    "azure.aia_prefixes",
                    format!("`{p}` must be http(s)://host/..."),
                ));
            }
        }
        if self.signer_domain.is_empty() || self.signer_domain.starts_with('.') {
            return Err(ConfigError::new("azure.signer_domain", "not a domain"));
        }
        if self.skew > Duration::from_secs(600) {
            return Err(ConfigError::new("azure.skew", "at most 600 s"));
        }
        Ok(())
    }
}

/// Verifies Azure attested data documents. Share one per provider: it
/// holds the intermediate cache.
#[derive(Debug)]
pub struct AzureVerifier {
    chain: Chain,
    signer_domain: String,
    skew: Duration,
}

impl AzureVerifier {
    /// A verifier over `config` (checked first).
    pub fn new(config: AzureConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        let fetcher = match (config.aia_enabled, config.fetcher) {
            (false, _) => None,
            (true, Some(f)) => Some(f),
            (true, None) => Some(Arc::new(
                HttpFetch::new().map_err(|e| ConfigError::new("azure.fetcher", e.to_string()))?,
            ) as Arc<dyn Fetch>),
        };
        let aia = Aia {
            allowed: config.aia_prefixes,
            fetcher,
        };
        Ok(AzureVerifier {
            chain: Chain::new(config.roots, config.pinned, aia, config.max_cached),
            signer_domain: config.signer_domain.to_ascii_lowercase(),
            skew: config.skew,
        })
    }

    /// How many intermediates are cached.
    pub fn cached_intermediates(&self) -> usize {
        self.chain.cached().len()
    }

    /// How many AIA fetches were made.
    pub fn aia_fetches(&self) -> u64 {
        self.chain.fetches()
    }

    /// Whether `name` is the signer domain, its wildcard, or one label
    /// under it.
    fn is_signer_name(&self, name: &str) -> bool {
        let name = name.to_ascii_lowercase();
        let domain = self.signer_domain.as_str();
        if name == domain {
            return true;
        }
        match name.strip_suffix(domain).and_then(|p| p.strip_suffix('.')) {
            Some("*") => true,
            Some(label) => {
                !label.is_empty()
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            }
            None => false,
        }
    }

    /// Verifies the base64 `signature` of an attested document for the VM
    /// described by `want` at `now`: [`AzureVerifier::authenticate`], then
    /// [`AzureVerifier::check`].
    pub async fn verify(
        &self,
        signature: &str,
        want: &AzureExpected,
        now: OffsetDateTime,
    ) -> Result<AttestedData, Rejected> {
        let doc = self.authenticate(signature, now).await?;
        self.check(&doc, want, now)?;
        Ok(doc)
    }

    /// The attested document, once its CMS signature, signer name and
    /// chain hold (no comparison with a VM yet: a caller that must look the
    /// VM up does so only for authentic documents).
    pub async fn authenticate(
        &self,
        signature: &str,
        now: OffsetDateTime,
    ) -> Result<AttestedData, Rejected> {
        let der_bytes = decode_base64(signature)?;
        let msg = pkcs7::parse(&der_bytes)?;
        let leaf = msg.signer_certificate().ok_or(Reason::UnknownSigner)?;
        msg.verify(
            &leaf.tbs_certificate.subject_public_key_info,
            KeySize::Modern,
        )?;
        if !x509::dns_names(leaf).iter().any(|n| self.is_signer_name(n)) {
            return Err(Reason::UnknownSigner.into());
        }
        let leaf_der = x509::to_der(leaf)?;
        let carried = msg
            .certificates
            .iter()
            .filter(|c| !msg.is_signer(c))
            .map(|c| x509::to_der(c).map(CertificateDer::from))
            .collect::<Result<Vec<_>, _>>()?;
        self.chain.validate(leaf, &leaf_der, &carried, now).await?;
        Ok(parse_attested(&msg.content)?)
    }

    /// An authentic document against the VM and the clock: `vmId`,
    /// `expiresOn` in the future, `createdOn` not in the future beyond the
    /// skew, the nonce when one was issued.
    pub fn check(
        &self,
        doc: &AttestedData,
        want: &AzureExpected,
        now: OffsetDateTime,
    ) -> Result<(), Rejected> {
        attested::check(doc, want, self.skew, now).map_err(Rejected::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signer_names() {
        let v = AzureVerifier::new(AzureConfig::new().without_aia()).unwrap();
        for ok in [
            "metadata.azure.com",
            "*.metadata.azure.com",
            "eastus.metadata.azure.com",
            "TestSubdomain.Metadata.Azure.com",
        ] {
            assert!(v.is_signer_name(ok), "{ok}");
        }
        for bad in [
            "metadata.azure.com.evil.com",
            "evilmetadata.azure.com",
            "a.b.metadata.azure.com",
            ".metadata.azure.com",
            "*.*.metadata.azure.com",
            "azure.com",
        ] {
            assert!(!v.is_signer_name(bad), "{bad}");
        }
    }

    #[test]
    fn bad_settings_are_named() {
        let field = |c: AzureConfig| AzureVerifier::new(c).unwrap_err().field().to_string();
        assert_eq!(
            field(AzureConfig::new().with_aia_prefixes(["http://evil.com"])),
            "azure.aia_prefixes"
        );
        assert_eq!(
            field(AzureConfig::new().with_aia_prefixes(["http://a@evil.com/"])),
            "azure.aia_prefixes"
        );
        assert_eq!(
            field(AzureConfig::new().with_signer_domain("")),
            "azure.signer_domain"
        );
        assert!(AzureConfig::new().with_roots_pem("nope").is_err());
    }
}
