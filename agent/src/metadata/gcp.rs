//! Compute Engine's metadata server (`Metadata-Flavor: Google`): the
//! bootstrap document in the instance attribute `taskcluster`, and an
//! identity token (`format=full`) whose audience is the manager's root
//! URL, the audience the GCP provider verifies by default.

use skyfleet_core::protocol::InterruptionNotice;
use skyfleet_core::provider::bootstrap::GCE_METADATA_KEY;
use skyfleet_core::provider::{Bootstrap, IdentityProof};

use super::http::MetadataClient;
use super::notice::gce_preempted;
use super::{bootstrap_error, MetadataError};

const FLAVOR: &str = "Metadata-Flavor";

/// Whether `base` answers as Compute Engine's metadata server (it echoes
/// `Metadata-Flavor: Google`).
pub(super) async fn probe(client: &MetadataClient, base: &str) -> bool {
    let url = format!("{base}/computeMetadata/v1/");
    let resp = client.once(|c| c.get(&url).header(FLAVOR, "Google")).await;
    resp.is_some_and(|r| {
        r.status().is_success()
            && r.headers()
                .get(FLAVOR)
                .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"Google"))
    })
}

/// The bootstrap document and an identity token for its root URL.
pub(super) async fn identity(
    client: &MetadataClient,
    base: &str,
) -> Result<(Bootstrap, IdentityProof), MetadataError> {
    let attr_url = format!("{base}/computeMetadata/v1/instance/attributes/{GCE_METADATA_KEY}");
    let raw = client
        .fetch("bootstrap attribute", |c| {
            c.get(&attr_url).header(FLAVOR, "Google")
        })
        .await?;
    let bootstrap = Bootstrap::parse(&raw).map_err(bootstrap_error(client.cloud()))?;
    let id_url = format!("{base}/computeMetadata/v1/instance/service-accounts/default/identity");
    let audience = bootstrap.root_url.clone();
    let jwt = client
        .fetch_text("identity token", |c| {
            c.get(&id_url)
                .header(FLAVOR, "Google")
                .query(&[("audience", audience.as_str()), ("format", "full")])
        })
        .await?;
    let jwt = jwt.trim().to_string();
    if jwt.split('.').count() != 3 {
        return Err(client.malformed("identity token", "not a JWT"));
    }
    Ok((bootstrap, IdentityProof::GcpToken { jwt }))
}

/// The preemption notice (`instance/preempted` is `TRUE`).
pub(super) async fn notice(
    client: &MetadataClient,
    base: &str,
) -> Result<Option<InterruptionNotice>, MetadataError> {
    let url = format!("{base}/computeMetadata/v1/instance/preempted");
    let body = client
        .fetch_text("preempted flag", |c| c.get(&url).header(FLAVOR, "Google"))
        .await?;
    gce_preempted(&body).map_err(|e| client.malformed("preempted flag", e.to_string()))
}
