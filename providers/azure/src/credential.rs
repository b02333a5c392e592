//! Bearer tokens for ARM, from `azure_identity` 1.x credentials or a static
//! token (tests), cached and refreshed before they expire.
//!
//! Which credential: [`CredentialConfig`] names one, or
//! [`CredentialConfig::Environment`] (the default) picks one from the
//! environment the way Azure's SDKs do: workload identity when
//! `AZURE_FEDERATED_TOKEN_FILE` is set, a client secret when
//! `AZURE_CLIENT_SECRET` is, managed identity when an identity endpoint is
//! (`IDENTITY_ENDPOINT`, `MSI_ENDPOINT`), and the Azure CLI otherwise.
//!
//! Why our own cache on top of the credentials' own: one token serves every
//! worker of the provider, and a refresh happens once, behind a lock, five
//! minutes before expiry, so thousands of concurrent steps never stampede
//! the token endpoint and never send a token that expires mid-call.
//!
//! Secrets (core's [`Secret`]) print as `[redacted]` and are never logged;
//! the token refresh runs under core's [`TokenCache`], bounded by a timeout,
//! so a hung identity endpoint fails that call instead of every later one.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use azure_core::cloud::{CloudConfiguration, CustomConfiguration};
use azure_core::credentials::TokenCredential;
use azure_core::http::ClientOptions;
use serde::Deserialize;
use skyfleet_core::provider::support::{Secret, Token, TokenCache};
use skyfleet_core::{Error, ErrorKind, Result};

/// The scope of Azure Resource Manager tokens.
pub const ARM_SCOPE: &str = "https://management.azure.com/.default";

/// How long before expiry a cached token is refreshed.
pub const REFRESH_MARGIN: Duration = Duration::from_secs(300);

/// How long one token refresh may take before that call fails.
pub const REFRESH_TIMEOUT: Duration = Duration::from_secs(30);

/// Which credential the provider authenticates with.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum CredentialConfig {
    /// Pick from the environment, as the Azure SDKs do (see the module doc).
    #[default]
    Environment,
    /// A fixed bearer token (tests, mocks, short scripts). Never refreshed.
    StaticToken {
        /// The token.
        token: Secret,
    },
    /// A service principal with a client secret.
    ClientSecret {
        /// Directory (tenant) id.
        tenant_id: String,
        /// Application (client) id.
        client_id: String,
        /// The secret.
        client_secret: Secret,
        /// The authority host (default `https://login.microsoftonline.com`).
        #[serde(default)]
        authority_host: Option<String>,
    },
    /// The managed identity of the machine the process runs on.
    ManagedIdentity {
        /// The client id of a user-assigned identity (system-assigned if unset).
        #[serde(default)]
        client_id: Option<String>,
    },
    /// Workload identity federation (Kubernetes): a service account token
    /// file exchanged for an Entra token.
    WorkloadIdentity {
        /// Tenant id (default `AZURE_TENANT_ID`).
        #[serde(default)]
        tenant_id: Option<String>,
        /// Client id (default `AZURE_CLIENT_ID`).
        #[serde(default)]
        client_id: Option<String>,
        /// Token file (default `AZURE_FEDERATED_TOKEN_FILE`).
        #[serde(default)]
        token_file: Option<PathBuf>,
        /// The authority host (default `https://login.microsoftonline.com`).
        #[serde(default)]
        authority_host: Option<String>,
    },
    /// The signed-in Azure CLI (`az account get-access-token`).
    AzureCli {
        /// Tenant to get tokens for.
        #[serde(default)]
        tenant_id: Option<String>,
        /// Subscription whose tenant to use.
        #[serde(default)]
        subscription: Option<String>,
    },
}

impl CredentialConfig {
    /// Checks the fields, naming the offending one.
    pub fn validate(&self) -> Result<()> {
        let https = |h: &Option<String>, field: &str| match h {
            Some(h) if !h.starts_with("https://") => Err(Error::invalid_config(
                format!("credential.{field}"),
                "the authority host must be an https:// URL",
            )),
            _ => Ok(()),
        };
        match self {
            CredentialConfig::StaticToken { token } if token.expose().is_empty() => Err(
                Error::invalid_config("credential.token", "must not be empty"),
            ),
            CredentialConfig::ClientSecret {
                tenant_id,
                client_id,
                client_secret,
                authority_host,
            } => {
                for (v, f) in [
                    (tenant_id.as_str(), "tenant_id"),
                    (client_id.as_str(), "client_id"),
                    (client_secret.expose(), "client_secret"),
                ] {
                    if v.is_empty() {
                        return Err(Error::invalid_config(
                            format!("credential.{f}"),
                            "must not be empty",
                        ));
                    }
                }
                https(authority_host, "authority_host")
            }
            CredentialConfig::WorkloadIdentity { authority_host, .. } => {
                https(authority_host, "authority_host")
            }
            _ => Ok(()),
        }
    }
}

enum Source {
    Static(Secret),
    Identity {
        credential: Arc<dyn TokenCredential>,
        cache: TokenCache,
    },
}

/// A source of ARM bearer tokens. Cheap to share behind an `Arc`.
pub struct Credential {
    source: Source,
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.source {
            Source::Static(_) => f.write_str("Credential(static token)"),
            Source::Identity { credential, .. } => {
                f.debug_tuple("Credential").field(credential).finish()
            }
        }
    }
}

fn cred_error(what: &str, e: azure_core::Error) -> Error {
    Error::new(
        ErrorKind::Unauthenticated,
        format!("cannot set up the {what} credential: {e}"),
    )
    .with_provider("azure")
}

fn client_options(authority_host: Option<&str>, ca_pem: Option<&str>) -> Result<ClientOptions> {
    let mut opts = ClientOptions::default();
    if let Some(host) = authority_host {
        let mut custom = CustomConfiguration::default();
        custom.authority_host = host.to_string();
        opts.cloud = Some(Arc::new(CloudConfiguration::Custom(custom)));
    }
    if let Some(pem) = ca_pem {
        let certs = reqwest::Certificate::from_pem_bundle(pem.as_bytes())
            .map_err(|e| Error::invalid_config("ca_pem", format!("bad PEM: {e}")))?;
        let client = reqwest::Client::builder()
            .tls_certs_merge(certs)
            .build()
            .map_err(|e| Error::invalid_config("ca_pem", format!("HTTP client: {e}")))?;
        opts.transport = Some(azure_core::http::Transport::new(Arc::new(client)));
    }
    Ok(opts)
}

impl Credential {
    /// A credential that always answers `token` (tests and mocks).
    pub fn static_token(token: impl Into<String>) -> Self {
        Credential {
            source: Source::Static(Secret::new(token)),
        }
    }

    /// Wraps any `azure_core` token credential, with caching.
    pub fn from_token_credential(credential: Arc<dyn TokenCredential>) -> Self {
        Credential {
            source: Source::Identity {
                credential,
                cache: TokenCache::new(REFRESH_MARGIN, REFRESH_TIMEOUT),
            },
        }
    }

    /// Bounds each token refresh by `timeout` instead of
    /// `REFRESH_TIMEOUT` (30 s): a refresh that takes longer fails that call
    /// (kind `Timeout`), and the next call tries again. A static token has
    /// nothing to refresh and is unchanged.
    pub fn with_refresh_timeout(self, timeout: Duration) -> Self {
        match self.source {
            Source::Identity { credential, .. } => Credential {
                source: Source::Identity {
                    credential,
                    cache: TokenCache::new(REFRESH_MARGIN, timeout),
                },
            },
            s @ Source::Static(_) => Credential { source: s },
        }
    }

    /// Builds the credential `config` names; `ca_pem` is trusted when
    /// talking to the token authority.
    pub fn from_config(config: &CredentialConfig, ca_pem: Option<&str>) -> Result<Self> {
        config.validate()?;
        let cred: Arc<dyn TokenCredential> = match config {
            CredentialConfig::StaticToken { token } => {
                return Ok(Credential::static_token(token.expose()))
            }
            CredentialConfig::Environment => return Self::from_environment(ca_pem),
            CredentialConfig::ClientSecret {
                tenant_id,
                client_id,
                client_secret,
                authority_host,
            } => {
                let options = azure_identity::ClientSecretCredentialOptions {
                    client_options: client_options(authority_host.as_deref(), ca_pem)?,
                };
                azure_identity::ClientSecretCredential::new(
                    tenant_id,
                    client_id.clone(),
                    azure_core::credentials::Secret::new(client_secret.expose().to_string()),
                    Some(options),
                )
                .map_err(|e| cred_error("client secret", e))?
            }
            CredentialConfig::ManagedIdentity { client_id } => {
                let options = azure_identity::ManagedIdentityCredentialOptions {
                    user_assigned_id: client_id
                        .clone()
                        .map(azure_identity::UserAssignedId::ClientId),
                    client_options: client_options(None, ca_pem)?,
                };
                azure_identity::ManagedIdentityCredential::new(Some(options))
                    .map_err(|e| cred_error("managed identity", e))?
            }
            CredentialConfig::WorkloadIdentity {
                tenant_id,
                client_id,
                token_file,
                authority_host,
            } => {
                let options = azure_identity::WorkloadIdentityCredentialOptions {
                    credential_options: azure_identity::ClientAssertionCredentialOptions {
                        client_options: client_options(authority_host.as_deref(), ca_pem)?,
                    },
                    client_id: client_id.clone(),
                    tenant_id: tenant_id.clone(),
                    token_file_path: token_file.clone(),
                };
                azure_identity::WorkloadIdentityCredential::new(Some(options))
                    .map_err(|e| cred_error("workload identity", e))?
            }
            CredentialConfig::AzureCli {
                tenant_id,
                subscription,
            } => {
                let options = azure_identity::AzureCliCredentialOptions {
                    tenant_id: tenant_id.clone(),
                    subscription: subscription.clone(),
                    ..Default::default()
                };
                azure_identity::AzureCliCredential::new(Some(options))
                    .map_err(|e| cred_error("Azure CLI", e))?
            }
        };
        Ok(Credential::from_token_credential(cred))
    }

    /// Picks a credential from the environment (see the module doc).
    pub fn from_environment(ca_pem: Option<&str>) -> Result<Self> {
        let config = pick_from_environment(|k| std::env::var(k).ok())?;
        Self::from_config(&config, ca_pem)
    }

    /// A valid bearer token for ARM, from the cache unless it expires within
    /// five minutes; a refresh that takes over 30 seconds fails this call
    /// (kind `Timeout`, code `TokenRefreshTimeout`).
    pub async fn token(&self) -> Result<String> {
        match &self.source {
            Source::Static(t) => Ok(t.expose().to_string()),
            Source::Identity { credential, cache } => {
                let secret = cache
                    .get(|| async {
                        let fresh =
                            credential
                                .get_token(&[ARM_SCOPE], None)
                                .await
                                .map_err(|e| {
                                    Error::new(
                                        ErrorKind::Unauthenticated,
                                        format!("cannot get an ARM token: {e}"),
                                    )
                                    .with_provider("azure")
                                })?;
                        Ok(Token {
                            secret: Secret::new(fresh.token.secret()),
                            expires_at: Some(fresh.expires_on),
                        })
                    })
                    .await
                    .map_err(|e| e.with_provider("azure"))?;
                Ok(secret.expose().to_string())
            }
        }
    }
}

/// The credential the environment names (`var` reads a variable; empty
/// counts as unset). A half-given client secret (`AZURE_CLIENT_SECRET`
/// without `AZURE_TENANT_ID` or `AZURE_CLIENT_ID`, or those two without the
/// secret and no other credential they could belong to) is a configuration
/// error naming the missing variables, never a silent fall back to another
/// credential.
fn pick_from_environment(var: impl Fn(&str) -> Option<String>) -> Result<CredentialConfig> {
    let var = |k: &str| var(k).filter(|v| !v.is_empty());
    let federated = var("AZURE_FEDERATED_TOKEN_FILE").is_some();
    let identity_endpoint = var("IDENTITY_ENDPOINT").is_some() || var("MSI_ENDPOINT").is_some();
    let (tenant, client, secret) = (
        var("AZURE_TENANT_ID").is_some(),
        var("AZURE_CLIENT_ID").is_some(),
        var("AZURE_CLIENT_SECRET").is_some(),
    );
    let half_secret = secret && !(tenant && client);
    let secret_missing = !secret && tenant && client && !federated && !identity_endpoint;
    if half_secret || secret_missing {
        let missing: Vec<&str> = [
            ("AZURE_TENANT_ID", tenant),
            ("AZURE_CLIENT_ID", client),
            ("AZURE_CLIENT_SECRET", secret),
        ]
        .into_iter()
        .filter(|(_, set)| !set)
        .map(|(k, _)| k)
        .collect();
        return Err(Error::invalid_config(
            missing.join(", "),
            "a client-secret credential is half given in the environment: set \
             AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET together",
        ));
    }
    let authority = var("AZURE_AUTHORITY_HOST");
    let config = if var("AZURE_FEDERATED_TOKEN_FILE").is_some() {
        CredentialConfig::WorkloadIdentity {
            tenant_id: None,
            client_id: None,
            token_file: None,
            authority_host: authority,
        }
    } else if let (Some(tenant_id), Some(client_id), Some(secret)) = (
        var("AZURE_TENANT_ID"),
        var("AZURE_CLIENT_ID"),
        var("AZURE_CLIENT_SECRET"),
    ) {
        CredentialConfig::ClientSecret {
            tenant_id,
            client_id,
            client_secret: Secret::new(secret),
            authority_host: authority,
        }
    } else if var("IDENTITY_ENDPOINT").is_some() || var("MSI_ENDPOINT").is_some() {
        CredentialConfig::ManagedIdentity {
            client_id: var("AZURE_CLIENT_ID"),
        }
    } else {
        CredentialConfig::AzureCli {
            tenant_id: None,
            subscription: None,
        }
    };
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};
    use time::OffsetDateTime;

    #[derive(Debug)]
    struct Counting {
        calls: AtomicU32,
        lifetime: time::Duration,
    }

    #[async_trait::async_trait]
    impl TokenCredential for Counting {
        async fn get_token(
            &self,
            _scopes: &[&str],
            _options: Option<azure_core::credentials::TokenRequestOptions<'_>>,
        ) -> azure_core::Result<azure_core::credentials::AccessToken> {
            let n = self.calls.fetch_add(1, Ordering::SeqCst);
            Ok(azure_core::credentials::AccessToken::new(
                format!("tok-{n}"),
                OffsetDateTime::now_utc() + self.lifetime,
            ))
        }
    }

    #[tokio::test]
    async fn tokens_are_cached_until_near_expiry() {
        let long = Arc::new(Counting {
            calls: AtomicU32::new(0),
            lifetime: time::Duration::hours(1),
        });
        let c = Credential::from_token_credential(long.clone());
        assert_eq!(c.token().await.unwrap(), "tok-0");
        assert_eq!(c.token().await.unwrap(), "tok-0");
        assert_eq!(long.calls.load(Ordering::SeqCst), 1);
        // A token within the refresh margin is replaced on every use.
        let short = Arc::new(Counting {
            calls: AtomicU32::new(0),
            lifetime: time::Duration::minutes(2),
        });
        let c = Credential::from_token_credential(short.clone());
        c.token().await.unwrap();
        assert_eq!(c.token().await.unwrap(), "tok-1");
    }

    #[derive(Debug)]
    struct Hung;

    #[async_trait::async_trait]
    impl TokenCredential for Hung {
        async fn get_token(
            &self,
            _scopes: &[&str],
            _options: Option<azure_core::credentials::TokenRequestOptions<'_>>,
        ) -> azure_core::Result<azure_core::credentials::AccessToken> {
            std::future::pending().await
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_hung_identity_endpoint_times_out() {
        let c = Credential::from_token_credential(Arc::new(Hung));
        let e = c.token().await.unwrap_err();
        assert_eq!(e.kind(), &ErrorKind::Timeout);
        assert_eq!(e.code(), Some("TokenRefreshTimeout"));
    }

    #[test]
    fn a_half_given_client_secret_in_the_environment_is_a_config_error_naming_the_keys() {
        let pick = |vars: &[(&str, &str)]| {
            let vars: Vec<(String, String)> = vars
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            pick_from_environment(move |k| {
                vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
            })
        };
        let field = |r: Result<CredentialConfig>| match r.unwrap_err().kind() {
            ErrorKind::InvalidConfig { field } => field.clone(),
            k => panic!("{k:?}"),
        };
        assert_eq!(
            field(pick(&[("AZURE_CLIENT_SECRET", "hunter2")])),
            "AZURE_TENANT_ID, AZURE_CLIENT_ID"
        );
        assert_eq!(
            field(pick(&[
                ("AZURE_CLIENT_ID", "c"),
                ("AZURE_CLIENT_SECRET", "s")
            ])),
            "AZURE_TENANT_ID"
        );
        assert_eq!(
            field(pick(&[("AZURE_TENANT_ID", "t"), ("AZURE_CLIENT_ID", "c")])),
            "AZURE_CLIENT_SECRET"
        );
        let e = pick(&[("AZURE_CLIENT_SECRET", "hunter2")]).unwrap_err();
        assert!(!e.to_string().contains("hunter2"), "{e}");
        // Whole settings still pick as before.
        assert!(matches!(
            pick(&[
                ("AZURE_TENANT_ID", "t"),
                ("AZURE_CLIENT_ID", "c"),
                ("AZURE_CLIENT_SECRET", "s")
            ]),
            Ok(CredentialConfig::ClientSecret { .. })
        ));
        assert!(matches!(
            pick(&[
                ("AZURE_CLIENT_ID", "c"),
                ("IDENTITY_ENDPOINT", "http://169.254.169.254")
            ]),
            Ok(CredentialConfig::ManagedIdentity { client_id: Some(_) })
        ));
        assert!(matches!(
            pick(&[
                ("AZURE_TENANT_ID", "t"),
                ("AZURE_CLIENT_ID", "c"),
                ("AZURE_FEDERATED_TOKEN_FILE", "/f")
            ]),
            Ok(CredentialConfig::WorkloadIdentity { .. })
        ));
        assert!(matches!(pick(&[]), Ok(CredentialConfig::AzureCli { .. })));
    }

    #[tokio::test]
    async fn a_token_endpoint_that_never_answers_fails_within_the_configured_timeout() {
        let c = Credential::from_token_credential(Arc::new(Hung))
            .with_refresh_timeout(Duration::from_millis(200));
        let started = std::time::Instant::now();
        let e = c.token().await.unwrap_err();
        assert_eq!(e.kind(), &ErrorKind::Timeout);
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
        // The next call is not stuck behind the hung one: it too times out.
        let started = std::time::Instant::now();
        assert!(c.token().await.is_err());
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn secrets_never_show_in_debug() {
        let cfg = CredentialConfig::ClientSecret {
            tenant_id: "t".into(),
            client_id: "c".into(),
            client_secret: Secret::new("hunter2"),
            authority_host: None,
        };
        assert!(!format!("{cfg:?}").contains("hunter2"));
        let st = CredentialConfig::StaticToken {
            token: Secret::new("tok-secret"),
        };
        assert!(!format!("{st:?}").contains("tok-secret"));
        assert!(!format!("{:?}", Credential::static_token("tok-secret")).contains("tok-secret"));
        let back: CredentialConfig =
            serde_json::from_value(serde_json::json!({"kind": "static_token", "token": "x"}))
                .unwrap();
        assert_eq!(
            back,
            CredentialConfig::StaticToken {
                token: Secret::new("x")
            }
        );
    }
}
