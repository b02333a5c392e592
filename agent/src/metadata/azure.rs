//! Azure's instance metadata service (`Metadata: true`): the bootstrap
//! document in the VM's `userData` (base64), and the attested document's
//! PKCS#7 `signature`.

use serde::Deserialize;
use skyfleet_core::protocol::InterruptionNotice;
use skyfleet_core::provider::{Bootstrap, IdentityProof};

use super::http::MetadataClient;
use super::notice::azure_preempt;
use super::{bootstrap_error, MetadataError};

const INSTANCE_API: &str = "2021-01-01";
const ATTESTED_API: &str = "2020-09-01";
const EVENTS_API: &str = "2020-07-01";

/// Whether `base` answers as Azure's IMDS (a JSON document with `compute`).
pub(super) async fn probe(client: &MetadataClient, base: &str) -> bool {
    let url = format!("{base}/metadata/instance");
    let resp = client
        .once(|c| {
            c.get(&url)
                .header("Metadata", "true")
                .query(&[("api-version", INSTANCE_API)])
        })
        .await;
    match resp {
        Some(r) if r.status().is_success() => r
            .json::<serde_json::Value>()
            .await
            .is_ok_and(|v| v.get("compute").is_some()),
        _ => false,
    }
}

#[derive(Deserialize)]
struct Attested {
    signature: String,
}

/// The bootstrap document and the attested document's signature.
pub(super) async fn identity(
    client: &MetadataClient,
    base: &str,
) -> Result<(Bootstrap, IdentityProof), MetadataError> {
    let ud_url = format!("{base}/metadata/instance/compute/userData");
    let user_data = client
        .fetch_text("user data", |c| {
            c.get(&ud_url)
                .header("Metadata", "true")
                .query(&[("api-version", INSTANCE_API), ("format", "text")])
        })
        .await?;
    if user_data.trim().is_empty() {
        return Err(client.malformed("user data", "the VM has no userData"));
    }
    let bootstrap = Bootstrap::parse_base64(&user_data).map_err(bootstrap_error(client.cloud()))?;
    let att_url = format!("{base}/metadata/attested/document");
    let body = client
        .fetch("attested document", |c| {
            c.get(&att_url)
                .header("Metadata", "true")
                .query(&[("api-version", ATTESTED_API)])
        })
        .await?;
    let attested: Attested = serde_json::from_slice(&body)
        .map_err(|e| client.malformed("attested document", e.to_string()))?;
    Ok((
        bootstrap,
        IdentityProof::AzureAttested {
            signature: attested.signature,
            nonce: None,
        },
    ))
}

/// The `Preempt` scheduled event naming this VM, if one is posted.
pub(super) async fn notice(
    client: &MetadataClient,
    base: &str,
) -> Result<Option<InterruptionNotice>, MetadataError> {
    let name_url = format!("{base}/metadata/instance/compute/name");
    let name = client
        .fetch_text("VM name", |c| {
            c.get(&name_url)
                .header("Metadata", "true")
                .query(&[("api-version", INSTANCE_API), ("format", "text")])
        })
        .await?;
    let name = name.trim();
    let url = format!("{base}/metadata/scheduledevents");
    let body = client
        .fetch_text("scheduled events", |c| {
            c.get(&url)
                .header("Metadata", "true")
                .query(&[("api-version", EVENTS_API)])
        })
        .await?;
    azure_preempt(&body, (!name.is_empty()).then_some(name))
        .map_err(|e| client.malformed("scheduled events", e.to_string()))
}
