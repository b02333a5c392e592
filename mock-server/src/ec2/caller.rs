//! Who is calling: the account (from the SigV4 access key id in
//! `Authorization`) and region (from the credential scope) a request works
//! on. The signature itself is not checked.

use http::HeaderMap;

use super::config::Ec2Config;

/// Who is calling: the partition a request works on.
#[derive(Debug, Clone)]
pub struct Caller {
    /// Account id (12 digits).
    pub account: String,
    /// Region from the credential scope.
    pub region: String,
}

impl Caller {
    /// Reads `Authorization: AWS4-HMAC-SHA256 Credential=AKID/DATE/REGION/ec2/aws4_request, ...`.
    /// The signature itself is not checked.
    pub fn from_headers(headers: &HeaderMap, cfg: &Ec2Config) -> Caller {
        let scope = headers
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split("Credential=").nth(1))
            .map(|rest| {
                rest.split([',', ' '])
                    .next()
                    .unwrap_or("")
                    .split('/')
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default();
        let account = scope.first().filter(|k| !k.is_empty()).map_or_else(
            || cfg.default_account.clone(),
            |k| account_for_access_key(k),
        );
        let region = scope
            .get(2)
            .filter(|r| is_region_name(r))
            .map_or_else(|| cfg.default_region.clone(), |r| r.to_string());
        Caller { account, region }
    }
}

/// The account an access key id belongs to: the key itself when it is 12
/// digits, else a stable 12-digit number derived from it (FNV-1a).
pub fn account_for_access_key(key: &str) -> String {
    if key.len() == 12 && key.bytes().all(|b| b.is_ascii_digit()) {
        return key.to_string();
    }
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{:012}", h % 1_000_000_000_000)
}

fn is_region_name(r: &str) -> bool {
    !r.is_empty()
        && r.len() <= 32
        && r.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}
