//! The JWKS cache: Google's signing keys by `kid`, fetched on first use and
//! refetched when a token names an unknown `kid`, **at most once per
//! interval** (a minute by default) whatever the tokens say, so a flood of
//! forged `kid`s costs one fetch a minute. A failed or unusable fetch keeps
//! the keys the cache had.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use jsonwebtoken::DecodingKey;
use serde::Deserialize;
use time::OffsetDateTime;

use crate::error::Reason;
use crate::fetch::Fetch;

/// The most keys kept from one key set.
pub const MAX_KEYS: usize = 64;

/// One JSON Web Key, as Google publishes them (RFC 7517/7518 names).
#[derive(Debug, Deserialize)]
struct Jwk {
    kty: String,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default)]
    alg: Option<String>,
    #[serde(default, rename = "use")]
    use_: Option<String>,
    #[serde(default)]
    n: Option<String>,
    #[serde(default)]
    e: Option<String>,
}

#[derive(Debug, Deserialize)]
struct KeySet {
    keys: Vec<Jwk>,
}

/// The RS256 signing keys of a key set document, by `kid`.
pub(crate) fn parse_key_set(body: &[u8]) -> Result<HashMap<String, Arc<DecodingKey>>, Reason> {
    let set: KeySet = serde_json::from_slice(body).map_err(|_| Reason::Malformed)?;
    let mut keys = HashMap::new();
    for k in set.keys {
        if keys.len() == MAX_KEYS {
            break;
        }
        let usable = k.kty == "RSA"
            && k.alg.as_deref().is_none_or(|a| a == "RS256")
            && k.use_.as_deref().is_none_or(|u| u == "sig");
        let (Some(kid), Some(n), Some(e), true) = (k.kid, k.n, k.e, usable) else {
            continue;
        };
        if let Ok(key) = DecodingKey::from_rsa_components(&n, &e) {
            keys.insert(kid, Arc::new(key));
        }
    }
    Ok(keys)
}

/// What the cache knows.
#[derive(Default)]
struct State {
    keys: HashMap<String, Arc<DecodingKey>>,
    /// When the last fetch was started (successful or not).
    last_fetch: Option<OffsetDateTime>,
    /// Fetches made (for tests and metrics).
    fetches: u64,
}

/// Keys by `kid`, refreshed on an unknown `kid` at most once per interval.
pub(crate) struct JwksCache {
    url: String,
    fetcher: Arc<dyn Fetch>,
    min_interval: Duration,
    state: RwLock<State>,
    /// Serialises fetches: concurrent unknown `kid`s wait for one fetch.
    fetching: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for JwksCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let st = self.read();
        f.debug_struct("JwksCache")
            .field("url", &self.url)
            .field("keys", &st.keys.len())
            .field("fetches", &st.fetches)
            .finish()
    }
}

impl JwksCache {
    pub(crate) fn new(url: String, fetcher: Arc<dyn Fetch>, min_interval: Duration) -> Self {
        JwksCache {
            url,
            fetcher,
            min_interval,
            state: RwLock::new(State::default()),
            fetching: tokio::sync::Mutex::new(()),
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        // A poisoned lock only means a panic elsewhere; the map is intact.
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|e| e.into_inner())
    }

    /// How many fetches were made.
    pub(crate) fn fetches(&self) -> u64 {
        self.read().fetches
    }

    /// How many keys are cached.
    pub(crate) fn len(&self) -> usize {
        self.read().keys.len()
    }

    /// The key `kid`, fetching the key set if it is unknown and the last
    /// fetch is older than the interval.
    pub(crate) async fn key(
        &self,
        kid: &str,
        now: OffsetDateTime,
    ) -> Result<Arc<DecodingKey>, Reason> {
        if let Some(k) = self.read().keys.get(kid) {
            return Ok(k.clone());
        }
        let _one_at_a_time = self.fetching.lock().await;
        {
            let st = self.read();
            // Fetched by another caller while this one waited?
            if let Some(k) = st.keys.get(kid) {
                return Ok(k.clone());
            }
            if let Some(last) = st.last_fetch {
                if now < last + self.min_interval {
                    return Err(if st.keys.is_empty() {
                        Reason::KeysUnavailable
                    } else {
                        Reason::UnknownSigner
                    });
                }
            }
        }
        self.refresh(now).await;
        let st = self.read();
        match st.keys.get(kid) {
            Some(k) => Ok(k.clone()),
            None if st.keys.is_empty() => Err(Reason::KeysUnavailable),
            None => Err(Reason::UnknownSigner),
        }
    }

    /// Fetches the key set now (the caller holds `fetching` or does not
    /// care), replacing the keys only with a usable set.
    pub(crate) async fn refresh(&self, now: OffsetDateTime) {
        {
            let mut st = self.write();
            st.last_fetch = Some(now);
            st.fetches += 1;
        }
        let fetched = self.fetcher.get(&self.url).await;
        let keys = match fetched {
            Ok(body) => parse_key_set(&body),
            Err(e) => {
                tracing::warn!(url = %self.url, error = %e, "JWKS fetch failed; keeping the cached keys");
                return;
            }
        };
        match keys {
            Ok(keys) if !keys.is_empty() => self.write().keys = keys,
            _ => {
                tracing::warn!(url = %self.url, "JWKS without a usable RS256 key; keeping the cached keys")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_rs256_signing_keys_are_kept() {
        let body = br#"{"keys":[
            {"kty":"RSA","kid":"a","alg":"RS256","use":"sig","n":"sXchDaQebHnPiGvyDOAT4saGEUetSyo9MKLOoWFsueri23bOdgWp4Dy1WlUzewbgBHod5pcM9H95GQRV3JDXboIRROSBigeC5yjU1hGzHHyXss8UDprecbAYxknTcQkhslANGRUZmdTOQ5qTRsLAt6BTYuyvVRdhS8exSZEy_c4gs_7svlJJQ4H9_NxsiIoLwAEk7-Q3UXERGYw_75IDrGA84-lA_-Ct4eTlXHBIY2EaV7t7LjJaynVJCpkv4LKjTTAumiGUIuQhrNhZLuF_RJLqHpM2kgWFLU7-VTdL1VbC2tejvcI2BlMkEpk1BzBZI0KQB0GaDWFLN-aEAw3vRw","e":"AQAB"},
            {"kty":"EC","kid":"b","crv":"P-256","x":"x","y":"y"},
            {"kty":"RSA","kid":"c","alg":"RS512","n":"AQAB","e":"AQAB"},
            {"kty":"RSA","alg":"RS256","n":"AQAB","e":"AQAB"}
        ]}"#;
        let keys = parse_key_set(body).unwrap();
        assert_eq!(keys.keys().collect::<Vec<_>>(), ["a"]);
        assert_eq!(parse_key_set(b"[]").unwrap_err(), Reason::Malformed);
    }
}
