//! The body `instances.insert` takes, validated as Compute validates it:
//! name, machine type, disks, network interfaces, labels, metadata,
//! scheduling, service accounts and tags.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::error::GceError;
use super::label_set::Labels;
use super::links::relative;

/// The most labels an instance may carry.
const MAX_LABELS: usize = 64;

/// A disk attached at insert.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct Disk {
    pub(super) boot: bool,
    pub(super) auto_delete: bool,
    pub(super) device_name: String,
    /// Relative link of the disk.
    pub(super) source: String,
    pub(super) size_gb: Option<String>,
    pub(super) mode: String,
}

/// A network interface.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct Nic {
    pub(super) network: String,
    pub(super) subnetwork: Option<String>,
    pub(super) network_ip: Option<String>,
    pub(super) access_configs: Vec<Value>,
}

/// What an insert body asks for, validated.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct Spec {
    /// RFC 1035 name.
    pub name: String,
    pub(super) description: Option<String>,
    /// Relative link of the machine type.
    pub(super) machine_type: String,
    pub(super) disks: Vec<Disk>,
    pub(super) nics: Vec<Nic>,
    /// Labels.
    pub labels: Labels,
    pub(super) metadata_items: Vec<Value>,
    pub(super) scheduling: Option<Value>,
    pub(super) service_accounts: Vec<Value>,
    pub(super) tags: Vec<String>,
}

/// Is `name` an RFC 1035 label of at most 63 characters, as Compute wants?
pub(crate) fn valid_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b[0].is_ascii_lowercase()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[b.len() - 1] != b'-'
}

const NAME_RULE: &str = "Must be a match of regex '(?:[a-z](?:[-a-z0-9]{0,61}[a-z0-9])?)'";

fn str_field<'a>(
    obj: &'a Map<String, Value>,
    key: &str,
    path: &str,
) -> Result<Option<&'a str>, GceError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(GceError::invalid(format!(
            "Invalid value at '{path}.{key}' (TYPE_STRING), {other}"
        ))),
    }
}

fn bool_field(obj: &Map<String, Value>, key: &str, path: &str) -> Result<Option<bool>, GceError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(other) => Err(GceError::invalid(format!(
            "Invalid value at '{path}.{key}' (TYPE_BOOL), {other}"
        ))),
    }
}

fn array_field<'a>(
    obj: &'a Map<String, Value>,
    key: &str,
    path: &str,
) -> Result<&'a [Value], GceError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(&[]),
        Some(Value::Array(a)) => Ok(a),
        Some(other) => Err(GceError::invalid(format!(
            "Invalid value at '{path}.{key}', {other}: expected a list"
        ))),
    }
}

fn object<'a>(v: &'a Value, path: &str) -> Result<&'a Map<String, Value>, GceError> {
    v.as_object().ok_or_else(|| {
        GceError::invalid(format!(
            "Invalid value at '{path}', {v}: expected an object"
        ))
    })
}

fn valid_label_key(k: &str) -> bool {
    let b = k.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b[0].is_ascii_lowercase()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-' || *c == b'_')
}

fn valid_label_value(v: &str) -> bool {
    v.len() <= 63
        && v.bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-' || c == b'_')
}

/// `scheduling`, checked: `provisioningModel` (`STANDARD`, `SPOT`),
/// `preemptible`, `instanceTerminationAction` (`DELETE`, `STOP`),
/// `automaticRestart`, `onHostMaintenance` (`MIGRATE`, `TERMINATE`). A spot
/// or preemptible instance gets Compute's defaults (`TERMINATE`, no
/// automatic restart, `STOP` on preemption) for what it leaves out.
fn scheduling(m: &Map<String, Value>) -> Result<Map<String, Value>, GceError> {
    const PATH: &str = "resource.scheduling";
    let model = str_field(m, "provisioningModel", PATH)?;
    if let Some(v) = model.filter(|v| !matches!(*v, "STANDARD" | "SPOT")) {
        return Err(GceError::invalid_field(
            "resource.scheduling.provisioningModel",
            v,
            "Must be one of [STANDARD, SPOT].",
        ));
    }
    let preemptible = bool_field(m, "preemptible", PATH)?.unwrap_or(false);
    if preemptible && model == Some("SPOT") {
        return Err(GceError::invalid(
            "Invalid value for field 'resource.scheduling.preemptible': 'true'. \
             Preemptible cannot be set with provisioningModel SPOT; use one or the other.",
        ));
    }
    let action = str_field(m, "instanceTerminationAction", PATH)?;
    if let Some(v) = action.filter(|v| !matches!(*v, "DELETE" | "STOP")) {
        return Err(GceError::invalid_field(
            "resource.scheduling.instanceTerminationAction",
            v,
            "Must be one of [DELETE, STOP].",
        ));
    }
    let restart = bool_field(m, "automaticRestart", PATH)?;
    if let Some(v) = str_field(m, "onHostMaintenance", PATH)?
        .filter(|v| !matches!(*v, "MIGRATE" | "TERMINATE"))
    {
        return Err(GceError::invalid_field(
            "resource.scheduling.onHostMaintenance",
            v,
            "Must be one of [MIGRATE, TERMINATE].",
        ));
    }
    let spot = preemptible || model == Some("SPOT");
    if spot && restart == Some(true) {
        return Err(GceError::invalid(
            "Invalid value for field 'resource.scheduling.automaticRestart': 'true'. \
             Spot and preemptible instances cannot be restarted automatically.",
        ));
    }
    let mut out = m.clone();
    if spot {
        for (k, v) in [
            ("onHostMaintenance", Value::from("TERMINATE")),
            ("automaticRestart", Value::from(false)),
            ("instanceTerminationAction", Value::from("STOP")),
        ] {
            out.entry(k).or_insert(v);
        }
    }
    Ok(out)
}

impl Spec {
    /// Whether the instance is spot: `provisioningModel: SPOT` or
    /// `preemptible: true`.
    pub(crate) fn is_spot(&self) -> bool {
        self.scheduling.as_ref().is_some_and(|s| {
            s.get("preemptible") == Some(&Value::Bool(true))
                || s.get("provisioningModel").and_then(Value::as_str) == Some("SPOT")
        })
    }

    /// Whether a preemption deletes the instance
    /// (`instanceTerminationAction: DELETE`).
    pub(crate) fn deleted_on_preemption(&self) -> bool {
        self.scheduling
            .as_ref()
            .and_then(|s| s.get("instanceTerminationAction"))
            .and_then(Value::as_str)
            == Some("DELETE")
    }

    /// The machine type's name (`e2-medium`).
    pub(crate) fn machine_type_name(&self) -> &str {
        self.machine_type.rsplit('/').next().unwrap_or_default()
    }

    /// Validates an insert body for `project`/`zone`.
    pub(crate) fn parse(body: &Value, project: &str, zone: &str) -> Result<Spec, GceError> {
        let obj = object(body, "resource")?;
        let name = str_field(obj, "name", "resource")?
            .ok_or_else(|| GceError::required("resource.name"))?;
        if !valid_name(name) {
            return Err(GceError::invalid_field("resource.name", name, NAME_RULE));
        }
        let machine_type = str_field(obj, "machineType", "resource")?
            .ok_or_else(|| GceError::required("resource.machineType"))?;
        let machine_type = relative(project, "resource.machineType", machine_type)?;
        if !machine_type.contains("/machineTypes/") {
            return Err(GceError::invalid_field(
                "resource.machineType",
                &machine_type,
                "Must be a URL to a valid Compute resource of the correct type.",
            ));
        }
        let description = str_field(obj, "description", "resource")?.map(str::to_string);

        let disk_values = array_field(obj, "disks", "resource")?;
        if disk_values.is_empty() {
            return Err(GceError::invalid_field(
                "resource.disks",
                "",
                "No disks are specified.",
            ));
        }
        let mut disks = Vec::with_capacity(disk_values.len());
        for (i, d) in disk_values.iter().enumerate() {
            let path = format!("resource.disks[{i}]");
            let d = object(d, &path)?;
            let boot = bool_field(d, "boot", &path)?.unwrap_or(false);
            let auto_delete = bool_field(d, "autoDelete", &path)?.unwrap_or(false);
            let device_name = str_field(d, "deviceName", &path)?;
            let mode = str_field(d, "mode", &path)?
                .unwrap_or("READ_WRITE")
                .to_string();
            let (source, size_gb) = if let Some(src) = str_field(d, "source", &path)? {
                (relative(project, &format!("{path}.source"), src)?, None)
            } else if let Some(init) = d.get("initializeParams") {
                let ipath = format!("{path}.initializeParams");
                let init = object(init, &ipath)?;
                let disk_name = match str_field(init, "diskName", &ipath)? {
                    Some(n) if valid_name(n) => n.to_string(),
                    Some(n) => {
                        return Err(GceError::invalid_field(
                            &format!("{ipath}.diskName"),
                            n,
                            NAME_RULE,
                        ))
                    }
                    None if i == 0 => name.to_string(),
                    None => format!("{name}-{i}"),
                };
                let size = match init.get("diskSizeGb") {
                    None | Some(Value::Null) => None,
                    Some(Value::String(s)) if s.parse::<u64>().is_ok() => Some(s.clone()),
                    Some(Value::Number(n)) if n.as_u64().is_some() => Some(n.to_string()),
                    Some(other) => {
                        return Err(GceError::invalid(format!(
                            "Invalid value at '{ipath}.diskSizeGb' (TYPE_INT64), {other}"
                        )))
                    }
                };
                if let Some(img) = str_field(init, "sourceImage", &ipath)? {
                    if img.is_empty() {
                        return Err(GceError::invalid_field(
                            &format!("{ipath}.sourceImage"),
                            img,
                            "Must not be empty.",
                        ));
                    }
                }
                (
                    format!("projects/{project}/zones/{zone}/disks/{disk_name}"),
                    size,
                )
            } else {
                return Err(GceError::invalid(format!(
                    "Invalid value for field '{path}': ''. Source or initializeParams must be specified."
                )));
            };
            disks.push(Disk {
                boot,
                auto_delete,
                device_name: device_name
                    .map(str::to_string)
                    .unwrap_or_else(|| format!("persistent-disk-{i}")),
                source,
                size_gb,
                mode,
            });
        }
        if !disks.iter().any(|d| d.boot) {
            disks[0].boot = true;
        }

        let nic_values = array_field(obj, "networkInterfaces", "resource")?;
        if nic_values.is_empty() {
            return Err(GceError::invalid_field(
                "resource.networkInterfaces",
                "",
                "At least one network interface is required.",
            ));
        }
        let mut nics = Vec::with_capacity(nic_values.len());
        for (i, n) in nic_values.iter().enumerate() {
            let path = format!("resource.networkInterfaces[{i}]");
            let n = object(n, &path)?;
            let network = match str_field(n, "network", &path)? {
                Some(v) => relative(project, &format!("{path}.network"), v)?,
                None => format!("projects/{project}/global/networks/default"),
            };
            let subnetwork = str_field(n, "subnetwork", &path)?
                .map(|v| relative(project, &format!("{path}.subnetwork"), v))
                .transpose()?;
            let network_ip = str_field(n, "networkIP", &path)?.map(str::to_string);
            let mut access_configs = Vec::new();
            for (j, ac) in array_field(n, "accessConfigs", &path)?.iter().enumerate() {
                let acpath = format!("{path}.accessConfigs[{j}]");
                let mut ac = object(ac, &acpath)?.clone();
                ac.insert("kind".into(), Value::from("compute#accessConfig"));
                ac.entry("type")
                    .or_insert_with(|| Value::from("ONE_TO_ONE_NAT"));
                ac.entry("name")
                    .or_insert_with(|| Value::from("External NAT"));
                access_configs.push(Value::Object(ac));
            }
            nics.push(Nic {
                network,
                subnetwork,
                network_ip,
                access_configs,
            });
        }

        let labels = parse_labels(obj.get("labels"))?;

        let mut metadata_items = Vec::new();
        if let Some(md) = obj.get("metadata").filter(|v| !v.is_null()) {
            let md = object(md, "resource.metadata")?;
            for (i, item) in array_field(md, "items", "resource.metadata")?
                .iter()
                .enumerate()
            {
                let path = format!("resource.metadata.items[{i}]");
                let item = object(item, &path)?;
                let key = str_field(item, "key", &path)?
                    .ok_or_else(|| GceError::required(&format!("{path}.key")))?;
                let value = str_field(item, "value", &path)?.unwrap_or("");
                metadata_items.push(serde_json::json!({"key": key, "value": value}));
            }
        }

        let scheduling = match obj.get("scheduling") {
            None | Some(Value::Null) => None,
            Some(v) => Some(Value::Object(scheduling(object(
                v,
                "resource.scheduling",
            )?)?)),
        };
        let mut service_accounts = Vec::new();
        for (i, sa) in array_field(obj, "serviceAccounts", "resource")?
            .iter()
            .enumerate()
        {
            service_accounts.push(Value::Object(
                object(sa, &format!("resource.serviceAccounts[{i}]"))?.clone(),
            ));
        }
        let mut tags = Vec::new();
        if let Some(t) = obj.get("tags").filter(|v| !v.is_null()) {
            let t = object(t, "resource.tags")?;
            for (i, item) in array_field(t, "items", "resource.tags")?.iter().enumerate() {
                match item.as_str() {
                    Some(s) => tags.push(s.to_string()),
                    None => {
                        return Err(GceError::invalid(format!(
                            "Invalid value at 'resource.tags.items[{i}]' (TYPE_STRING), {item}"
                        )))
                    }
                }
            }
        }

        Ok(Spec {
            name: name.to_string(),
            description,
            machine_type,
            disks,
            nics,
            labels: labels.into(),
            metadata_items,
            scheduling,
            service_accounts,
            tags,
        })
    }
}

/// The `labels` object of an instance (insert, or setLabels), checked
/// against Compute Engine's rules.
pub(crate) fn parse_labels(v: Option<&Value>) -> Result<BTreeMap<String, String>, GceError> {
    let mut labels = BTreeMap::new();
match v {
        None | Some(Value::Null) => {}
        Some(Value::Object(m)) => {
            if m.len() > MAX_LABELS {
                return Err(GceError::invalid_field(
                    "resource.labels",
                    &m.len().to_string(),
                    "At most 64 labels are allowed.",
                ));
            }
            for (k, v) in m {
                let Some(v) = v.as_str() else {
                    return Err(GceError::invalid(format!(
                        "Invalid value at 'resource.labels[{k}]' (TYPE_STRING), {v}"
                    )));
                };
                if !valid_label_key(k) {
                    return Err(GceError::invalid_field(
                        "resource.labels",
                        k,
                        "Label keys must start with a lowercase letter and contain only lowercase letters, digits, '_' and '-' (at most 63).",
                    ));
                }
                if !valid_label_value(v) {
                    return Err(GceError::invalid_field(
                        &format!("resource.labels.{k}"),
                        v,
                        "Label values contain only lowercase letters, digits, '_' and '-' (at most 63).",
                    ));
                }
                labels.insert(k.clone(), v.to_string());
            }
        }
        Some(other) => {
            return Err(GceError::invalid(format!(
                "Invalid value at 'resource.labels', {other}: expected an object"
            )))
        }
    }
    Ok(labels)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(valid_name("vm-1"));
        assert!(valid_name("a"));
        assert!(!valid_name("1vm"));
        assert!(!valid_name("vm-"));
        assert!(!valid_name("Vm"));
        assert!(!valid_name(&"a".repeat(64)));
        assert!(valid_name(&"a".repeat(63)));
    }
}
