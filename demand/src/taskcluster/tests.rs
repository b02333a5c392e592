//! [`TaskclusterDemand`] against local stub queues.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_lc_rs::hmac;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use skyfleet_core::fleet::{Demand, PoolDemand};
use skyfleet_core::ErrorKind;

use super::*;
use crate::fetch::MAX_BODY;
use crate::test_server::{serve, serve_fn, Reply, Seen};

const COUNTS: &str = "/api/queue/v1/task-queues/prov%2Flinux/counts";
const PENDING: &str = "/api/queue/v1/pending/prov%2Flinux";
const KEY: &str = "tok-secret-werxhqb98rpaxn39848";

fn counts(pending: u64, claimed: u64) -> String {
    format!(
        r#"{{"taskQueueId": "prov/linux", "provisionerId": "prov", "workerType": "linux", "pendingTasks": {pending}, "claimedTasks": {claimed}}}"#
    )
}

fn creds() -> TaskclusterCredentials {
    TaskclusterCredentials::new("project/skyfleet", KEY).unwrap()
}

/// The attributes of a `Hawk k="v", ...` header.
fn hawk_attrs(header: &str) -> Option<Vec<(String, String)>> {
    let rest = header.strip_prefix("Hawk ")?;
    rest.split(", ")
        .map(|kv| {
            let (k, v) = kv.split_once('=')?;
            let v = v.strip_prefix('"')?.strip_suffix('"')?;
            Some((k.to_string(), v.to_string()))
        })
        .collect()
}

/// What a Taskcluster service does with a request: recompute the Hawk MAC
/// over the request as received (its own normalized string, not the
/// crate's) with `key`, and check the id and the clock skew.
fn hawk_ok(req: &Seen, id: &str, key: &str) -> bool {
    let Some(attrs) = req.header("authorization").and_then(hawk_attrs) else {
        return false;
    };
    let get = |k: &str| attrs.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let (Some(got_id), Some(ts), Some(nonce), Some(mac)) =
        (get("id"), get("ts"), get("nonce"), get("mac"))
    else {
        return false;
    };
    let Some((host, port)) = req.header("host").and_then(|h| h.rsplit_once(':')) else {
        return false;
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let Ok(ts_n) = ts.parse::<u64>() else {
        return false;
    };
    let ext = get("ext").unwrap_or_default();
    let normalized = format!(
        "hawk.1.header\n{ts}\n{nonce}\n{}\n{}\n{host}\n{port}\n\n{ext}\n",
        req.method, req.target
    );
    let k = hmac::Key::new(hmac::HMAC_SHA256, key.as_bytes());
    let Ok(tag) = STANDARD.decode(mac) else {
        return false;
    };
    got_id == id
        && now.abs_diff(ts_n) < 60
        && !nonce.is_empty()
        && hmac::verify(&k, normalized.as_bytes(), &tag).is_ok()
}

/// A queue that answers counts only to requests signed with `key`.
async fn signed_queue(key: &'static str) -> crate::test_server::Served {
    serve_fn(move |req| {
        if hawk_ok(req, "project/skyfleet", key) {
            Reply::json(200, &counts(5, 2))
        } else {
            Reply::json(
                401,
                r#"{"code": "AuthenticationFailed", "message": "bad mac"}"#,
            )
        }
    })
    .await
}

#[tokio::test]
async fn reads_the_task_queue_counts() {
    let s = serve(200, &counts(5, 1)).await;
    let d = TaskclusterDemand::new(format!("{}/", s.base)).unwrap();
    let got = d.demand("prov/linux").await.unwrap();
    assert_eq!(
        got,
        PoolDemand {
            pending: 5,
            claimed: 1
        }
    );
    assert_eq!(s.lines(), vec![format!("GET {COUNTS} HTTP/1.1")]);
    assert!(s.requests()[0].header("authorization").is_none());
}

#[tokio::test]
async fn a_root_url_with_a_path_prefix_keeps_it() {
    let s = serve(200, &counts(0, 0)).await;
    let d = TaskclusterDemand::new(format!("{}/tc", s.base)).unwrap();
    d.demand("prov/linux").await.unwrap();
    assert_eq!(s.lines(), vec![format!("GET /tc{COUNTS} HTTP/1.1")]);
}

#[tokio::test]
async fn falls_back_to_pending_on_404_and_remembers() {
    let s = serve_fn(|req| match req.target.as_str() {
        PENDING => Reply::json(200, r#"{"taskQueueId": "prov/linux", "pendingTasks": 3}"#),
        _ => Reply::json(404, r#"{"code": "ResourceNotFound"}"#),
    })
    .await;
    let d = TaskclusterDemand::new(&s.base).unwrap();
    for _ in 0..2 {
        let got = d.demand("prov/linux").await.unwrap();
        assert_eq!(
            got,
            PoolDemand {
                pending: 3,
                claimed: 0
            }
        );
    }
    assert_eq!(
        s.lines(),
        vec![
            format!("GET {COUNTS} HTTP/1.1"),
            format!("GET {PENDING} HTTP/1.1"),
            format!("GET {PENDING} HTTP/1.1"),
        ]
    );
    // After the recheck interval the newer endpoint is asked again.
    assert!(d.use_legacy());
    *d.legacy_until.lock().unwrap() = Some(Instant::now());
    d.demand("prov/linux").await.unwrap();
    assert_eq!(s.lines()[3], format!("GET {COUNTS} HTTP/1.1"));
    assert_eq!(s.lines().len(), 5, "{:?}", s.lines());
}

#[tokio::test]
async fn a_404_on_both_endpoints_is_not_found_and_not_remembered() {
    let s = serve(404, "{}").await;
    let d = TaskclusterDemand::new(&s.base).unwrap();
    let e = d.demand("prov/linux").await.unwrap_err();
    assert!(matches!(e.kind(), ErrorKind::NotFound), "{e}");
    assert!(e.to_string().contains(PENDING), "{e}");
    assert!(!d.use_legacy());
}

#[tokio::test]
async fn http_errors_are_typed_name_the_path_and_do_not_fall_back() {
    for (status, kind) in [
        (500, "transient"),
        (503, "transient"),
        (401, "unauthenticated"),
        (403, "permission_denied"),
        (429, "throttled"),
    ] {
        let s = serve(status, r#"{"code": "InsufficientScopes"}"#).await;
        let d = TaskclusterDemand::new(&s.base)
            .unwrap()
            .with_credentials(creds());
        let e = d.demand("prov/linux").await.unwrap_err();
        assert_eq!(e.kind().name(), kind, "{status}: {e}");
        let text = format!("{e} {e:?}");
        assert!(text.contains(COUNTS), "{text}");
        assert!(!text.contains(KEY), "{text}");
        assert_eq!(e.code(), Some("InsufficientScopes"));
        assert_eq!(s.lines().len(), 1, "{status}: no fallback");
    }
}

#[tokio::test]
async fn absurd_counts_are_internal_errors() {
    let tail = r#""taskQueueId": "prov/linux""#;
    for body in [
        format!(r#"{{{tail}, "pendingTasks": -1, "claimedTasks": 0}}"#),
        format!(r#"{{{tail}, "pendingTasks": 1.5, "claimedTasks": 0}}"#),
        format!(r#"{{{tail}, "pendingTasks": "4", "claimedTasks": 0}}"#),
        format!(r#"{{{tail}, "pendingTasks": 18446744073709551617, "claimedTasks": 0}}"#),
        format!(r#"{{{tail}, "pendingTasks": 1, "claimedTasks": -2}}"#),
        format!(r#"{{{tail}, "pendingTasks": 1}}"#),
        format!(r#"{{{tail}, "claimedTasks": 1}}"#),
        format!(r#"{{{tail}, "pendingTasks": null, "claimedTasks": 0}}"#),
        "[]".to_string(),
        "not json".to_string(),
    ] {
        let s = serve(200, &body).await;
        let e = TaskclusterDemand::new(&s.base)
            .unwrap()
            .demand("prov/linux")
            .await
            .unwrap_err();
        assert!(matches!(e.kind(), ErrorKind::Internal), "{body}: {e}");
        assert!(e.to_string().contains("unexpected answer"), "{body}: {e}");
    }
    // The largest count is a count: the estimator saturates.
    let s = serve(200, &counts(u64::MAX, u64::MAX)).await;
    let got = TaskclusterDemand::new(&s.base)
        .unwrap()
        .demand("prov/linux")
        .await
        .unwrap();
    assert_eq!(got.pending, u64::MAX);
}

#[tokio::test]
async fn a_huge_answer_is_refused() {
    let s = serve_fn(|_| Reply::unsized_body(200, MAX_BODY + 1)).await;
    let e = TaskclusterDemand::new(&s.base)
        .unwrap()
        .demand("prov/linux")
        .await
        .unwrap_err();
    assert!(e.to_string().contains("larger than"), "{e}");
}

#[tokio::test]
async fn a_queue_that_never_answers_times_out() {
    let s = serve_fn(|_| Reply::Hang).await;
    let d = TaskclusterDemand::new(&s.base)
        .unwrap()
        .with_timeout(Duration::from_millis(300))
        .unwrap();
    let started = Instant::now();
    let e = d.demand("prov/linux").await.unwrap_err();
    assert!(matches!(e.kind(), ErrorKind::Timeout), "{e}");
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn a_slow_answer_within_the_timeout_succeeds() {
    let s = serve_fn(|_| Reply::json(200, &counts(9, 4)).after(Duration::from_millis(400))).await;
    let d = TaskclusterDemand::new(&s.base)
        .unwrap()
        .with_timeout(Duration::from_secs(3))
        .unwrap();
    assert_eq!(
        d.demand("prov/linux").await.unwrap(),
        PoolDemand {
            pending: 9,
            claimed: 4
        }
    );
}

#[tokio::test]
async fn requests_are_hawk_signed_and_the_queue_checks_the_mac() {
    let s = signed_queue(KEY).await;
    let d = TaskclusterDemand::new(&s.base)
        .unwrap()
        .with_credentials(creds());
    // Two calls: two distinct nonces, both accepted.
    for _ in 0..2 {
        assert_eq!(
            d.demand("prov/linux").await.unwrap(),
            PoolDemand {
                pending: 5,
                claimed: 2
            }
        );
    }
    let seen = s.requests();
    let nonce = |r: &Seen| {
        hawk_attrs(r.header("authorization").unwrap())
            .unwrap()
            .into_iter()
            .find(|(k, _)| k == "nonce")
            .unwrap()
            .1
    };
    assert_ne!(nonce(&seen[0]), nonce(&seen[1]));
    let auth = seen[0].header("authorization").unwrap();
    assert!(
        auth.starts_with(r#"Hawk id="project/skyfleet", ts=""#),
        "{auth}"
    );
    assert!(!auth.contains("ext="), "{auth}");
    assert!(!auth.contains(KEY), "{auth}");
}

#[tokio::test]
async fn a_wrong_key_gets_a_typed_401_without_the_token() {
    let s = signed_queue("the-key-the-queue-knows").await;
    let d = TaskclusterDemand::new(&s.base)
        .unwrap()
        .with_credentials(creds());
    let e = d.demand("prov/linux").await.unwrap_err();
    assert!(matches!(e.kind(), ErrorKind::Unauthenticated), "{e}");
    assert_eq!(e.code(), Some("AuthenticationFailed"));
    let text = format!("{e} {e:?}");
    assert!(text.contains(COUNTS), "{text}");
    assert!(!text.contains(KEY), "{text}");
}

#[tokio::test]
async fn the_legacy_endpoint_is_signed_too() {
    let s = serve_fn(|req| {
        if req.target != PENDING {
            Reply::json(404, "{}")
        } else if hawk_ok(req, "project/skyfleet", KEY) {
            Reply::json(200, r#"{"pendingTasks": 8}"#)
        } else {
            Reply::json(401, "{}")
        }
    })
    .await;
    let d = TaskclusterDemand::new(&s.base)
        .unwrap()
        .with_credentials(creds());
    assert_eq!(d.demand("prov/linux").await.unwrap().pending, 8);
}

#[tokio::test]
async fn temporary_credentials_carry_the_certificate_in_ext() {
    let cert = r#"{"version":1,"scopes":["queue:pending-count:*"],"start":1,"expiry":2,"seed":"s","signature":"sig","issuer":"project/skyfleet"}"#;
    let s = signed_queue(KEY).await;
    let d = TaskclusterDemand::new(&s.base)
        .unwrap()
        .with_credentials(creds().with_certificate(cert).unwrap());
    d.demand("prov/linux").await.unwrap();
    let auth = s.requests()[0].header("authorization").unwrap().to_string();
    let ext = hawk_attrs(&auth)
        .unwrap()
        .into_iter()
        .find(|(k, _)| k == "ext")
        .expect("ext")
        .1;
    let v: serde_json::Value = serde_json::from_slice(&STANDARD.decode(ext).unwrap()).unwrap();
    assert_eq!(v["certificate"]["issuer"], "project/skyfleet");
    assert_eq!(v["certificate"]["signature"], "sig");
}

#[tokio::test]
async fn pool_ids_that_are_not_task_queue_ids_are_refused_before_any_request() {
    let s = serve(200, &counts(1, 1)).await;
    let d = TaskclusterDemand::new(&s.base).unwrap();
    let long = format!("p/{}", "w".repeat(39));
    for id in [
        "linux",
        "a/b/c",
        "/linux",
        "prov/",
        "p/../x",
        "p/a?b",
        "p/a%2F",
        long.as_str(),
    ] {
        let e = d.demand(id).await.unwrap_err();
        assert!(
            matches!(e.kind(), ErrorKind::InvalidConfig { field } if field == "pool_id"),
            "{id}: {e}"
        );
    }
    assert!(s.lines().is_empty());
    assert!(d.demand(&format!("p/{}", "w".repeat(38))).await.is_ok());
}

#[test]
fn bad_root_urls_are_invalid_config() {
    for root in [
        "not a url",
        "ftp://tc.example.com",
        "https://u:p@tc.example.com",
        "https://tc.example.com/?x=1",
    ] {
        let e = TaskclusterDemand::new(root).unwrap_err();
        assert!(
            matches!(e.kind(), ErrorKind::InvalidConfig { field } if field == "demand.root_url"),
            "{root}: {e}"
        );
        assert!(!e.to_string().contains(":p@"), "{e}");
    }
}

#[test]
fn debug_never_shows_the_access_token() {
    let d = TaskclusterDemand::new("https://tc.example.com")
        .unwrap()
        .with_credentials(creds());
    let dbg = format!("{d:?}");
    assert!(dbg.contains("project/skyfleet"), "{dbg}");
    assert!(!dbg.contains(KEY), "{dbg}");
}
