//! The one rejection type: [`Rejected`], whose [`Reason`] says which check
//! failed, for logs and metrics only.
//!
//! A registration endpoint answers every rejection the same way
//! ([`OUTWARD_MESSAGE`], what [`Rejected`]'s `Display` prints), as
//! Taskcluster's worker-manager does: telling a caller *which* check failed
//! would help an attacker tune a forgery. The precise reason is
//! [`Rejected::reason`], with a stable [`Reason::label`] for a log field and
//! a metric label.

use std::fmt;

/// What every rejection says to the outside world.
pub const OUTWARD_MESSAGE: &str = "signature validation error";

/// Why a proof was rejected (never shown to the caller; see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Reason {
    /// The proof does not parse: bad base64, DER, JSON or JWT structure, a
    /// missing field, an oversized input.
    Malformed,
    /// A signature (of the document, the token or a certificate) does not
    /// verify.
    BadSignature,
    /// The signer is not trusted: no configured certificate or key for it, a
    /// chain that does not reach a configured root, a signer name or token
    /// issuer that is not the cloud's.
    UnknownSigner,
    /// The proof (or a certificate of its chain) has expired.
    Expired,
    /// The proof (or a certificate of its chain) is not valid yet.
    NotYetValid,
    /// The proof is valid but names another instance, account, project,
    /// region, image or service account than the worker's.
    WrongInstance,
    /// The token was issued for another audience.
    WrongAudience,
    /// The attested document carries another nonce than the one issued.
    WrongNonce,
    /// The worker is not known to the provider (no instance recorded, VM
    /// gone).
    UnknownWorker,
    /// The worker is in a state that may not register (being removed,
    /// stopped, failed).
    NotRegistrable,
    /// The proof is of another cloud's kind than the provider's.
    WrongProofType,
    /// The trust material (a key set, an intermediate certificate) could
    /// not be fetched, so the proof could not be checked.
    KeysUnavailable,
}

impl Reason {
    /// Every reason, for metric pre-registration and tests.
    pub const ALL: [Reason; 12] = [
        Reason::Malformed,
        Reason::BadSignature,
        Reason::UnknownSigner,
        Reason::Expired,
        Reason::NotYetValid,
        Reason::WrongInstance,
        Reason::WrongAudience,
        Reason::WrongNonce,
        Reason::UnknownWorker,
        Reason::NotRegistrable,
        Reason::WrongProofType,
        Reason::KeysUnavailable,
    ];

    /// A short stable name for logs and metric labels (`bad_signature`).
    pub fn label(self) -> &'static str {
        match self {
            Reason::Malformed => "malformed",
            Reason::BadSignature => "bad_signature",
            Reason::UnknownSigner => "unknown_signer",
            Reason::Expired => "expired",
            Reason::NotYetValid => "not_yet_valid",
            Reason::WrongInstance => "wrong_instance",
            Reason::WrongAudience => "wrong_audience",
            Reason::WrongNonce => "wrong_nonce",
            Reason::UnknownWorker => "unknown_worker",
            Reason::NotRegistrable => "not_registrable",
            Reason::WrongProofType => "wrong_proof_type",
            Reason::KeysUnavailable => "keys_unavailable",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// A rejected proof. `Display` is always [`OUTWARD_MESSAGE`]; the reason is
/// in [`Rejected::reason`] (and in `Debug`, which is for logs).
///
/// ```
/// use skyfleet_identity::{Reason, Rejected};
/// let r = Rejected::new(Reason::WrongAudience);
/// assert_eq!(r.to_string(), "signature validation error");
/// assert_eq!(r.reason().label(), "wrong_audience");
/// ```
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Rejected {
    reason: Reason,
}

impl Rejected {
    /// A rejection for `reason`.
    pub fn new(reason: Reason) -> Self {
        Rejected { reason }
    }

    /// Which check failed.
    pub fn reason(&self) -> Reason {
        self.reason
    }
}

impl From<Reason> for Rejected {
    fn from(reason: Reason) -> Self {
        Rejected::new(reason)
    }
}

impl fmt::Display for Rejected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(OUTWARD_MESSAGE)
    }
}

impl fmt::Debug for Rejected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Rejected({})", self.reason.label())
    }
}

impl std::error::Error for Rejected {}

/// A trust configuration that cannot be used (a certificate or key that
/// does not parse, an empty audience, a bad URL), naming what was wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    field: String,
    message: String,
}

impl ConfigError {
    /// A configuration error at `field`.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError {
            field: field.into(),
            message: message.into(),
        }
    }

    /// The setting that was wrong (`aws.certificates[us-east-1]`).
    pub fn field(&self) -> &str {
        &self.field
    }

    /// What was wrong with it.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid identity setting `{}`: {}",
            self.field, self.message
        )
    }
}

impl std::error::Error for ConfigError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_outward_message_and_distinct_labels() {
        let mut labels: Vec<_> = Reason::ALL.iter().map(|r| r.label()).collect();
        for r in Reason::ALL {
            let e = Rejected::from(r);
            assert_eq!(e.to_string(), OUTWARD_MESSAGE);
            assert!(format!("{e:?}").contains(r.label()));
        }
        labels.sort();
        labels.dedup();
        assert_eq!(labels.len(), Reason::ALL.len());
    }
}
