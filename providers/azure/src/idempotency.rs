//! Resource names, derived from the worker id alone.
//!
//! ARM creates by name (`PUT .../virtualMachines/{name}`), so a name that is
//! a pure function of the worker id is an idempotency token: a step resumed
//! after a crash PUTs the same name and finds what the lost step created,
//! instead of creating a twin. The names are persisted in the worker's
//! provider state in the same step as the first call that uses them.
//!
//! Azure's rules (the strictest of the kinds we create): VM names up to 64
//! characters on Linux, NIC/public IP/disk names up to 80; letters, digits,
//! `-`, `_`, `.`; must start with a letter or digit and must not end with
//! `-` or `.`. A worker id is 1-38 of `a-z0-9-`, a prefix 1-8 of `a-z0-9`, so
//! `{prefix}-{worker}-{suffix}` is at most 8 + 1 + 38 + 5 = 52 characters
//! and always ends in a letter or digit.

use serde::{Deserialize, Serialize};

/// The longest name prefix.
pub const MAX_PREFIX: usize = 8;
/// The most data disks a launch config may ask for (names stay < 64 chars).
pub const MAX_DATA_DISKS: usize = 16;
#[cfg(test)]
/// Azure's limit on VM names (Linux).
pub const MAX_VM_NAME: usize = 64;

/// Whether `p` is a valid name prefix: 1-8 of `a-z0-9`, starting with a letter.
pub fn valid_prefix(p: &str) -> bool {
    !p.is_empty()
        && p.len() <= MAX_PREFIX
        && p.starts_with(|c: char| c.is_ascii_lowercase())
        && p.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
}

/// Whether `rg` is a valid resource group name: 1-90 of letters, digits,
/// `-`, `_`, `.`, `(`, `)`, not ending with `.`.
pub fn valid_resource_group(rg: &str) -> bool {
    !rg.is_empty()
        && rg.len() <= 90
        && !rg.ends_with('.')
        && rg
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '(' | ')'))
}

/// Every name of one worker's resources.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Names {
    /// The VM (also its computer name).
    pub vm: String,
    /// The network interface.
    pub nic: String,
    /// The public IP, when the launch config asks for one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_ip: Option<String>,
    /// The OS disk (created implicitly with the VM, named by us so teardown
    /// can find it by name).
    pub os_disk: String,
    /// The data disks, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub data_disks: Vec<String>,
}

impl Names {
    /// The names for `worker_id` with `prefix`, a public IP if `public_ip`,
    /// and `data_disks` data disks.
    pub fn derive(prefix: &str, worker_id: &str, public_ip: bool, data_disks: usize) -> Names {
        let stem = format!("{prefix}-{worker_id}");
        // Worker ids may end in '-'; every suffix ends in a letter or digit.
        Names {
            vm: format!("{stem}-vm"),
            nic: format!("{stem}-nic"),
            public_ip: public_ip.then(|| format!("{stem}-pip")),
            os_disk: format!("{stem}-os"),
            data_disks: (0..data_disks).map(|i| format!("{stem}-d{i}")).collect(),
        }
    }

    #[cfg(test)]
    /// Every name, for checks.
    pub fn all(&self) -> impl Iterator<Item = &str> {
        [self.vm.as_str(), self.nic.as_str(), self.os_disk.as_str()]
            .into_iter()
            .chain(self.public_ip.as_deref())
            .chain(self.data_disks.iter().map(String::as_str))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid_arm_name(n: &str) -> bool {
        n.len() <= MAX_VM_NAME
            && n.starts_with(|c: char| c.is_ascii_alphanumeric())
            && !n.ends_with(['-', '.'])
            && n.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    }

    #[test]
    fn longest_inputs_fit_azure_rules() {
        let worker = format!("w{}", "-".repeat(37));
        let n = Names::derive("abcdefgh", &worker, true, MAX_DATA_DISKS);
        for name in n.all() {
            assert!(valid_arm_name(name), "{name}");
        }
        assert_eq!(n.data_disks.len(), MAX_DATA_DISKS);
    }

    #[test]
    fn names_are_a_function_of_the_worker() {
        assert_eq!(
            Names::derive("sf", "w-1", false, 1),
            Names::derive("sf", "w-1", false, 1)
        );
        assert_ne!(
            Names::derive("sf", "w-1", false, 0).vm,
            Names::derive("sf", "w-2", false, 0).vm
        );
        assert!(valid_prefix("sf1"));
        assert!(!valid_prefix("1sf"));
        assert!(!valid_prefix("abcdefghi"));
        assert!(!valid_prefix("s_f"));
        assert!(valid_resource_group("my-rg_1.(x)"));
        assert!(!valid_resource_group("rg."));
    }
}
