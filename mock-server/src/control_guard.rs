//! Who may call the control API (`/_mock/...`).
//!
//! The control API can wipe a developer's mock, so it is not left open to
//! whatever can reach the socket:
//!
//! - **Loopback binding:** only loopback `Host` headers are accepted
//!   (`localhost`, `127.0.0.1` or another loopback address, `[::1]`, with any
//!   port); anything else gets 403. A web page the developer visits cannot
//!   reach the mock through DNS rebinding, because the browser would send the
//!   attacker's host name.
//! - **Control token:** when one is set (required with
//!   `--allow-non-loopback`), every `/_mock/...` call must carry
//!   `Authorization: Bearer TOKEN`, or it gets 401. The dashboard's static
//!   files (`/_mock/ui`, `/_mock/ui/...`) are exempt: they hold no data, and
//!   the page asks for the token before it calls anything else.
//!
//! The cloud APIs are never affected: they keep their own (simulated)
//! authentication.

use std::net::{IpAddr, Ipv6Addr};
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use subtle::ConstantTimeEq;

use crate::app::Shared;

/// Fewest characters a control token may have.
pub const MIN_TOKEN_LEN: usize = 16;
/// Most characters a control token may have (it travels in a header).
pub const MAX_TOKEN_LEN: usize = 512;

/// A control token. Its `Debug` output never shows the value.
#[derive(Clone, PartialEq, Eq)]
pub struct ControlToken(String);

impl ControlToken {
    /// Checks a token: [`MIN_TOKEN_LEN`] to [`MAX_TOKEN_LEN`] visible ASCII
    /// characters (no spaces), so it fits an `Authorization` header as is.
    /// The error never repeats the token.
    pub fn new(token: impl Into<String>) -> Result<ControlToken, String> {
        let token = token.into();
        let len = token.chars().count();
        if !(MIN_TOKEN_LEN..=MAX_TOKEN_LEN).contains(&len) {
            return Err(format!(
                "control token: must be {MIN_TOKEN_LEN} to {MAX_TOKEN_LEN} characters long, got {len}"
            ));
        }
        if !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(
                "control token: must be visible ASCII characters only (no spaces or control characters)"
                    .into(),
            );
        }
        Ok(ControlToken(token))
    }

    /// Compares in constant time, so the answer's timing says nothing about
    /// how much of a guess was right.
    fn matches(&self, candidate: &str) -> bool {
        self.0.as_bytes().ct_eq(candidate.as_bytes()).into()
    }
}

impl std::fmt::Debug for ControlToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ControlToken(<redacted>)")
    }
}

/// The access rules of the control API.
#[derive(Debug, Clone)]
pub struct ControlAccess {
    /// Accept only loopback `Host` headers (set when bound to loopback).
    pub loopback_hosts_only: bool,
    /// The bearer token every control call must carry, if any.
    pub token: Option<ControlToken>,
}

impl Default for ControlAccess {
    /// Loopback hosts only, no token: what a mock bound to loopback gets.
    fn default() -> Self {
        ControlAccess {
            loopback_hosts_only: true,
            token: None,
        }
    }
}

/// Why a control request was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// 403: the `Host` is not a loopback name (or is missing).
    Host(String),
    /// 401: no bearer token, or the wrong one.
    Token(&'static str),
}

impl ControlAccess {
    /// Checks one control request's `Host` (from the header, or from an
    /// absolute request URI) and `Authorization` header.
    pub fn check(
        &self,
        path: &str,
        host: Option<&str>,
        authorization: Option<&str>,
    ) -> Result<(), Refusal> {
        if self.loopback_hosts_only {
            match host {
                None => {
                    return Err(Refusal::Host(
                        "the control API needs a Host header naming a loopback address".into(),
                    ))
                }
                Some(h) if !is_loopback_host(h) => {
                    return Err(Refusal::Host(format!(
                        "the control API answers only loopback hosts (localhost, 127.0.0.1, [::1]); the Host header named {:?}",
                        clip(h)
                    )))
                }
                Some(_) => {}
            }
        }
        let Some(token) = &self.token else {
            return Ok(());
        };
        if is_static_ui(path) {
            return Ok(());
        }
        let Some(value) = authorization else {
            return Err(Refusal::Token(
                "the control API needs a control token: send Authorization: Bearer TOKEN",
            ));
        };
        let presented = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
            .map(str::trim);
        match presented {
            Some(p) if token.matches(p) => Ok(()),
            Some(_) => Err(Refusal::Token("the control token does not match")),
            None => Err(Refusal::Token(
                "the Authorization header must be Bearer TOKEN with the control token",
            )),
        }
    }
}

/// The dashboard's page and static files: constant, no data.
fn is_static_ui(path: &str) -> bool {
    path == "/_mock/ui" || path.starts_with("/_mock/ui/")
}

/// Whether a `Host` value (`name[:port]`, `[v6][:port]`) names loopback.
pub fn is_loopback_host(host: &str) -> bool {
    let name = if let Some(rest) = host.strip_prefix('[') {
        let Some((inside, after)) = rest.split_once(']') else {
            return false;
        };
        if !valid_port_suffix(after) {
            return false;
        }
        return inside.parse::<Ipv6Addr>().is_ok_and(|ip| ip.is_loopback());
    } else {
        match host.split_once(':') {
            Some((name, port)) => {
                if !valid_port(port) {
                    return false;
                }
                name
            }
            None => host,
        }
    };
    if name.eq_ignore_ascii_case("localhost") {
        return true;
    }
    name.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Empty, or `:` followed by a port.
fn valid_port_suffix(s: &str) -> bool {
    match s.strip_prefix(':') {
        None => s.is_empty(),
        Some(port) => valid_port(port),
    }
}

/// 1 to 5 digits.
fn valid_port(port: &str) -> bool {
    (1..=5).contains(&port.len()) && port.bytes().all(|b| b.is_ascii_digit())
}

/// Cuts a header value echoed in a message to a sane length.
fn clip(s: &str) -> &str {
    let mut end = s.len().min(100);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// The middleware: applies the rules in force to `/_mock/...` requests and
/// lets every other request through untouched.
pub async fn guard(State(shared): State<Arc<Shared>>, req: Request, next: Next) -> Response {
    let path = req.uri().path();
    if crate::app::cloud_for_path(path).is_some() {
        return next.run(req).await;
    }
    let access = shared.control_access();
    let host = req
        .uri()
        .authority()
        .map(|a| a.as_str().to_string())
        .or_else(|| {
            req.headers()
                .get(http::header::HOST)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        });
    let authorization = req
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    match access.check(path, host.as_deref(), authorization) {
        Ok(()) => next.run(req).await,
        Err(Refusal::Host(message)) => crate::control::json_error(403, &message),
        Err(Refusal::Token(message)) => {
            let mut resp = crate::control::json_error(401, message);
            resp.headers_mut().insert(
                http::header::WWW_AUTHENTICATE,
                http::HeaderValue::from_static("Bearer realm=\"skyfleet-mock\""),
            );
            resp
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts() {
        for ok in [
            "localhost",
            "LOCALHOST:8600",
            "127.0.0.1",
            "127.0.0.1:1",
            "127.5.6.7:65535",
            "[::1]",
            "[::1]:8600",
        ] {
            assert!(is_loopback_host(ok), "{ok}");
        }
        for bad in [
            "",
            "evil.example",
            "evil.example:8600",
            "localhost.evil.example",
            "localhost.",
            "10.0.0.1:80",
            "0.0.0.0:8600",
            "[::2]:80",
            "[::1",
            "[::1]x",
            "127.0.0.1:",
            "127.0.0.1:123456",
            "127.0.0.1:80:80",
            "::1",
        ] {
            assert!(!is_loopback_host(bad), "{bad}");
        }
    }

    fn access(token: Option<&str>, loopback: bool) -> ControlAccess {
        ControlAccess {
            loopback_hosts_only: loopback,
            token: token.map(|t| ControlToken::new(t).unwrap()),
        }
    }

    #[test]
    fn host_rule_refuses_foreign_and_missing_hosts() {
        let a = access(None, true);
        assert!(a.check("/_mock/reset", Some("127.0.0.1:9"), None).is_ok());
        assert!(matches!(
            a.check("/_mock/reset", Some("rebound.example:9"), None),
            Err(Refusal::Host(m)) if m.contains("rebound.example")
        ));
        assert!(matches!(
            a.check("/_mock/ui", None, None),
            Err(Refusal::Host(_))
        ));
        assert!(access(None, false)
            .check("/_mock/reset", Some("mock.lan"), None)
            .is_ok());
    }

    #[test]
    fn token_rule_wants_the_exact_bearer_token_except_for_static_files() {
        let a = access(Some("0123456789abcdef-token"), false);
        let host = Some("mock.lan:8600");
        assert!(a
            .check("/_mock/faults", host, Some("Bearer 0123456789abcdef-token"))
            .is_ok());
        for (auth, want) in [
            (None, "needs a control token"),
            (Some("Bearer 0123456789abcdef-tokem"), "does not match"),
            (Some("Bearer 0123456789abcdef"), "does not match"),
            (Some("Basic abc"), "must be Bearer"),
        ] {
            match a.check("/_mock/faults", host, auth) {
                Err(Refusal::Token(m)) => assert!(m.contains(want), "{auth:?}: {m}"),
                other => panic!("{auth:?}: {other:?}"),
            }
        }
        assert!(a.check("/_mock/ui", host, None).is_ok());
        assert!(a.check("/_mock/ui/js/main.js", host, None).is_ok());
        assert!(a.check("/_mock/uix", host, None).is_err());
        assert!(a.check("/_mock/events", host, None).is_err());
    }

    #[test]
    fn tokens_are_checked_and_never_shown() {
        assert!(ControlToken::new("short").unwrap_err().contains("16"));
        let err = ControlToken::new("has a space in it!!").unwrap_err();
        assert!(err.contains("visible ASCII") && !err.contains("space in"));
        let t = ControlToken::new("s3cret-s3cret-s3cret").unwrap();
        assert!(!format!("{t:?}").contains("s3cret"));
        assert!(!format!("{:?}", access(Some("s3cret-s3cret-s3cret"), true)).contains("s3cret"));
    }
}
