//! The one HTTP GET every source makes: a JSON body read under a size cap,
//! errors classified by core's [`ErrorKind`].
//!
//! Error messages name the request as `GET scheme://host:port/path`: never
//! the URL's user-info or query string (either may carry a credential), and
//! never the `Authorization` header. reqwest's own error text is taken
//! [`without_url`](reqwest::Error::without_url) for the same reason.

use std::time::Duration;

use reqwest::header::{HeaderValue, AUTHORIZATION, RETRY_AFTER};
use reqwest::StatusCode;
use skyfleet_core::{Error, ErrorKind, Result};
use url::Url;

/// How long one demand query may take by default (connect, send, answer).
pub(crate) const TIMEOUT: Duration = Duration::from_secs(10);

/// The largest demand answer read (they are a few dozen bytes).
pub(crate) const MAX_BODY: usize = 1024 * 1024;

/// The largest error body read for its `code` field.
const MAX_ERROR_BODY: usize = 16 * 1024;

/// The longest error `code` kept from an answer (they are short words).
const MAX_CODE: usize = 64;

/// The longest `Retry-After` honoured, so a hostile answer cannot park a
/// caller for days.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);

/// A client whose every request is bounded by `timeout` and that follows no
/// redirect (a demand endpoint that moves is a configuration error, and a
/// redirect must not carry a signed request elsewhere).
pub(crate) fn client(timeout: Duration) -> Result<reqwest::Client> {
    reqwest::Client::builder()
        .timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| Error::internal(format!("demand: building HTTP client: {e}")))
}

/// `url` as error messages show it: scheme, host, port and path only.
pub(crate) fn shown(url: &Url) -> String {
    let host = url.host_str().unwrap_or("");
    match url.port() {
        Some(port) => format!("{}://{host}:{port}{}", url.scheme(), url.path()),
        None => format!("{}://{host}{}", url.scheme(), url.path()),
    }
}

/// `GET url` with an optional `Authorization` value, decoding the JSON body
/// as `T`.
///
/// Classification: a timeout is [`ErrorKind::Timeout`]; a connection failure
/// or 5xx is [`ErrorKind::Transient`]; 401 is [`ErrorKind::Unauthenticated`],
/// 403 [`ErrorKind::PermissionDenied`], 404 [`ErrorKind::NotFound`], 429
/// [`ErrorKind::Throttled`] (with `Retry-After` in seconds, capped at five
/// minutes); any other status, an answer over [`MAX_BODY`] or a body that
/// is not the expected JSON object is [`ErrorKind::Internal`]. A JSON error body's
/// string `code` (Taskcluster's `InsufficientScopes`, `AuthenticationFailed`)
/// is kept as the error's code.
pub(crate) async fn get_json<T: serde::de::DeserializeOwned>(
    client: &reqwest::Client,
    url: &Url,
    authorization: Option<&str>,
) -> Result<T> {
    let what = format!("demand: GET {}", shown(url));
    let mut req = client.get(url.clone());
    if let Some(auth) = authorization {
        let mut value = HeaderValue::from_str(auth).map_err(|_| {
            Error::internal(format!(
                "{what}: the Authorization value is not a valid header"
            ))
        })?;
        value.set_sensitive(true);
        req = req.header(AUTHORIZATION, value);
    }
    let resp = req.send().await.map_err(|e| transport_error(&what, e))?;
    let status = resp.status();
    if !status.is_success() {
        return Err(status_error(&what, resp).await);
    }
    let body = read_capped(resp, MAX_BODY, &what).await?;
    let unexpected =
        |e: &dyn std::fmt::Display| Error::internal(format!("{what}: unexpected answer: {e}"));
    // Every answer is a JSON object: serde would otherwise also read a
    // struct from an array of its fields in order (`[1, 2]`).
    let value: serde_json::Value = serde_json::from_slice(&body).map_err(|e| unexpected(&e))?;
    if !value.is_object() {
        return Err(unexpected(&"not a JSON object"));
    }
    T::deserialize(value).map_err(|e| unexpected(&e))
}

/// A failure before any status arrived.
fn transport_error(what: &str, e: reqwest::Error) -> Error {
    let kind = if e.is_timeout() {
        ErrorKind::Timeout
    } else {
        ErrorKind::Transient
    };
    Error::new(kind, format!("{what}: {}", e.without_url()))
}

/// The error for a non-success answer, with the body's `code` if it has one.
async fn status_error(what: &str, resp: reqwest::Response) -> Error {
    let status = resp.status();
    let kind = match status {
        StatusCode::UNAUTHORIZED => ErrorKind::Unauthenticated,
        StatusCode::FORBIDDEN => ErrorKind::PermissionDenied,
        StatusCode::NOT_FOUND => ErrorKind::NotFound,
        StatusCode::TOO_MANY_REQUESTS => ErrorKind::Throttled {
            retry_after: retry_after(&resp),
        },
        s if s.is_server_error() => ErrorKind::Transient,
        _ => ErrorKind::Internal,
    };
    let code = read_capped(resp, MAX_ERROR_BODY, what)
        .await
        .ok()
        .and_then(|body| error_code(&body));
    let err = Error::new(kind, format!("{what}: HTTP {status}"));
    match code {
        Some(code) => err.with_code(code),
        None => err,
    }
}

/// `Retry-After` in whole seconds, capped (an HTTP date is not honoured).
fn retry_after(resp: &reqwest::Response) -> Option<Duration> {
    let secs: u64 = resp
        .headers()
        .get(RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(Duration::from_secs(secs).min(MAX_RETRY_AFTER))
}

/// The string `code` of a JSON error body, if it is a short printable word.
fn error_code(body: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    let code = v.get("code")?.as_str()?;
    let ok = !code.is_empty()
        && code.len() <= MAX_CODE
        && code
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    ok.then(|| code.to_string())
}

/// The body, at most `max` bytes: a longer `Content-Length` is refused
/// before reading, a longer stream when it passes `max`.
async fn read_capped(mut resp: reqwest::Response, max: usize, what: &str) -> Result<Vec<u8>> {
    let too_large = || Error::internal(format!("{what}: answer larger than {max} bytes"));
    if resp
        .content_length()
        .is_some_and(|l| l > u64::try_from(max).unwrap_or(u64::MAX))
    {
        return Err(too_large());
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| transport_error(what, e))? {
        if chunk.len() > max - body.len() {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;
    use crate::test_server::{serve, serve_fn, Reply};

    #[derive(Debug, serde::Deserialize)]
    struct Answer {
        n: u64,
    }

    fn url(base: &str) -> Url {
        Url::parse(base).unwrap()
    }

    #[tokio::test]
    async fn decodes_json_body() {
        let s = serve(200, r#"{"n": 3}"#).await;
        let a: Answer = get_json(&client(TIMEOUT).unwrap(), &url(&s.base), None)
            .await
            .unwrap();
        assert_eq!(a.n, 3);
    }

    #[tokio::test]
    async fn statuses_map_to_kinds() {
        let c = client(TIMEOUT).unwrap();
        for (status, want) in [
            (503, "transient"),
            (500, "transient"),
            (401, "unauthenticated"),
            (403, "permission_denied"),
            (404, "not_found"),
            (400, "internal"),
            (302, "internal"),
        ] {
            let s = serve(status, "{}").await;
            let e = get_json::<Answer>(&c, &url(&s.base), None)
                .await
                .unwrap_err();
            assert_eq!(e.kind().name(), want, "HTTP {status}: {e}");
            assert!(e.to_string().contains(&format!("HTTP {status}")), "{e}");
        }
    }

    #[tokio::test]
    async fn a_json_error_code_is_kept_and_throttling_carries_retry_after() {
        let s = serve_fn(|_| Reply::json(403, r#"{"code": "InsufficientScopes", "message": "x"}"#))
            .await;
        let e = get_json::<Answer>(&client(TIMEOUT).unwrap(), &url(&s.base), None)
            .await
            .unwrap_err();
        assert_eq!(e.code(), Some("InsufficientScopes"));

        let s = serve_fn(|_| Reply::json(429, "{}").header("retry-after", "7")).await;
        let e = get_json::<Answer>(&client(TIMEOUT).unwrap(), &url(&s.base), None)
            .await
            .unwrap_err();
        assert_eq!(e.retry_after(), Some(Duration::from_secs(7)));
        let s = serve_fn(|_| Reply::json(429, "{}").header("retry-after", "99999999")).await;
        let e = get_json::<Answer>(&client(TIMEOUT).unwrap(), &url(&s.base), None)
            .await
            .unwrap_err();
        assert_eq!(e.retry_after(), Some(MAX_RETRY_AFTER));
    }

    #[tokio::test]
    async fn an_answer_over_the_body_limit_is_refused() {
        let big = format!(r#"{{"n": 3, "pad": "{}"}}"#, "x".repeat(MAX_BODY));
        let s = serve_fn(move |_| Reply::json(200, &big)).await;
        let e = get_json::<Answer>(&client(TIMEOUT).unwrap(), &url(&s.base), None)
            .await
            .unwrap_err();
        assert!(matches!(e.kind(), ErrorKind::Internal));
        assert!(e.to_string().contains("larger than"), "{e}");
    }

    #[tokio::test]
    async fn a_stream_without_length_is_cut_at_the_limit() {
        let s = serve_fn(|_| Reply::unsized_body(200, MAX_BODY + 10)).await;
        let e = get_json::<Answer>(&client(TIMEOUT).unwrap(), &url(&s.base), None)
            .await
            .unwrap_err();
        assert!(e.to_string().contains("larger than"), "{e}");
    }

    #[tokio::test]
    async fn bad_body_is_internal() {
        let s = serve(200, "not json").await;
        let e = get_json::<Answer>(&client(TIMEOUT).unwrap(), &url(&s.base), None)
            .await
            .unwrap_err();
        assert!(matches!(e.kind(), ErrorKind::Internal));
        assert!(e.to_string().contains("unexpected answer"), "{e}");
    }

    #[tokio::test]
    async fn a_server_that_never_answers_times_out_quickly() {
        let s = serve_fn(|_| Reply::Hang).await;
        let started = Instant::now();
        let e = get_json::<Answer>(
            &client(Duration::from_millis(300)).unwrap(),
            &url(&s.base),
            None,
        )
        .await
        .unwrap_err();
        assert!(matches!(e.kind(), ErrorKind::Timeout), "{e}");
        assert!(started.elapsed() < Duration::from_secs(2));
    }

    #[tokio::test]
    async fn a_refused_connection_is_transient() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let e = get_json::<Answer>(
            &client(TIMEOUT).unwrap(),
            &url(&format!("http://{addr}/")),
            None,
        )
        .await
        .unwrap_err();
        assert!(matches!(e.kind(), ErrorKind::Transient), "{e}");
    }

    #[tokio::test]
    async fn errors_never_show_userinfo_query_or_authorization() {
        let s = serve(500, "{}").await;
        let mut u = url(&format!("{}/path?token=qs-secret", s.base));
        u.set_username("user").unwrap();
        u.set_password(Some("pw-secret")).unwrap();
        let e = get_json::<Answer>(
            &client(TIMEOUT).unwrap(),
            &u,
            Some("Hawk mac=\"hdr-secret\""),
        )
        .await
        .unwrap_err();
        let text = format!("{e} {e:?}");
        assert!(text.contains("/path"), "{text}");
        for secret in ["qs-secret", "pw-secret", "hdr-secret", "user"] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
        // The same for a transport failure, whose reqwest text names the URL.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let u = url(&format!("http://user:pw-secret@{addr}/p?token=qs-secret"));
        let e = get_json::<Answer>(&client(TIMEOUT).unwrap(), &u, None)
            .await
            .unwrap_err();
        let text = format!("{e} {e:?}");
        assert!(
            !text.contains("pw-secret") && !text.contains("qs-secret"),
            "{text}"
        );
    }
}
