//! Configuration: the provider's own ([`GcpConfig`], [`Credentials`]) and the
//! launch config of a worker ([`GceLaunch`]), validated up front so that a
//! typo fails before any instance is inserted, with the offending field named.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use skyfleet_core::clock::{Clock, SystemClock};
use skyfleet_core::transport::Transport;
use skyfleet_core::{Error, PollPolicy, Result};

/// The public Compute Engine endpoint (without `/compute/v1`).
pub const DEFAULT_ENDPOINT: &str = "https://compute.googleapis.com";

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

/// The provider's configuration.
///
/// ```
/// use skyfleet_gcp::{Credentials, GcpConfig};
/// let config = GcpConfig::new("my-project")
///     .with_endpoint("http://127.0.0.1:8080")
///     .with_credentials(Credentials::static_token("test"))
///     .with_zones(["us-central1-a"]);
/// assert!(config.validate().is_ok());
/// ```
#[derive(Debug, Clone)]
pub struct GcpConfig {
    /// The provider id (default `gcp`), put on every instance's labels.
    pub id: String,
    /// The project every instance lives in.
    pub project: String,
    /// The Compute endpoint, without `/compute/v1` (default
    /// [`DEFAULT_ENDPOINT`]; the mock's URL in tests).
    pub endpoint: String,
    /// Where tokens come from.
    pub credentials: Credentials,
    /// Zones swept by [`list_owned`](skyfleet_core::Provider::list_owned),
    /// besides those seen in launch configs.
    pub zones: Vec<String>,
    /// How zone operations are polled (no `Retry-After` on Compute: the
    /// handle backs off within these bounds) and when they are given up.
    pub poll: PollPolicy,
    /// How often a running worker is checked.
    pub check_interval: Duration,
    /// How often a booting instance (`PROVISIONING`, `STAGING`) is checked.
    pub boot_check_interval: Duration,
    /// How many `instances.get` 404s in a row after a successful insert are
    /// taken for read-after-write lag rather than a vanished instance.
    pub not_found_grace: u32,
    /// The transport all calls flow through (default: one built from
    /// `TransportConfig::default()`). Share one among providers to share
    /// rate limits.
    pub transport: Option<Transport>,
    /// The wall clock (deadlines are persisted as wall time).
    pub clock: Arc<dyn Clock>,
}

impl GcpConfig {
    /// A config for `project` with the defaults.
    pub fn new(project: impl Into<String>) -> Self {
        GcpConfig {
            id: "gcp".into(),
            project: project.into(),
            endpoint: DEFAULT_ENDPOINT.into(),
            credentials: Credentials::Auto,
            zones: Vec::new(),
            poll: PollPolicy {
                min_interval: Duration::from_secs(1),
                max_interval: Duration::from_secs(10),
                default_interval: Duration::from_secs(2),
                deadline: Duration::from_secs(600),
                max_consecutive_errors: 5,
            },
            check_interval: Duration::from_secs(60),
            boot_check_interval: Duration::from_secs(5),
            not_found_grace: 3,
            transport: None,
            clock: Arc::new(SystemClock),
        }
    }

    /// A config from the environment: the project from
    /// `GOOGLE_CLOUD_PROJECT` (or `CLOUDSDK_CORE_PROJECT`), the endpoint from
    /// `SKYFLEET_GCP_ENDPOINT` when set, credentials by discovery.
    pub fn from_env() -> Result<Self> {
        let project = std::env::var("GOOGLE_CLOUD_PROJECT")
            .or_else(|_| std::env::var("CLOUDSDK_CORE_PROJECT"))
            .map_err(|_| {
                Error::invalid_config(
                    "project",
                    "set GOOGLE_CLOUD_PROJECT (or CLOUDSDK_CORE_PROJECT) to the project id",
                )
            })?;
        let mut c = GcpConfig::new(project);
        if let Ok(e) = std::env::var("SKYFLEET_GCP_ENDPOINT") {
            c.endpoint = e;
        }
        Ok(c)
    }

    /// Sets the provider id.
    pub fn with_id(mut self, id: impl Into<String>) -> Self {
        self.id = id.into();
        self
    }

    /// Sets the endpoint (scheme and host, without `/compute/v1`).
    pub fn with_endpoint(mut self, endpoint: impl Into<String>) -> Self {
        self.endpoint = endpoint.into();
        self
    }

    /// Sets the credentials.
    pub fn with_credentials(mut self, credentials: Credentials) -> Self {
        self.credentials = credentials;
        self
    }

    /// Sets the zones swept by `list_owned`.
    pub fn with_zones<I, S>(mut self, zones: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.zones = zones.into_iter().map(Into::into).collect();
        self
    }

    /// Sets the operation poll policy.
    pub fn with_poll(mut self, poll: PollPolicy) -> Self {
        self.poll = poll;
        self
    }

    /// Sets how often running and booting workers are checked.
    pub fn with_check_intervals(mut self, running: Duration, booting: Duration) -> Self {
        self.check_interval = running;
        self.boot_check_interval = booting;
        self
    }

    /// Uses `transport` for every call.
    pub fn with_transport(mut self, transport: Transport) -> Self {
        self.transport = Some(transport);
        self
    }

    /// Uses `clock` for deadlines.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Checks the config, naming the bad field.
    pub fn validate(&self) -> Result<()> {
        if self.id.is_empty() {
            return Err(Error::invalid_config("id", "must not be empty"));
        }
        if !valid_project(&self.project) {
            return Err(Error::invalid_config(
                "project",
                format!(
                    "`{}` is not a project id (6-30 of a-z, 0-9 and '-')",
                    self.project
                ),
            ));
        }
        let e = self.endpoint.trim_end_matches('/');
        if !(e.starts_with("https://") || e.starts_with("http://")) || e.contains('?') {
            return Err(Error::invalid_config(
                "endpoint",
                format!("`{}` must be an http(s) URL without a query", self.endpoint),
            ));
        }
        for (i, z) in self.zones.iter().enumerate() {
            if !valid_name(z) {
                return Err(Error::invalid_config(
                    format!("zones[{i}]"),
                    format!("`{z}` is not a zone name"),
                ));
            }
        }
        if self.check_interval.is_zero() || self.boot_check_interval.is_zero() {
            return Err(Error::invalid_config(
                "check_interval",
                "check intervals must be greater than zero",
            ));
        }
        self.poll.validate()
    }
}

/// Whether `p` looks like a project id (lenient on length for emulators).
fn valid_project(p: &str) -> bool {
    !p.is_empty()
        && p.len() <= 100
        && p.starts_with(|c: char| c.is_ascii_lowercase())
        && p.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'.' | b':')
        })
}

/// Whether `n` is an RFC 1035 name of at most 63 characters, as Compute
/// wants for zones, instances and disks.
pub fn valid_name(n: &str) -> bool {
    let b = n.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b[0].is_ascii_lowercase()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[b.len() - 1] != b'-'
}

/// The service account an instance runs as.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceAccount {
    /// The account's email (`default` for the Compute default account).
    pub email: String,
    /// OAuth scopes (default: `cloud-platform`).
    #[serde(default)]
    pub scopes: Vec<String>,
}

/// A worker's launch parameters on Compute Engine (the `launch` of a launch
/// config). Field names follow the Compute API.
///
/// ```
/// let launch = serde_json::json!({
///     "zone": "us-central1-a",
///     "machineType": "e2-small",
///     "disks": [{"boot": true, "autoDelete": true,
///                "initializeParams": {"sourceImage": "projects/debian-cloud/global/images/family/debian-12"}}],
///     "spot": true,
///     "metadata": {"startup-script": "echo hello"}
/// });
/// let l = skyfleet_gcp::GceLaunch::parse(&launch).unwrap();
/// assert_eq!(l.zone, "us-central1-a");
/// assert!(skyfleet_gcp::GceLaunch::parse(&serde_json::json!({"zone": "us-central1-a"})).is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct GceLaunch {
    /// The zone (`us-central1-a`).
    pub zone: String,
    /// The machine type: a name (`e2-small`) or a zone-relative link.
    pub machine_type: String,
    /// Attached disks (Compute `AttachedDisk` objects), at least one; each
    /// needs `initializeParams` or `source`.
    pub disks: Vec<Value>,
    /// Network interfaces (default: one on the `default` network).
    #[serde(default)]
    pub network_interfaces: Vec<Value>,
    /// A Spot VM (`provisioningModel: SPOT`, deleted when preempted).
    #[serde(default)]
    pub spot: bool,
    /// A legacy preemptible VM.
    #[serde(default)]
    pub preemptible: bool,
    /// The service account and scopes.
    #[serde(default)]
    pub service_account: Option<ServiceAccount>,
    /// Metadata entries (startup scripts, worker config).
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    /// Extra labels (GCE rules: lowercase keys and values, at most 63).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Network tags (firewall rules).
    #[serde(default)]
    pub tags: Vec<String>,
    /// The instance description.
    #[serde(default)]
    pub description: Option<String>,
}

/// Fields a user may not set: they are derived per worker.
const FORBIDDEN: [&str; 3] = ["name", "scheduling", "serviceAccounts"];

impl GceLaunch {
    /// Parses and validates a launch config; errors are `InvalidConfig`
    /// naming the field (`launch.machineType`, `launch.disks[0]`).
    pub fn parse(launch: &Value) -> Result<GceLaunch> {
        let Some(obj) = launch.as_object() else {
            return Err(Error::invalid_config("launch", "must be a JSON object"));
        };
        for key in ["zone", "machineType", "disks"] {
            if obj.get(key).is_none_or(Value::is_null) {
                return Err(Error::invalid_config(
                    format!("launch.{key}"),
                    "is required",
                ));
            }
        }
        for key in FORBIDDEN {
            if obj.contains_key(key) {
                let why = match key {
                    "name" => "is derived from the worker id",
                    "scheduling" => "is derived from `spot` and `preemptible`",
                    _ => "use `serviceAccount`",
                };
                return Err(Error::invalid_config(format!("launch.{key}"), why));
            }
        }
        let l: GceLaunch = serde_path_to_error::deserialize(launch).map_err(|e| {
            let path = e.path().to_string();
            let field = if path == "." {
                "launch".to_string()
            } else {
                format!("launch.{path}")
            };
            Error::invalid_config(field, e.inner().to_string())
        })?;
        l.validate()?;
        Ok(l)
    }

    fn validate(&self) -> Result<()> {
        if !valid_name(&self.zone) {
            return Err(Error::invalid_config(
                "launch.zone",
                format!("`{}` is not a zone name", self.zone),
            ));
        }
        let mt = self.machine_type.as_str();
        let ok = if mt.contains('/') {
            mt.contains("/machineTypes/")
        } else {
            valid_name(mt)
        };
        if !ok {
            return Err(Error::invalid_config(
                "launch.machineType",
                format!("`{mt}` is neither a machine type name nor a machineTypes link"),
            ));
        }
        if self.disks.is_empty() {
            return Err(Error::invalid_config(
                "launch.disks",
                "at least one disk is required",
            ));
        }
        for (i, d) in self.disks.iter().enumerate() {
            let Some(o) = d.as_object() else {
                return Err(Error::invalid_config(
                    format!("launch.disks[{i}]"),
                    "must be an object",
                ));
            };
            if !o.contains_key("initializeParams") && !o.contains_key("source") {
                return Err(Error::invalid_config(
                    format!("launch.disks[{i}]"),
                    "needs `initializeParams` or `source`",
                ));
            }
        }
        for (i, n) in self.network_interfaces.iter().enumerate() {
            if !n.is_object() {
                return Err(Error::invalid_config(
                    format!("launch.networkInterfaces[{i}]"),
                    "must be an object",
                ));
            }
        }
        if self.spot && self.preemptible {
            return Err(Error::invalid_config(
                "launch.spot",
                "`spot` and `preemptible` exclude each other",
            ));
        }
        for (k, v) in &self.labels {
            if k.starts_with("skyfleet-") {
                return Err(Error::invalid_config(
                    format!("launch.labels.{k}"),
                    "the skyfleet- prefix is reserved for ownership labels",
                ));
            }
            if !crate::labels::valid_key(k) || !crate::labels::valid_value(v) {
                return Err(Error::invalid_config(
                    format!("launch.labels.{k}"),
                    "label keys start with a lowercase letter; keys and values hold only \
                     a-z, 0-9, '_' and '-', at most 63 characters",
                ));
            }
        }
        if self.labels.len() > 60 {
            return Err(Error::invalid_config(
                "launch.labels",
                "at most 60 labels (64 minus the ownership labels)",
            ));
        }
        if let Some(sa) = &self.service_account {
            if sa.email.is_empty() {
                return Err(Error::invalid_config(
                    "launch.serviceAccount.email",
                    "must not be empty",
                ));
            }
        }
        Ok(())
    }

    /// The `machineType` link relative to the project.
    pub fn machine_type_link(&self) -> String {
        if self.machine_type.contains('/') {
            self.machine_type.clone()
        } else {
            format!("zones/{}/machineTypes/{}", self.zone, self.machine_type)
        }
    }

    /// The `instances.insert` body for instance `name` with `labels` (the
    /// ownership labels merged over the launch config's) and `metadata`
    /// merged over the launch config's.
    pub fn instance_body(
        &self,
        name: &str,
        labels: &BTreeMap<String, String>,
        extra_metadata: &BTreeMap<String, String>,
    ) -> Value {
        let mut all_labels = self.labels.clone();
        all_labels.extend(labels.iter().map(|(k, v)| (k.clone(), v.clone())));
        let mut md = self.metadata.clone();
        md.extend(extra_metadata.iter().map(|(k, v)| (k.clone(), v.clone())));
        let items: Vec<Value> = md
            .iter()
            .map(|(k, v)| json!({"key": k, "value": v}))
            .collect();
        // Disks carry the labels too, so that a disk left behind is
        // attributable.
        let disks: Vec<Value> = self
            .disks
            .iter()
            .map(|d| {
                let mut d = d.clone();
                if let Some(init) = d.get_mut("initializeParams").and_then(Value::as_object_mut) {
                    let mut dl = init
                        .get("labels")
                        .and_then(Value::as_object)
                        .cloned()
                        .unwrap_or_default();
                    for (k, v) in labels {
                        dl.insert(k.clone(), Value::from(v.clone()));
                    }
                    init.insert("labels".into(), Value::Object(dl));
                }
                d
            })
            .collect();
        let nics = if self.network_interfaces.is_empty() {
            vec![json!({"network": "global/networks/default"})]
        } else {
            self.network_interfaces.clone()
        };
        let scheduling = if self.spot {
            json!({"provisioningModel": "SPOT", "instanceTerminationAction": "DELETE",
                   "automaticRestart": false, "onHostMaintenance": "TERMINATE"})
        } else if self.preemptible {
            json!({"preemptible": true, "automaticRestart": false, "onHostMaintenance": "TERMINATE"})
        } else {
            // A worker that crashed is replaced, not restarted.
            json!({"automaticRestart": false})
        };
        let mut body = json!({
            "name": name,
            "machineType": self.machine_type_link(),
            "disks": disks,
            "networkInterfaces": nics,
            "labels": all_labels,
            "metadata": {"items": items},
            "scheduling": scheduling,
        });
        if let Some(sa) = &self.service_account {
            let scopes = if sa.scopes.is_empty() {
                vec![COMPUTE_SCOPE.to_string()]
            } else {
                sa.scopes.clone()
            };
            body["serviceAccounts"] = json!([{"email": sa.email, "scopes": scopes}]);
        }
        if !self.tags.is_empty() {
            body["tags"] = json!({"items": self.tags});
        }
        if let Some(d) = &self.description {
            body["description"] = Value::from(d.clone());
        }
        body
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(v: Value) -> String {
        match GceLaunch::parse(&v).unwrap_err().kind() {
            skyfleet_core::ErrorKind::InvalidConfig { field } => field.clone(),
            k => panic!("{k:?}"),
        }
    }

    fn ok() -> Value {
        json!({"zone": "us-central1-a", "machineType": "e2-small",
               "disks": [{"initializeParams": {"sourceImage": "x"}}]})
    }

    #[test]
    fn required_and_bad_fields_are_named() {
        assert!(GceLaunch::parse(&ok()).is_ok());
        for key in ["zone", "machineType", "disks"] {
            let mut v = ok();
            v.as_object_mut().unwrap().remove(key);
            assert_eq!(field(v), format!("launch.{key}"));
        }
        let mut v = ok();
        v["disks"] = json!([]);
        assert_eq!(field(v), "launch.disks");
        let mut v = ok();
        v["disks"] = json!([{"boot": true}]);
        assert_eq!(field(v), "launch.disks[0]");
        let mut v = ok();
        v["machineType"] = json!(7);
        assert_eq!(field(v), "launch.machineType");
        let mut v = ok();
        v["machineType"] = json!("E2 Small");
        assert_eq!(field(v), "launch.machineType");
        let mut v = ok();
        v["zone"] = json!("US");
        assert_eq!(field(v), "launch.zone");
        let mut v = ok();
        v["machineTyp"] = json!("x");
        assert_eq!(field(v), "launch.machineTyp");
        let mut v = ok();
        v["name"] = json!("x");
        assert_eq!(field(v), "launch.name");
        let mut v = ok();
        v["labels"] = json!({"Env": "x"});
        assert_eq!(field(v), "launch.labels.Env");
        let mut v = ok();
        v["spot"] = json!(true);
        v["preemptible"] = json!(true);
        assert_eq!(field(v), "launch.spot");
        assert_eq!(field(json!([1])), "launch");
    }

    #[test]
    fn body_carries_scheduling_labels_and_metadata() {
        let mut v = ok();
        v["spot"] = json!(true);
        v["serviceAccount"] = json!({"email": "w@p.iam.gserviceaccount.com"});
        v["metadata"] = json!({"startup-script": "echo"});
        let l = GceLaunch::parse(&v).unwrap();
        let labels = BTreeMap::from([("skyfleet-worker".to_string(), "w-1".to_string())]);
        let b = l.instance_body("w-1-vm", &labels, &BTreeMap::new());
        assert_eq!(b["scheduling"]["provisioningModel"], "SPOT");
        assert_eq!(b["labels"]["skyfleet-worker"], "w-1");
        assert_eq!(
            b["disks"][0]["initializeParams"]["labels"]["skyfleet-worker"],
            "w-1"
        );
        assert_eq!(
            b["machineType"],
            "zones/us-central1-a/machineTypes/e2-small"
        );
        assert_eq!(b["serviceAccounts"][0]["scopes"][0], COMPUTE_SCOPE);
        assert_eq!(b["metadata"]["items"][0]["key"], "startup-script");
        assert_eq!(
            b["networkInterfaces"][0]["network"],
            "global/networks/default"
        );
    }

    #[test]
    fn credentials_debug_hides_secrets() {
        let s = format!(
            "{:?} {:?}",
            Credentials::static_token("tok-123"),
            Credentials::ServiceAccountJson("{\"private_key\":\"k\"}".into())
        );
        assert!(!s.contains("tok-123") && !s.contains("private_key"), "{s}");
    }
}
