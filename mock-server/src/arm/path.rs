//! Parsing of ARM request paths into what they address. ARM treats path
//! segments (`resourceGroups`, `Microsoft.Network`, names) case-insensitively;
//! so does this parser.

use super::power::PowerAction;
use super::store::Kind;

/// What an ARM path addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// `/subscriptions/{s}/resourceGroups/{rg}`.
    ResourceGroup {
        /// Resource group name as sent.
        rg: String,
    },
    /// `/subscriptions/{s}/resourceGroups/{rg}/providers/{ns}/{type}/{name}`.
    Resource {
        /// Kind of resource.
        kind: Kind,
        /// Resource group name as sent.
        rg: String,
        /// Resource name as sent.
        name: String,
    },
    /// `.../virtualNetworks/{vnet}/subnets/{name}`.
    Subnet {
        /// Resource group.
        rg: String,
        /// Virtual network name.
        vnet: String,
        /// Subnet name.
        name: String,
    },
    /// `/subscriptions/{s}[/resourceGroups/{rg}]/providers/{ns}/{type}`: a
    /// list of one kind, in one group or the whole subscription.
    List {
        /// Kind listed.
        kind: Kind,
        /// The group, or `None` for the subscription.
        rg: Option<String>,
    },
    /// `.../virtualMachines/{name}/instanceView`.
    InstanceView {
        /// Resource group.
        rg: String,
        /// VM name.
        name: String,
    },
    /// `.../virtualMachines/{name}/{action}`: a power action (POST).
    VmAction {
        /// Resource group.
        rg: String,
        /// VM name.
        name: String,
        /// The action.
        action: PowerAction,
    },
    /// `/subscriptions/{s}/providers/{ns}/locations/{loc}/operations/{id}`
    /// (or `DiskOperations`): the `Azure-AsyncOperation` status resource.
    OperationStatus {
        /// Operation id.
        id: String,
    },
    /// `/subscriptions/{s}/providers/{ns}/locations/{loc}/operationResults/{id}`:
    /// the `Location` URL.
    OperationResult {
        /// Operation id.
        id: String,
    },
}

/// A parse failure: ARM's code and message for a path it does not serve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoRoute {
    /// ARM error code.
    pub code: &'static str,
    /// Message.
    pub message: String,
}

/// Splits `/subscriptions/{s}/...` into the subscription id and the target.
/// `None` for the subscription when the path does not even name one.
pub fn parse(path: &str) -> (Option<&str>, Result<Target, NoRoute>) {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let sub = match segs.as_slice() {
        [first, sub, ..] if first.eq_ignore_ascii_case("subscriptions") && !sub.is_empty() => {
            Some(*sub)
        }
        _ => None,
    };
    let Some(sub) = sub else {
        return (None, Err(no_route(path)));
    };
    // `segs` has at least two elements: the match above bound `[first, sub, ..]`.
    let rest = &segs[2..];
    (Some(sub), target(rest, path))
}

fn eq(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
}

fn no_route(path: &str) -> NoRoute {
    NoRoute {
        code: "NotFound",
        message: format!("The requested path '{path}' was not found."),
    }
}

fn bad_type(ns: &str, ty: &str) -> NoRoute {
    NoRoute {
        code: "InvalidResourceType",
        message: format!("The resource type '{ty}' could not be found in the namespace '{ns}'."),
    }
}

fn target(rest: &[&str], path: &str) -> Result<Target, NoRoute> {
    if rest.iter().any(|s| s.is_empty()) {
        return Err(no_route(path));
    }
    match rest {
        [rg_kw, rg] if eq(rg_kw, "resourceGroups") => {
            Ok(Target::ResourceGroup { rg: rg.to_string() })
        }
        [prov, _ns, loc_kw, _loc, ops, id] if eq(prov, "providers") && eq(loc_kw, "locations") => {
            if eq(ops, "operations") || eq(ops, "DiskOperations") {
                Ok(Target::OperationStatus { id: id.to_string() })
            } else if eq(ops, "operationResults") {
                Ok(Target::OperationResult { id: id.to_string() })
            } else {
                Err(no_route(path))
            }
        }
        [prov, ns, ty] if eq(prov, "providers") => match Kind::from_type(ns, ty) {
            Some(kind) => Ok(Target::List { kind, rg: None }),
            None => Err(bad_type(ns, ty)),
        },
        [rg_kw, rg, prov, ns, ty] if eq(rg_kw, "resourceGroups") && eq(prov, "providers") => {
            match Kind::from_type(ns, ty) {
                Some(kind) => Ok(Target::List {
                    kind,
                    rg: Some(rg.to_string()),
                }),
                None => Err(bad_type(ns, ty)),
            }
        }
        [rg_kw, rg, prov, ns, ty, name, tail @ ..]
            if eq(rg_kw, "resourceGroups") && eq(prov, "providers") =>
        {
            let Some(kind) = Kind::from_type(ns, ty) else {
                return Err(bad_type(ns, ty));
            };
            let (rg, name) = (rg.to_string(), name.to_string());
            match (kind, tail) {
                (_, []) => Ok(Target::Resource { kind, rg, name }),
                (Kind::VirtualNetwork, [sub_kw, sn]) if eq(sub_kw, "subnets") => {
                    Ok(Target::Subnet {
                        rg,
                        vnet: name,
                        name: sn.to_string(),
                    })
                }
                (Kind::VirtualMachine, [iv]) if eq(iv, "instanceView") => {
                    Ok(Target::InstanceView { rg, name })
                }
                (Kind::VirtualMachine, [act]) => match PowerAction::parse(act) {
                    Some(action) => Ok(Target::VmAction { rg, name, action }),
                    None => Err(NoRoute {
                        code: "InvalidResourceType",
                        message: format!("The resource type path '{path}' is not supported."),
                    }),
                },
                _ => Err(NoRoute {
                    code: "InvalidResourceType",
                    message: format!("The resource type path '{path}' is not supported."),
                }),
            }
        }
        _ => Err(no_route(path)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_resources_case_insensitively() {
        let (sub, t) = parse(
            "/subscriptions/S1/resourcegroups/rg/providers/microsoft.compute/virtualMachines/vm1",
        );
        assert_eq!(sub, Some("S1"));
        assert_eq!(
            t,
            Ok(Target::Resource {
                kind: Kind::VirtualMachine,
                rg: "rg".into(),
                name: "vm1".into()
            })
        );
        let (_, t) = parse(
            "/subscriptions/s/providers/Microsoft.Compute/locations/eastus/DiskOperations/abc",
        );
        assert_eq!(t, Ok(Target::OperationStatus { id: "abc".into() }));
        let (_, t) = parse("/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/virtualNetworks/v/subnets/d");
        assert!(matches!(t, Ok(Target::Subnet { .. })));
        let (_, t) = parse("/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/v/POWEROFF");
        assert!(matches!(
            t,
            Ok(Target::VmAction {
                action: PowerAction::PowerOff,
                ..
            })
        ));
        assert!(parse("/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/v/reimage2")
            .1
            .is_err());
        assert!(parse("/subscriptions//x").1.is_err());
        assert!(
            parse("/subscriptions/s/resourceGroups/rg/providers/Microsoft.Foo/bars/b")
                .1
                .is_err()
        );
    }
}
