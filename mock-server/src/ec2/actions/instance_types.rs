//! DescribeInstanceTypes over the mock's catalogue
//! ([`crate::ec2::instance_types`]): `InstanceType.N` selection,
//! `Filter.N`, and `MaxResults` (5 to 100) / `NextToken` pagination.

use super::DryRun;
use crate::ec2::error::Ec2Error;
use crate::ec2::filters::{self, Filter};
use crate::ec2::instance_types::{free_tier, lookup, InstanceTypeInfo, CATALOGUE};
use crate::ec2::query::Params;
use crate::ec2::xml::Xml;

/// Filter names DescribeInstanceTypes supports.
const FILTERS: &[&str] = &[
    "instance-type",
    "current-generation",
    "free-tier-eligible",
    "burstable-performance-supported",
    "hypervisor",
    "processor-info.supported-architecture",
    "vcpu-info.default-vcpus",
    "vcpu-info.default-cores",
    "vcpu-info.default-threads-per-core",
    "memory-info.size-in-mib",
    "supported-usage-class",
];

/// Most `InstanceType.N` in one request (EC2's limit).
const MAX_TYPES: usize = 100;

fn bool_text(b: bool) -> &'static str {
    if b {
        "true"
    } else {
        "false"
    }
}

fn matches(f: &Filter, i: &InstanceTypeInfo) -> bool {
    match f.name.as_str() {
        "instance-type" => f.any(i.name),
        "current-generation" => f.any(bool_text(i.current_generation)),
        "free-tier-eligible" => f.any(bool_text(free_tier(i.name))),
        "burstable-performance-supported" => f.any(bool_text(i.burstable)),
        "hypervisor" => f.any(i.hypervisor),
        "processor-info.supported-architecture" => i.architectures.iter().any(|a| f.any(a)),
        "vcpu-info.default-vcpus" => f.any(&i.vcpus.to_string()),
        "vcpu-info.default-cores" => f.any(&i.cores.to_string()),
        "vcpu-info.default-threads-per-core" => f.any(&i.threads_per_core.to_string()),
        "memory-info.size-in-mib" => f.any(&i.memory_mib.to_string()),
        "supported-usage-class" => f.any("on-demand") || f.any("spot"),
        _ => false,
    }
}

/// `MaxResults` (5 to 100) and `NextToken` (an index into the catalogue).
fn page(p: &Params) -> Result<(usize, usize), Ec2Error> {
    let max = match p.int("MaxResults")? {
        None => 100,
        Some(n) if !(5..=100).contains(&n) => {
            return Err(Ec2Error::invalid_value(format!(
                "Value ( {n} ) for parameter maxResults is invalid. Expecting a value between 5 and 100."
            )))
        }
        Some(n) => n as usize,
    };
    let start = match p.get("NextToken") {
        None => 0,
        Some(t) => t
            .strip_prefix("it-")
            .and_then(|n| n.parse::<usize>().ok())
            .filter(|n| *n <= CATALOGUE.len())
            .ok_or_else(|| Ec2Error::bad_token(t))?,
    };
    Ok((max, start))
}

/// DescribeInstanceTypes.
pub(in crate::ec2) fn describe_instance_types(
    p: &Params,
    request_id: &str,
) -> Result<String, Ec2Error> {
    let names = p.list("InstanceType");
    if names.len() > MAX_TYPES {
        return Err(Ec2Error::invalid_value(format!(
            "At most {MAX_TYPES} instance types may be given, got {}",
            names.len()
        )));
    }
    let unknown: Vec<&str> = names
        .iter()
        .copied()
        .filter(|n| lookup(n).is_none())
        .collect();
    if !unknown.is_empty() {
        return Err(Ec2Error::new(
            400,
            "InvalidInstanceType",
            format!(
                "The following supplied instance types do not exist: [{}]",
                unknown.join(", ")
            ),
        ));
    }
    let filters = filters::parse(p)?;
    filters::check_names(&filters, FILTERS)?;
    let (max, start) = page(p)?;
    DryRun::parse(p).answer()?;
    let selected: Vec<(usize, &InstanceTypeInfo)> = CATALOGUE
        .iter()
        .enumerate()
        .filter(|(_, i)| names.is_empty() || names.contains(&i.name))
        .filter(|(_, i)| filters.iter().all(|f| matches(f, i)))
        .filter(|(n, _)| *n >= start)
        .collect();
    let mut x = Xml::response("DescribeInstanceTypes", request_id, 1024 + max * 1200);
    x.open("instanceTypeSet");
    for (_, i) in selected.iter().take(max) {
        write(&mut x, i);
    }
    x.close("instanceTypeSet");
    if let Some((n, _)) = selected.get(max) {
        x.leaf("nextToken", &format!("it-{n}"));
    }
    Ok(x.finish_response("DescribeInstanceTypes"))
}

fn items(x: &mut Xml, tag: &str, values: &[&str]) {
    x.open(tag);
    for v in values {
        x.leaf("item", v);
    }
    x.close(tag);
}

/// One `instanceTypeSet` item.
fn write(x: &mut Xml, i: &InstanceTypeInfo) {
    x.open("item");
    x.leaf("instanceType", i.name);
    x.leaf("currentGeneration", bool_text(i.current_generation));
    x.leaf("freeTierEligible", bool_text(free_tier(i.name)));
    items(x, "supportedUsageClasses", &["on-demand", "spot"]);
    items(x, "supportedRootDeviceTypes", &["ebs"]);
    items(x, "supportedVirtualizationTypes", &["hvm"]);
    x.leaf("bareMetal", "false");
    x.leaf("hypervisor", i.hypervisor);
    x.open("processorInfo");
    items(x, "supportedArchitectures", i.architectures);
    x.close("processorInfo");
    x.open("vCpuInfo");
    x.num("defaultVCpus", i.vcpus);
    x.num("defaultCores", i.cores);
    x.num("defaultThreadsPerCore", i.threads_per_core);
    x.close("vCpuInfo");
    x.open("memoryInfo");
    x.num("sizeInMiB", i.memory_mib);
    x.close("memoryInfo");
    x.leaf("instanceStorageSupported", "false");
    x.open("ebsInfo");
    x.leaf("ebsOptimizedSupport", "default");
    x.leaf("encryptionSupport", "supported");
    x.leaf(
        "nvmeSupport",
        if i.hypervisor == "nitro" { "required" } else { "unsupported" },
    );
    x.close("ebsInfo");
    x.open("networkInfo");
    x.leaf("networkPerformance", "Up to 10 Gigabit");
    x.num("maximumNetworkInterfaces", 3);
    x.num("ipv4AddressesPerInterface", 10);
    x.leaf("ipv6Supported", "true");
    x.leaf("enaSupport", "required");
    x.close("networkInfo");
    x.open("placementGroupInfo");
    items(x, "supportedStrategies", &["cluster", "partition", "spread"]);
    x.close("placementGroupInfo");
    x.leaf("hibernationSupported", "false");
    x.leaf("burstablePerformanceSupported", bool_text(i.burstable));
    x.leaf("dedicatedHostsSupported", "false");
    x.leaf("autoRecoverySupported", "true");
    items(x, "supportedBootModes", &["legacy-bios", "uefi"]);
    x.close("item");
}
