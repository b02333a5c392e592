//! Instance state: what RunInstances stores, and the lifecycle derived from
//! timestamps (`pending -> running`, `stopping -> stopped`,
//! `shutting-down -> terminated -> gone`) without background tasks.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::volumes::Devices;
use super::xml::Xml;

/// `true` or `false`, as EC2 writes booleans.
pub fn bool_str(b: bool) -> &'static str {
    if b {
        "true"
    } else {
        "false"
    }
}

/// EC2 instance states with their codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// 0
    Pending,
    /// 16
    Running,
    /// 32
    ShuttingDown,
    /// 48
    Terminated,
    /// 64
    Stopping,
    /// 80
    Stopped,
}

impl State {
    /// The state code EC2 reports.
    pub fn code(self) -> u16 {
        match self {
            State::Pending => 0,
            State::Running => 16,
            State::ShuttingDown => 32,
            State::Terminated => 48,
            State::Stopping => 64,
            State::Stopped => 80,
        }
    }

    /// The state name EC2 reports.
    pub fn name(self) -> &'static str {
        match self {
            State::Pending => "pending",
            State::Running => "running",
            State::ShuttingDown => "shutting-down",
            State::Terminated => "terminated",
            State::Stopping => "stopping",
            State::Stopped => "stopped",
        }
    }

    /// Writes `<tag><code>..</code><name>..</name></tag>`.
    pub fn write(self, x: &mut Xml, tag: &str) {
        x.open(tag);
        x.num("code", self.code());
        x.leaf("name", self.name());
        x.close(tag);
    }
}

/// The last transition an instance was asked to make.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Phase {
    /// RunInstances: pending, then running (or terminated on failure).
    Launching,
    /// StartInstances: pending, then running (or stopped on failure).
    Starting,
    /// StopInstances: stopping, then stopped.
    Stopping,
    /// TerminateInstances: shutting-down, then terminated.
    Terminating,
}

/// Spot details of a spot instance.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Spot {
    /// `sir-...`.
    pub request_id: String,
    /// `one-time` or `persistent`.
    pub kind: String,
}

/// A spot interruption of a running instance: from `notice.ends_at` it is
/// `shutting-down`, from `terminated_at` `terminated`, from `gone_at` gone.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Interrupted {
    /// The notice.
    pub notice: crate::capacity::Notice,
    /// When it is terminated.
    #[serde(with = "crate::snapshot::clock::at")]
    pub terminated_at: Instant,
    /// When it stops being describable.
    #[serde(with = "crate::snapshot::clock::at")]
    pub gone_at: Instant,
}

/// The state reason of an instance ended by a spot interruption.
const SPOT_TERMINATION: (&str, &str) = (
    "Server.SpotInstanceTermination",
    "Server.SpotInstanceTermination: Spot instance termination",
);

/// `MetadataOptions` of RunInstances: how the instance's metadata service
/// answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MetadataOptions {
    /// `HttpTokens=required`: every GET needs an IMDSv2 token.
    pub tokens_required: bool,
    /// `HttpEndpoint=enabled` (the default).
    pub endpoint_enabled: bool,
    /// `HttpPutResponseHopLimit` (1 to 64, default 1).
    pub hop_limit: u8,
}

impl Default for MetadataOptions {
    fn default() -> Self {
        MetadataOptions {
            tokens_required: false,
            endpoint_enabled: true,
            hop_limit: 1,
        }
    }
}

impl MetadataOptions {
    /// Writes `<metadataOptions>` as DescribeInstances does.
    fn write(&self, x: &mut Xml) {
        x.open("metadataOptions");
        x.leaf("state", "applied");
        x.leaf(
            "httpTokens",
            if self.tokens_required {
                "required"
            } else {
                "optional"
            },
        );
        x.num("httpPutResponseHopLimit", self.hop_limit);
        x.leaf(
            "httpEndpoint",
            if self.endpoint_enabled {
                "enabled"
            } else {
                "disabled"
            },
        );
        x.close("metadataOptions");
    }
}

/// One instance.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Instance {
    /// Creation order within its partition.
    pub seq: u64,
    /// `i-...`.
    pub id: String,
    /// `r-...`.
    pub reservation_id: String,
    /// AMI.
    pub image_id: String,
    /// Instance type.
    pub instance_type: String,
    /// Availability zone.
    pub zone: String,
    /// Subnet, when given.
    pub subnet_id: Option<String>,
    /// VPC, derived from the subnet.
    pub vpc_id: Option<String>,
    /// Private IPv4 address.
    pub private_ip: String,
    /// Private DNS name.
    pub private_dns: String,
    /// Index within its launch.
    pub launch_index: u32,
    /// Key pair name.
    pub key_name: Option<String>,
    /// Security group ids.
    pub groups: Vec<String>,
    /// The ClientToken of its launch (may be empty).
    pub client_token: String,
    /// Spot details.
    pub spot: Option<Spot>,
    /// Launch time, RFC 3339 with milliseconds.
    pub launch_time: String,
    /// Tags.
    pub tags: BTreeMap<String, String>,
    /// `UserData`, decoded (the metadata service serves it).
    pub user_data: Option<Arc<[u8]>>,
    /// `MetadataOptions`.
    pub metadata: MetadataOptions,
    /// Current transition.
    pub phase: Phase,
    /// When the current transition completes.
    #[serde(with = "crate::snapshot::clock::at")]
    pub ready_at: Instant,
    /// When a terminated instance stops being describable.
    #[serde(with = "crate::snapshot::clock::at_opt")]
    pub gone_at: Option<Instant>,
    /// Wall-clock time of the last user action, `YYYY-MM-DD HH:MM:SS GMT`.
    pub user_action_at: String,
    /// A `fail_operation` fault: the launch or start ends with this
    /// state reason (code, message).
    pub failure: Option<(String, String)>,
    /// A `not_found_reads` fault: describes left that act as if the
    /// instance did not exist.
    pub hidden_reads: u32,
    /// A spot interruption, once given.
    pub interrupted: Option<Interrupted>,
    /// Eventual consistency: until then describes act as if the instance
    /// did not exist (see [`crate::consistency`]).
    #[serde(with = "crate::snapshot::clock::at")]
    pub visible_from: Instant,
}

/// What an instance looks like at one instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seen {
    /// The state.
    pub state: State,
    /// Past its describable time: treat as nonexistent.
    pub gone: bool,
}

impl Instance {
    /// The state at `now`.
    pub fn seen(&self, now: Instant) -> Seen {
        if let Some(x) = self.interruption_ended(now) {
            let state = if now >= x.terminated_at {
                State::Terminated
            } else {
                State::ShuttingDown
            };
            return Seen {
                state,
                gone: now >= x.gone_at,
            };
        }
        let done = now >= self.ready_at;
        let state = match (self.phase, done) {
            (Phase::Launching | Phase::Starting, false) => State::Pending,
            (Phase::Launching, true) if self.failure.is_some() => State::Terminated,
            (Phase::Starting, true) if self.failure.is_some() => State::Stopped,
            (Phase::Launching | Phase::Starting, true) => State::Running,
            (Phase::Stopping, false) => State::Stopping,
            (Phase::Stopping, true) => State::Stopped,
            (Phase::Terminating, false) => State::ShuttingDown,
            (Phase::Terminating, true) => State::Terminated,
        };
        let gone = state == State::Terminated && self.gone_at.is_some_and(|g| now >= g);
        Seen { state, gone }
    }

    /// The interruption, once it has ended the instance: it was running
    /// (launched or started, not since stopped or terminated) and its
    /// notice's end has passed.
    pub fn interruption_ended(&self, now: Instant) -> Option<&Interrupted> {
        self.interrupted.as_ref().filter(|x| {
            matches!(self.phase, Phase::Launching | Phase::Starting)
                && self.failure.is_none()
                && x.notice.ended(now)
        })
    }

    /// The spot interruption notice to show in the metadata service at
    /// `now`: the instance's termination time, `YYYY-MM-DDTHH:MM:SSZ`.
    pub fn spot_action(&self, now: Instant) -> Option<String> {
        let x = self.interrupted.as_ref()?;
        if !x.notice.noticed(now) || !matches!(self.phase, Phase::Launching | Phase::Starting) {
            return None;
        }
        let t = x.notice.ends_wall;
        Some(format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        ))
    }

    /// Moves to a new transition that completes after `duration`.
    pub fn transition(&mut self, phase: Phase, now: Instant, duration: Duration) {
        self.phase = phase;
        self.ready_at = now + duration;
        self.gone_at = None;
        self.user_action_at = user_time();
    }

    /// `(code, message)` of the state reason to report, if any.
    fn state_reason(&self, state: State, now: Instant) -> Option<(&str, &str)> {
        if self.interruption_ended(now).is_some() {
            return Some(SPOT_TERMINATION);
        }
        match state {
            State::Pending if self.phase == Phase::Launching => Some(("pending", "pending")),
            State::Terminated | State::Stopped if self.failure.is_some() => {
                self.failure.as_ref().map(|(c, m)| (c.as_str(), m.as_str()))
            }
            State::ShuttingDown | State::Terminated | State::Stopping | State::Stopped => Some((
                "Client.UserInitiatedShutdown",
                "Client.UserInitiatedShutdown: User initiated shutdown",
            )),
            _ => None,
        }
    }

    /// Writes the `<item>` of an `instancesSet`; its `blockDeviceMapping`
    /// lists the volumes `devices` has for it.
    pub fn write(&self, x: &mut Xml, state: State, now: Instant, devices: &Devices<'_>) {
        x.open("item");
        x.leaf("instanceId", &self.id);
        x.leaf("imageId", &self.image_id);
        state.write(x, "instanceState");
        if state == State::Terminated {
            x.empty("privateDnsName");
        } else {
            x.leaf("privateDnsName", &self.private_dns);
        }
        x.empty("dnsName");
        match state {
            State::Terminated | State::ShuttingDown if self.interruption_ended(now).is_some() => {
                x.leaf("reason", SPOT_TERMINATION.1);
            }
            State::Terminated | State::ShuttingDown | State::Stopped | State::Stopping => {
                if let Some((_, m)) = self
                    .failure
                    .as_ref()
                    .filter(|_| matches!(state, State::Terminated | State::Stopped))
                {
                    x.leaf("reason", m);
                } else {
                    let mut r = String::with_capacity(40);
                    r.push_str("User initiated (");
                    r.push_str(&self.user_action_at);
                    r.push(')');
                    x.leaf("reason", &r);
                }
            }
            _ => x.empty("reason"),
        }
        if let Some(k) = &self.key_name {
            x.leaf("keyName", k);
        }
        x.num("amiLaunchIndex", self.launch_index);
        x.empty("productCodes");
        x.leaf("instanceType", &self.instance_type);
        x.leaf("launchTime", &self.launch_time);
        x.open("placement");
        x.leaf("availabilityZone", &self.zone);
        x.empty("groupName");
        x.leaf("tenancy", "default");
        x.close("placement");
        x.open("monitoring");
        x.leaf("state", "disabled");
        x.close("monitoring");
        if let Some(s) = &self.subnet_id {
            x.leaf("subnetId", s);
        }
        if let Some(v) = &self.vpc_id {
            x.leaf("vpcId", v);
        }
        if state != State::Terminated {
            x.leaf("privateIpAddress", &self.private_ip);
        }
        write_groups(x, &self.groups);
        if let Some((code, message)) = self.state_reason(state, now) {
            x.open("stateReason");
            x.leaf("code", code);
            x.leaf("message", message);
            x.close("stateReason");
        }
        x.leaf("architecture", "x86_64");
        x.leaf("rootDeviceType", "ebs");
        x.leaf("rootDeviceName", "/dev/xvda");
        let mine = devices.get(self.id.as_str()).map_or(&[][..], Vec::as_slice);
        if state == State::Terminated || mine.is_empty() {
            x.empty("blockDeviceMapping");
        } else {
            x.open("blockDeviceMapping");
            for (v, a, status) in mine {
                x.open("item");
                x.leaf("deviceName", &a.device);
                x.open("ebs");
                x.leaf("volumeId", &v.id);
                x.leaf("status", status);
                x.leaf("attachTime", &a.attach_time);
                x.leaf("deleteOnTermination", bool_str(a.delete_on_termination));
                x.close("ebs");
                x.close("item");
            }
            x.close("blockDeviceMapping");
        }
        if let Some(spot) = &self.spot {
            x.leaf("instanceLifecycle", "spot");
            x.leaf("spotInstanceRequestId", &spot.request_id);
        }
        x.leaf("virtualizationType", "hvm");
        x.leaf("clientToken", &self.client_token);
        write_tags(x, &self.tags);
        x.leaf("hypervisor", "xen");
        x.leaf("ebsOptimized", "false");
        self.metadata.write(x);
        x.close("item");
    }
}

/// Writes `<groupSet>` with one item per security group id.
pub fn write_groups(x: &mut Xml, groups: &[String]) {
    if groups.is_empty() {
        x.empty("groupSet");
        return;
    }
    x.open("groupSet");
    for g in groups {
        x.open("item");
        x.leaf("groupId", g);
        x.close("item");
    }
    x.close("groupSet");
}

/// Writes `<tagSet>`; omitted when there are no tags, as EC2 does.
fn write_tags(x: &mut Xml, tags: &BTreeMap<String, String>) {
    if tags.is_empty() {
        return;
    }
    x.open("tagSet");
    for (k, v) in tags {
        x.open("item");
        x.leaf("key", k);
        x.leaf("value", v);
        x.close("item");
    }
    x.close("tagSet");
}

/// The time of a user action as EC2 writes it in `reason`.
fn user_time() -> String {
    let t = time::OffsetDateTime::now_utc();
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02} GMT",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}
