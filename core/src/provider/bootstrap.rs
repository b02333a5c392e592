//! The worker's bootstrap document ([`Bootstrap`]): who a worker is and
//! where its manager is, written by the provider into what the VM is given
//! at creation, so that the agent on the VM finds out who it is from the
//! cloud's metadata service, with nothing baked into its image.
//!
//! Every provider writes the same document, in the JSON form Taskcluster's
//! worker-runner reads (camelCase keys):
//!
//! | key              | value                                                  |
//! |------------------|--------------------------------------------------------|
//! | `rootUrl`        | the manager's API URL (the provider's configured root URL) |
//! | `workerPoolId`   | the pool                                               |
//! | `providerId`     | the provider                                           |
//! | `workerGroup`    | the region (AWS, GCP) or location (Azure)              |
//! | `workerId`       | the worker                                             |
//! | `launchConfigId` | the launch config the worker came from                 |
//! | `workerConfig`   | the launch config's worker configuration (an object)   |
//!
//! plus any extra keys a provider carries (AWS `additionalUserData`); the
//! document's own keys win over extra keys of the same name.
//!
//! Where each cloud serves it:
//! - AWS: the instance's UserData, `/latest/user-data` (raw JSON);
//! - GCE: the instance metadata item [`GCE_METADATA_KEY`],
//!   `/computeMetadata/v1/instance/attributes/taskcluster` (raw JSON);
//! - Azure: the VM's `userData`,
//!   `/metadata/instance/compute/userData` (base64 JSON; Azure's
//!   `customData` is not in its metadata service).
//!
//! The agent side is [`Bootstrap::parse`] (or [`Bootstrap::parse_base64`]
//! for Azure), whose [`BootstrapError`] names the field that was wrong.
//!
//! ```
//! use skyfleet_core::provider::bootstrap::Bootstrap;
//! let raw = br#"{"rootUrl": "https://manager.example", "workerPoolId": "ci/linux",
//!     "providerId": "aws", "workerGroup": "us-east-1", "workerId": "w-1",
//!     "launchConfigId": "a", "workerConfig": {"threads": 4}}"#;
//! let b = Bootstrap::parse(raw).unwrap();
//! assert_eq!(b.worker_id, "w-1");
//! assert_eq!(b.worker_config["threads"], 4);
//! let err = Bootstrap::parse(br#"{"rootUrl": "https://m.example"}"#).unwrap_err();
//! assert_eq!(err.field(), Some("workerPoolId"));
//! ```

use base64::Engine as _;
use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::model::WorkerSpec;

/// The GCE instance metadata key that carries the document (the key
/// Taskcluster's worker-runner reads on Google Cloud).
pub const GCE_METADATA_KEY: &str = "taskcluster";

/// The longest root URL a provider accepts, in bytes (it is written into
/// every worker's UserData, which EC2 caps at 16 KB).
pub const MAX_ROOT_URL: usize = 512;

/// The document's own keys, in the order they are written.
const KEYS: [&str; 7] = [
    "rootUrl",
    "workerPoolId",
    "providerId",
    "workerGroup",
    "workerId",
    "launchConfigId",
    "workerConfig",
];

/// Who a worker is and where its manager is.
#[derive(Debug, Clone, PartialEq)]
pub struct Bootstrap {
    /// The manager's API URL (no trailing slash). Empty when the provider
    /// was built without a root URL: such a document is written without
    /// `rootUrl`, and [`Bootstrap::parse`] refuses it.
    pub root_url: String,
    /// The pool.
    pub worker_pool_id: String,
    /// The provider.
    pub provider_id: String,
    /// The region or location the worker runs in.
    pub worker_group: String,
    /// The worker.
    pub worker_id: String,
    /// The launch config the worker was created from.
    pub launch_config_id: String,
    /// The worker's own configuration (a JSON object; `{}` when none).
    pub worker_config: Value,
    /// Extra keys (never one of the document's own keys).
    pub extra: Map<String, Value>,
}

/// Why a bootstrap document could not be read. Each variant names the
/// field when one is at fault ([`BootstrapError::field`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BootstrapError {
    /// The text is not base64 (Azure's `userData`).
    #[error("the bootstrap document is not base64: {0}")]
    NotBase64(String),
    /// The bytes are not a JSON object.
    #[error("the bootstrap document is not a JSON object: {0}")]
    NotJson(String),
    /// A required field is absent.
    #[error("bootstrap field `{field}` is missing")]
    Missing {
        /// The field (`workerId`).
        field: &'static str,
    },
    /// A field has the wrong type or value.
    #[error("bootstrap field `{field}` is invalid: {reason}")]
    Invalid {
        /// The field (`rootUrl`).
        field: &'static str,
        /// What was wrong.
        reason: String,
    },
}

impl BootstrapError {
    /// The field at fault, if the document parsed as a JSON object.
    pub fn field(&self) -> Option<&'static str> {
        match self {
            BootstrapError::Missing { field } | BootstrapError::Invalid { field, .. } => {
                Some(field)
            }
            _ => None,
        }
    }
}

/// Checks a manager root URL: an absolute `http` or `https` URL with a
/// host, no query, fragment or credentials, at most [`MAX_ROOT_URL`] bytes.
/// Answers it without a trailing slash. Errors name the reason only (the
/// caller names its field).
fn root_url_problem(url: &str) -> std::result::Result<String, String> {
    if url.len() > MAX_ROOT_URL {
        return Err(format!("longer than {MAX_ROOT_URL} bytes"));
    }
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("not a URL: {e}"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(format!("scheme `{}` is not http or https", parsed.scheme()));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err("has no host".into());
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err("must not have a query or fragment".into());
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err("must not carry credentials".into());
    }
    Ok(url.trim_end_matches('/').to_string())
}

/// Checks a manager root URL given to a provider (see the module docs):
/// the URL without a trailing slash, or an `InvalidConfig` error naming
/// `field`.
pub fn check_root_url(field: &str, url: &str) -> Result<String> {
    root_url_problem(url)
        .map_err(|why| Error::invalid_config(field, format!("`{url}` is not a root URL: {why}")))
}

impl Bootstrap {
    /// The document of the worker `spec` in `worker_group`, pointing at
    /// `root_url` (already checked by [`check_root_url`]; `None` writes no
    /// `rootUrl`), with an empty `workerConfig` and no extra keys.
    pub fn new(spec: &WorkerSpec, worker_group: impl Into<String>, root_url: Option<&str>) -> Self {
        Bootstrap {
            root_url: root_url.unwrap_or_default().to_string(),
            worker_pool_id: spec.pool_id.clone(),
            provider_id: spec.provider_id.clone(),
            worker_group: worker_group.into(),
            worker_id: spec.worker_id.clone(),
            launch_config_id: spec.launch_config_id.clone(),
            worker_config: Value::Object(Map::new()),
            extra: Map::new(),
        }
    }

    /// Sets the worker's configuration (`None` keeps `{}`).
    pub fn with_worker_config(mut self, config: Option<&Value>) -> Self {
        if let Some(c) = config {
            self.worker_config = c.clone();
        }
        self
    }

    /// Adds extra keys; the document's own keys are dropped from `extra`.
    pub fn with_extra(mut self, extra: &Map<String, Value>) -> Self {
        for (k, v) in extra {
            if !KEYS.contains(&k.as_str()) {
                self.extra.insert(k.clone(), v.clone());
            }
        }
        self
    }

    /// The document as a JSON object (no `rootUrl` when it is empty).
    pub fn to_value(&self) -> Value {
        let mut doc = self.extra.clone();
        doc.retain(|k, _| !KEYS.contains(&k.as_str()));
        if !self.root_url.is_empty() {
            doc.insert("rootUrl".into(), self.root_url.clone().into());
        }
        doc.insert("workerPoolId".into(), self.worker_pool_id.clone().into());
        doc.insert("providerId".into(), self.provider_id.clone().into());
        doc.insert("workerGroup".into(), self.worker_group.clone().into());
        doc.insert("workerId".into(), self.worker_id.clone().into());
        doc.insert(
            "launchConfigId".into(),
            self.launch_config_id.clone().into(),
        );
        doc.insert("workerConfig".into(), self.worker_config.clone());
        Value::Object(doc)
    }

    /// The document as compact JSON bytes (AWS UserData, the GCE item).
    pub fn to_json(&self) -> Vec<u8> {
        // Serialising a JSON value whose keys are strings cannot fail.
        serde_json::to_vec(&self.to_value()).unwrap_or_default()
    }

    /// The JSON as a string (a GCE metadata value).
    pub fn to_json_string(&self) -> String {
        self.to_value().to_string()
    }

    /// The JSON, base64-encoded (Azure `userData`).
    pub fn to_base64(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(self.to_json())
    }

    /// Reads a document (raw JSON). Every field but `workerConfig` (an
    /// object, `{}` when absent or null) is a required non-empty string;
    /// `rootUrl` must be an `http(s)` URL. Unknown keys are kept in
    /// [`Bootstrap::extra`].
    pub fn parse(raw: &[u8]) -> std::result::Result<Bootstrap, BootstrapError> {
        let value: Value =
            serde_json::from_slice(raw).map_err(|e| BootstrapError::NotJson(e.to_string()))?;
        let Value::Object(mut map) = value else {
            return Err(BootstrapError::NotJson(format!(
                "found {}",
                json_kind(&value)
            )));
        };
        let mut take = |field: &'static str| -> std::result::Result<String, BootstrapError> {
            match map.remove(field) {
                None | Some(Value::Null) => Err(BootstrapError::Missing { field }),
                Some(Value::String(s)) if s.trim().is_empty() => Err(BootstrapError::Invalid {
                    field,
                    reason: "is empty".into(),
                }),
                Some(Value::String(s)) => Ok(s),
                Some(other) => Err(BootstrapError::Invalid {
                    field,
                    reason: format!("expected a string, found {}", json_kind(&other)),
                }),
            }
        };
        let root_url = take("rootUrl")?;
        let root_url = root_url_problem(&root_url).map_err(|reason| BootstrapError::Invalid {
            field: "rootUrl",
            reason,
        })?;
        let worker_pool_id = take("workerPoolId")?;
        let provider_id = take("providerId")?;
        let worker_group = take("workerGroup")?;
        let worker_id = take("workerId")?;
        let launch_config_id = take("launchConfigId")?;
        let worker_config = match map.remove("workerConfig") {
            None | Some(Value::Null) => Value::Object(Map::new()),
            Some(v @ Value::Object(_)) => v,
            Some(other) => {
                return Err(BootstrapError::Invalid {
                    field: "workerConfig",
                    reason: format!("expected an object, found {}", json_kind(&other)),
                })
            }
        };
        Ok(Bootstrap {
            root_url,
            worker_pool_id,
            provider_id,
            worker_group,
            worker_id,
            launch_config_id,
            worker_config,
            extra: map,
        })
    }

    /// Reads a base64 document (Azure's `userData`); surrounding
    /// whitespace is ignored.
    pub fn parse_base64(text: &str) -> std::result::Result<Bootstrap, BootstrapError> {
        let raw = base64::engine::general_purpose::STANDARD
            .decode(text.trim())
            .map_err(|e| BootstrapError::NotBase64(e.to_string()))?;
        Bootstrap::parse(&raw)
    }
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn good() -> Value {
        json!({"rootUrl": "https://manager.example/", "workerPoolId": "ci/linux",
               "providerId": "aws", "workerGroup": "us-east-1", "workerId": "w-1",
               "launchConfigId": "a", "workerConfig": {"x": 1}, "extraKey": [1]})
    }

    fn err_of(v: Value) -> BootstrapError {
        Bootstrap::parse(&serde_json::to_vec(&v).unwrap()).unwrap_err()
    }

    #[test]
    fn round_trips_and_keeps_extra_keys() {
        let b = Bootstrap::parse(&serde_json::to_vec(&good()).unwrap()).unwrap();
        assert_eq!(b.root_url, "https://manager.example");
        assert_eq!(b.worker_pool_id, "ci/linux");
        assert_eq!(b.worker_config, json!({"x": 1}));
        assert_eq!(b.extra["extraKey"], json!([1]));
        let again = Bootstrap::parse(&b.to_json()).unwrap();
        assert_eq!(again, b);
        assert_eq!(Bootstrap::parse_base64(&b.to_base64()).unwrap(), b);
        let mut v = good();
        v.as_object_mut().unwrap().remove("workerConfig");
        let b = Bootstrap::parse(&serde_json::to_vec(&v).unwrap()).unwrap();
        assert_eq!(b.worker_config, json!({}), "workerConfig defaults to {{}}");
    }

    #[test]
    fn each_missing_or_bad_field_is_named() {
        for field in [
            "rootUrl",
            "workerPoolId",
            "providerId",
            "workerGroup",
            "workerId",
            "launchConfigId",
        ] {
            let mut v = good();
            v.as_object_mut().unwrap().remove(field);
            assert_eq!(err_of(v.clone()), BootstrapError::Missing { field });
            v[field] = json!(7);
            let e = err_of(v.clone());
            assert_eq!(e.field(), Some(field), "{e}");
            assert!(e.to_string().contains("a number"), "{e}");
            v[field] = json!(" ");
            assert_eq!(err_of(v).field(), Some(field));
        }
        let mut v = good();
        v["workerConfig"] = json!("threads=4");
        assert_eq!(err_of(v).field(), Some("workerConfig"));
        for bad in [
            "ftp://m.example",
            "not a url",
            "https://u:p@m.example",
            "https://m.example/?a=1",
        ] {
            let mut v = good();
            v["rootUrl"] = json!(bad);
            assert_eq!(err_of(v).field(), Some("rootUrl"), "{bad}");
        }
    }

    #[test]
    fn non_documents_are_refused() {
        assert!(matches!(
            Bootstrap::parse(b"[1, 2]"),
            Err(BootstrapError::NotJson(m)) if m.contains("an array")
        ));
        assert!(matches!(
            Bootstrap::parse(b"{\"rootUrl\":"),
            Err(BootstrapError::NotJson(_))
        ));
        assert!(matches!(
            Bootstrap::parse_base64("%%%"),
            Err(BootstrapError::NotBase64(_))
        ));
    }

    #[test]
    fn writing_lets_own_keys_win_and_omits_an_unset_root_url() {
        let spec = crate::testing::fixtures::worker("w-9").spec();
        let extra = json!({"workerId": "forged", "note": "hi"});
        let b = Bootstrap::new(&spec, "eu", None).with_extra(extra.as_object().unwrap());
        let v = b.to_value();
        assert_eq!(v["workerId"], "w-9");
        assert_eq!(v["note"], "hi");
        assert!(v.get("rootUrl").is_none());
        assert_eq!(
            Bootstrap::parse(&b.to_json()).unwrap_err(),
            BootstrapError::Missing { field: "rootUrl" }
        );
    }

    #[test]
    fn root_urls_are_checked() {
        assert_eq!(
            check_root_url("root_url", "https://m.example/").unwrap(),
            "https://m.example"
        );
        assert_eq!(
            check_root_url("root_url", "http://127.0.0.1:8080/api").unwrap(),
            "http://127.0.0.1:8080/api"
        );
        let long = format!("https://m.example/{}", "a".repeat(MAX_ROOT_URL));
        for bad in [
            "m.example",
            "file:///etc",
            long.as_str(),
            "https://m.example#x",
        ] {
            let e = check_root_url("fleet.root_url", bad).unwrap_err();
            assert!(
                matches!(e.kind(), crate::ErrorKind::InvalidConfig { field } if field == "fleet.root_url"),
                "{bad}: {e}"
            );
        }
    }
}
