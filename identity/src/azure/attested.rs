//! The attested data document Azure IMDS signs
//! (`/metadata/attested/document`): `nonce`, `vmId`, `subscriptionId`,
//! `sku`, `plan`, `licenseType` and `timeStamp {createdOn, expiresOn}`,
//! the timestamps in IMDS's `MM/DD/YY HH:MM:SS -0000` form (UTC).

use serde::Deserialize;
use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time, UtcOffset};

use crate::error::Reason;

/// The attested document's fields skyfleet reads.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct AttestedData {
    /// The nonce the VM asked for (or, without one, IMDS's timestamp).
    pub nonce: String,
    /// The VM's unique id.
    pub vm_id: String,
    /// When the document was made and when it expires.
    pub time_stamp: TimeStamp,
    /// The VM's subscription.
    #[serde(default)]
    pub subscription_id: Option<String>,
    /// The image SKU.
    #[serde(default)]
    pub sku: Option<String>,
    /// The license type.
    #[serde(default)]
    pub license_type: Option<String>,
    /// The Marketplace plan.
    #[serde(default)]
    pub plan: Option<serde_json::Value>,
}

/// `timeStamp`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TimeStamp {
    /// `MM/DD/YY HH:MM:SS -0000`.
    pub created_on: String,
    /// `MM/DD/YY HH:MM:SS -0000`.
    pub expires_on: String,
}

/// What the provider knows of the worker's VM.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AzureExpected {
    /// The VM's `vmId` (ARM's `properties.vmId`).
    pub vm_id: String,
    /// The nonce the registration issued, if it issued one.
    pub nonce: Option<String>,
}

/// Parses the signed content.
pub fn parse_attested(content: &[u8]) -> Result<AttestedData, Reason> {
    serde_json::from_slice(content).map_err(|_| Reason::Malformed)
}

/// Parses IMDS's `MM/DD/YY HH:MM:SS ±HHMM` (years 2000-2099).
pub fn parse_timestamp(text: &str) -> Result<OffsetDateTime, Reason> {
    fn num(s: &str, digits: usize) -> Option<u32> {
        (s.len() == digits && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse().ok())
            .flatten()
    }
    let bad = || Reason::Malformed;
    let mut parts = text.split(' ');
    let (Some(date), Some(clock), Some(offset), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad());
    };
    let d: Vec<&str> = date.split('/').collect();
    let t: Vec<&str> = clock.split(':').collect();
    let ([mo, da, yy], [hh, mi, ss]) = (d.as_slice(), t.as_slice()) else {
        return Err(bad());
    };
    let month = num(mo, 2)
        .and_then(|m| Month::try_from(m as u8).ok())
        .ok_or_else(bad)?;
    let day = num(da, 2).ok_or_else(bad)? as u8;
    let year = 2000 + num(yy, 2).ok_or_else(bad)? as i32;
    let date = Date::from_calendar_date(year, month, day).map_err(|_| bad())?;
    let time = Time::from_hms(
        num(hh, 2).ok_or_else(bad)? as u8,
        num(mi, 2).ok_or_else(bad)? as u8,
        num(ss, 2).ok_or_else(bad)? as u8,
    )
    .map_err(|_| bad())?;
    let (sign, hhmm) = match offset.as_bytes().first() {
        Some(b'+') => (1i8, &offset[1..]),
        Some(b'-') => (-1i8, &offset[1..]),
        _ => return Err(bad()),
    };
    let hhmm = num(hhmm, 4).ok_or_else(bad)?;
    let off = UtcOffset::from_hms(sign * (hhmm / 100) as i8, sign * (hhmm % 100) as i8, 0)
        .map_err(|_| bad())?;
    Ok(PrimitiveDateTime::new(date, time).assume_offset(off))
}

/// The document against the worker and the clock: `vmId` (GUIDs compare
/// without case), `expiresOn` in the future, `createdOn` not in the future
/// beyond `skew`, the nonce when one was issued.
pub(crate) fn check(
    doc: &AttestedData,
    want: &AzureExpected,
    skew: std::time::Duration,
    now: OffsetDateTime,
) -> Result<(), Reason> {
    let expires = parse_timestamp(&doc.time_stamp.expires_on)?;
    let created = parse_timestamp(&doc.time_stamp.created_on)?;
    if want.vm_id.is_empty() || !doc.vm_id.eq_ignore_ascii_case(&want.vm_id) {
        return Err(Reason::WrongInstance);
    }
    if expires <= now {
        return Err(Reason::Expired);
    }
    if created > now + skew {
        return Err(Reason::NotYetValid);
    }
    if let Some(nonce) = &want.nonce {
        if &doc.nonce != nonce {
            return Err(Reason::WrongNonce);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn imds_timestamps() {
        assert_eq!(
            parse_timestamp("11/20/18 22:08:24 -0000").unwrap(),
            datetime!(2018-11-20 22:08:24 UTC)
        );
        assert_eq!(
            parse_timestamp("01/02/30 03:04:05 +0130").unwrap(),
            datetime!(2030-01-02 03:04:05 +01:30)
        );
        for bad in [
            "",
            "11/20/18 22:08:24",
            "11/20/2018 22:08:24 -0000",
            "13/20/18 22:08:24 -0000",
            "02/30/18 22:08:24 -0000",
            "11/20/18 25:08:24 -0000",
            "11/20/18 22:08:24 0000",
            "11/20/18  22:08:24 -0000",
            "1a/20/18 22:08:24 -0000",
        ] {
            assert_eq!(parse_timestamp(bad), Err(Reason::Malformed), "{bad:?}");
        }
    }

    #[test]
    fn vm_id_clock_and_nonce() {
        let doc = parse_attested(
            br#"{"nonce":"1234567890","vmId":"A1B2","subscriptionId":"s","sku":"x",
            "plan":{"name":"","product":"","publisher":""},"licenseType":"",
            "timeStamp":{"createdOn":"11/20/30 22:00:00 -0000","expiresOn":"11/21/30 04:00:00 -0000"}}"#,
        )
        .unwrap();
        let now = datetime!(2030-11-20 23:00:00 UTC);
        let skew = std::time::Duration::from_secs(60);
        let mut want = AzureExpected {
            vm_id: "a1b2".into(),
            nonce: Some("1234567890".into()),
        };
        check(&doc, &want, skew, now).unwrap();
        assert_eq!(
            check(&doc, &want, skew, datetime!(2030-11-21 04:00:00 UTC)),
            Err(Reason::Expired)
        );
        assert_eq!(
            check(&doc, &want, skew, datetime!(2030-11-20 21:58:00 UTC)),
            Err(Reason::NotYetValid)
        );
        want.nonce = Some("1".into());
        assert_eq!(check(&doc, &want, skew, now), Err(Reason::WrongNonce));
        want.nonce = None;
        check(&doc, &want, skew, now).unwrap();
        want.vm_id = "other".into();
        assert_eq!(check(&doc, &want, skew, now), Err(Reason::WrongInstance));
    }
}
