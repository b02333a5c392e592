//! Azure's attested document (`/metadata/attested/document`):
//! `{"encoding":"pkcs7","signature": base64 DER CMS SignedData}` whose
//! content is the attested JSON (`licenseType`, `nonce`, `plan`, `sku`,
//! `subscriptionId`, `timeStamp` {`createdOn`, `expiresOn`}, `vmId`),
//! signed by the `metadata.azure.com` signer and carrying the signer and
//! its intermediate, as Azure's does.
//!
//! `nonce` is optional: at most 10 digits (400 otherwise); without one the
//! current UTC time (`YYYYMMDD-HHMMSS`) takes its place, as Azure does.
//! `timeStamp` is in Azure's format (`MM/DD/YY HH:MM:SS -0000`); the
//! document expires six hours after it was made.

use std::time::SystemTime;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use http::StatusCode;
use serde_json::json;
use time::OffsetDateTime;

use super::azure::error;
use super::facts::AzureVm;
use super::trust::TrustError;
use super::{cms, plain, query_param, Imds};

/// How long an attested document is valid.
pub const LIFETIME: time::Duration = time::Duration::hours(6);
/// The longest nonce Azure takes.
pub const MAX_NONCE: usize = 10;

/// `MM/DD/YY HH:MM:SS -0000`.
pub fn azure_time(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:02}/{:02}/{:02} {:02}:{:02}:{:02} -0000",
        u8::from(t.month()),
        t.day(),
        t.year().rem_euclid(100),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// The nonce to embed: the given one if it is 1 to 10 digits, the current
/// time without one; `None` for anything else.
pub fn nonce(given: Option<&str>, now: OffsetDateTime) -> Option<String> {
    match given {
        None => Some(format!(
            "{:04}{:02}{:02}-{:02}{:02}{:02}",
            now.year(),
            u8::from(now.month()),
            now.day(),
            now.hour(),
            now.minute(),
            now.second()
        )),
        Some(n) if (1..=MAX_NONCE).contains(&n.len()) && n.bytes().all(|b| b.is_ascii_digit()) => {
            Some(n.to_string())
        }
        Some(_) => None,
    }
}

/// The attested JSON of `vm` (keys in Azure's order, which is sorted).
pub fn content(vm: &AzureVm, nonce: &str, now: OffsetDateTime) -> String {
    let [_, _, sku, _] = &vm.image;
    let [plan_name, plan_product, plan_publisher] = &vm.plan;
    json!({
        "licenseType": vm.license_type,
        "nonce": nonce,
        "plan": {"name": plan_name, "product": plan_product, "publisher": plan_publisher},
        "sku": sku,
        "subscriptionId": vm.subscription,
        "timeStamp": {"createdOn": azure_time(now), "expiresOn": azure_time(now + LIFETIME)},
        "vmId": vm.vm_id,
    })
    .to_string()
}

async fn sign(imds: &Imds, content: &str) -> Result<String, TrustError> {
    let m = imds.trust.material().await?;
    let signer = &m.azure.signer;
    let der = cms::signed_data(
        content.as_bytes(),
        &signer.key,
        &signer.cert.der,
        &[&signer.cert.der, &m.azure.intermediate.issued.der],
        SystemTime::now(),
    )
    .map_err(|e| TrustError::Certificate(e.to_string()))?;
    Ok(STANDARD.encode(der))
}

/// `GET /metadata/attested/document?api-version=..[&nonce=N]`.
pub async fn document(imds: &Imds, vm: &AzureVm, query: Option<&str>) -> axum::response::Response {
    let now = OffsetDateTime::now_utc();
    let Some(nonce) = nonce(query_param(query, "nonce").as_deref(), now) else {
        return error(
            StatusCode::BAD_REQUEST,
            "Bad request. The nonce must be a string of at most 10 digits.",
        );
    };
    match sign(imds, &content(vm, &nonce, now)).await {
        Ok(signature) => plain(
            StatusCode::OK,
            "application/json; charset=utf-8",
            json!({"encoding": "pkcs7", "signature": signature}).to_string(),
        ),
        Err(e) => {
            tracing::error!(error = %e, "cannot sign the attested document");
            error(StatusCode::INTERNAL_SERVER_ERROR, "Internal server error")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nonces_are_up_to_ten_digits() {
        let now = time::macros::datetime!(2025-01-02 03:04:05 UTC);
        assert_eq!(nonce(None, now).unwrap(), "20250102-030405");
        assert_eq!(nonce(Some("1234567890"), now).unwrap(), "1234567890");
        for bad in ["12345678901", "12a", "", "-1", "１２"] {
            assert!(nonce(Some(bad), now).is_none(), "{bad}");
        }
    }

    #[test]
    fn times_are_in_azures_format() {
        let t = time::macros::datetime!(2025-01-02 03:04:05 UTC);
        assert_eq!(azure_time(t), "01/02/25 03:04:05 -0000");
        assert_eq!(azure_time(t + LIFETIME), "01/02/25 09:04:05 -0000");
    }
}
