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

use serde_json::Value;

/// What the instance view says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    /// Fine (running or starting).
    Ok,
    /// Failed, with the status code that says so.
    Failed(String),
}

/// Reads an instance view (`GET .../instanceView`).
pub fn from_instance_view(view: &Value) -> Option<Health> {
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
}
