//! Limits per subscription partition ([`ArmLimits`]), checked before a PUT
//! makes anything new, answered with Azure's own quota errors:
//!
//! - resource groups per subscription: 409 `ResourceGroupQuotaExceeded`;
//! - resources of one type per resource group: 409 `ResourceQuotaExceeded`;
//! - virtual machines per subscription and region: 409 `OperationNotAllowed`,
//!   the Compute resource provider's quota refusal.
//!
//! Only live resources count: one whose delete has finished frees its place.
//! Updates of existing resources are never refused.

use std::time::Instant;

use super::config::ArmLimits;
use super::error::ArmError;
use super::store::{Kind, Partition};

/// Checks that one more resource group fits, forgetting groups whose delete
/// has finished first (so the map holds at most `limit` groups).
pub fn check_group(
    part: &mut Partition,
    limits: &ArmLimits,
    name: &str,
    now: Instant,
) -> Result<(), ArmError> {
    part.groups.retain(|_, g| g.alive(now));
    let count = part.groups.len();
    if count < limits.resource_groups {
        return Ok(());
    }
    Err(ArmError::conflict(
        "ResourceGroupQuotaExceeded",
        format!(
            "Creating the resource group '{name}' would exceed the quota of '{}'. The current resource group \
             count is '{count}', please delete some groups before creating a new one.",
            limits.resource_groups
        ),
    ))
}

/// Checks that one more resource of `kind` fits in group `rg` (and, for a
/// VM, in region `location` of the subscription).
pub fn check_resource(
    part: &Partition,
    limits: &ArmLimits,
    kind: Kind,
    rg: &str,
    location: &str,
    now: Instant,
) -> Result<(), ArmError> {
    let live = || {
        part.resources
            .values()
            .filter(move |r| r.kind == kind && r.alive(now))
    };
    let in_group = live().filter(|r| r.rg.eq_ignore_ascii_case(rg)).count();
    if in_group >= limits.resources_per_type_per_group {
        let ty = kind.arm_type();
        return Err(ArmError::conflict(
            "ResourceQuotaExceeded",
            format!(
                "Creating the resource of type '{ty}' would exceed the quota of '{}' resources of type '{ty}' \
                 per resource group. The current resource count is '{in_group}', please delete some resources \
                 of this type before creating a new one.",
                limits.resources_per_type_per_group
            ),
        ));
    }
    if kind != Kind::VirtualMachine {
        return Ok(());
    }
    let in_region = live()
        .filter(|r| r.location.eq_ignore_ascii_case(location))
        .count();
    if in_region >= limits.vms_per_region {
        let limit = limits.vms_per_region;
        return Err(ArmError::conflict(
            "OperationNotAllowed",
            format!(
                "Operation could not be completed as it results in exceeding approved virtualMachines quota. \
                 Additional details - Deployment Model: Resource Manager, Location: {location}, Current Limit: \
                 {limit}, Current Usage: {in_region}, Additional Required: 1, (Minimum) New Limit Required: {}. \
                 Submit a request for Quota increase by specifying parameters listed in the 'Details' section \
                 for deployment to succeed.",
                in_region + 1
            ),
        ));
    }
    Ok(())
}
