//! EC2 settings: lifecycle durations, limits, regions and the throttle
//! model (token buckets with the published defaults).

use serde::{Deserialize, Serialize};

/// EC2 settings. Every field has a default; durations are in milliseconds
/// of simulated time (multiplied by the global time scale).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Ec2Config {
    /// `pending -> running` after RunInstances and StartInstances.
    pub launch_ms: u64,
    /// `stopping -> stopped`.
    pub stop_ms: u64,
    /// `shutting-down -> terminated`.
    pub terminate_ms: u64,
    /// How long a terminated instance stays describable.
    pub terminated_visible_ms: u64,
    /// Eventual consistency: for this long after RunInstances, a
    /// DescribeInstances naming the new instance answers
    /// `InvalidInstanceID.NotFound` and lists leave it out (0: never).
    pub consistency_window_ms: u64,
    /// Most non-terminated instances per account and region; a launch that
    /// cannot get MinCount gets `InstanceLimitExceeded`.
    pub instance_limit: u32,
    /// Most launch templates per account and region; one more answers
    /// `LaunchTemplateLimitExceeded`.
    pub launch_template_limit: u32,
    /// Most volumes per account and region; one more answers
    /// `VolumeLimitExceeded`. Every instance has a root volume, so the
    /// default leaves room for `instance_limit` instances with one more
    /// volume each, and some spare.
    pub volume_limit: u32,
    /// `creating` -> `available` after CreateVolume.
    pub volume_create_ms: u64,
    /// `attaching -> attached` after AttachVolume, and `detaching ->`
    /// detached after DetachVolume.
    pub volume_attach_ms: u64,
    /// Instance types that always answer `InsufficientInstanceCapacity`.
    pub unavailable_instance_types: Vec<String>,
    /// Regions DescribeRegions lists.
    pub regions: Vec<String>,
    /// Zones per region (`a`, `b`, ...), 1 to 26.
    pub zones_per_region: u32,
    /// Region used when a request's signature names none.
    pub default_region: String,
    /// Account used when a request carries no SigV4 access key id.
    pub default_account: String,
    /// The throttle model.
    pub throttle: Ec2Throttle,
}

impl Default for Ec2Config {
    fn default() -> Self {
        Ec2Config {
            launch_ms: 5_000,
            stop_ms: 5_000,
            terminate_ms: 5_000,
            terminated_visible_ms: 3_600_000,
            consistency_window_ms: 0,
            instance_limit: 10_000,
            launch_template_limit: 5_000,
            volume_limit: 25_000,
            volume_create_ms: 2_000,
            volume_attach_ms: 1_000,
            unavailable_instance_types: Vec::new(),
            regions: [
                "us-east-1",
                "us-east-2",
                "us-west-1",
                "us-west-2",
                "eu-west-1",
                "eu-central-1",
                "ap-northeast-1",
                "ap-southeast-2",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect(),
            zones_per_region: 3,
            default_region: "us-east-1".into(),
            default_account: "123456789012".into(),
            throttle: Ec2Throttle::default(),
        }
    }
}

impl Ec2Config {
    /// Checks values the types do not constrain; the message starts with
    /// the field name.
    pub fn validate(&self) -> Result<(), String> {
        if !(1..=26).contains(&self.zones_per_region) {
            return Err(format!(
                "zones_per_region: must be within 1..=26, got {}",
                self.zones_per_region
            ));
        }
        if self.regions.is_empty() {
            return Err("regions: must list at least one region".into());
        }
        if self.default_region.is_empty() {
            return Err("default_region: must not be empty".into());
        }
        if self.default_account.is_empty() {
            return Err("default_account: must not be empty".into());
        }
        self.throttle
            .validate()
            .map_err(|e| format!("throttle.{e}"))
    }
}

/// One token bucket: `capacity` tokens, refilled at `refill_per_s`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BucketLimit {
    /// Bucket size (burst).
    pub capacity: f64,
    /// Tokens added per second.
    pub refill_per_s: f64,
}

const fn limit(capacity: f64, refill_per_s: f64) -> BucketLimit {
    BucketLimit {
        capacity,
        refill_per_s,
    }
}

/// EC2's throttle model: request buckets per API class and resource
/// buckets (one token per instance), per account and region. Defaults are
/// the published ones.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Ec2Throttle {
    /// Off by default.
    pub enabled: bool,
    /// `Describe*` with a filter, ids or pagination (100, 20/s).
    pub non_mutating: BucketLimit,
    /// DescribeInstances / DescribeInstanceStatus without ids, filters or
    /// MaxResults (50, 10/s).
    pub unfiltered_describe: BucketLimit,
    /// Mutating actions without their own bucket, e.g. StopInstances
    /// (50, 5/s).
    pub mutating: BucketLimit,
    /// RunInstances requests (5, 2/s).
    pub run_instances: BucketLimit,
    /// StartInstances requests (5, 2/s).
    pub start_instances: BucketLimit,
    /// TerminateInstances requests (100, 5/s).
    pub terminate_instances: BucketLimit,
    /// CreateTags / DeleteTags requests (100, 10/s).
    pub tags: BucketLimit,
    /// Instances launched (1000, 2/s).
    pub run_instances_resource: BucketLimit,
    /// Instances started (1000, 2/s).
    pub start_instances_resource: BucketLimit,
    /// Instances stopped (1000, 20/s).
    pub stop_instances_resource: BucketLimit,
    /// Instances terminated (1000, 20/s).
    pub terminate_instances_resource: BucketLimit,
}

impl Default for Ec2Throttle {
    fn default() -> Self {
        Ec2Throttle {
            enabled: false,
            non_mutating: limit(100.0, 20.0),
            unfiltered_describe: limit(50.0, 10.0),
            mutating: limit(50.0, 5.0),
            run_instances: limit(5.0, 2.0),
            start_instances: limit(5.0, 2.0),
            terminate_instances: limit(100.0, 5.0),
            tags: limit(100.0, 10.0),
            run_instances_resource: limit(1000.0, 2.0),
            start_instances_resource: limit(1000.0, 2.0),
            stop_instances_resource: limit(1000.0, 20.0),
            terminate_instances_resource: limit(1000.0, 20.0),
        }
    }
}

impl Ec2Throttle {
    fn validate(&self) -> Result<(), String> {
        let all = [
            ("non_mutating", self.non_mutating),
            ("unfiltered_describe", self.unfiltered_describe),
            ("mutating", self.mutating),
            ("run_instances", self.run_instances),
            ("start_instances", self.start_instances),
            ("terminate_instances", self.terminate_instances),
            ("tags", self.tags),
            ("run_instances_resource", self.run_instances_resource),
            ("start_instances_resource", self.start_instances_resource),
            ("stop_instances_resource", self.stop_instances_resource),
            (
                "terminate_instances_resource",
                self.terminate_instances_resource,
            ),
        ];
        for (name, l) in all {
            if !l.capacity.is_finite() || l.capacity < 1.0 {
                return Err(format!("{name}.capacity: must be a finite number >= 1"));
            }
            if !l.refill_per_s.is_finite() || l.refill_per_s < 0.0 {
                return Err(format!("{name}.refill_per_s: must be a finite number >= 0"));
            }
        }
        Ok(())
    }

    /// The bucket limit of a class name used by the EC2 actions
    /// (`run_instances`, `tags`, ...).
    pub fn limit(&self, class: &str) -> Option<BucketLimit> {
        Some(match class {
            "non_mutating" => self.non_mutating,
            "unfiltered_describe" => self.unfiltered_describe,
            "mutating" => self.mutating,
            "run_instances" => self.run_instances,
            "start_instances" => self.start_instances,
            "terminate_instances" => self.terminate_instances,
            "tags" => self.tags,
            "run_instances_resource" => self.run_instances_resource,
            "start_instances_resource" => self.start_instances_resource,
            "stop_instances_resource" => self.stop_instances_resource,
            "terminate_instances_resource" => self.terminate_instances_resource,
            _ => return None,
        })
    }
}
