//! The claims of a Compute Engine identity token requested with
//! `format=full` (Google's "Verifying the identity of instances": `iss`,
//! `aud`, `sub`, `azp`, `email`, `exp`, `iat` and `google.compute_engine`),
//! and their checks against the worker.

use std::time::Duration;

use serde::Deserialize;
use time::OffsetDateTime;

use crate::error::Reason;

/// The issuers Google's tokens carry (`accounts.google.com` is the older
/// form Google's libraries still accept).
pub const GOOGLE_ISSUERS: [&str; 2] = ["https://accounts.google.com", "accounts.google.com"];

/// `aud`: a string, or (RFC 7519) an array of strings.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

/// The claims skyfleet reads.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct GceClaims {
    /// The issuer.
    pub iss: String,
    #[serde(rename = "aud")]
    audience: Audience,
    /// The service account's numeric id.
    pub sub: String,
    /// Expiry (seconds since the epoch).
    pub exp: i64,
    /// Issued at (seconds since the epoch).
    pub iat: i64,
    /// The service account's email.
    #[serde(default)]
    pub email: Option<String>,
    /// Whether Google verified the email.
    #[serde(default)]
    pub email_verified: Option<bool>,
    /// The instance facts (present with `format=full`).
    #[serde(default)]
    pub google: Option<GoogleClaims>,
}

/// The `google` claim.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct GoogleClaims {
    /// The instance facts.
    #[serde(default)]
    pub compute_engine: Option<ComputeEngine>,
}

/// `google.compute_engine`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct ComputeEngine {
    /// The project id.
    pub project_id: String,
    /// The project number.
    #[serde(default)]
    pub project_number: Option<serde_json::Value>,
    /// The zone.
    pub zone: String,
    /// The instance's numeric id (a decimal string).
    pub instance_id: String,
    /// The instance name.
    pub instance_name: String,
    /// When the instance was created (seconds since the epoch).
    #[serde(default)]
    pub instance_creation_timestamp: Option<i64>,
}

/// The service account a worker's tokens must be for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServiceAccount {
    /// Its numeric unique id, compared with `sub`.
    Id(String),
    /// Its email, compared with `email` (which must be verified).
    Email(String),
}

/// What the provider knows of the worker's instance; `None` fields are not
/// compared. At least the instance id, or the name and zone, must be known.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcpExpected {
    /// The project the provider creates instances in.
    pub project_id: String,
    /// The instance's numeric id, once the provider saw it.
    pub instance_id: Option<String>,
    /// The instance name (derived from the worker id).
    pub instance_name: Option<String>,
    /// The zone.
    pub zone: Option<String>,
    /// The service account the instance runs as, when configured.
    pub service_account: Option<ServiceAccount>,
}

/// The token's claims against the configured audience and the clock.
pub(crate) fn check_token(
    c: &GceClaims,
    audience: &str,
    skew: Duration,
    now: OffsetDateTime,
) -> Result<(), Reason> {
    if !GOOGLE_ISSUERS.contains(&c.iss.as_str()) {
        return Err(Reason::UnknownSigner);
    }
    let aud_ok = match &c.audience {
        Audience::One(a) => a == audience,
        Audience::Many(all) => all.iter().any(|a| a == audience),
    };
    if !aud_ok {
        return Err(Reason::WrongAudience);
    }
    let skew = skew.as_secs().min(i64::MAX as u64) as i64;
    let now = now.unix_timestamp();
    if c.exp.saturating_add(skew) <= now {
        return Err(Reason::Expired);
    }
    if c.iat.saturating_sub(skew) > now {
        return Err(Reason::NotYetValid);
    }
    Ok(())
}

/// The instance facts against the worker.
pub(crate) fn check_instance<'c>(
    c: &'c GceClaims,
    want: &GcpExpected,
) -> Result<&'c ComputeEngine, Reason> {
    let ce = c
        .google
        .as_ref()
        .and_then(|g| g.compute_engine.as_ref())
        .ok_or(Reason::Malformed)?;
    if want.instance_id.is_none() && (want.instance_name.is_none() || want.zone.is_none()) {
        // Nothing identifies the instance: never accept any.
        return Err(Reason::UnknownWorker);
    }
    let same = |got: &str, want: &Option<String>| want.as_deref().is_none_or(|w| w == got);
    let ok = ce.project_id == want.project_id
        && same(&ce.instance_id, &want.instance_id)
        && same(&ce.instance_name, &want.instance_name)
        && same(&ce.zone, &want.zone);
    if !ok {
        return Err(Reason::WrongInstance);
    }
    match &want.service_account {
        None => {}
        Some(ServiceAccount::Id(id)) if &c.sub == id => {}
        Some(ServiceAccount::Email(email))
            if c.email.as_deref() == Some(email.as_str()) && c.email_verified != Some(false) => {}
        Some(_) => return Err(Reason::WrongInstance),
    }
    Ok(ce)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(aud: serde_json::Value, exp: i64, iat: i64) -> GceClaims {
        serde_json::from_value(serde_json::json!({
            "iss": "https://accounts.google.com", "aud": aud, "sub": "1234", "azp": "1234",
            "email": "sa@p.iam.gserviceaccount.com", "email_verified": true,
            "exp": exp, "iat": iat,
            "google": {"compute_engine": {"project_id": "p", "project_number": 42,
                "zone": "us-central1-a", "instance_id": "987", "instance_name": "sf-w",
                "instance_creation_timestamp": 1}}
        }))
        .unwrap()
    }

    #[test]
    fn clock_and_audience() {
        let now = OffsetDateTime::from_unix_timestamp(10_000).unwrap();
        let skew = Duration::from_secs(60);
        let ok = |c: &GceClaims| check_token(c, "https://m", skew, now);
        ok(&claims("https://m".into(), 10_100, 9_900)).unwrap();
        ok(&claims(
            serde_json::json!(["x", "https://m"]),
            10_100,
            9_900,
        ))
        .unwrap();
        assert_eq!(
            ok(&claims("https://x".into(), 10_100, 9_900)),
            Err(Reason::WrongAudience)
        );
        // Within the skew, then past it.
        ok(&claims("https://m".into(), 9_950, 9_000)).unwrap();
        assert_eq!(
            ok(&claims("https://m".into(), 9_940, 9_000)),
            Err(Reason::Expired)
        );
        ok(&claims("https://m".into(), 10_500, 10_060)).unwrap();
        assert_eq!(
            ok(&claims("https://m".into(), 10_500, 10_061)),
            Err(Reason::NotYetValid)
        );
    }

    #[test]
    fn instance_and_service_account() {
        let c = claims("a".into(), 0, 0);
        let mut want = GcpExpected {
            project_id: "p".into(),
            instance_id: Some("987".into()),
            instance_name: Some("sf-w".into()),
            zone: Some("us-central1-a".into()),
            service_account: Some(ServiceAccount::Id("1234".into())),
        };
        check_instance(&c, &want).unwrap();
        want.service_account = Some(ServiceAccount::Email("sa@p.iam.gserviceaccount.com".into()));
        check_instance(&c, &want).unwrap();
        want.service_account = Some(ServiceAccount::Id("999".into()));
        assert_eq!(check_instance(&c, &want), Err(Reason::WrongInstance));
        want.service_account = None;
        want.instance_id = Some("988".into());
        assert_eq!(check_instance(&c, &want), Err(Reason::WrongInstance));
        want.instance_id = None;
        want.zone = None;
        assert_eq!(check_instance(&c, &want), Err(Reason::UnknownWorker));
    }
}
