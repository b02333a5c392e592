//! [`TaskclusterCredentials`]: a Taskcluster client id and access token
//! (permanent, or temporary with their certificate), read from the
//! environment variables Taskcluster's own clients read.

use std::fmt;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use skyfleet_core::provider::support::Secret;
use skyfleet_core::{Error, Result};

use super::hawk;

/// The environment variable naming the client.
pub const CLIENT_ID_VAR: &str = "TASKCLUSTER_CLIENT_ID";
/// The environment variable holding the access token.
pub const ACCESS_TOKEN_VAR: &str = "TASKCLUSTER_ACCESS_TOKEN";
/// The environment variable holding a temporary credential's certificate.
pub const CERTIFICATE_VAR: &str = "TASKCLUSTER_CERTIFICATE";

/// Credentials that sign requests to a Taskcluster deployment with Hawk.
///
/// The access token is a [`Secret`]: `Debug` shows the client id and
/// whether a certificate is present, never the token.
///
/// Temporary credentials (a `clientId`, `accessToken` and `certificate`
/// issued by `auth.createTemporaryCredentials` or a task's claim) are
/// supported the way Taskcluster's clients send them: the certificate JSON
/// goes, wrapped as `{"certificate": ...}` and base64-encoded, in the Hawk
/// `ext` attribute, which the MAC covers.
#[derive(Clone)]
pub struct TaskclusterCredentials {
    client_id: String,
    access_token: Secret,
    /// The Hawk `ext` attribute (base64 JSON), for temporary credentials.
    ext: Option<String>,
}

impl TaskclusterCredentials {
    /// Permanent credentials. An empty id or token, or an id with
    /// characters a Hawk header cannot carry (`"`, `\`, control or
    /// non-ASCII), is [`ErrorKind::InvalidConfig`](skyfleet_core::ErrorKind::InvalidConfig).
    pub fn new(client_id: impl Into<String>, access_token: impl Into<Secret>) -> Result<Self> {
        let client_id = client_id.into();
        let access_token = access_token.into();
        if client_id.is_empty() || !hawk::attribute_safe(&client_id) {
            return Err(Error::invalid_config(
                CLIENT_ID_VAR,
                "the Taskcluster client id is empty or holds a character a Hawk header cannot carry",
            ));
        }
        if access_token.is_empty() {
            return Err(Error::invalid_config(
                ACCESS_TOKEN_VAR,
                "the Taskcluster access token is empty",
            ));
        }
        Ok(TaskclusterCredentials {
            client_id,
            access_token,
            ext: None,
        })
    }

    /// The same credentials as temporary ones, with their `certificate`
    /// (the JSON text Taskcluster issued). Text that is not a JSON object is
    /// [`ErrorKind::InvalidConfig`](skyfleet_core::ErrorKind::InvalidConfig)
    /// (the message does not repeat it).
    pub fn with_certificate(mut self, certificate: &str) -> Result<Self> {
        let cert: serde_json::Value = serde_json::from_str(certificate).map_err(|e| {
            Error::invalid_config(
                CERTIFICATE_VAR,
                format!(
                    "the Taskcluster certificate is not JSON (line {}, column {})",
                    e.line(),
                    e.column()
                ),
            )
        })?;
        if !cert.is_object() {
            return Err(Error::invalid_config(
                CERTIFICATE_VAR,
                "the Taskcluster certificate is not a JSON object",
            ));
        }
        let ext = serde_json::json!({ "certificate": cert }).to_string();
        self.ext = Some(STANDARD.encode(ext));
        Ok(self)
    }

    /// The credentials in `TASKCLUSTER_CLIENT_ID`, `TASKCLUSTER_ACCESS_TOKEN`
    /// and (for temporary credentials) `TASKCLUSTER_CERTIFICATE`.
    ///
    /// Neither id nor token set (or both empty): `Ok(None)`, unauthenticated
    /// requests, as Taskcluster's clients do. Only one of them set, or a
    /// certificate without them: [`ErrorKind::InvalidConfig`](skyfleet_core::ErrorKind::InvalidConfig)
    /// naming the missing variable, rather than silently sending no or bad
    /// authentication.
    pub fn from_env() -> Result<Option<Self>> {
        Self::from_vars(|name| std::env::var(name).ok())
    }

    /// [`from_env`](Self::from_env) over any variable lookup (tests).
    pub(crate) fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Option<Self>> {
        let get = |name| var(name).filter(|v: &String| !v.is_empty());
        let certificate = get(CERTIFICATE_VAR);
        match (get(CLIENT_ID_VAR), get(ACCESS_TOKEN_VAR)) {
            (None, None) => match certificate {
                Some(_) => Err(Error::invalid_config(
                    CLIENT_ID_VAR,
                    format!("{CERTIFICATE_VAR} is set but {CLIENT_ID_VAR} and {ACCESS_TOKEN_VAR} are not"),
                )),
                None => Ok(None),
            },
            (Some(_), None) => Err(Error::invalid_config(
                ACCESS_TOKEN_VAR,
                format!("{CLIENT_ID_VAR} is set but {ACCESS_TOKEN_VAR} is not"),
            )),
            (None, Some(_)) => Err(Error::invalid_config(
                CLIENT_ID_VAR,
                format!("{ACCESS_TOKEN_VAR} is set but {CLIENT_ID_VAR} is not"),
            )),
            (Some(id), Some(token)) => {
                let creds = Self::new(id, Secret::new(token))?;
                match certificate {
                    Some(cert) => creds.with_certificate(&cert).map(Some),
                    None => Ok(Some(creds)),
                }
            }
        }
    }

    /// The client id (not secret).
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// Whether these are temporary credentials (a certificate is attached).
    pub fn is_temporary(&self) -> bool {
        self.ext.is_some()
    }

    /// The `Authorization` value for a request to `host:port` for
    /// `resource`, at Unix time `ts`.
    pub(crate) fn authorization(
        &self,
        method: &str,
        resource: &str,
        host: &str,
        port: u16,
        ts: u64,
    ) -> Result<String> {
        let nonce = hawk::nonce()?;
        let req = hawk::Signed {
            method,
            resource,
            host,
            port,
            ext: self.ext.as_deref(),
        };
        Ok(hawk::header(
            &self.client_id,
            self.access_token.expose().as_bytes(),
            ts,
            &nonce,
            &req,
        ))
    }
}

impl fmt::Debug for TaskclusterCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskclusterCredentials")
            .field("client_id", &self.client_id)
            .field("access_token", &self.access_token)
            .field("temporary", &self.ext.is_some())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use base64::Engine as _;
    use skyfleet_core::ErrorKind;

    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    fn field(e: &Error) -> String {
        match e.kind() {
            ErrorKind::InvalidConfig { field } => field.clone(),
            other => panic!("not invalid config: {other:?}"),
        }
    }

    #[test]
    fn no_variables_means_no_credentials() {
        assert!(TaskclusterCredentials::from_vars(vars(&[]))
            .unwrap()
            .is_none());
        let empty = vars(&[(CLIENT_ID_VAR, ""), (ACCESS_TOKEN_VAR, "")]);
        assert!(TaskclusterCredentials::from_vars(empty).unwrap().is_none());
    }

    #[test]
    fn both_variables_give_permanent_credentials() {
        let c = TaskclusterCredentials::from_vars(vars(&[
            (CLIENT_ID_VAR, "project/skyfleet"),
            (ACCESS_TOKEN_VAR, "tok-secret"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(c.client_id(), "project/skyfleet");
        assert!(!c.is_temporary());
        let dbg = format!("{c:?}");
        assert!(
            dbg.contains("project/skyfleet") && !dbg.contains("tok-secret"),
            "{dbg}"
        );
    }

    #[test]
    fn a_half_set_pair_names_the_missing_variable() {
        let e = TaskclusterCredentials::from_vars(vars(&[(CLIENT_ID_VAR, "c")])).unwrap_err();
        assert_eq!(field(&e), ACCESS_TOKEN_VAR);
        let e = TaskclusterCredentials::from_vars(vars(&[(ACCESS_TOKEN_VAR, "tok-secret")]))
            .unwrap_err();
        assert_eq!(field(&e), CLIENT_ID_VAR);
        assert!(!e.to_string().contains("tok-secret"));
        let e = TaskclusterCredentials::from_vars(vars(&[(CERTIFICATE_VAR, "{}")])).unwrap_err();
        assert_eq!(field(&e), CLIENT_ID_VAR);
    }

    #[test]
    fn a_certificate_goes_base64_in_ext_and_a_bad_one_is_refused() {
        let cert = r#"{"version":1,"scopes":["queue:*"],"start":1,"expiry":2,"seed":"s","signature":"sig","issuer":"root"}"#;
        let c = TaskclusterCredentials::from_vars(vars(&[
            (CLIENT_ID_VAR, "temp"),
            (ACCESS_TOKEN_VAR, "tok"),
            (CERTIFICATE_VAR, cert),
        ]))
        .unwrap()
        .unwrap();
        assert!(c.is_temporary());
        let ext = c.ext.clone().unwrap();
        let decoded: serde_json::Value =
            serde_json::from_slice(&STANDARD.decode(ext).unwrap()).unwrap();
        assert_eq!(decoded["certificate"]["issuer"], "root");
        assert_eq!(decoded["certificate"]["scopes"][0], "queue:*");

        for bad in ["not json {", "[1, 2]", "\"text\""] {
            let e = TaskclusterCredentials::from_vars(vars(&[
                (CLIENT_ID_VAR, "temp"),
                (ACCESS_TOKEN_VAR, "tok"),
                (CERTIFICATE_VAR, bad),
            ]))
            .unwrap_err();
            assert_eq!(field(&e), CERTIFICATE_VAR, "{bad}: {e}");
        }
    }

    #[test]
    fn ids_a_header_cannot_carry_are_refused() {
        for id in ["", "a\"b", "a\\b", "new\nline", "é"] {
            let e = TaskclusterCredentials::new(id, "tok").unwrap_err();
            assert_eq!(field(&e), CLIENT_ID_VAR, "{id:?}");
        }
        let e = TaskclusterCredentials::new("ok", "").unwrap_err();
        assert_eq!(field(&e), ACCESS_TOKEN_VAR);
    }
}
