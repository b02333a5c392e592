//! The paging parameters lists share: `maxResults` (1 to 500; 0 or absent
//! means 500) and `pageToken` (opaque to clients; here the URL-safe base64
//! of the sort key of the last item of the previous page).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

use crate::gce::error::GceError;
use crate::gce::request::Call;

/// The most items one list page holds (and the default page size).
pub(super) const MAX_RESULTS: usize = 500;

/// The page size `maxResults` asks for.
pub(super) fn max_results(call: &Call) -> Result<usize, GceError> {
    match call.query("maxResults") {
        None => Ok(MAX_RESULTS),
        Some(v) => match v.parse::<usize>() {
            Ok(0) => Ok(MAX_RESULTS),
            Ok(n) if n <= MAX_RESULTS => Ok(n),
            _ => Err(GceError::invalid_field(
                "maxResults",
                v,
                "Must be less than or equal to 500",
            )),
        },
    }
}

/// The sort key the page starts after, from `pageToken` (`None`: the first
/// page).
pub(super) fn after(call: &Call) -> Result<Option<String>, GceError> {
    match call.query("pageToken").filter(|t| !t.is_empty()) {
        None => Ok(None),
        Some(t) => URL_SAFE_NO_PAD
            .decode(t)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .map(Some)
            .ok_or_else(|| GceError::invalid_field("pageToken", t, "Invalid page token.")),
    }
}

/// The token of the page that starts after the item with sort key `key`.
pub(super) fn token(key: &str) -> String {
    URL_SAFE_NO_PAD.encode(key)
}
