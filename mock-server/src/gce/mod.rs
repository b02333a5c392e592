//! Compute Engine (`/compute/v1/projects/{project}/zones/{zone}/...`) and the
//! Google OAuth token endpoint (`POST /token`).
//!
//! Layout, one concept per module:
//! - `config`: [`GceConfig`], durations and the throttle model;
//! - `request`: the path every request takes (auth, quota, faults, method);
//! - `spec`: the body `instances.insert` takes, validated; `bulk`: the body
//!   of `instances.bulkInsert`;
//! - `instances`: the Instance record and its wire shape;
//! - `operations`: the Operation resource;
//! - `methods`: the `compute.instances.*` and `compute.zoneOperations.*`
//!   methods;
//! - `lifecycle`: instance status over time, derived from timestamps;
//! - `filters`: the `filter` parameter of lists;
//! - `throttle`: per-minute quota windows; `error`: Google's error JSON;
//! - `links`: absolute links against the request's host; `store`: state by
//!   project; `token`: `POST /token`.
//!
//! Fault rules use Compute's discovery method ids as operation names:
//! `compute.instances.insert`, `.bulkInsert`, `.get`, `.list`,
//! `.aggregatedList`, `.delete`, `.start`, `.stop`, `.suspend`, `.resume`,
//! `.setLabels`, `compute.zoneOperations.get`, `.list`, `.wait`; the
//! resource is the instance (or operation) name, empty for `bulkInsert` and
//! `aggregatedList`. `fail_operation` makes the operation end
//! `DONE` with the error (and no instance remains after a failed insert);
//! `not_found_reads` on an insert hides the new instance from the next N
//! `instances.get`.

mod bulk;
mod config;
mod error;
mod filters;
mod instances;
mod label_set;
mod lifecycle;
mod links;
mod methods;
pub(crate) mod operations;
mod out_of_band;
mod request;
mod spec;
mod spot;
pub(crate) mod store;
mod throttle;
mod token;

use std::sync::{Arc, RwLock};
use std::time::Instant;

use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};

use crate::ctx::{Cloud, Ctx, OperationName, ResourceView};

pub use config::{AuthorizedUser, GceConfig, GceThrottle, MAX_AUTHORIZED_USERS};
pub use error::error_response;
pub use links::Https;

use request::Action;
use throttle::Group;

/// The Compute Engine part of the mock.
pub struct Gce {
    ctx: Ctx,
    config: RwLock<GceConfig>,
    store: store::Store,
}

/// A route handler serving one Compute method.
fn method(
    gce: &Arc<Gce>,
    id: &'static str,
    group: Group,
    action: Action,
) -> impl Fn(Request) -> std::pin::Pin<Box<dyn std::future::Future<Output = Response> + Send>>
       + Clone
       + Send
       + Sync
       + 'static {
    let gce = Arc::clone(gce);
    move |req: Request| {
        let gce = Arc::clone(&gce);
        Box::pin(async move { gce.serve(id, group, req, action).await })
    }
}

/// The answer to a path (or method) Compute does not have.
async fn unknown(req: Request) -> Response {
    let msg = format!(
        "The requested URL {} was not found on this server.",
        req.uri().path()
    );
    let mut resp = error::GceError::api(404, "notFound", &msg).into_response();
    resp.extensions_mut()
        .insert(OperationName("compute.unknown".to_string()));
    resp
}

impl Gce {
    /// The store (for snapshots).
    pub(crate) fn store(&self) -> &store::Store {
        &self.store
    }

    /// A new, empty Compute Engine with default settings.
    pub fn new(ctx: Ctx) -> Arc<Self> {
        Arc::new(Gce {
            ctx,
            config: RwLock::new(GceConfig::default()),
            store: store::Store::default(),
        })
    }

    /// The routes: Compute under `/compute/v1/projects/...`, `POST /token`,
    /// and a Google-format 404 for any other `/compute/v1/` path.
    pub fn router(self: &Arc<Self>) -> axum::Router {
        const INSTANCES: &str = "/compute/v1/projects/{project}/zones/{zone}/instances";
        const OPERATION: &str = "/compute/v1/projects/{project}/zones/{zone}/operations/{op}";
        let token = {
            let gce = Arc::clone(self);
            move |req: Request| {
                let gce = Arc::clone(&gce);
                async move { gce.serve_token(req).await }
            }
        };
        axum::Router::new()
            .route(
                INSTANCES,
                post(method(
                    self,
                    "compute.instances.insert",
                    Group::Queries,
                    methods::instances::insert,
                ))
                .get(method(
                    self,
                    "compute.instances.list",
                    Group::Lists,
                    methods::instances::list,
                ))
                .fallback(unknown),
            )
            .route(
                &format!("{INSTANCES}/bulkInsert"),
                post(method(
                    self,
                    "compute.instances.bulkInsert",
                    Group::Queries,
                    methods::bulk::bulk_insert,
                ))
                .fallback(unknown),
            )
            .route(
                &format!("{INSTANCES}/{{name}}"),
                get(method(
                    self,
                    "compute.instances.get",
                    Group::Reads,
                    methods::instances::get,
                ))
                .delete(method(
                    self,
                    "compute.instances.delete",
                    Group::Queries,
                    methods::power::delete,
                ))
                .fallback(unknown),
            )
            .route(
                &format!("{INSTANCES}/{{name}}/start"),
                post(method(
                    self,
                    "compute.instances.start",
                    Group::Queries,
                    methods::power::start,
                ))
                .fallback(unknown),
            )
            .route(
                &format!("{INSTANCES}/{{name}}/setLabels"),
                post(method(
                    self,
                    "compute.instances.setLabels",
                    Group::Queries,
                    methods::labels::set_labels,
                ))
                .fallback(unknown),
            )
            .route(
                &format!("{INSTANCES}/{{name}}/stop"),
                post(method(
                    self,
                    "compute.instances.stop",
                    Group::Queries,
                    methods::power::stop,
                ))
                .fallback(unknown),
            )
            .route(
                &format!("{INSTANCES}/{{name}}/suspend"),
                post(method(
                    self,
                    "compute.instances.suspend",
                    Group::Queries,
                    methods::power::suspend,
                ))
                .fallback(unknown),
            )
            .route(
                &format!("{INSTANCES}/{{name}}/resume"),
                post(method(
                    self,
                    "compute.instances.resume",
                    Group::Queries,
                    methods::power::resume,
                ))
                .fallback(unknown),
            )
            .route(
                "/compute/v1/projects/{project}/aggregated/instances",
                get(method(
                    self,
                    "compute.instances.aggregatedList",
                    Group::Lists,
                    methods::aggregated::aggregated_list,
                ))
                .fallback(unknown),
            )
            .route(
                OPERATION,
                get(method(
                    self,
                    "compute.zoneOperations.get",
                    Group::OperationReads,
                    methods::operations::get,
                ))
                .fallback(unknown),
            )
            .route(
                "/compute/v1/projects/{project}/zones/{zone}/operations",
                get(method(
                    self,
                    "compute.zoneOperations.list",
                    Group::OperationReads,
                    methods::operations::list,
                ))
                .fallback(unknown),
            )
            .route(
                &format!("{OPERATION}/wait"),
                post(method(
                    self,
                    "compute.zoneOperations.wait",
                    Group::OperationReads,
                    methods::operations::wait,
                ))
                .fallback(unknown),
            )
            .route("/token", post(token).fallback(unknown))
            .route("/compute/v1", any(unknown))
            .route("/compute/v1/{*rest}", any(unknown))
    }

    /// The settings in force.
    pub fn config(&self) -> GceConfig {
        self.config
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Applies new settings; they govern changes made from now on.
    pub fn set_config(&self, config: GceConfig) {
        *self.config.write().unwrap_or_else(|e| e.into_inner()) = config;
    }

    /// Every live instance, for `GET /_mock/resources`.
    pub fn resources(&self) -> Vec<ResourceView> {
        let now = Instant::now();
        self.store
            .each(|(project, p)| {
                p.zones
                    .iter()
                    .flat_map(|(zone, z)| z.values().map(move |i| (zone, i)))
                    .filter(|(_, i)| i.live(now))
                    .map(|(zone, i)| ResourceView {
                        cloud: Cloud::Gcp,
                        partition: project.clone(),
                        kind: "instance".to_string(),
                        id: i.id.to_string(),
                        name: i.spec.name.clone(),
                        state: i.status(now).as_str().to_string(),
                        tags: i.spec.labels.to_map(),
                        created: i.created(),
                        metadata_path: Some(format!(
                            "/_imds/gcp/{project}/{zone}/{}",
                            i.spec.name
                        )),
                        capacity_type: crate::capacity::capacity_type(i.spec.is_spot()),
                        location: Some(zone.clone()),
                        instance_type: Some(i.spec.machine_type_name().to_string()),
                    })
                    .collect::<Vec<_>>()
            })
            .into_iter()
            .flatten()
            .collect()
    }

    /// What the metadata service serves for instance `name` in
    /// `project`/`zone`: `None` unless it exists and is `RUNNING`.
    pub fn imds_vm(
        &self,
        project: &str,
        zone: &str,
        name: &str,
    ) -> Option<crate::imds::facts::GceVm> {
        let now = Instant::now();
        self.store.read(project, |p| {
            let i = p?.instance(zone, name, now)?;
            (i.status(now) == lifecycle::Status::Running).then(|| i.imds_facts(project, now))
        })
    }

    /// Clears one project (`scope` is a project id), or every project.
    pub fn reset(&self, scope: Option<&str>) {
        self.store.clear(scope);
    }
}
