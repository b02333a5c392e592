//! Credentials: where Compute bearer tokens come from ([`Credentials`]) and
//! the cached source the client asks for them ([`TokenSource`]).
//!
//! `gcp_auth`'s providers cache too; the cache here (core's
//! [`TokenCache`]) also spares the provider's lock and the allocation of its
//! answer on every call, bounds a refresh by a timeout (a hung metadata
//! server fails the call, not every call forever), and lets a 401 drop the
//! cached token so the next call fetches a fresh one.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use skyfleet_core::provider::names::GCP;
use skyfleet_core::provider::support::{Secret, Token, TokenCache};
use skyfleet_core::{Error, ErrorKind, Result};
use time::OffsetDateTime;
use tokio::sync::OnceCell;

/// The OAuth scope requested for Compute calls.
pub const COMPUTE_SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";

/// Where access tokens come from.
///
/// Everything except [`Credentials::StaticToken`] goes through `gcp_auth`,
/// which caches tokens until shortly before they expire. `Debug` never shows
/// a token or key.
#[derive(Clone)]
#[non_exhaustive]
pub enum Credentials {
    /// `gcp_auth`'s discovery, in its order: `GOOGLE_APPLICATION_CREDENTIALS`
    /// (a service-account key), gcloud's application-default credentials,
    /// the metadata server, then `gcloud auth print-access-token`.
    Auto,
    /// A service-account key file.
    ServiceAccountFile(PathBuf),
    /// A service-account key, as JSON text.
    ServiceAccountJson(String),
    /// The metadata server of the VM the process runs on.
    MetadataServer,
    /// gcloud's application-default credentials
    /// (`~/.config/gcloud/application_default_credentials.json`).
    ApplicationDefault,
    /// A fixed bearer token (tests, mocks, or a token minted elsewhere).
    StaticToken(String),
    /// Any `gcp_auth` token provider.
    Provider(Arc<dyn gcp_auth::TokenProvider>),
}

impl Credentials {
    /// A fixed bearer token.
    pub fn static_token(token: impl Into<String>) -> Self {
        Credentials::StaticToken(token.into())
    }

    /// The credentials a configuration's optional keys name: a static
    /// token, a service-account key file, or neither ([`Credentials::Auto`]).
    /// Both at once is a configuration error naming both keys, not a silent
    /// choice of one.
    pub fn from_keys(
        static_token: Option<String>,
        service_account_file: Option<PathBuf>,
    ) -> Result<Self> {
        match (static_token, service_account_file) {
            (Some(_), Some(_)) => Err(Error::invalid_config(
                "static_token, service_account_file",
                "give at most one of static_token and service_account_file",
            )),
            (Some(t), None) => Ok(Credentials::StaticToken(t)),
            (None, Some(f)) => Ok(Credentials::ServiceAccountFile(f)),
            (None, None) => Ok(Credentials::Auto),
        }
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credentials::Auto => f.write_str("Auto"),
            Credentials::ServiceAccountFile(p) => {
                f.debug_tuple("ServiceAccountFile").field(p).finish()
            }
            Credentials::ServiceAccountJson(_) => f.write_str("ServiceAccountJson(****)"),
            Credentials::MetadataServer => f.write_str("MetadataServer"),
            Credentials::ApplicationDefault => f.write_str("ApplicationDefault"),
            Credentials::StaticToken(_) => f.write_str("StaticToken(****)"),
            Credentials::Provider(_) => f.write_str("Provider(..)"),
        }
    }
}

/// How long before expiry a cached token is refreshed.
const REFRESH_MARGIN: Duration = Duration::from_secs(60);

/// How long one token refresh (the identity endpoint's answer) may take.
const REFRESH_TIMEOUT: Duration = Duration::from_secs(30);

/// A cached source of bearer tokens. `Debug` shows no token.
pub(crate) struct TokenSource {
    credentials: Credentials,
    provider: OnceCell<Arc<dyn gcp_auth::TokenProvider>>,
    cache: TokenCache,
}

impl fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenSource")
            .field("credentials", &self.credentials)
            .finish_non_exhaustive()
    }
}

fn auth_error(e: gcp_auth::Error) -> Error {
    Error::new(
        ErrorKind::Unauthenticated,
        format!("cannot get a Google access token: {e}"),
    )
    .with_provider(GCP)
    .with_code("TokenUnavailable")
    .with_source(e)
}

impl TokenSource {
    /// A source over `credentials`; nothing is fetched until the first call.
    pub(crate) fn new(credentials: Credentials) -> Self {
        TokenSource {
            credentials,
            provider: OnceCell::new(),
            cache: TokenCache::new(REFRESH_MARGIN, REFRESH_TIMEOUT),
        }
    }

    async fn provider(&self) -> Result<&Arc<dyn gcp_auth::TokenProvider>> {
        self.provider
            .get_or_try_init(|| async {
                let p: Arc<dyn gcp_auth::TokenProvider> = match &self.credentials {
                    Credentials::Auto => gcp_auth::provider().await.map_err(auth_error)?,
                    Credentials::ServiceAccountFile(path) => Arc::new(
                        gcp_auth::CustomServiceAccount::from_file(path).map_err(|e| {
                            Error::invalid_config(
                                "credentials",
                                format!("service-account key {}: {e}", path.display()),
                            )
                        })?,
                    ),
                    Credentials::ServiceAccountJson(json) => Arc::new(
                        gcp_auth::CustomServiceAccount::from_json(json).map_err(|e| {
                            Error::invalid_config(
                                "credentials",
                                format!("service-account key: {e}"),
                            )
                        })?,
                    ),
                    Credentials::MetadataServer => Arc::new(
                        gcp_auth::MetadataServiceAccount::new()
                            .await
                            .map_err(auth_error)?,
                    ),
                    Credentials::ApplicationDefault => Arc::new(
                        gcp_auth::ConfigDefaultCredentials::new()
                            .await
                            .map_err(auth_error)?,
                    ),
                    Credentials::Provider(p) => p.clone(),
                    Credentials::StaticToken(_) => {
                        return Err(Error::internal("a static token has no provider"))
                    }
                };
                Ok(p)
            })
            .await
    }

    /// A valid bearer token: a static one as is, otherwise the cached one
    /// or, within [`REFRESH_MARGIN`] of its expiry, a fresh one (bounded by
    /// [`REFRESH_TIMEOUT`]).
    pub(crate) async fn token(&self) -> Result<Secret> {
        if let Credentials::StaticToken(t) = &self.credentials {
            return Ok(Secret::new(t.as_str()));
        }
        self.cache
            .get(|| async {
                let provider = self.provider().await?;
                let token = provider.token(&[COMPUTE_SCOPE]).await.map_err(auth_error)?;
                Ok(Token {
                    secret: Secret::new(token.as_str()),
                    expires_at: OffsetDateTime::from_unix_timestamp(token.expires_at().timestamp())
                        .ok(),
                })
            })
            .await
            .map_err(|e| e.with_provider(GCP))
    }

    /// Forgets the cached token (after a 401), so the next call fetches one.
    pub(crate) async fn invalidate(&self) {
        self.cache.invalidate().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_debug_hides_secrets() {
        let s = format!(
            "{:?} {:?}",
            Credentials::static_token("tok-123"),
            Credentials::ServiceAccountJson("{\"private_key\":\"k\"}".into())
        );
        assert!(!s.contains("tok-123") && !s.contains("private_key"), "{s}");
    }

    #[test]
    fn a_token_and_a_key_file_both_are_a_config_error_naming_both_keys() {
        let e =
            Credentials::from_keys(Some("tok-123".into()), Some("key.json".into())).unwrap_err();
        match e.kind() {
            ErrorKind::InvalidConfig { field } => {
                assert_eq!(field, "static_token, service_account_file")
            }
            k => panic!("{k:?}"),
        }
        assert!(!e.to_string().contains("tok-123"), "{e}");
        assert!(matches!(
            Credentials::from_keys(None, None).unwrap(),
            Credentials::Auto
        ));
        assert!(matches!(
            Credentials::from_keys(Some("t".into()), None).unwrap(),
            Credentials::StaticToken(_)
        ));
        assert!(matches!(
            Credentials::from_keys(None, Some("k.json".into())).unwrap(),
            Credentials::ServiceAccountFile(_)
        ));
    }
}
