//! The Instance resource: the body `instances.insert` takes (validated as
//! Compute validates it), the record the store keeps, and its wire shape.

use std::collections::BTreeMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Instant;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde::Serialize;
use serde_json::{Map, Value};

use super::errors::GceError;
use super::lifecycle::{Status, Timeline};
use super::links::{relative, rfc3339, Base};

/// The most labels an instance may carry.
const MAX_LABELS: usize = 64;

/// A disk attached at insert.
#[derive(Debug, Clone)]
pub(crate) struct Disk {
    boot: bool,
    auto_delete: bool,
    device_name: String,
    /// Relative link of the disk.
    source: String,
    size_gb: Option<String>,
    mode: String,
}

/// A network interface.
#[derive(Debug, Clone)]
pub(crate) struct Nic {
    network: String,
    subnetwork: Option<String>,
    network_ip: Option<String>,
    access_configs: Vec<Value>,
}

/// What an insert body asks for, validated.
#[derive(Debug, Clone)]
pub(crate) struct Spec {
    /// RFC 1035 name.
    pub name: String,
    description: Option<String>,
    /// Relative link of the machine type.
    machine_type: String,
    disks: Vec<Disk>,
    nics: Vec<Nic>,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    metadata_items: Vec<Value>,
    scheduling: Option<Value>,
    service_accounts: Vec<Value>,
    tags: Vec<String>,
}

/// A stored instance.
#[derive(Debug)]
pub(crate) struct Instance {
    /// Numeric id.
    pub id: u64,
    /// What was asked for.
    pub spec: Spec,
    /// The zone.
    pub zone: String,
    /// `creationTimestamp`.
    pub created: String,
    /// Wall clock of the creation, for `lastStartTimestamp` and friends.
    pub created_at: Instant,
    /// Status over time.
    pub timeline: Timeline,
    /// Reads that still answer 404 (the `not_found_reads` fault).
    pub hidden_reads: AtomicU32,
    created_wall: time::OffsetDateTime,
    /// What never changes after insert, computed once for fast reads.
    fixed: Fixed,
}

/// Derived values computed at insert (reads are the hot path).
#[derive(Debug)]
struct Fixed {
    tags_fingerprint: String,
    metadata_fingerprint: String,
    label_fingerprint: String,
    nic_fingerprints: Vec<String>,
    nic_ips: Vec<String>,
    scheduling: Value,
}

fn fingerprint<T: Hash>(v: &T) -> String {
    let mut h = DefaultHasher::new();
    v.hash(&mut h);
    STANDARD.encode(h.finish().to_be_bytes())
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

impl Spec {
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

        let mut labels = BTreeMap::new();
        match obj.get("labels") {
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
            Some(v) => Some(Value::Object(object(v, "resource.scheduling")?.clone())),
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
            labels,
            metadata_items,
            scheduling,
            service_accounts,
            tags,
        })
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct DiskView<'a> {
    kind: &'static str,
    #[serde(rename = "type")]
    disk_type: &'static str,
    mode: &'a str,
    source: String,
    device_name: &'a str,
    index: usize,
    boot: bool,
    auto_delete: bool,
    interface: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    disk_size_gb: Option<&'a str>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct NicView<'a> {
    kind: &'static str,
    name: String,
    network: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    subnetwork: Option<String>,
    #[serde(rename = "networkIP")]
    network_ip: &'a str,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    access_configs: &'a [Value],
    fingerprint: &'a str,
    stack_type: &'static str,
}

#[derive(Serialize)]
struct MetadataView<'a> {
    kind: &'static str,
    fingerprint: &'a str,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    items: &'a [Value],
}

#[derive(Serialize)]
struct TagsView<'a> {
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    items: &'a [String],
    fingerprint: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct InstanceView<'a> {
    kind: &'static str,
    id: String,
    creation_timestamp: &'a str,
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<&'a str>,
    tags: TagsView<'a>,
    machine_type: String,
    status: &'static str,
    zone: String,
    can_ip_forward: bool,
    network_interfaces: Vec<NicView<'a>>,
    disks: Vec<DiskView<'a>>,
    metadata: MetadataView<'a>,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    service_accounts: &'a [Value],
    self_link: String,
    scheduling: &'a Value,
    cpu_platform: &'static str,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    labels: &'a BTreeMap<String, String>,
    label_fingerprint: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_start_timestamp: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_stop_timestamp: Option<String>,
    start_restricted: bool,
    deletion_protection: bool,
    fingerprint: String,
}

/// A private IPv4 address derived from the instance id.
fn ip(id: u64, nic: usize) -> String {
    let n = id.wrapping_add(nic as u64 * 7919);
    format!(
        "10.{}.{}.{}",
        128 + (n >> 16 & 0x3f),
        n >> 8 & 0xff,
        (n & 0xfd) + 2
    )
}

impl Instance {
    /// A new instance record.
    pub(crate) fn new(id: u64, spec: Spec, zone: &str, now: Instant, timeline: Timeline) -> Self {
        let wall = time::OffsetDateTime::now_utc();
        let mut scheduling = match &spec.scheduling {
            Some(Value::Object(m)) => m.clone(),
            _ => Map::new(),
        };
        for (k, v) in [
            ("onHostMaintenance", Value::from("MIGRATE")),
            ("automaticRestart", Value::from(true)),
            ("preemptible", Value::from(false)),
            ("provisioningModel", Value::from("STANDARD")),
        ] {
            scheduling.entry(k).or_insert(v);
        }
        let fixed = Fixed {
            tags_fingerprint: fingerprint(&spec.tags),
            metadata_fingerprint: fingerprint(
                &spec
                    .metadata_items
                    .iter()
                    .map(|v| v.to_string())
                    .collect::<Vec<_>>(),
            ),
            label_fingerprint: fingerprint(&spec.labels),
            nic_fingerprints: (0..spec.nics.len())
                .map(|i| fingerprint(&(id, i)))
                .collect(),
            nic_ips: spec
                .nics
                .iter()
                .enumerate()
                .map(|(i, n)| n.network_ip.clone().unwrap_or_else(|| ip(id, i)))
                .collect(),
            scheduling: Value::Object(scheduling),
        };
        Instance {
            id,
            spec,
            zone: zone.to_string(),
            created: rfc3339(wall),
            created_at: now,
            created_wall: wall,
            timeline,
            hidden_reads: AtomicU32::new(0),
            fixed,
        }
    }

    /// The machine type's relative link.
    pub(crate) fn spec_machine_type(&self) -> &str {
        &self.spec.machine_type
    }

    /// The status at `now`.
    pub(crate) fn status(&self, now: Instant) -> Status {
        self.timeline.status(now)
    }

    /// Whether the instance exists (is not deleted) at `now`.
    pub(crate) fn live(&self, now: Instant) -> bool {
        self.status(now) != Status::Gone
    }

    /// Uses up one hidden read; true when this read must answer 404.
    pub(crate) fn take_hidden_read(&self) -> bool {
        self.hidden_reads
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
            .is_ok()
    }

    fn wall(&self, at: Instant) -> String {
        rfc3339(self.created_wall + at.saturating_duration_since(self.created_at))
    }

    /// The instance as JSON at `now`, with links against `base`.
    pub(crate) fn render(&self, base: &Base, project: &str, now: Instant) -> Vec<u8> {
        let view = self.view(base, project, now);
        // Serializing strings, numbers and JSON values cannot fail.
        serde_json::to_vec(&view).unwrap_or_default()
    }

    /// The instance as a JSON value (for lists).
    pub(crate) fn to_value(&self, base: &Base, project: &str, now: Instant) -> Value {
        serde_json::to_value(self.view(base, project, now)).unwrap_or(Value::Null)
    }

    fn view<'a>(&'a self, base: &Base, project: &str, now: Instant) -> InstanceView<'a> {
        let status = self.status(now);
        let s = &self.spec;
        let zone_rel = format!("projects/{project}/zones/{}", self.zone);
        let since = self.timeline.since(now).map(|t| self.wall(t));
        InstanceView {
            kind: "compute#instance",
            id: self.id.to_string(),
            creation_timestamp: &self.created,
            name: &s.name,
            description: s.description.as_deref(),
            tags: TagsView {
                items: &s.tags,
                fingerprint: &self.fixed.tags_fingerprint,
            },
            machine_type: base.link(&s.machine_type),
            status: status.as_str(),
            zone: base.link(&zone_rel),
            can_ip_forward: false,
            network_interfaces: s
                .nics
                .iter()
                .enumerate()
                .map(|(i, n)| NicView {
                    kind: "compute#networkInterface",
                    name: format!("nic{i}"),
                    network: base.link(&n.network),
                    subnetwork: n.subnetwork.as_deref().map(|l| base.link(l)),
                    network_ip: self.fixed.nic_ips.get(i).map_or("", String::as_str),
                    access_configs: &n.access_configs,
                    fingerprint: self
                        .fixed
                        .nic_fingerprints
                        .get(i)
                        .map_or("", String::as_str),
                    stack_type: "IPV4_ONLY",
                })
                .collect(),
            disks: s
                .disks
                .iter()
                .enumerate()
                .map(|(i, d)| DiskView {
                    kind: "compute#attachedDisk",
                    disk_type: "PERSISTENT",
                    mode: &d.mode,
                    source: base.link(&d.source),
                    device_name: &d.device_name,
                    index: i,
                    boot: d.boot,
                    auto_delete: d.auto_delete,
                    interface: "SCSI",
                    disk_size_gb: d.size_gb.as_deref(),
                })
                .collect(),
            metadata: MetadataView {
                kind: "compute#metadata",
                fingerprint: &self.fixed.metadata_fingerprint,
                items: &s.metadata_items,
            },
            service_accounts: &s.service_accounts,
            self_link: base.link(&format!("{zone_rel}/instances/{}", s.name)),
            scheduling: &self.fixed.scheduling,
            cpu_platform: "Intel Broadwell",
            labels: &s.labels,
            label_fingerprint: &self.fixed.label_fingerprint,
            last_start_timestamp: matches!(status, Status::Staging | Status::Running)
                .then(|| since.clone())
                .flatten(),
            last_stop_timestamp: (status == Status::Terminated).then_some(since).flatten(),
            start_restricted: false,
            deletion_protection: false,
            fingerprint: fingerprint(&(self.id, status.as_str())),
        }
    }
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
