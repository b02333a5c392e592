//! EBS volumes: the state of one account's volumes in one region. A
//! volume is `creating` until its ready time, then `available` (the mock
//! does not attach volumes).

use std::collections::BTreeMap;
use std::time::Instant;

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
}

impl Volume {
    /// `creating` or `available`.
    pub fn status(&self, now: Instant) -> &'static str {
        if now < self.ready_at {
            "creating"
        } else {
            "available"
        }
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

    /// Removes the volume with this id; whether it existed.
    pub fn remove(&mut self, id: &str) -> bool {
        let Some(seq) = self.get(id).map(|v| v.seq) else {
            return false;
        };
        self.by_seq.remove(&seq).is_some()
    }
}
