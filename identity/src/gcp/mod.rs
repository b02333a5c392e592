//! GCP: the Compute Engine identity token an instance gets from
//! `instance/service-accounts/default/identity?audience=A&format=full`, an
//! RS256 JWT signed by Google (Google's "Verifying the identity of
//! instances"). Checks, in order:
//!
//! 1. the header names `RS256` and a `kid`; the key comes from the JWKS
//!    (Google's `https://www.googleapis.com/oauth2/v3/certs` by default),
//!    cached and refetched on an unknown `kid` at most once a minute;
//! 2. the signature (jsonwebtoken, aws-lc-rs);
//! 3. `iss` is Google's, `aud` the configured audience (the manager's root
//!    URL), `exp` in the future and `iat` not in the future, both within
//!    the clock skew (60 s by default);
//! 4. `google.compute_engine`'s project and instance are the worker's, and
//!    `sub` (or a verified `email`) the configured service account's.

mod claims;
mod jwks;

use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::{Algorithm, Validation};
use time::OffsetDateTime;

pub use claims::{
    ComputeEngine, GceClaims, GcpExpected, GoogleClaims, ServiceAccount, GOOGLE_ISSUERS,
};
pub use jwks::MAX_KEYS;

use crate::error::{ConfigError, Reason, Rejected};
use crate::fetch::{Fetch, HttpFetch};
use jwks::JwksCache;

/// Google's key set for identity tokens.
pub const GOOGLE_JWKS_URL: &str = "https://www.googleapis.com/oauth2/v3/certs";

/// The default clock skew allowed on `exp` and `iat`.
pub const DEFAULT_SKEW: Duration = Duration::from_secs(60);

/// The default least time between two key set fetches.
pub const DEFAULT_REFETCH_INTERVAL: Duration = Duration::from_secs(60);

/// The largest token accepted.
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// How a [`GcpVerifier`] is set up.
#[derive(Debug, Clone)]
pub struct GcpConfig {
    audience: String,
    jwks_url: String,
    skew: Duration,
    refetch_interval: Duration,
    fetcher: Option<Arc<dyn Fetch>>,
}

impl GcpConfig {
    /// Tokens must be for `audience` (the manager's root URL); keys from
    /// Google's JWKS; 60 s of skew; a refetch at most once a minute; the
    /// default fetcher ([`HttpFetch`]).
    pub fn new(audience: impl Into<String>) -> Self {
        GcpConfig {
            audience: audience.into(),
            jwks_url: GOOGLE_JWKS_URL.into(),
            skew: DEFAULT_SKEW,
            refetch_interval: DEFAULT_REFETCH_INTERVAL,
            fetcher: None,
        }
    }

    /// Reads keys from `url` (a mock's `/oauth2/v3/certs`).
    pub fn with_jwks_url(mut self, url: impl Into<String>) -> Self {
        self.jwks_url = url.into();
        self
    }

    /// Allows `skew` of clock difference on `exp` and `iat`.
    pub fn with_skew(mut self, skew: Duration) -> Self {
        self.skew = skew;
        self
    }

    /// Fetches the key set at most once per `interval` on unknown `kid`s.
    pub fn with_refetch_interval(mut self, interval: Duration) -> Self {
        self.refetch_interval = interval;
        self
    }

    /// Fetches the key set with `fetcher`.
    pub fn with_fetcher(mut self, fetcher: Arc<dyn Fetch>) -> Self {
        self.fetcher = Some(fetcher);
        self
    }

    /// The audience tokens must carry.
    pub fn audience(&self) -> &str {
        &self.audience
    }

    /// Checks the settings, naming the bad one.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.audience.is_empty() {
            return Err(ConfigError::new("gcp.audience", "must not be empty"));
        }
        let u = &self.jwks_url;
        if !(u.starts_with("https://") || u.starts_with("http://")) {
            return Err(ConfigError::new(
                "gcp.jwks_url",
                format!("`{u}` is not an http(s) URL"),
            ));
        }
        if self.skew > Duration::from_secs(600) {
            return Err(ConfigError::new("gcp.skew", "at most 600 s"));
        }
        Ok(())
    }
}

/// Verifies Compute Engine identity tokens. Share one per provider: it
/// holds the key cache.
#[derive(Debug)]
pub struct GcpVerifier {
    audience: String,
    skew: Duration,
    keys: JwksCache,
}

impl GcpVerifier {
    /// A verifier over `config` (checked first).
    pub fn new(config: GcpConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        let fetcher: Arc<dyn Fetch> = match config.fetcher {
            Some(f) => f,
            None => Arc::new(
                HttpFetch::new().map_err(|e| ConfigError::new("gcp.fetcher", e.to_string()))?,
            ),
        };
        Ok(GcpVerifier {
            audience: config.audience,
            skew: config.skew,
            keys: JwksCache::new(config.jwks_url, fetcher, config.refetch_interval),
        })
    }

    /// Fetches the key set now (warming the cache before a burst of
    /// registrations).
    pub async fn warm(&self, now: OffsetDateTime) {
        self.keys.refresh(now).await;
    }

    /// How many key set fetches were made.
    pub fn fetches(&self) -> u64 {
        self.keys.fetches()
    }

    /// How many keys are cached.
    pub fn cached_keys(&self) -> usize {
        self.keys.len()
    }

    /// Verifies `jwt` for the instance described by `want` at `now`.
    pub async fn verify(
        &self,
        jwt: &str,
        want: &GcpExpected,
        now: OffsetDateTime,
    ) -> Result<GceClaims, Rejected> {
        if jwt.len() > MAX_TOKEN_BYTES {
            return Err(Reason::Malformed.into());
        }
        let header = jsonwebtoken::decode_header(jwt).map_err(|_| Reason::Malformed)?;
        if header.alg != Algorithm::RS256 {
            return Err(Reason::UnknownSigner.into());
        }
        let kid = header.kid.ok_or(Reason::UnknownSigner)?;
        let key = self.keys.key(&kid, now).await?;
        let claims = decode_signed(jwt, &key)?;
        claims::check_token(&claims, &self.audience, self.skew, now)?;
        claims::check_instance(&claims, want)?;
        Ok(claims)
    }
}

/// Checks the RS256 signature only: every claim is checked by this module
/// against the caller's clock, with its own reason.
fn decode_signed(jwt: &str, key: &jsonwebtoken::DecodingKey) -> Result<GceClaims, Reason> {
    let mut v = Validation::new(Algorithm::RS256);
    v.validate_exp = false;
    v.validate_nbf = false;
    v.validate_aud = false;
    v.required_spec_claims.clear();
    jsonwebtoken::decode::<GceClaims>(jwt, key, &v)
        .map(|d| d.claims)
        .map_err(|e| match e.kind() {
            jsonwebtoken::errors::ErrorKind::InvalidSignature => Reason::BadSignature,
            jsonwebtoken::errors::ErrorKind::InvalidAlgorithm => Reason::UnknownSigner,
            _ => Reason::Malformed,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_settings_are_named() {
        let e = GcpVerifier::new(GcpConfig::new("")).unwrap_err();
        assert_eq!(e.field(), "gcp.audience");
        let e = GcpVerifier::new(GcpConfig::new("a").with_jwks_url("file:///x")).unwrap_err();
        assert_eq!(e.field(), "gcp.jwks_url");
        let e =
            GcpVerifier::new(GcpConfig::new("a").with_skew(Duration::from_secs(3600))).unwrap_err();
        assert_eq!(e.field(), "gcp.skew");
    }
}
