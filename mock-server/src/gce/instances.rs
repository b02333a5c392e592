//! The Instance resource: the record the store keeps (what was asked for,
//! see `spec`, and its timeline) and its wire shape.

use std::collections::BTreeMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Instant;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde::Serialize;
use serde_json::{Map, Value};

use super::label_set::Labels;
use super::lifecycle::{Status, Timeline};
use super::links::{rfc3339, Base};
use super::spec::Spec;

/// A stored instance.
#[derive(Debug, Serialize, serde::Deserialize)]
pub(crate) struct Instance {
    /// Numeric id.
    pub id: u64,
    /// What was asked for.
    pub spec: Spec,
    /// The zone.
    pub zone: Box<str>,
    /// When it was created, for `lastStartTimestamp` and friends.
    #[serde(with = "crate::snapshot::clock::at")]
    pub created_at: Instant,
    /// Status over time.
    pub timeline: Timeline,
    /// Reads that still answer 404 (the `not_found_reads` fault).
    pub hidden_reads: AtomicU32,
    /// A preemption notice, once given, and the name of the
    /// `compute.instances.preempted` operation recorded for its end (boxed:
    /// most instances have none).
    pub preempted: Option<Box<(crate::capacity::Notice, String)>>,
    /// Wall clock of the creation (`creationTimestamp`).
    created_wall: time::OffsetDateTime,
    /// What never changes after insert, computed once for fast reads.
    fixed: Fixed,
}

/// Hashes computed at insert, kept as numbers (12 bytes of base64 each on
/// the wire, encoded when rendered: the store keeps many instances).
#[derive(Debug, Serialize, serde::Deserialize)]
struct Fixed {
    tags_fingerprint: u64,
    metadata_fingerprint: u64,
    label_fingerprint: u64,
    /// How many times `setLabels` replaced the labels.
    label_generation: u64,
}

fn hash<T: Hash>(v: &T) -> u64 {
    let mut h = DefaultHasher::new();
    v.hash(&mut h);
    h.finish()
}

/// A fingerprint as Compute writes it: base64 of 8 bytes.
fn encode(hash: u64) -> String {
    STANDARD.encode(hash.to_be_bytes())
}

fn fingerprint<T: Hash>(v: &T) -> String {
    encode(hash(v))
}

/// `scheduling` of an instance inserted without one: Compute's defaults.
fn default_scheduling() -> &'static Value {
    static DEFAULT: std::sync::OnceLock<Value> = std::sync::OnceLock::new();
    DEFAULT.get_or_init(|| with_scheduling_defaults(Map::new()))
}

/// `scheduling` with Compute's defaults for what it leaves out.
fn with_scheduling_defaults(mut scheduling: Map<String, Value>) -> Value {
    for (k, v) in [
        ("onHostMaintenance", Value::from("MIGRATE")),
        ("automaticRestart", Value::from(true)),
        ("preemptible", Value::from(false)),
        ("provisioningModel", Value::from("STANDARD")),
    ] {
        scheduling.entry(k).or_insert(v);
    }
    Value::Object(scheduling)
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
    network_ip: String,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    access_configs: &'a [Value],
    fingerprint: String,
    stack_type: &'static str,
}

#[derive(Serialize)]
struct MetadataView<'a> {
    kind: &'static str,
    fingerprint: String,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    items: &'a [Value],
}

#[derive(Serialize)]
struct TagsView<'a> {
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    items: &'a [String],
    fingerprint: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct InstanceView<'a> {
    kind: &'static str,
    id: String,
    creation_timestamp: String,
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
    #[serde(skip_serializing_if = "Labels::is_empty")]
    labels: &'a Labels,
    label_fingerprint: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_start_timestamp: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_stop_timestamp: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_suspended_timestamp: Option<String>,
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
    pub(crate) fn new(
        id: u64,
        mut spec: Spec,
        zone: &str,
        now: Instant,
        timeline: Timeline,
    ) -> Self {
        let wall = time::OffsetDateTime::now_utc();
        // A given `scheduling` is kept with the defaults filled in; none is
        // rendered as the shared defaults.
        spec.scheduling = match spec.scheduling.take() {
            Some(Value::Object(m)) => Some(with_scheduling_defaults(m)),
            _ => None,
        };
        let fixed = Fixed {
            tags_fingerprint: hash(&spec.tags),
            metadata_fingerprint: hash(
                &spec
                    .metadata_items
                    .iter()
                    .map(|v| v.to_string())
                    .collect::<Vec<_>>(),
            ),
            label_fingerprint: hash(&spec.labels),
            label_generation: 0,
        };
        Instance {
            id,
            spec,
            zone: zone.into(),
            created_at: now,
            created_wall: wall,
            timeline,
            hidden_reads: AtomicU32::new(0),
            preempted: None,
            fixed,
        }
    }

    /// `creationTimestamp`.
    pub(crate) fn created(&self) -> String {
        rfc3339(self.created_wall)
    }

    /// `scheduling`, with Compute's defaults.
    fn scheduling(&self) -> &Value {
        match &self.spec.scheduling {
            Some(v) => v,
            None => default_scheduling(),
        }
    }

    /// The private IPv4 address of network interface `i`: the one asked
    /// for, or one derived from the id.
    fn nic_ip(&self, i: usize) -> String {
        self.spec
            .nics
            .get(i)
            .and_then(|n| n.network_ip.clone())
            .unwrap_or_else(|| ip(self.id, i))
    }

    /// The label fingerprint `setLabels` must be given.
    pub(crate) fn label_fingerprint(&self) -> String {
        encode(self.fixed.label_fingerprint)
    }

    /// Replaces the labels (`setLabels`), and so their fingerprint.
    pub(crate) fn set_labels(&mut self, labels: BTreeMap<String, String>) {
        // The generation makes each change's fingerprint new, even when the
        // labels go back to an earlier set.
        self.fixed.label_generation += 1;
        self.fixed.label_fingerprint = hash(&(&labels, self.fixed.label_generation));
        self.spec.labels = labels.into();
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

    /// Whether lists lagging by `window` show the instance at `now`: not
    /// until `window` after its insert, and still for `window` after it is
    /// gone (see [`crate::consistency`]).
    pub(crate) fn listed(&self, now: Instant, window: std::time::Duration) -> bool {
        if crate::consistency::pending(self.created_at, window, now) {
            return false;
        }
        self.live(now)
            || self
                .timeline
                .since(now)
                .is_some_and(|gone| crate::consistency::lingering(gone, window, now))
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

    /// What the metadata service serves for this instance in `project`.
    pub(crate) fn imds_facts(&self, project: &str, now: Instant) -> crate::imds::facts::GceVm {
        let s = &self.spec;
        let text = |v: Option<&Value>| v.and_then(Value::as_str).unwrap_or_default().to_string();
        let attributes = s
            .metadata_items
            .iter()
            .map(|item| (text(item.get("key")), text(item.get("value"))))
            .collect();
        let service_account = s.service_accounts.first().map(|sa| {
            let scopes = sa
                .get("scopes")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default();
            (text(sa.get("email")), scopes)
        });
        let sched = self.scheduling();
        let preemptible = sched.get("preemptible") == Some(&Value::Bool(true))
            || sched.get("provisioningModel").and_then(Value::as_str) == Some("SPOT");
        crate::imds::facts::GceVm {
            project: project.to_string(),
            zone: self.zone.to_string(),
            name: s.name.clone(),
            id: self.id,
            created_unix: self.created_wall.unix_timestamp(),
            machine_type: s
                .machine_type
                .rsplit('/')
                .next()
                .unwrap_or_default()
                .to_string(),
            description: s.description.clone(),
            tags: s.tags.clone(),
            network_ip: (!s.nics.is_empty()).then(|| self.nic_ip(0)),
            attributes,
            service_account,
            preemptible,
            preempted: self.preempted.as_deref().is_some_and(|(n, _)| n.noticed(now)),
        }
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
            creation_timestamp: self.created(),
            name: &s.name,
            description: s.description.as_deref(),
            tags: TagsView {
                items: &s.tags,
                fingerprint: encode(self.fixed.tags_fingerprint),
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
                    network_ip: self.nic_ip(i),
                    access_configs: &n.access_configs,
                    fingerprint: fingerprint(&(self.id, i)),
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
                fingerprint: encode(self.fixed.metadata_fingerprint),
                items: &s.metadata_items,
            },
            service_accounts: &s.service_accounts,
            self_link: base.link(&format!("{zone_rel}/instances/{}", s.name)),
            scheduling: self.scheduling(),
            cpu_platform: "Intel Broadwell",
            labels: &s.labels,
            label_fingerprint: encode(self.fixed.label_fingerprint),
            last_start_timestamp: matches!(status, Status::Staging | Status::Running)
                .then(|| since.clone())
                .flatten(),
            last_stop_timestamp: (status == Status::Terminated)
                .then(|| since.clone())
                .flatten(),
            last_suspended_timestamp: (status == Status::Suspended).then_some(since).flatten(),
            start_restricted: false,
            deletion_protection: false,
            fingerprint: fingerprint(&(self.id, status.as_str())),
        }
    }
}
