//! Hawk 1.x request signatures, the `Authorization: Hawk ...` header that
//! Taskcluster's services authenticate (its clients sign every call this
//! way; the service checks the MAC against the client's access token).
//!
//! The MAC is HMAC-SHA256, keyed with the access token's bytes, over the
//! *normalized string*: the lines `hawk.1.header`, timestamp (Unix seconds),
//! nonce, method (upper case), resource (path and query as sent), host,
//! port, payload hash (empty: a GET carries no payload, and the hash is
//! optional in Hawk), `ext`, each followed by `\n`. The header then reads
//! `Hawk id="<clientId>", ts="<ts>", nonce="<nonce>"[, ext="<ext>"],
//! mac="<base64 MAC>"`.

use aws_lc_rs::hmac;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use skyfleet_core::{Error, Result};

/// The request being signed, as the server will see it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Signed<'a> {
    /// `GET`.
    pub(crate) method: &'a str,
    /// Path and query, exactly as sent (percent-encoding kept).
    pub(crate) resource: &'a str,
    /// The host the request is sent to (the `Host` header's name part).
    pub(crate) host: &'a str,
    /// The port the request is sent to (443 for `https` without one).
    pub(crate) port: u16,
    /// Application data covered by the MAC (Taskcluster: the base64 JSON
    /// holding a temporary credential's certificate).
    pub(crate) ext: Option<&'a str>,
}

/// The normalized string the MAC covers.
pub(crate) fn normalized(ts: u64, nonce: &str, req: &Signed<'_>) -> String {
    format!(
        "hawk.1.header\n{ts}\n{nonce}\n{}\n{}\n{}\n{}\n\n{}\n",
        req.method.to_ascii_uppercase(),
        req.resource,
        req.host.to_ascii_lowercase(),
        req.port,
        req.ext.unwrap_or(""),
    )
}

/// The base64 HMAC-SHA256 of `normalized` under `key`.
pub(crate) fn mac(key: &[u8], normalized: &str) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, key);
    STANDARD.encode(hmac::sign(&key, normalized.as_bytes()).as_ref())
}

/// The full `Authorization` value for `req`, signed by `id` with `key`.
pub(crate) fn header(id: &str, key: &[u8], ts: u64, nonce: &str, req: &Signed<'_>) -> String {
    let mac = mac(key, &normalized(ts, nonce, req));
    match req.ext {
        Some(ext) => {
            format!(r#"Hawk id="{id}", ts="{ts}", nonce="{nonce}", ext="{ext}", mac="{mac}""#)
        }
        None => format!(r#"Hawk id="{id}", ts="{ts}", nonce="{nonce}", mac="{mac}""#),
    }
}

/// A fresh nonce: 12 random bytes, base64url (16 characters).
pub(crate) fn nonce() -> Result<String> {
    let mut bytes = [0u8; 12];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| Error::internal("demand: taskcluster: no randomness for a Hawk nonce"))?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

/// Whether `s` may stand inside a Hawk header attribute (printable ASCII
/// without `"` or `\`).
pub(crate) fn attribute_safe(s: &str) -> bool {
    s.bytes()
        .all(|b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\')
}

#[cfg(test)]
mod tests {
    use super::*;

    // The worked example of the Hawk specification (hueniverse/hawk README,
    // "Protocol Example"); the same vector is checked by Hawk's JS, Perl,
    // Scala and Swift implementations.
    const ID: &str = "dh37fgj492je";
    const KEY: &str = "werxhqb98rpaxn39848xrunpaw3489ruxnpa98w4rxn";
    const SPEC: Signed<'static> = Signed {
        method: "GET",
        resource: "/resource/1?b=1&a=2",
        host: "example.com",
        port: 8000,
        ext: Some("some-app-ext-data"),
    };

    #[test]
    fn normalized_string_matches_the_spec() {
        assert_eq!(
            normalized(1353832234, "j4h3g2", &SPEC),
            "hawk.1.header\n1353832234\nj4h3g2\nGET\n/resource/1?b=1&a=2\nexample.com\n8000\n\nsome-app-ext-data\n"
        );
    }

    #[test]
    fn mac_and_header_match_the_spec_vector() {
        assert_eq!(
            mac(KEY.as_bytes(), &normalized(1353832234, "j4h3g2", &SPEC)),
            "6R4rV5iE+NPoym+WwjeHzjAGXUtLNIxmo1vpMofpLAE="
        );
        assert_eq!(
            header(ID, KEY.as_bytes(), 1353832234, "j4h3g2", &SPEC),
            r#"Hawk id="dh37fgj492je", ts="1353832234", nonce="j4h3g2", ext="some-app-ext-data", mac="6R4rV5iE+NPoym+WwjeHzjAGXUtLNIxmo1vpMofpLAE=""#
        );
    }

    #[test]
    fn every_field_changes_the_mac() {
        let base = mac(KEY.as_bytes(), &normalized(1, "n", &SPEC));
        let variants = [
            Signed {
                method: "POST",
                ..SPEC
            },
            Signed {
                resource: "/resource/1?b=1&a=3",
                ..SPEC
            },
            Signed {
                host: "example.org",
                ..SPEC
            },
            Signed { port: 8001, ..SPEC },
            Signed { ext: None, ..SPEC },
        ];
        for v in variants {
            assert_ne!(mac(KEY.as_bytes(), &normalized(1, "n", &v)), base, "{v:?}");
        }
        assert_ne!(mac(KEY.as_bytes(), &normalized(2, "n", &SPEC)), base);
        assert_ne!(mac(b"other key", &normalized(1, "n", &SPEC)), base);
        let no_ext = header(ID, KEY.as_bytes(), 1, "n", &Signed { ext: None, ..SPEC });
        assert!(!no_ext.contains("ext="), "{no_ext}");
    }

    #[test]
    fn nonces_are_fresh_and_header_safe() {
        let a = nonce().unwrap();
        let b = nonce().unwrap();
        assert_ne!(a, b);
        assert_eq!(a.len(), 16);
        assert!(attribute_safe(&a));
        assert!(!attribute_safe("a\"b") && !attribute_safe("a\\b") && !attribute_safe("a\nb"));
    }
}
