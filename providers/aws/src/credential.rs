//! Where the provider's AWS credentials come from ([`CredentialsSource`]),
//! and the aws-sdk-ec2 config builder each source starts from.

use aws_config::BehaviorVersion;
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_credential_types::Credentials;
use aws_sdk_ec2::config::Region;
use aws_smithy_runtime_api::client::http::SharedHttpClient;
use skyfleet_core::provider::support::Secret;
use skyfleet_core::{Error, Result};

/// Where the provider's AWS credentials come from.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum CredentialsSource {
    /// aws-config's default chain: environment, shared config and
    /// credentials files (with the builder's profile when set), SSO, web
    /// identity, ECS and EC2 instance metadata.
    #[default]
    DefaultChain,
    /// Fixed credentials (tests, mocks, moto).
    Static {
        /// The access key id (not secret: it names the key).
        access_key_id: String,
        /// The secret access key.
        secret_access_key: Secret,
        /// A session token, for temporary credentials.
        session_token: Option<Secret>,
    },
}

impl CredentialsSource {
    /// Fixed credentials.
    pub fn fixed(
        access_key_id: impl Into<String>,
        secret_access_key: impl Into<String>,
        session_token: Option<String>,
    ) -> Self {
        CredentialsSource::Static {
            access_key_id: access_key_id.into(),
            secret_access_key: Secret::new(secret_access_key),
            session_token: session_token.map(Secret::new),
        }
    }

    /// The source a configuration's optional keys name: none of them is the
    /// default chain, an access key id with its secret (and perhaps a
    /// session token) is fixed credentials. Half-given keys (an id without
    /// its secret, a secret without its id, a session token alone) are a
    /// configuration error naming the keys, never a silent fall back to the
    /// ambient chain.
    pub fn from_keys(
        access_key_id: Option<String>,
        secret_access_key: Option<String>,
        session_token: Option<String>,
    ) -> Result<Self> {
        match (access_key_id, secret_access_key) {
            (Some(id), Some(secret)) => Ok(Self::fixed(id, secret, session_token)),
            (None, None) if session_token.is_none() => Ok(CredentialsSource::DefaultChain),
            (None, None) => Err(Error::invalid_config(
                "session_token",
                "given without access_key_id and secret_access_key",
            )),
            (Some(_), None) => Err(Error::invalid_config(
                "secret_access_key",
                "access_key_id is given without secret_access_key: give both or neither",
            )),
            (None, Some(_)) => Err(Error::invalid_config(
                "access_key_id",
                "secret_access_key is given without access_key_id: give both or neither",
            )),
        }
    }

    /// Checks fixed credentials are not empty; errors name the field.
    pub(crate) fn validate(&self) -> Result<()> {
        if let CredentialsSource::Static {
            access_key_id,
            secret_access_key,
            ..
        } = self
        {
            if access_key_id.is_empty() {
                return Err(Error::invalid_config(
                    "credentials.access_key_id",
                    "must not be empty",
                ));
            }
            if secret_access_key.expose().is_empty() {
                return Err(Error::invalid_config(
                    "credentials.secret_access_key",
                    "must not be empty",
                ));
            }
        }
        Ok(())
    }

    /// The SDK config builder of `region` with these credentials; the
    /// default chain (with `profile`) sends its own traffic (IMDS, SSO,
    /// STS) through `http` too.
    pub(crate) async fn sdk_builder(
        &self,
        profile: Option<&str>,
        region: &str,
        http: &SharedHttpClient,
    ) -> aws_sdk_ec2::config::Builder {
        match self {
            CredentialsSource::Static {
                access_key_id,
                secret_access_key,
                session_token,
            } => {
                let creds = Credentials::new(
                    access_key_id.clone(),
                    secret_access_key.expose().to_string(),
                    session_token.as_ref().map(|s| s.expose().to_string()),
                    None,
                    "skyfleet-static",
                );
                aws_sdk_ec2::Config::builder()
                    .behavior_version(BehaviorVersion::latest())
                    .credentials_provider(SharedCredentialsProvider::new(creds))
            }
            CredentialsSource::DefaultChain => {
                // The chain's own HTTP traffic also goes through `http`: the
                // SDK has no other HTTP client in this build.
                let mut loader = aws_config::defaults(BehaviorVersion::latest())
                    .region(Region::new(region.to_string()))
                    .http_client(http.clone());
                if let Some(p) = profile {
                    loader = loader.profile_name(p);
                }
                let shared = loader.load().await;
                aws_sdk_ec2::config::Builder::from(&shared)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use skyfleet_core::ErrorKind;

    fn field(r: Result<CredentialsSource>) -> String {
        match r.unwrap_err().kind() {
            ErrorKind::InvalidConfig { field } => field.clone(),
            k => panic!("{k:?}"),
        }
    }

    #[test]
    fn half_given_keys_are_a_config_error_naming_the_missing_key() {
        let s = |v: &str| Some(v.to_string());
        assert_eq!(
            CredentialsSource::from_keys(None, None, None).unwrap(),
            CredentialsSource::DefaultChain
        );
        assert!(matches!(
            CredentialsSource::from_keys(s("AKID"), s("sk"), None).unwrap(),
            CredentialsSource::Static { .. }
        ));
        assert_eq!(
            field(CredentialsSource::from_keys(s("AKID"), None, None)),
            "secret_access_key"
        );
        assert_eq!(
            field(CredentialsSource::from_keys(None, s("sk"), None)),
            "access_key_id"
        );
        assert_eq!(
            field(CredentialsSource::from_keys(None, None, s("tok"))),
            "session_token"
        );
        // The secret never shows in the error.
        let e = CredentialsSource::from_keys(None, s("hunter2"), None).unwrap_err();
        assert!(!e.to_string().contains("hunter2"), "{e}");
    }
}
