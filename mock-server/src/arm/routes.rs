//! The ARM route table: which methods each addressed target allows, and
//! which handler answers each (target, method).

use axum::response::Response;
use http::Method;
use serde_json::Value;

use super::config::ArmConfig;
use super::error::ArmError;
use super::lro;
use super::path::Target;
use super::power;
use super::request::Req;
use super::resources::{delete, groups, patch, put, read, subnets};
use super::store::{Kind, Partition};
use super::throttle::Class;

/// Whether `target` answers method `m` (else 405 `MethodNotAllowed`).
pub fn allowed(target: &Target, m: &Method) -> bool {
    let read = *m == Method::GET;
    match target {
        Target::ResourceGroup { .. } => {
            read || *m == Method::HEAD
                || *m == Method::PUT
                || *m == Method::PATCH
                || *m == Method::DELETE
        }
        Target::Resource { .. } => {
            read || *m == Method::PUT || *m == Method::PATCH || *m == Method::DELETE
        }
        Target::Subnet { .. } => read || *m == Method::PUT,
        Target::VmAction { .. } => *m == Method::POST,
        Target::InstanceView { .. }
        | Target::List { .. }
        | Target::OperationStatus { .. }
        | Target::OperationResult { .. } => read,
    }
}

/// The subscription bucket a method draws from.
pub fn class(m: &Method) -> Class {
    match *m {
        Method::GET | Method::HEAD => Class::Reads,
        Method::DELETE => Class::Deletes,
        _ => Class::Writes,
    }
}

/// Whether a request starts a long-running operation (a `fail_operation`
/// fault can only act inside those).
pub fn is_asynchronous(target: &Target, m: &Method) -> bool {
    matches!(
        (target, m),
        (Target::Resource { .. }, &Method::PUT | &Method::DELETE)
            | (Target::Subnet { .. }, &Method::PUT)
            | (Target::VmAction { .. }, &Method::POST)
    )
}

/// Whether a request counts against a `not_found_reads` fault (the reads of
/// a resource, and the PUT that makes it).
pub fn counts_reads(target: &Target, m: &Method) -> bool {
    matches!(
        (target, m),
        (Target::Resource { .. }, &Method::PUT | &Method::GET) | (Target::InstanceView { .. }, _)
    )
}

/// Runs the handler for `target` and method `m` (already [`allowed`]).
pub fn route(
    p: &mut Partition,
    req: &Req,
    cfg: &ArmConfig,
    target: Target,
    m: &Method,
    body: &Value,
) -> Result<Response, ArmError> {
    match target {
        Target::ResourceGroup { rg } => match *m {
            Method::PUT => groups::put(p, req, cfg, &rg, body),
            Method::PATCH => patch::patch_group(p, req, &rg, body),
            Method::DELETE => groups::delete(p, req, cfg, &rg),
            _ => groups::get(p, req, &rg, *m == Method::HEAD),
        },
        Target::Resource { kind, rg, name } => match *m {
            Method::PUT => put::put(p, req, cfg, kind, &rg, &name, body),
            Method::PATCH => patch::patch(p, req, kind, &rg, &name, body),
            Method::DELETE => delete::delete(p, req, cfg, kind, &rg, &name),
            _ => read::get(p, req, kind, &rg, &name, false),
        },
        Target::Subnet { rg, vnet, name } => match *m {
            Method::PUT => subnets::put(p, req, cfg, &rg, &vnet, &name, body),
            _ => subnets::get(p, req, &rg, &vnet, &name),
        },
        Target::VmAction { rg, name, action } => power::act(p, req, cfg, &rg, &name, action),
        Target::InstanceView { rg, name } => {
            read::get(p, req, Kind::VirtualMachine, &rg, &name, true)
        }
        Target::List { kind, rg } => {
            let lag = req.scaled(super::config::secs(cfg.consistency_window_s));
            read::list(p, req, kind, rg.as_deref(), lag)
        }
        Target::OperationStatus { id } => lro::status(p, req, cfg, &id),
        Target::OperationResult { id } => lro::result(p, req, cfg, &id),
    }
}
