//! [`GceLaunch`]: a worker's launch parameters on Compute Engine, validated
//! up front so that a typo fails before any instance is inserted, with the
//! offending field named, and turned into the `instances.insert` body.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use skyfleet_core::offering::CapacityType;
use skyfleet_core::provider::bootstrap::{Bootstrap, GCE_METADATA_KEY};
use skyfleet_core::{Error, Result, WorkerSpec};

use crate::credential::COMPUTE_SCOPE;
use crate::scheduling::Scheduling;

/// Whether `n` is an RFC 1035 name of at most 63 characters, as Compute
/// wants for zones, instances and disks.
pub(crate) fn valid_name(n: &str) -> bool {
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
    /// Compute's own way to say the same (`provisioningModel: SPOT`,
    /// `preemptible: true`, `instanceTerminationAction: DELETE`); the body
    /// sent is derived from it and from `spot`/`preemptible`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduling: Option<Scheduling>,
    /// The service account and scopes.
    #[serde(default)]
    pub service_account: Option<ServiceAccount>,
    /// Metadata entries (startup scripts). The key `taskcluster` is
    /// skyfleet's: it carries the worker's bootstrap document.
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    /// The worker's own configuration, passed in its bootstrap document
    /// (`workerConfig`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker_config: Option<Value>,
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
const FORBIDDEN: [&str; 2] = ["name", "serviceAccounts"];

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
        if let Some(sc) = &self.scheduling {
            sc.validate(self.spot, self.preemptible)?;
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
        if self.metadata.contains_key(GCE_METADATA_KEY) {
            return Err(Error::invalid_config(
                format!("launch.metadata.{GCE_METADATA_KEY}"),
                "skyfleet writes this item (the worker's bootstrap document); \
                 put worker settings in `workerConfig`",
            ));
        }
        if self.worker_config.as_ref().is_some_and(|c| !c.is_object()) {
            return Err(Error::invalid_config(
                "launch.workerConfig",
                "must be a JSON object",
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

    /// Whether this is a Spot VM (`spot: true` or
    /// `scheduling.provisioningModel: SPOT`).
    pub fn is_spot(&self) -> bool {
        self.spot
            || self
                .scheduling
                .as_ref()
                .is_some_and(|s| s.provisioning_model.as_deref() == Some("SPOT"))
    }

    /// Whether this is a legacy preemptible VM (`preemptible: true` or
    /// `scheduling.preemptible: true`).
    pub fn is_preemptible(&self) -> bool {
        self.preemptible
            || self
                .scheduling
                .as_ref()
                .is_some_and(|s| s.preemptible == Some(true))
    }

    /// The capacity type: spot for Spot and preemptible VMs.
    pub fn capacity_type(&self) -> CapacityType {
        if self.is_spot() || self.is_preemptible() {
            CapacityType::Spot
        } else {
            CapacityType::OnDemand
        }
    }

    /// The machine type's name: the last path segment of a link
    /// (`e2-small` of `zones/us-central1-a/machineTypes/e2-small`).
    pub fn machine_type_name(&self) -> &str {
        self.machine_type
            .rsplit('/')
            .next()
            .unwrap_or(&self.machine_type)
    }

    /// The region of the zone (`us-central1` of `us-central1-a`), the
    /// worker group of its workers.
    pub fn region(&self) -> &str {
        self.zone
            .rsplit_once('-')
            .map_or(self.zone.as_str(), |(region, _)| region)
    }

    /// The bootstrap document of the worker `spec` launched from this
    /// config, pointing at `root_url`: written as the instance metadata item
    /// [`GCE_METADATA_KEY`].
    pub fn bootstrap(&self, spec: &WorkerSpec, root_url: Option<&str>) -> Bootstrap {
        Bootstrap::new(spec, self.region(), root_url)
            .with_worker_config(self.worker_config.as_ref())
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
        let scheduling = if self.is_spot() {
            json!({"provisioningModel": "SPOT", "instanceTerminationAction": "DELETE",
                   "automaticRestart": false, "onHostMaintenance": "TERMINATE"})
        } else if self.is_preemptible() {
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
        let mut v = ok();
        v["metadata"] = json!({"taskcluster": "{}"});
        assert_eq!(field(v), "launch.metadata.taskcluster");
        let mut v = ok();
        v["workerConfig"] = json!([1]);
        assert_eq!(field(v), "launch.workerConfig");
    }

    #[test]
    fn bootstrap_names_the_region_and_worker_config() {
        let mut v = ok();
        v["workerConfig"] = json!({"threads": 2});
        let l = GceLaunch::parse(&v).unwrap();
        let spec = skyfleet_core::testing::fixtures::worker("w-1").spec();
        let b = l.bootstrap(&spec, Some("https://m.example"));
        assert_eq!(b.worker_group, "us-central1");
        assert_eq!(b.worker_config, json!({"threads": 2}));
        assert_eq!(b.root_url, "https://m.example");
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
}
