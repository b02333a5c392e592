//! Azure's Instance Metadata Service under `/_imds/azure/{vmId}`:
//! `/metadata/instance` (compute and network, or any path inside them,
//! `format=text` for a leaf), `/metadata/attested/document` (see
//! [`super::attested`]) and `/metadata/scheduledevents` (a `Preempt` event
//! once a Spot VM is being evicted).
//!
//! As Azure answers: every request needs `Metadata: true` and an
//! `api-version` (400 with the newest versions listed otherwise); one
//! carrying `X-Forwarded-For` is 400; errors are JSON `{"error": ...}`.
//! The mock takes any `api-version` shaped `YYYY-MM-DD` from 2017-03-01 on;
//! Azure takes only the versions it has published.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::response::Response;
use http::request::Parts;
use http::{Method, StatusCode};
use serde_json::{json, Value};

use super::facts::AzureVm;
use super::{attested, forwarded, name, plain, query_param, segments, Imds};

/// The versions a 400 for a missing or bad `api-version` names.
const NEWEST_VERSIONS: [&str; 3] = ["2023-07-01", "2021-12-13", "2021-11-15"];

/// Azure's JSON error.
pub(crate) fn error(status: StatusCode, message: &str) -> Response {
    plain(
        status,
        "application/json; charset=utf-8",
        json!({ "error": message }).to_string(),
    )
}

fn version_error(message: &str) -> Response {
    let body = json!({"error": message, "newest-versions": NEWEST_VERSIONS});
    plain(
        StatusCode::BAD_REQUEST,
        "application/json; charset=utf-8",
        body.to_string(),
    )
}

/// Whether `v` is `YYYY-MM-DD` with a real month and day, from 2017-03-01.
pub fn valid_api_version(v: &str) -> bool {
    let b = v.as_bytes();
    let digits = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_digit);
    if b.len() != 10
        || b[4] != b'-'
        || b[7] != b'-'
        || !digits(0..4)
        || !digits(5..7)
        || !digits(8..10)
    {
        return false;
    }
    let month: u8 = v[5..7].parse().unwrap_or(0);
    let day: u8 = v[8..10].parse().unwrap_or(0);
    (1..=12).contains(&month) && (1..=31).contains(&day) && v >= "2017-03-01"
}

/// Any request under `/_imds/azure/`.
pub async fn handle(State(imds): State<Arc<Imds>>, req: Request) -> Response {
    let (req, _) = req.into_parts();
    let (op, mut resp) = serve(&imds, &req).await;
    name(&mut resp, op);
    resp
}

async fn serve(imds: &Imds, req: &Parts) -> (&'static str, Response) {
    if forwarded(&req.headers) {
        return (
            "imds.azure.forwarded",
            error(
                StatusCode::BAD_REQUEST,
                "Bad request. The request contains an X-Forwarded-For header, which is not allowed.",
            ),
        );
    }
    let path = req.uri.path().strip_prefix("/_imds/azure/").unwrap_or("");
    let segs = segments(path);
    let (op, rest) = match segs.as_slice() {
        [_, "metadata", "instance", rest @ ..] => ("imds.azure.instance", rest),
        [_, "metadata", "attested", "document"] => ("imds.azure.attested", &[][..]),
        [_, "metadata", "scheduledevents"] => ("imds.azure.scheduledevents", &[][..]),
        _ => {
            return (
                "imds.azure.unknown",
                error(StatusCode::NOT_FOUND, "Not found"),
            )
        }
    };
    let metadata_ok = req
        .headers
        .get("metadata")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"true"));
    if !metadata_ok {
        return (
            op,
            error(
                StatusCode::BAD_REQUEST,
                "Bad request. Required metadata header not specified",
            ),
        );
    }
    if req.method != Method::GET {
        return (
            op,
            error(StatusCode::METHOD_NOT_ALLOWED, "Method not allowed"),
        );
    }
    let query = req.uri.query();
    match query_param(query, "api-version") {
        None => {
            return (
                op,
                version_error("Bad request. api-version was not specified in the request. For more information refer to aka.ms/azureimds"),
            )
        }
        Some(v) if !valid_api_version(&v) => {
            return (
                op,
                version_error("Bad request. api-version is invalid. For more information refer to aka.ms/azureimds"),
            )
        }
        Some(_) => {}
    }
    let Some(vm) = segs.first().and_then(|id| imds.arm.imds_vm(id)) else {
        return (op, error(StatusCode::NOT_FOUND, "Not found"));
    };
    if op == "imds.azure.scheduledevents" {
        let body = vm.scheduled_events.to_string();
        return (
            op,
            plain(StatusCode::OK, "application/json; charset=utf-8", body),
        );
    }
    if op == "imds.azure.attested" {
        return (op, attested::document(imds, &vm, query).await);
    }
    (op, instance(&vm, rest, query))
}

/// The `compute` and `network` document of `vm`.
pub fn instance_json(vm: &AzureVm) -> Value {
    let tags: Vec<String> = vm.tags.iter().map(|(k, v)| format!("{k}:{v}")).collect();
    let tags_list: Vec<Value> = vm
        .tags
        .iter()
        .map(|(k, v)| json!({"name": k, "value": v}))
        .collect();
    let [publisher, offer, sku, version] = &vm.image;
    let [plan_name, plan_product, plan_publisher] = &vm.plan;
    let interfaces: Vec<Value> = vm
        .nics
        .iter()
        .map(|(ips, mac)| {
            let addrs: Vec<Value> = ips
                .iter()
                .map(|ip| json!({"privateIpAddress": ip, "publicIpAddress": ""}))
                .collect();
            json!({"ipv4": {"ipAddress": addrs, "subnet": []}, "ipv6": {"ipAddress": []}, "macAddress": mac})
        })
        .collect();
    json!({
        "compute": {
            "azEnvironment": "AzurePublicCloud",
            "customData": "",
            "isHostCompatibilityLayerVm": "false",
            "licenseType": vm.license_type,
            "location": vm.location,
            "name": vm.name,
            "offer": offer,
            "osProfile": {"computerName": vm.computer_name},
            "osType": vm.os_type,
            "placementGroupId": "",
            "plan": {"name": plan_name, "product": plan_product, "publisher": plan_publisher},
            "platformFaultDomain": "0",
            "platformUpdateDomain": "0",
            "priority": vm.priority,
            "provider": "Microsoft.Compute",
            "publisher": publisher,
            "resourceGroupName": vm.resource_group,
            "resourceId": vm.resource_id,
            "sku": sku,
            "subscriptionId": vm.subscription,
            "tags": tags.join(";"),
            "tagsList": tags_list,
            "userData": vm.user_data.clone().unwrap_or_default(),
            "version": version,
            "vmId": vm.vm_id,
            "vmScaleSetName": "",
            "vmSize": vm.vm_size,
            "zone": vm.zone,
        },
        "network": {"interface": interfaces},
    })
}

/// `/metadata/instance[/path]`: JSON, or a leaf as text with `format=text`.
fn instance(vm: &AzureVm, path: &[&str], query: Option<&str>) -> Response {
    let doc = instance_json(vm);
    let mut node = &doc;
    for seg in path {
        let next = match node {
            Value::Object(m) => m.get(*seg),
            Value::Array(a) => seg.parse::<usize>().ok().and_then(|i| a.get(i)),
            _ => None,
        };
        match next {
            Some(n) => node = n,
            None => return error(StatusCode::NOT_FOUND, "Not found"),
        }
    }
    let text = match query_param(query, "format").as_deref() {
        None | Some("json") => false,
        Some("text") => true,
        Some(_) => {
            return error(
                StatusCode::BAD_REQUEST,
                "Bad request. Query parameter format must be json or text",
            )
        }
    };
    match (text, node) {
        (true, Value::String(s)) => plain(StatusCode::OK, "text/plain; charset=utf-8", s.clone()),
        (true, Value::Object(_) | Value::Array(_)) => error(
            StatusCode::BAD_REQUEST,
            "Bad request. Query parameter format=text is supported for leaf nodes only",
        ),
        (true, other) => plain(
            StatusCode::OK,
            "text/plain; charset=utf-8",
            other.to_string(),
        ),
        (false, v) => plain(
            StatusCode::OK,
            "application/json; charset=utf-8",
            v.to_string(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_versions_are_dates_from_2017() {
        assert!(valid_api_version("2021-02-01"));
        assert!(valid_api_version("2017-03-01"));
        for bad in [
            "2016-12-31",
            "2021-13-01",
            "2021-02-00",
            "2021-2-01",
            "latest",
            "",
            "2021-02-01x",
        ] {
            assert!(!valid_api_version(bad), "{bad}");
        }
    }
}
