//! Health of a running worker, from the VM's instance view.
//!
//! A VM whose power state is `stopping`, `stopped`, `deallocating` or
//! `deallocated` will not run work: the worker is failed and removed. A
//! `ProvisioningState/failed/...` status without `PowerState/running` is a
//! failure too (with `running` it is tolerated, as Taskcluster learned in
//! PR #8412: the lifecycle timeouts catch truly broken workers).
//!
//! An instance view 404 on a VM that still exists is tolerated for a bounded
//! streak (Taskcluster PR #8315: ARM sometimes answers 404 transiently).

use http::Method;
use serde_json::Value;
use skyfleet_core::offering::{Interruption, InterruptionSource};
use skyfleet_core::transport::ApiClass;
use skyfleet_core::{Error, ErrorKind, Phase, Result, Step};

use super::advance::{lookup, Lookup};
use super::state::ChainState;
use super::{fail, out, Ctx};
use crate::client::{garbled, ArmAnswer, ResourceType};

/// What the instance view says.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Health {
    /// Fine (running or starting).
    Ok,
    /// Failed, with the status code that says so.
    Failed(String),
}

/// Reads an instance view (`GET .../instanceView`).
fn from_instance_view(view: &Value) -> Option<Health> {
    let statuses = view.get("statuses")?.as_array()?;
    let codes: Vec<&str> = statuses
        .iter()
        .filter_map(|s| s.get("code").and_then(Value::as_str))
        .collect();
    let power = codes
        .iter()
        .find_map(|c| c.strip_prefix("PowerState/"))
        .map(str::to_ascii_lowercase);
    if let Some(p) = &power {
        if matches!(
            p.as_str(),
            "stopping" | "stopped" | "deallocating" | "deallocated"
        ) {
            return Some(Health::Failed(format!("PowerState/{p}")));
        }
    }
    let failed = codes.iter().find(|c| {
        c.to_ascii_lowercase()
            .starts_with("provisioningstate/failed")
    });
    if let Some(f) = failed {
        if power.as_deref() != Some("running") {
            return Some(Health::Failed((*f).to_string()));
        }
    }
    Some(Health::Ok)
}

/// The detail of an Azure spot eviction.
pub const EVICTED: &str = "evicted";

/// The interruption a failed health check means, if any: a spot VM
/// deallocated (`evictionPolicy: Deallocate`) or gone (`Delete`) while it
/// was running was evicted. `code` is the failure's code
/// (`PowerState/deallocated`, `VmMissing`, ...).
fn eviction(spot: bool, code: &str) -> Option<Interruption> {
    let evicted = matches!(
        code,
        "PowerState/deallocated" | "PowerState/deallocating" | "VmMissing"
    );
    (spot && evicted).then(|| Interruption {
        source: InterruptionSource::Provider,
        detail: EVICTED.to_string(),
        not_before: None,
    })
}

/// One health check of a running worker (a spot VM when `spot`): its VM's
/// instance view.
pub(super) async fn step(cx: &Ctx<'_>, mut st: ChainState, spot: bool) -> Result<Step> {
    let interval = cx.config.health_interval;
    let url = cx
        .client
        .instance_view_url(&st.resource_group, &st.names.vm);
    let op = "VirtualMachines_InstanceView";
    let resp = cx
        .client
        .request(Method::GET, &url)
        .class(ApiClass::Read)
        .region(&st.location)
        .operation(op)
        .send()
        .await?;
    let vm = st.names.vm.clone();
    let failure = match resp.status {
        200..=299 => match from_instance_view(&resp.arm_json(op)?) {
            Some(Health::Ok) => {
                st.instance_view_404s = 0;
                return out(&st, Phase::Running, interval, None);
            }
            Some(Health::Failed(code)) => {
                Error::new(ErrorKind::OperationFailed, format!("VM {vm} is {code}"))
                    .with_code(code)
                    .with_provider("azure")
            }
            None => {
                let detail = "instance view without `statuses`";
                return Err(garbled(op, resp.status, detail));
            }
        },
        404 => {
            let found = lookup(cx, &st.resource_group, &st.location, ResourceType::Vm, &vm).await?;
            if let Lookup::Missing = found {
                Error::new(
                    ErrorKind::NotFound,
                    format!("VM {vm} disappeared (deleted outside skyfleet?)"),
                )
                .with_code("VmMissing")
                .with_provider("azure")
            } else {
                st.instance_view_404s += 1;
                if st.instance_view_404s <= cx.config.max_instance_view_404s {
                    let e = resp.error(op);
                    return out(&st, Phase::Running, interval, Some((&e).into()));
                }
                Error::new(
                    ErrorKind::NotFound,
                    format!(
                        "VM {vm} exists but its instance view answered 404 {} times in a row",
                        st.instance_view_404s
                    ),
                )
                .with_code("InstanceViewMissing")
                .with_provider("azure")
            }
        }
        _ => return Err(resp.error(op)),
    };
    let s = fail(&mut st, &failure)?;
    Ok(match eviction(spot, failure.code().unwrap_or_default()) {
        Some(i) => s.with_interruption(i),
        None => s,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn power_states() {
        let v = |codes: &[&str]| json!({"statuses": codes.iter().map(|c| json!({"code": c})).collect::<Vec<_>>()});
        assert_eq!(
            from_instance_view(&v(&["ProvisioningState/succeeded", "PowerState/running"])),
            Some(Health::Ok)
        );
        assert_eq!(
            from_instance_view(&v(&[
                "ProvisioningState/succeeded",
                "PowerState/deallocated"
            ])),
            Some(Health::Failed("PowerState/deallocated".into()))
        );
        assert_eq!(
            from_instance_view(&v(&["ProvisioningState/failed/OSProvisioningTimedOut"])),
            Some(Health::Failed(
                "ProvisioningState/failed/OSProvisioningTimedOut".into()
            ))
        );
        assert_eq!(
            from_instance_view(&v(&[
                "ProvisioningState/failed/OSProvisioningTimedOut",
                "PowerState/running"
            ])),
            Some(Health::Ok)
        );
        assert_eq!(from_instance_view(&json!({"x": 1})), None);
    }

    #[test]
    fn evictions() {
        for code in [
            "PowerState/deallocated",
            "PowerState/deallocating",
            "VmMissing",
        ] {
            let i = eviction(true, code).expect(code);
            assert_eq!(i.source, InterruptionSource::Provider);
            assert_eq!(i.detail, EVICTED);
            assert_eq!(i.not_before, None);
            assert_eq!(eviction(false, code), None, "{code}: a regular VM");
        }
        for code in [
            "PowerState/stopped",
            "ProvisioningState/failed/OSProvisioningTimedOut",
            "InstanceViewMissing",
        ] {
            assert_eq!(eviction(true, code), None, "{code}");
        }
    }
}
