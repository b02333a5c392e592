//! The instance types the mock knows: a fixed catalogue of common types
//! with the facts DescribeInstanceTypes reports (vCPUs, cores, threads per
//! core, memory, architectures, generation, hypervisor).

/// One instance type's published facts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InstanceTypeInfo {
    /// The type name, e.g. `m5.large`.
    pub name: &'static str,
    /// Default vCPUs.
    pub vcpus: u32,
    /// Default physical cores.
    pub cores: u32,
    /// Default threads per core.
    pub threads_per_core: u32,
    /// Memory in MiB.
    pub memory_mib: u64,
    /// Supported architectures (`i386`, `x86_64`, `arm64`).
    pub architectures: &'static [&'static str],
    /// Whether it is a current-generation type.
    pub current_generation: bool,
    /// `nitro` or `xen`.
    pub hypervisor: &'static str,
    /// Whether it is a burstable (T) type.
    pub burstable: bool,
    /// Whether it is in the free tier.
    pub free_tier: bool,
}

const X86: &[&str] = &["x86_64"];
const X86_32: &[&str] = &["i386", "x86_64"];
const ARM: &[&str] = &["arm64"];

#[allow(clippy::too_many_arguments)]
const fn t(
    name: &'static str,
    vcpus: u32,
    cores: u32,
    threads_per_core: u32,
    memory_mib: u64,
    architectures: &'static [&'static str],
    current_generation: bool,
    hypervisor: &'static str,
) -> InstanceTypeInfo {
    // Names are non-empty literals; the indexing is checked at compile time.
    let burstable = name.as_bytes()[0] == b't';
    InstanceTypeInfo {
        name,
        vcpus,
        cores,
        threads_per_core,
        memory_mib,
        architectures,
        current_generation,
        hypervisor,
        burstable,
        free_tier: false,
    }
}

/// The catalogue, sorted by name (pagination walks it in this order).
pub const CATALOGUE: &[InstanceTypeInfo] = &[
    t("c5.2xlarge", 8, 4, 2, 16384, X86, true, "nitro"),
    t("c5.large", 2, 1, 2, 4096, X86, true, "nitro"),
    t("c5.xlarge", 4, 2, 2, 8192, X86, true, "nitro"),
    t("c6g.large", 2, 2, 1, 4096, ARM, true, "nitro"),
    t("c6i.large", 2, 1, 2, 4096, X86, true, "nitro"),
    t("g4dn.xlarge", 4, 2, 2, 16384, X86, true, "nitro"),
    t("m1.small", 1, 1, 1, 1740, X86_32, false, "xen"),
    t("m5.2xlarge", 8, 4, 2, 32768, X86, true, "nitro"),
    t("m5.large", 2, 1, 2, 8192, X86, true, "nitro"),
    t("m5.xlarge", 4, 2, 2, 16384, X86, true, "nitro"),
    t("m6g.large", 2, 2, 1, 8192, ARM, true, "nitro"),
    t("m6i.large", 2, 1, 2, 8192, X86, true, "nitro"),
    t("r5.large", 2, 1, 2, 16384, X86, true, "nitro"),
    t("t2.micro", 1, 1, 1, 1024, X86_32, true, "xen"),
    t("t3.large", 2, 1, 2, 8192, X86, true, "nitro"),
    t("t3.medium", 2, 1, 2, 4096, X86, true, "nitro"),
    t("t3.micro", 2, 1, 2, 1024, X86, true, "nitro"),
    t("t3.small", 2, 1, 2, 2048, X86, true, "nitro"),
    t("t4g.micro", 2, 2, 1, 1024, ARM, true, "nitro"),
];

/// The facts of `name`, if the mock knows it.
pub fn lookup(name: &str) -> Option<&'static InstanceTypeInfo> {
    CATALOGUE.iter().find(|i| i.name == name)
}

/// Whether `name` is in the free tier (t2.micro and t3.micro).
pub fn free_tier(name: &str) -> bool {
    matches!(name, "t2.micro" | "t3.micro")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalogue_is_sorted_and_consistent() {
        assert!(CATALOGUE.windows(2).all(|w| w[0].name < w[1].name));
        for i in CATALOGUE {
            assert_eq!(i.vcpus, i.cores * i.threads_per_core, "{}", i.name);
        }
        assert!(lookup("m5.large").is_some());
        assert!(lookup("m5.huge").is_none());
    }
}
