//! EBS volumes: the state of one account's volumes in one region. A
//! volume is `creating` until its ready time, then `available`, or
//! `in-use` while attached. An attachment is `attaching` until its attach
//! time, then `attached`; after DetachVolume it is `detaching` until its
//! detach time, then gone. States are derived from timestamps, and
//! [`Volumes::settle`] applies what the passage of time implies (finished
//! detachments, volumes of terminated instances).

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

/// A volume, its attachment and the attachment's status.
pub type Device<'a> = (&'a Volume, &'a Attachment, &'static str);

/// The attached volumes of each instance, by instance id.
pub type Devices<'a> = HashMap<&'a str, Vec<Device<'a>>>;

/// One volume.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Volume {
    /// Creation order within the partition (pagination).
    pub seq: u64,
    /// `vol-` and 17 hex digits.
    pub id: String,
    /// Size in GiB.
    pub size_gib: u32,
    /// The zone it lives in.
    pub zone: String,
    /// `gp2`, `gp3`, `io1`, `io2`, `st1`, `sc1` or `standard`.
    pub volume_type: String,
    /// Provisioned IOPS (gp2's baseline, gp3's 3000, io1/io2's request).
    pub iops: Option<u32>,
    /// gp3 throughput in MiB/s.
    pub throughput: Option<u32>,
    /// Whether it is encrypted.
    pub encrypted: bool,
    /// RFC 3339 creation time.
    pub create_time: String,
    /// When it becomes `available`.
    #[serde(with = "crate::snapshot::clock::at")]
    pub ready_at: Instant,
    /// The `ClientToken` it was created with (empty when none).
    pub client_token: String,
    /// Its tags.
    pub tags: BTreeMap<String, String>,
    /// Its attachment to an instance, if any.
    pub attachment: Option<Attachment>,
}

/// A volume's attachment to an instance.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Attachment {
    /// The instance.
    pub instance_id: String,
    /// The device name, e.g. `/dev/sdf`.
    pub device: String,
    /// RFC 3339 time of the AttachVolume (or the launch).
    pub attach_time: String,
    /// When `attaching` becomes `attached`.
    #[serde(with = "crate::snapshot::clock::at")]
    pub attached_at: Instant,
    /// Whether terminating the instance deletes the volume.
    pub delete_on_termination: bool,
    /// After DetachVolume: when the attachment ends.
    #[serde(with = "crate::snapshot::clock::at_opt")]
    pub detached_at: Option<Instant>,
}

impl Attachment {
    /// `attaching`, `attached` or `detaching`; `None` once detached.
    pub fn status(&self, now: Instant) -> Option<&'static str> {
        match self.detached_at {
            Some(t) if now >= t => None,
            Some(_) => Some("detaching"),
            None if now < self.attached_at => Some("attaching"),
            None => Some("attached"),
        }
    }
}

impl Volume {
    /// `creating`, `available` or `in-use`.
    pub fn status(&self, now: Instant) -> &'static str {
        if now < self.ready_at {
            "creating"
        } else if self.attached(now).is_some() {
            "in-use"
        } else {
            "available"
        }
    }

    /// The attachment and its status, unless there is none or it ended.
    pub fn attached(&self, now: Instant) -> Option<(&Attachment, &'static str)> {
        let a = self.attachment.as_ref()?;
        a.status(now).map(|s| (a, s))
    }
}

/// The volumes of one partition, by creation order. Bounded by the caller
/// (the `volume_limit` setting).
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct Volumes {
    by_seq: BTreeMap<u64, Volume>,
    next_seq: u64,
}

impl Volumes {
    /// The creation number the next volume gets.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// How many volumes exist.
    pub fn len(&self) -> usize {
        self.by_seq.len()
    }

    /// The volume with this id.
    pub fn get(&self, id: &str) -> Option<&Volume> {
        self.by_seq.values().find(|v| v.id == id)
    }

    /// The volume created with this (non-empty) client token.
    pub fn by_token(&self, token: &str) -> Option<&Volume> {
        self.by_seq
            .values()
            .find(|v| !token.is_empty() && v.client_token == token)
    }

    /// Every volume, in creation order.
    pub fn iter(&self) -> impl Iterator<Item = &Volume> {
        self.by_seq.values()
    }

    /// Adds a volume (its `seq` is assigned here) and returns its seq.
    pub fn insert(&mut self, mut v: Volume) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        v.seq = seq;
        self.by_seq.insert(seq, v);
        seq
    }

    /// The volume with this creation number.
    pub fn by_seq(&self, seq: u64) -> Option<&Volume> {
        self.by_seq.get(&seq)
    }

    /// The volume with this id, mutable.
    pub fn get_mut(&mut self, id: &str) -> Option<&mut Volume> {
        self.by_seq.values_mut().find(|v| v.id == id)
    }

    /// The attached volumes (attaching, attached or detaching) of every
    /// instance, with the attachment's status, each list by device name.
    pub fn devices(&self, now: Instant) -> Devices<'_> {
        let mut map: Devices<'_> = HashMap::new();
        for v in self.by_seq.values() {
            if let Some((a, status)) = v.attached(now) {
                map.entry(a.instance_id.as_str())
                    .or_default()
                    .push((v, a, status));
            }
        }
        for list in map.values_mut() {
            list.sort_by(|x, y| x.1.device.cmp(&y.1.device));
        }
        map
    }

    /// Applies what time implies: finished detachments are dropped, and a
    /// volume whose instance is terminated (or gone, as `ended` says) is
    /// detached, or deleted when its attachment has DeleteOnTermination.
    pub fn settle(&mut self, now: Instant, ended: impl Fn(&str) -> bool) {
        let mut deleted = Vec::new();
        for v in self.by_seq.values_mut() {
            let Some(a) = &v.attachment else {
                continue;
            };
            if a.status(now).is_none() {
                v.attachment = None;
            } else if ended(&a.instance_id) {
                if a.delete_on_termination {
                    deleted.push(v.seq);
                } else {
                    v.attachment = None;
                }
            }
        }
        for seq in deleted {
            self.by_seq.remove(&seq);
        }
    }

    /// Removes the volume with this id; whether it existed.
    pub fn remove(&mut self, id: &str) -> bool {
        let Some(seq) = self.get(id).map(|v| v.seq) else {
            return false;
        };
        self.by_seq.remove(&seq).is_some()
    }
}
