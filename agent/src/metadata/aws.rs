//! EC2's instance metadata service, IMDSv2: a session token
//! (`PUT /latest/api/token`), then `/latest/user-data` (the bootstrap
//! document, raw JSON) and the signed instance identity document
//! (`/latest/dynamic/instance-identity/{document,signature}`).

use skyfleet_core::protocol::InterruptionNotice;
use skyfleet_core::provider::{Bootstrap, IdentityProof};

use super::http::MetadataClient;
use super::notice::aws_instance_action;
use super::{bootstrap_error, MetadataError};

const TOKEN_HEADER: &str = "X-aws-ec2-metadata-token";
const TTL_HEADER: &str = "X-aws-ec2-metadata-token-ttl-seconds";
/// The session token's lifetime: long enough for the three reads.
const TOKEN_TTL_SECS: &str = "300";

/// Whether an IMDSv2 token is issued at `base`.
pub(super) async fn probe(client: &MetadataClient, base: &str) -> bool {
    let url = format!("{base}/latest/api/token");
    let resp = client
        .once(|c| c.put(&url).header(TTL_HEADER, TOKEN_TTL_SECS))
        .await;
    match resp {
        Some(r) if r.status().is_success() => r.text().await.is_ok_and(|t| !t.trim().is_empty()),
        _ => false,
    }
}

/// The bootstrap document and the signed identity document.
pub(super) async fn identity(
    client: &MetadataClient,
    base: &str,
) -> Result<(Bootstrap, IdentityProof), MetadataError> {
    let token_url = format!("{base}/latest/api/token");
    let token = client
        .fetch_text("IMDSv2 token", |c| {
            c.put(&token_url).header(TTL_HEADER, TOKEN_TTL_SECS)
        })
        .await?;
    let token = token.trim().to_string();
    if token.is_empty() {
        return Err(client.malformed("IMDSv2 token", "empty token"));
    }
    let get = |path: &str| {
        let url = format!("{base}{path}");
        let token = token.clone();
        move |c: &reqwest::Client| c.get(&url).header(TOKEN_HEADER, &token)
    };
    let user_data = client.fetch("user data", get("/latest/user-data")).await?;
    let bootstrap = Bootstrap::parse(&user_data).map_err(bootstrap_error(client.cloud()))?;
    let document = client
        .fetch_text(
            "identity document",
            get("/latest/dynamic/instance-identity/document"),
        )
        .await?;
    let signature = client
        .fetch_text(
            "identity signature",
            get("/latest/dynamic/instance-identity/signature"),
        )
        .await?;
    Ok((
        bootstrap,
        IdentityProof::AwsDocument {
            document,
            signature: signature.trim().to_string(),
        },
    ))
}

/// The spot interruption notice (`spot/instance-action`), `None` while the
/// service answers 404 (nothing scheduled).
pub(super) async fn notice(
    client: &MetadataClient,
    base: &str,
) -> Result<Option<InterruptionNotice>, MetadataError> {
    let token_url = format!("{base}/latest/api/token");
    let token = client
        .fetch_text("IMDSv2 token", |c| {
            c.put(&token_url).header(TTL_HEADER, TOKEN_TTL_SECS)
        })
        .await?;
    let url = format!("{base}/latest/meta-data/spot/instance-action");
    let token = token.trim();
    match client
        .fetch_text("spot instance action", |c| {
            c.get(&url).header(TOKEN_HEADER, token)
        })
        .await
    {
        Ok(body) => aws_instance_action(&body)
            .map(Some)
            .map_err(|e| client.malformed("spot instance action", e.to_string())),
        Err(MetadataError::Status { status: 404, .. }) => Ok(None),
        Err(e) => Err(e),
    }
}
