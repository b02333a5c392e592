//! Compute Engine's metadata server for one instance, under
//! `/_imds/gcp/{project}/{zone}/{instance}` or at `/` of the instance's own
//! port ([`super::listen`]): `computeMetadata/v1/` with the `instance/` and
//! `project/` trees, `?recursive=true` and `?alt=json`, the service
//! account's `token` and `identity` (see [`super::gce_identity`]).
//!
//! Every `computeMetadata` request needs `Metadata-Flavor: Google` (403
//! without, as Compute Engine answers), and every answer carries it back
//! (google-auth checks it). Directory keys in recursive JSON are
//! lowerCamelCase, as Compute Engine writes them; attribute keys are kept.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::response::Response;
use http::request::Parts;
use http::{HeaderValue, StatusCode};
use serde_json::{json, Map, Value};

use super::facts::GceVm;
use super::{forwarded, gce_identity, name, plain, query_param, segments, Imds};
use crate::ctx::DropConnection;

/// The header every metadata request needs and every answer carries.
pub const FLAVOR: &str = "metadata-flavor";

/// Where the instance is: project, zone, name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct VmKey {
    /// Project id.
    pub project: String,
    /// Zone.
    pub zone: String,
    /// Instance name.
    pub name: String,
}

/// What to answer for an instance that is gone or not running.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Missing {
    /// 404 (the path-prefixed service).
    NotFound,
    /// Close the connection (the per-VM port: as if nothing listened).
    Drop,
}

/// A stable 12-digit project number for a project id.
pub fn project_number(project: &str) -> u64 {
    let h = project.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    100_000_000_000 + h % 900_000_000_000
}

/// The service account email the instance runs as (`default` is the
/// project's default compute account), if it has one.
pub fn service_account_email(vm: &GceVm) -> Option<String> {
    let (email, _) = vm.service_account.as_ref()?;
    Some(if email.is_empty() || email == "default" {
        format!(
            "{}-compute@developer.gserviceaccount.com",
            project_number(&vm.project)
        )
    } else {
        email.clone()
    })
}

pub(crate) fn respond(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<axum::body::Body>,
) -> Response {
    let mut resp = plain(status, content_type, body);
    let h = resp.headers_mut();
    h.insert(FLAVOR, HeaderValue::from_static("Google"));
    h.insert(
        http::header::SERVER,
        HeaderValue::from_static("Metadata Server for VM"),
    );
    resp
}

fn error(status: StatusCode, message: &str) -> Response {
    respond(status, "text/html; charset=UTF-8", format!("{message}\n"))
}

/// The `instance/` and `project/` trees.
fn tree(vm: &GceVm) -> Value {
    let number = project_number(&vm.project);
    let attributes: Map<String, Value> = vm
        .attributes
        .iter()
        .map(|(k, v)| (k.clone(), Value::from(v.as_str())))
        .collect();
    let mut accounts = Map::new();
    if let (Some(email), Some((_, scopes))) = (service_account_email(vm), &vm.service_account) {
        let sa = json!({"aliases": ["default"], "email": email, "scopes": scopes});
        accounts.insert(email, sa.clone());
        accounts.insert("default".into(), sa);
    }
    let nics: Vec<Value> = vm
        .network_ip
        .iter()
        .map(|ip| json!({"ip": ip, "network": format!("projects/{number}/networks/default")}))
        .collect();
    let flag = |b: bool| if b { "TRUE" } else { "FALSE" };
    json!({
        "instance": {
            "attributes": attributes,
            "cpu-platform": "Intel Broadwell",
            "description": vm.description.clone().unwrap_or_default(),
            "hostname": format!("{}.{}.c.{}.internal", vm.name, vm.zone, vm.project),
            "id": vm.id,
            "machine-type": format!("projects/{number}/machineTypes/{}", vm.machine_type),
            "name": vm.name,
            "network-interfaces": nics,
            "preempted": flag(vm.preempted),
            "scheduling": {"preemptible": flag(vm.preemptible)},
            "service-accounts": accounts,
            "tags": vm.tags,
            "zone": format!("projects/{number}/zones/{}", vm.zone),
        },
        "project": {
            "attributes": {},
            "numeric-project-id": number,
            "project-id": vm.project,
        }
    })
}

/// `network-interfaces` -> `networkInterfaces`.
fn camel(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    let mut up = false;
    for c in key.chars() {
        if c == '-' {
            up = true;
        } else if up {
            out.extend(c.to_uppercase());
            up = false;
        } else {
            out.push(c);
        }
    }
    out
}

/// Directories whose keys are names (attribute keys, service account
/// emails), kept as they are in recursive JSON.
fn named(dir: &str) -> bool {
    dir == "attributes" || dir == "service-accounts"
}

/// A directory as recursive JSON: keys camelCased except names.
fn recursive(v: &Value, names: bool) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| {
                    let key = if names { k.clone() } else { camel(k) };
                    (key, recursive(v, !names && named(k)))
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(|i| recursive(i, false)).collect()),
        other => other.clone(),
    }
}

/// A leaf as text: strings as they are, lists one per line (tags as
/// JSON, as Compute Engine writes them), numbers in decimal.
fn leaf_text(key: &str, v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Array(items) if key != "tags" => items
            .iter()
            .map(|i| i.as_str().map_or_else(|| i.to_string(), str::to_string))
            .collect::<Vec<_>>()
            .join("\n"),
        other => other.to_string(),
    }
}

/// `/_imds/gcp/{project}/{zone}/{instance}/...`.
pub async fn handle_prefixed(State(imds): State<Arc<Imds>>, req: Request) -> Response {
    let (req, _) = req.into_parts();
    let path = req.uri.path().strip_prefix("/_imds/gcp/").unwrap_or("");
    let segs = segments(path);
    let (key, rest) = match segs.as_slice() {
        [project, zone, name, rest @ ..] => (
            VmKey {
                project: project.to_string(),
                zone: zone.to_string(),
                name: name.to_string(),
            },
            rest.to_vec(),
        ),
        _ => {
            let mut resp = error(StatusCode::NOT_FOUND, "Not Found");
            name(&mut resp, "imds.gcp.unknown");
            return resp;
        }
    };
    serve(&imds, &key, &rest, &req, Missing::NotFound).await
}

/// Serves `rest` (the path below the instance's root) for `key`.
pub async fn serve(
    imds: &Imds,
    key: &VmKey,
    rest: &[&str],
    req: &Parts,
    missing: Missing,
) -> Response {
    let (op, mut resp) = answer(imds, key, rest, req, missing).await;
    name(&mut resp, op);
    resp
}

async fn answer(
    imds: &Imds,
    key: &VmKey,
    rest: &[&str],
    req: &Parts,
    missing: Missing,
) -> (&'static str, Response) {
    if forwarded(&req.headers) {
        return (
            "imds.gcp.forwarded",
            error(
                StatusCode::FORBIDDEN,
                "Forbidden: X-Forwarded-For header is not allowed.",
            ),
        );
    }
    let Some(vm) = imds.gce.imds_vm(&key.project, &key.zone, &key.name) else {
        let mut resp = error(StatusCode::NOT_FOUND, "Not Found");
        if missing == Missing::Drop {
            resp.extensions_mut().insert(DropConnection);
        }
        return ("imds.gcp.missing", resp);
    };
    let path = match rest {
        [] => {
            return (
                "imds.gcp.root",
                respond(StatusCode::OK, "application/text", "computeMetadata/\n"),
            )
        }
        ["computeMetadata", path @ ..] => path,
        _ => {
            return (
                "imds.gcp.unknown",
                error(StatusCode::NOT_FOUND, "Not Found"),
            )
        }
    };
    let flavor_ok = req
        .headers
        .get(FLAVOR)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"Google"));
    if !flavor_ok {
        return (
            "imds.gcp.forbidden",
            error(
                StatusCode::FORBIDDEN,
                "Missing Metadata-Flavor:Google header.",
            ),
        );
    }
    if req.method != http::Method::GET && req.method != http::Method::HEAD {
        return (
            "imds.gcp.method",
            error(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed"),
        );
    }
    let path = match path {
        [] => {
            return (
                "imds.gcp.versions",
                respond(StatusCode::OK, "application/text", "v1/\n"),
            )
        }
        ["v1", path @ ..] => path,
        _ => {
            return (
                "imds.gcp.unknown",
                error(StatusCode::NOT_FOUND, "Not Found"),
            )
        }
    };
    let query = req.uri.query();
    if let ["instance", "service-accounts", sa, last @ ("identity" | "token")] = path {
        let known = service_account_email(&vm).is_some_and(|e| *sa == "default" || *sa == e);
        if !known {
            return (
                "imds.gcp.service-account",
                error(StatusCode::NOT_FOUND, "Not Found"),
            );
        }
        return if *last == "identity" {
            (
                "imds.gcp.identity",
                gce_identity::identity(imds, &vm, query).await,
            )
        } else {
            ("imds.gcp.token", gce_identity::access_token())
        };
    }
    ("imds.gcp.metadata", read(&tree(&vm), path, query))
}

/// Whether a node is a directory: an object, or a non-empty list of
/// objects (`network-interfaces/`).
fn is_dir(v: &Value) -> bool {
    match v {
        Value::Object(_) => true,
        Value::Array(items) => !items.is_empty() && items.iter().all(Value::is_object),
        _ => false,
    }
}

/// A path of the tree: a directory lists its children (or is JSON with
/// `recursive=true`), a leaf is text (or JSON with `alt=json`).
fn read(tree: &Value, path: &[&str], query: Option<&str>) -> Response {
    let mut node = tree;
    for seg in path {
        let child = match node {
            Value::Object(m) => m.get(*seg),
            // Lists of directories (network interfaces) by index.
            Value::Array(items) if items.iter().all(Value::is_object) => {
                seg.parse::<usize>().ok().and_then(|i| items.get(i))
            }
            _ => None,
        };
        match child {
            Some(child) => node = child,
            None => return error(StatusCode::NOT_FOUND, "Not Found"),
        }
    }
    let recursive_asked =
        query_param(query, "recursive").is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let alt_json = query_param(query, "alt").is_some_and(|v| v == "json");
    match node {
        Value::Object(_) | Value::Array(_) if recursive_asked && is_dir(node) => {
            let names = path.last().is_some_and(|d| named(d));
            let body = recursive(node, names).to_string();
            respond(StatusCode::OK, "application/json", body)
        }
        Value::Array(items) if is_dir(node) => {
            let list: String = (0..items.len()).map(|i| format!("{i}/\n")).collect();
            respond(StatusCode::OK, "application/text", list)
        }
        Value::Object(children) => {
            let list: String = children
                .iter()
                .map(|(k, v)| {
                    if is_dir(v) {
                        format!("{k}/\n")
                    } else {
                        format!("{k}\n")
                    }
                })
                .collect();
            respond(StatusCode::OK, "application/text", list)
        }
        leaf if alt_json => respond(StatusCode::OK, "application/json", leaf.to_string()),
        leaf => {
            let key = path.last().copied().unwrap_or_default();
            respond(StatusCode::OK, "application/text", leaf_text(key, leaf))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_camel_cased_but_attributes_kept() {
        let v = json!({"network-interfaces": [{"ip": "x"}], "attributes": {"my-key": "v"},
            "service-accounts": {"a-b@x": {"email": "a-b@x"}}});
        let r = recursive(&v, false);
        assert_eq!(r["networkInterfaces"][0]["ip"], "x");
        assert_eq!(r["attributes"]["my-key"], "v");
        assert_eq!(r["serviceAccounts"]["a-b@x"]["email"], "a-b@x");
        assert_eq!(camel("numeric-project-id"), "numericProjectId");
    }

    #[test]
    fn project_numbers_are_stable_twelve_digit_numbers() {
        let n = project_number("my-project");
        assert_eq!(n, project_number("my-project"));
        assert_ne!(n, project_number("my-project2"));
        assert_eq!(n.to_string().len(), 12);
    }
}
