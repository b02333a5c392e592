//! The metadata service's part of the control API:
//!
//! - `GET /_mock/trust`: what a verifier trusts (the AWS certificate, the
//!   Google JWKS URL and key ids, the Azure root, intermediate and signer);
//! - `POST /_mock/trust/rotate`: a new Google key and a new Azure
//!   intermediate and signer (see [`super::trust`]); answers the new trust;
//! - `POST /_mock/imds/listen` with `{"project", "zone", "instance"}`: a
//!   plain port serving that instance's Compute Engine metadata at `/`;
//!   answers `{"port", "host", "url"}`; `GET` lists the open ports,
//!   `DELETE /_mock/imds/listen/{port}` closes one.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use super::certs::AZURE_SIGNER;
use super::gce::VmKey;
use super::gce_identity::ISSUER;
use super::listen::ListenError;
use super::trust::Material;
use super::Imds;
use crate::control::json_error;

/// The routes.
pub fn router(imds: Arc<Imds>) -> Router {
    Router::new()
        .route("/_mock/trust", get(trust))
        .route("/_mock/trust/rotate", post(rotate))
        .route("/_mock/imds/listen", post(listen).get(listening))
        .route("/_mock/imds/listen/{port}", delete(close))
        .with_state(imds)
}

fn view(imds: &Imds, m: &Material) -> Response {
    let base = imds.base_url();
    Json(json!({
        "aws": {
            "certificate_pem": m.aws.cert.pem,
            "regions": "*",
            "algorithm": "RSA-SHA256",
        },
        "gcp": {
            "issuer": ISSUER,
            "jwks_url": format!("{base}/oauth2/v3/certs"),
            "certs_url": format!("{base}/oauth2/v1/certs"),
            "kids": [m.google.kid],
        },
        "azure": {
            "root_pem": m.azure_root.issued.pem,
            "intermediate_pem": m.azure.intermediate.issued.pem,
            "intermediate_generation": m.azure.generation,
            "signer_pem": m.azure.signer.cert.pem,
            "signer_cn": AZURE_SIGNER,
        },
    }))
    .into_response()
}

fn unavailable(e: super::TrustError) -> Response {
    tracing::error!(error = %e, "no trust material");
    json_error(503, &format!("the signing keys are not available: {e}"))
}

async fn trust(State(imds): State<Arc<Imds>>) -> Response {
    match imds.trust.material().await {
        Ok(m) => view(&imds, &m),
        Err(e) => unavailable(e),
    }
}

async fn rotate(State(imds): State<Arc<Imds>>) -> Response {
    match imds.trust.rotate().await {
        Ok(m) => view(&imds, &m),
        Err(e) => unavailable(e),
    }
}

/// The body of `POST /_mock/imds/listen`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListenRequest {
    project: String,
    zone: String,
    instance: String,
}

async fn listen(State(imds): State<Arc<Imds>>, body: Bytes) -> Response {
    let de = &mut serde_json::Deserializer::from_slice(&body);
    let req: ListenRequest = match serde_path_to_error::deserialize(de) {
        Ok(r) => r,
        Err(e) => {
            let field = e.path().to_string();
            let msg = if field == "." {
                format!(
                    "the body must be {{\"project\", \"zone\", \"instance\"}}: {}",
                    e.inner()
                )
            } else {
                format!("{field}: {}", e.inner())
            };
            return json_error(400, &msg);
        }
    };
    if imds
        .gce
        .imds_vm(&req.project, &req.zone, &req.instance)
        .is_none()
    {
        return json_error(
            404,
            &format!(
                "no running instance {} in project {}, zone {}",
                super::clip(&req.instance),
                super::clip(&req.project),
                super::clip(&req.zone)
            ),
        );
    }
    let ip = imds.bind_ip();
    let key = VmKey {
        project: req.project,
        zone: req.zone,
        name: req.instance,
    };
    match imds.listeners.open(&imds, key, ip).await {
        Ok(port) => {
            let host = std::net::SocketAddr::new(ip, port).to_string();
            Json(json!({"port": port, "url": format!("http://{host}"), "host": host}))
                .into_response()
        }
        Err(e @ ListenError::Full) => json_error(409, &e.to_string()),
        Err(e) => json_error(500, &e.to_string()),
    }
}

async fn listening(State(imds): State<Arc<Imds>>) -> Response {
    let list: Vec<_> = imds
        .listeners
        .list()
        .into_iter()
        .map(|(port, k)| json!({"port": port, "project": k.project, "zone": k.zone, "instance": k.name}))
        .collect();
    Json(list).into_response()
}

async fn close(State(imds): State<Arc<Imds>>, Path(port): Path<String>) -> Response {
    let Ok(port) = port.parse::<u16>() else {
        return json_error(400, "port: must be a port number");
    };
    if imds.listeners.close_port(port) {
        Json(json!({"closed": port})).into_response()
    } else {
        json_error(404, &format!("no metadata port {port} is open"))
    }
}
