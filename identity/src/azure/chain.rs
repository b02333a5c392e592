//! The signer's chain: path validation with `rustls-webpki` to the
//! configured roots, through the intermediates the document carries, those
//! cached from earlier documents, and (when neither does) the one named by
//! the leaf's AIA "CA Issuers" URL, fetched only from allow-listed URL
//! prefixes, with the fetcher's timeout and no redirects.
//!
//! The intermediate cache is copy-on-write: a certificate enters it only
//! after a chain through it reached a root, so a failed or hostile fetch
//! cannot corrupt it (Taskcluster's node-forge store was mutated by failed
//! checks). It is bounded (oldest out first), and a URL that failed is not
//! fetched again for a minute.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use rustls_pki_types::{CertificateDer, TrustAnchor, UnixTime};
use time::OffsetDateTime;
use webpki::{EndEntityCert, KeyUsage};
use x509_cert::Certificate;

use crate::error::Reason;
use crate::fetch::Fetch;
use crate::x509;

/// The AIA URL prefixes fetched by default: the hosts Azure's
/// intermediates are published on (DigiCert, GeoTrust, Microsoft PKI).
pub const DEFAULT_AIA_PREFIXES: [&str; 8] = [
    "http://cacerts.digicert.com/",
    "https://cacerts.digicert.com/",
    "http://cacerts.geotrust.com/",
    "https://cacerts.geotrust.com/",
    "http://www.microsoft.com/pkiops/certs/",
    "https://www.microsoft.com/pkiops/certs/",
    "http://caissuers.microsoft.com/",
    "https://caissuers.microsoft.com/",
];

/// How long a failed AIA URL is not fetched again.
const RETRY_FAILED_AFTER: Duration = Duration::from_secs(60);

/// The most failed URLs remembered.
const MAX_FAILED: usize = 256;

/// Where intermediates not carried by a document come from.
#[derive(Debug, Clone)]
pub(crate) struct Aia {
    /// URL prefixes that may be fetched.
    pub(crate) allowed: Vec<String>,
    /// How (none: never fetch).
    pub(crate) fetcher: Option<Arc<dyn Fetch>>,
}

impl Aia {
    fn allows(&self, url: &str) -> bool {
        self.fetcher.is_some() && self.allowed.iter().any(|p| url.starts_with(p.as_str()))
    }
}

/// Chain validation with the intermediate cache.
#[derive(Debug)]
pub(crate) struct Chain {
    roots: Vec<TrustAnchor<'static>>,
    aia: Aia,
    max_cached: usize,
    cached: RwLock<Arc<Vec<CertificateDer<'static>>>>,
    failed: Mutex<HashMap<String, OffsetDateTime>>,
    fetching: tokio::sync::Mutex<()>,
    fetches: AtomicU64,
}

impl Chain {
    pub(crate) fn new(
        roots: Vec<TrustAnchor<'static>>,
        pinned: Vec<CertificateDer<'static>>,
        aia: Aia,
        max_cached: usize,
    ) -> Self {
        Chain {
            roots,
            aia,
            max_cached: max_cached.max(pinned.len()),
            cached: RwLock::new(Arc::new(pinned)),
            failed: Mutex::new(HashMap::new()),
            fetching: tokio::sync::Mutex::new(()),
            fetches: AtomicU64::new(0),
        }
    }

    /// The cached intermediates (a snapshot).
    pub(crate) fn cached(&self) -> Arc<Vec<CertificateDer<'static>>> {
        self.cached
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// AIA fetches made.
    pub(crate) fn fetches(&self) -> u64 {
        self.fetches.load(Ordering::Relaxed)
    }

    /// Validates `leaf` (with its DER) through `carried` intermediates at
    /// `now`.
    pub(crate) async fn validate(
        &self,
        leaf: &Certificate,
        leaf_der: &[u8],
        carried: &[CertificateDer<'static>],
        now: OffsetDateTime,
    ) -> Result<(), Reason> {
        let mut pool: Vec<CertificateDer<'static>> = carried.to_vec();
        pool.extend(self.cached().iter().cloned());
        let first = self.path(leaf_der, &pool, now);
        let err = match first {
            Ok(used) => {
                self.remember(used);
                return Ok(());
            }
            Err(e) => e,
        };
        if !matches!(err, webpki::Error::UnknownIssuer) {
            return Err(reason(&err));
        }
        // Not reachable with what we have: the leaf's AIA, if allowed.
        let mut unavailable = false;
        for url in x509::ca_issuer_urls(leaf).into_iter().take(2) {
            if !self.aia.allows(&url) {
                continue;
            }
            let Some(found) = self.fetch(&url, now).await else {
                unavailable = true;
                continue;
            };
            let mut with = pool.clone();
            with.extend(found);
            match self.path(leaf_der, &with, now) {
                Ok(used) => {
                    self.remember(used);
                    return Ok(());
                }
                Err(webpki::Error::UnknownIssuer) => continue,
                Err(e) => return Err(reason(&e)),
            }
        }
        Err(if unavailable {
            Reason::KeysUnavailable
        } else {
            Reason::UnknownSigner
        })
    }

    /// Builds a path; answers the intermediates it went through.
    fn path(
        &self,
        leaf_der: &[u8],
        pool: &[CertificateDer<'static>],
        now: OffsetDateTime,
    ) -> Result<Vec<CertificateDer<'static>>, webpki::Error> {
        let der = CertificateDer::from(leaf_der);
        let ee = EndEntityCert::try_from(&der)?;
        let secs = u64::try_from(now.unix_timestamp()).unwrap_or(0);
        let time = UnixTime::since_unix_epoch(Duration::from_secs(secs));
        let path = ee.verify_for_usage(
            webpki::ALL_VERIFICATION_ALGS,
            &self.roots,
            pool,
            time,
            KeyUsage::server_auth(),
            None,
            None,
        )?;
        Ok(path
            .intermediate_certificates()
            .map(|c| CertificateDer::from(c.der().to_vec()))
            .collect())
    }

    /// Adds the intermediates of a validated path to the cache (copy on
    /// write, oldest out first).
    fn remember(&self, used: Vec<CertificateDer<'static>>) {
        let current = self.cached();
        let new: Vec<_> = used.into_iter().filter(|c| !current.contains(c)).collect();
        if new.is_empty() {
            return;
        }
        let mut w = self.cached.write().unwrap_or_else(|e| e.into_inner());
        let mut next: Vec<_> = w.iter().cloned().collect();
        for c in new {
            if !next.contains(&c) {
                next.push(c);
            }
        }
        let excess = next.len().saturating_sub(self.max_cached);
        next.drain(..excess);
        *w = Arc::new(next);
    }

    /// Fetches the certificates at `url`, unless it failed within the last
    /// minute. `None`: not available.
    async fn fetch(&self, url: &str, now: OffsetDateTime) -> Option<Vec<CertificateDer<'static>>> {
        let _one_at_a_time = self.fetching.lock().await;
        {
            let failed = self.failed.lock().unwrap_or_else(|e| e.into_inner());
            if failed.get(url).is_some_and(|until| now < *until) {
                return None;
            }
        }
        let fetcher = self.aia.fetcher.as_ref()?;
        self.fetches.fetch_add(1, Ordering::Relaxed);
        let parsed = match fetcher.get(url).await {
            Ok(body) => x509::parse_certificates(&body, url).ok().and_then(|certs| {
                certs
                    .iter()
                    .map(|c| x509::to_der(c).ok())
                    .collect::<Option<Vec<_>>>()
            }),
            Err(e) => {
                tracing::warn!(url, error = %e, "AIA fetch failed");
                None
            }
        };
        match parsed {
            Some(ders) if !ders.is_empty() => {
                Some(ders.into_iter().map(CertificateDer::from).collect())
            }
            _ => {
                let mut failed = self.failed.lock().unwrap_or_else(|e| e.into_inner());
                if failed.len() >= MAX_FAILED {
                    failed.retain(|_, until| now < *until);
                    if failed.len() >= MAX_FAILED {
                        failed.clear();
                    }
                }
                failed.insert(url.to_string(), now + RETRY_FAILED_AFTER);
                None
            }
        }
    }
}

/// The rejection reason of a path validation error.
fn reason(e: &webpki::Error) -> Reason {
    use webpki::Error as E;
    match e {
        E::CertExpired { .. } => Reason::Expired,
        E::CertNotValidYet { .. } => Reason::NotYetValid,
        E::InvalidSignatureForPublicKey | E::SignatureAlgorithmMismatch => Reason::BadSignature,
        E::BadDer | E::BadDerTime | E::TrailingData(_) => Reason::Malformed,
        _ => Reason::UnknownSigner,
    }
}
