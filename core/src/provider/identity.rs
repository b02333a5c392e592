//! Worker identity: the proof a machine presents when it registers
//! ([`IdentityProof`], one variant per cloud, each the thing its agent can
//! obtain from its metadata service), what a provider answers when the proof
//! holds ([`VerifiedIdentity`]), and the one way a rejection is reported
//! ([`rejected`]): an [`ErrorKind::IdentityRejected`] error whose message is
//! the same whatever failed, the precise reason logged and counted.
//!
//! The verification itself is each provider's
//! [`Provider::verify_identity`](super::Provider::verify_identity) (crate
//! `skyfleet-identity` does the cryptography).

use std::fmt;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::error::{Error, ErrorKind};
use crate::model::{DesiredState, Phase, Worker};
use crate::provider::support::Secret;

/// What a machine presents to prove it is a worker, as its cloud issues it.
///
/// Reads from the JSON a worker sends (`{"kind": "aws_document", ...}`),
/// and writes it (an agent sending it; a static secret is written in
/// clear, as the worker must send it). `Debug` shows only sizes: a token or
/// document is a credential.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
#[non_exhaustive]
pub enum IdentityProof {
    /// AWS: the instance identity document and its base64 RSA-SHA256
    /// `signature` (IMDS `/latest/dynamic/instance-identity/{document,signature}`).
    AwsDocument {
        /// The document, byte for byte as IMDS served it.
        document: String,
        /// The base64 signature.
        signature: String,
    },
    /// AWS: the `rsa2048` PKCS#7 form (IMDS
    /// `/latest/dynamic/instance-identity/rsa2048`), which carries the
    /// document.
    AwsPkcs7 {
        /// The base64 PKCS#7 (PEM armour allowed).
        pkcs7: String,
    },
    /// Google: the instance's identity token
    /// (`instance/service-accounts/default/identity?audience=...&format=full`).
    GcpToken {
        /// The JWT.
        jwt: String,
    },
    /// Azure: the attested data document's `signature` (IMDS
    /// `/metadata/attested/document`).
    AzureAttested {
        /// The base64 PKCS#7 `signature` field.
        signature: String,
        /// The nonce the manager issued for this registration, if it issued
        /// one (set by the manager, not taken from the machine).
        #[serde(default)]
        nonce: Option<String>,
    },
    /// Static machines: the per-worker secret handed out at creation.
    StaticSecret {
        /// The secret.
        #[serde(serialize_with = "crate::provider::support::secret::serialize_exposed")]
        secret: Secret,
    },
}

impl IdentityProof {
    /// The proof's kind (`aws_document`, `gcp_token`, ...), for logs.
    pub fn kind(&self) -> &'static str {
        match self {
            IdentityProof::AwsDocument { .. } => "aws_document",
            IdentityProof::AwsPkcs7 { .. } => "aws_pkcs7",
            IdentityProof::GcpToken { .. } => "gcp_token",
            IdentityProof::AzureAttested { .. } => "azure_attested",
            IdentityProof::StaticSecret { .. } => "static_secret",
        }
    }
}

impl fmt::Debug for IdentityProof {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("IdentityProof");
        d.field("kind", &self.kind());
        match self {
            IdentityProof::AwsDocument {
                document,
                signature,
            } => d
                .field("document_bytes", &document.len())
                .field("signature_bytes", &signature.len()),
            IdentityProof::AwsPkcs7 { pkcs7 } => d.field("pkcs7_bytes", &pkcs7.len()),
            IdentityProof::GcpToken { jwt } => d.field("jwt_bytes", &jwt.len()),
            IdentityProof::AzureAttested { signature, nonce } => d
                .field("signature_bytes", &signature.len())
                .field("nonce", nonce),
            IdentityProof::StaticSecret { secret } => d.field("secret", secret),
        };
        d.finish()
    }
}

/// A proof that held: who the machine is.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct VerifiedIdentity {
    /// The worker it proved to be.
    pub worker_id: String,
    /// The provider that verified it.
    pub provider_id: String,
    /// The cloud's id of the machine (EC2 instance id, GCE instance id,
    /// Azure vmId), when it has one.
    pub instance_id: Option<String>,
    /// Where it runs (region, zone, location), when known.
    pub location: Option<String>,
    /// When the proof itself stops being valid (GCE `exp`, Azure
    /// `expiresOn`); `None` for proofs that do not expire.
    pub proof_expires_at: Option<OffsetDateTime>,
}

impl VerifiedIdentity {
    /// A verified identity of `worker` by `provider_id`, with no cloud facts.
    pub fn new(worker: &Worker, provider_id: impl Into<String>) -> Self {
        VerifiedIdentity {
            worker_id: worker.id().to_string(),
            provider_id: provider_id.into(),
            instance_id: None,
            location: None,
            proof_expires_at: None,
        }
    }

    /// With the cloud's id of the machine.
    pub fn with_instance(mut self, id: impl Into<String>) -> Self {
        self.instance_id = Some(id.into());
        self
    }

    /// With where it runs.
    pub fn with_location(mut self, location: impl Into<String>) -> Self {
        self.location = Some(location.into());
        self
    }

    /// With the proof's expiry.
    pub fn with_proof_expiry(mut self, at: OffsetDateTime) -> Self {
        self.proof_expires_at = Some(at);
        self
    }
}

/// The reason label of a worker that may not register.
pub const NOT_REGISTRABLE: &str = "not_registrable";
/// The reason label of a proof of another cloud's kind.
pub const WRONG_PROOF_TYPE: &str = "wrong_proof_type";
/// The reason label of a worker the provider knows no machine of.
pub const UNKNOWN_WORKER: &str = "unknown_worker";

/// Whether `worker` may register: it is wanted, and requested or running
/// (not being removed, stopped or failed).
pub fn may_register(worker: &Worker) -> bool {
    worker.desired == DesiredState::Running
        && matches!(worker.phase, Phase::Requested | Phase::Running)
}

/// Reports a rejected proof: logs the reason at warn (with the worker and
/// provider), counts it in `skyfleet_identity_rejections_total{provider,
/// reason}`, and answers the one outward error
/// ([`Error::identity_rejected`]).
pub fn rejected(provider_id: &str, worker: &Worker, reason: &'static str) -> Error {
    tracing::warn!(
        provider = provider_id,
        worker = worker.id(),
        reason,
        "identity proof rejected"
    );
    metrics::counter!(
        "skyfleet_identity_rejections_total",
        "provider" => provider_id.to_string(),
        "reason" => reason
    )
    .increment(1);
    Error::identity_rejected(reason).with_provider(provider_id)
}

/// Whether `e` is an identity rejection (and not a failure to check).
pub fn is_rejection(e: &Error) -> bool {
    matches!(e.kind(), ErrorKind::IdentityRejected { .. })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::fixtures;

    #[test]
    fn proofs_read_from_json_and_debug_shows_no_credential() {
        let p: IdentityProof =
            serde_json::from_str(r#"{"kind":"gcp_token","jwt":"eyJhbGciOi.secret.sig"}"#).unwrap();
        assert_eq!(p.kind(), "gcp_token");
        assert!(!format!("{p:?}").contains("secret"));
        let p: IdentityProof =
            serde_json::from_str(r#"{"kind":"static_secret","secret":"hunter2"}"#).unwrap();
        assert!(!format!("{p:?}").contains("hunter2"));
        let p: IdentityProof = serde_json::from_str(
            r#"{"kind":"azure_attested","signature":"MIIE","nonce":"1234567890"}"#,
        )
        .unwrap();
        assert_eq!(p.kind(), "azure_attested");
        assert!(serde_json::from_str::<IdentityProof>(r#"{"kind":"aws_pkcs7"}"#).is_err());
        assert!(
            serde_json::from_str::<IdentityProof>(r#"{"kind":"aws_pkcs7","pkcs7":"x","y":1}"#)
                .is_err()
        );
    }

    #[test]
    fn registrable_states_and_the_outward_error() {
        let mut w = fixtures::worker("w-1").build_now();
        assert!(may_register(&w));
        w.phase = Phase::Running;
        assert!(may_register(&w));
        w.desired = DesiredState::Removed;
        assert!(!may_register(&w));
        w.desired = DesiredState::Running;
        w.phase = Phase::Stopped;
        assert!(!may_register(&w));
        let e = rejected("aws", &w, "bad_signature");
        assert!(is_rejection(&e));
        assert_eq!(
            e.to_string(),
            "aws: identity rejected: signature validation error"
        );
        assert_eq!(e.rejection_reason(), Some("bad_signature"));
    }
}
