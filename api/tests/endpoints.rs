//! Each endpoint through the real router with a fake service: answers,
//! uniform 401s, size limits, error mapping, rate limits.

mod common;

use std::time::Duration;

use axum::http::{header, Request, StatusCode};
use common::*;
use skyfleet_api::UNAUTHORIZED_BODY;
use skyfleet_core::protocol::{
    paths, Action, DrainedResponse, ErrorCode, HeartbeatResponse, RegisterResponse,
    ReregisterResponse, MAX_BODY_BYTES,
};

#[tokio::test]
async fn each_endpoint_answers_its_happy_path() {
    let (app, fake) = app(roomy());

    let (resp, body) = send(&app, post(paths::REGISTER, None, register(WORKER, PROOF))).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()[header::CONTENT_TYPE], "application/json");
    assert_eq!(resp.headers()[header::CACHE_CONTROL], "no-store");
    let reg: RegisterResponse = serde_json::from_slice(&body).unwrap();
    assert_eq!(reg.secret.expose(), ISSUED);
    assert_eq!(reg.worker_config["pool"], "ci/linux");

    let (resp, body) = send(
        &app,
        post(paths::REREGISTER, Some(SECRET), worker_body(WORKER)),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let rereg: ReregisterResponse = serde_json::from_slice(&body).unwrap();
    assert_eq!(rereg.secret.expose(), ISSUED);

    let (resp, body) = send(
        &app,
        post(paths::HEARTBEAT, Some(SECRET), heartbeat(WORKER, 2)),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let hb: HeartbeatResponse = serde_json::from_slice(&body).unwrap();
    assert_eq!(hb.action, Action::Continue);
    let (_, body) = send(
        &app,
        post(paths::HEARTBEAT, Some(SECRET), heartbeat(WORKER, 0)),
    )
    .await;
    let hb: HeartbeatResponse = serde_json::from_slice(&body).unwrap();
    assert_eq!(hb.action, Action::Drain);

    let (resp, body) = send(
        &app,
        post(paths::DRAINED, Some(SECRET), worker_body(WORKER)),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let drained: DrainedResponse = serde_json::from_slice(&body).unwrap();
    assert_eq!(drained.action, Action::Terminate);

    assert_eq!(
        *fake.calls.lock().unwrap(),
        [
            "register:w-1",
            "reregister:w-1",
            "heartbeat:w-1",
            "heartbeat:w-1",
            "drained:w-1"
        ]
    );
}

#[tokio::test]
async fn every_authentication_failure_gets_the_same_bytes() {
    let (app, fake) = app(roomy());
    let mut cases = vec![
        (
            "unknown worker",
            post(paths::HEARTBEAT, Some(SECRET), heartbeat("w-9", 1)),
        ),
        (
            "bad secret",
            post(paths::HEARTBEAT, Some("wrong"), heartbeat(WORKER, 1)),
        ),
        (
            "missing header",
            post(paths::HEARTBEAT, None, heartbeat(WORKER, 1)),
        ),
        (
            "bad proof",
            post(paths::REGISTER, None, register(WORKER, "forged")),
        ),
        (
            "unknown worker register",
            post(paths::REGISTER, None, register("w-9", PROOF)),
        ),
        (
            "drained bad secret",
            post(paths::DRAINED, Some("nope"), worker_body(WORKER)),
        ),
        (
            "reregister unknown",
            post(paths::REREGISTER, Some(SECRET), worker_body("w-9")),
        ),
        (
            "reregister no header",
            post(paths::REREGISTER, None, worker_body(WORKER)),
        ),
    ];
    for scheme in ["Basic abc", "Bearer", "Bearer a b", "bearer\tx"] {
        let req = Request::post(paths::DRAINED)
            .header(header::AUTHORIZATION, scheme)
            .body(worker_body(WORKER).into())
            .unwrap();
        cases.push(("malformed header", req));
    }
    // A proof of another kind is refused the same way (mismatched proof).
    let gcp = serde_json::json!({"workerPoolId": "ci/linux", "workerId": WORKER,
        "proof": {"kind": "gcp_token", "jwt": "a.b.c"}})
    .to_string();
    cases.push(("mismatched proof kind", post(paths::REGISTER, None, gcp)));
    let mut first_headers = None;
    for (what, req) in cases {
        let (resp, body) = send(&app, req).await;
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{what}");
        assert_eq!(body, UNAUTHORIZED_BODY.as_bytes(), "{what}");
        assert_eq!(resp.headers()[header::WWW_AUTHENTICATE], "Bearer", "{what}");
        // Headers are identical too, so nothing else tells the causes apart.
        let first = first_headers.get_or_insert_with(|| resp.headers().clone());
        assert_eq!(first, resp.headers(), "{what}");
    }
    // The missing/malformed header cases never reached the service.
    assert_eq!(fake.calls.lock().unwrap().len(), 7);
}

#[tokio::test]
async fn oversized_bodies_are_413_whether_declared_or_streamed() {
    let (app, fake) = app(roomy());
    let big = format!(
        r#"{{"workerId":"{}","state":"idle"}}"#,
        "x".repeat(MAX_BODY_BYTES)
    );
    let (resp, body) = send(&app, post(paths::HEARTBEAT, Some(SECRET), big.clone())).await;
    assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(error_body(resp.status(), &body).code, ErrorCode::BadRequest);

    // No Content-Length: a streamed body is cut while reading.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = big
        .as_bytes()
        .chunks(1000)
        .map(|c| Ok(c.to_vec()))
        .collect();
    let stream = futures_util::stream::iter(chunks);
    let req = post(paths::REGISTER, None, axum::body::Body::from_stream(stream));
    assert!(req.headers().get(header::CONTENT_LENGTH).is_none());
    let (resp, body) = send(&app, req).await;
    assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
    error_body(resp.status(), &body);

    // Exactly at the limit is read (and then refused as JSON, not size).
    let mut at_limit = heartbeat(WORKER, 1);
    at_limit.push_str(&" ".repeat(MAX_BODY_BYTES - at_limit.len()));
    let (resp, _) = send(&app, post(paths::HEARTBEAT, Some(SECRET), at_limit)).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(fake.calls.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn service_errors_map_to_stable_codes_and_generic_messages() {
    let (app, _) = app(roomy().with_request_timeout(Duration::from_millis(200)));
    let (resp, body) = send(
        &app,
        post(paths::HEARTBEAT, Some(SECRET), heartbeat(CONFLICTING, 1)),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::CONFLICT);
    assert_eq!(error_body(resp.status(), &body).code, ErrorCode::Conflict);

    let (resp, body) = send(
        &app,
        post(paths::DRAINED, Some(SECRET), worker_body(BROKEN)),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let e = error_body(resp.status(), &body);
    assert_eq!(e.message, "internal error");
    let text = String::from_utf8_lossy(&body);
    assert!(!text.contains(SECRET) && !text.contains(PROOF), "{text}");

    // A hung service call is cut at the request timeout: 503, retryable.
    let started = std::time::Instant::now();
    let (resp, body) = send(
        &app,
        post(paths::REREGISTER, Some(SECRET), worker_body(SLOW)),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        error_body(resp.status(), &body).code,
        ErrorCode::Unavailable
    );
    assert!(started.elapsed() < Duration::from_secs(30));
}

#[tokio::test]
async fn bad_json_is_400_naming_the_place_without_the_value() {
    let (app, fake) = app(roomy());
    let cases = [
        r#"{"workerId":"w-1","state":"hunter2-state"}"#,
        r#"{"workerId":"w-1","state":"idle","running":"hunter2"}"#,
        r#"{"workerId":"w-1","state":"idle","hunter2":1}"#,
        r#"{"workerId":"w-1","state":"idle"} hunter2"#,
        r#"{"workerId":"w-1","state":"idle""#,
        "",
        "[]",
        "hunter2",
    ];
    for case in cases {
        let (resp, body) = send(&app, post(paths::HEARTBEAT, Some(SECRET), case)).await;
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{case}");
        let e = error_body(resp.status(), &body);
        assert!(e.message.starts_with("invalid request body: "), "{e:?}");
        if case != r#"{"workerId":"w-1","state":"idle","hunter2":1}"# {
            assert!(!e.message.contains("hunter2"), "{case}: {e:?}");
        }
    }
    let (_, body) = send(&app, post(paths::HEARTBEAT, Some(SECRET), cases[1])).await;
    let e = error_body(StatusCode::BAD_REQUEST, &body);
    assert!(e.message.contains("`running`"), "{e:?}");
    let (_, body) = send(
        &app,
        post(
            paths::REGISTER,
            None,
            r#"{"workerPoolId":"p","workerId":"w","proof":{"kind":"carrier_pigeon"}}"#,
        ),
    )
    .await;
    let e = error_body(StatusCode::BAD_REQUEST, &body);
    assert!(e.message.contains("`proof"), "{e:?}");
    assert!(!e.message.contains("carrier_pigeon"), "{e:?}");
    assert!(fake.calls.lock().unwrap().is_empty());
}

#[tokio::test]
async fn unknown_paths_and_methods_get_json_errors() {
    let (app, _) = app(roomy());
    let (resp, body) = send(
        &app,
        post("/api/skyfleet/v1/worker/nope", Some(SECRET), "{}"),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    assert_eq!(error_body(resp.status(), &body).message, "no such endpoint");
    let req = Request::get(paths::HEARTBEAT)
        .body(axum::body::Body::empty())
        .unwrap();
    let (resp, body) = send(&app, req).await;
    assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(resp.headers()[header::ALLOW], "POST");
    error_body(resp.status(), &body);
}

#[tokio::test]
async fn a_source_is_limited_after_its_burst_and_served_after_the_refill() {
    let (app, _) = app(roomy().with_rate(2, 3));
    let req = || {
        from(
            post(paths::HEARTBEAT, Some(SECRET), heartbeat(WORKER, 1)),
            "10.0.0.1:4000",
        )
    };
    for i in 0..3 {
        let (resp, _) = send(&app, req()).await;
        assert_eq!(resp.status(), StatusCode::OK, "request {i} of the burst");
    }
    let (resp, body) = send(&app, req()).await;
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        error_body(resp.status(), &body).code,
        ErrorCode::RateLimited
    );
    let retry: u64 = resp.headers()[header::RETRY_AFTER]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&retry), "{retry}");

    // Other sources and other endpoints have their own buckets.
    let other = from(
        post(paths::HEARTBEAT, Some(SECRET), heartbeat(WORKER, 1)),
        "10.0.0.2:4000",
    );
    assert_eq!(send(&app, other).await.0.status(), StatusCode::OK);
    let drained = from(
        post(paths::DRAINED, Some(SECRET), worker_body(WORKER)),
        "10.0.0.1:4001",
    );
    assert_eq!(send(&app, drained).await.0.status(), StatusCode::OK);

    // 2 a second: one cell refills in 0.5 s; wait well past it.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let (resp, _) = send(&app, req()).await;
    assert_eq!(resp.status(), StatusCode::OK);
}

#[tokio::test]
async fn without_connect_info_all_requests_share_one_bucket() {
    let (app, _) = app(roomy().with_rate(1, 2));
    for _ in 0..2 {
        let (resp, _) = send(
            &app,
            post(paths::DRAINED, Some(SECRET), worker_body(WORKER)),
        )
        .await;
        assert_eq!(resp.status(), StatusCode::OK);
    }
    let (resp, _) = send(
        &app,
        post(paths::DRAINED, Some(SECRET), worker_body(WORKER)),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    // A request with a peer address is not in the shared bucket.
    let req = from(
        post(paths::DRAINED, Some(SECRET), worker_body(WORKER)),
        "[2001:db8::1]:9",
    );
    assert_eq!(send(&app, req).await.0.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_flood_of_new_sources_does_not_lock_out_tracked_ones() {
    let (app, _) = app(roomy().with_rate(1, 2).with_max_tracked_sources(8));
    let known = || {
        from(
            post(paths::HEARTBEAT, Some(SECRET), heartbeat(WORKER, 1)),
            "192.0.2.1:1",
        )
    };
    assert_eq!(send(&app, known()).await.0.status(), StatusCode::OK);
    let mut limited = 0;
    for n in 0..200u32 {
        let peer = format!("198.51.{}.{}:80", n / 250, n % 250);
        let (resp, _) = send(
            &app,
            from(
                post(paths::HEARTBEAT, Some(SECRET), heartbeat(WORKER, 1)),
                &peer,
            ),
        )
        .await;
        if resp.status() == StatusCode::TOO_MANY_REQUESTS {
            limited += 1;
        }
    }
    assert!(
        limited >= 180,
        "the newcomers beyond the bound share one bucket: {limited}"
    );
    assert_eq!(send(&app, known()).await.0.status(), StatusCode::OK);
}

#[test]
fn debug_output_of_configs_and_errors_holds_no_secret() {
    let config = roomy();
    let shown = format!("{config:?}");
    assert!(shown.contains("per_source_per_second"), "{shown}");
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("key.pem");
    let cert = dir.path().join("cert.pem");
    std::fs::write(
        &key,
        "-----BEGIN GARBAGE-----\nS3CRETKEYMATERIAL\n-----END GARBAGE-----\n",
    )
    .unwrap();
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    std::fs::write(&cert, certified.cert.pem()).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let err = rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (app, _) = app(roomy());
        skyfleet_api::serve(
            listener,
            Some(skyfleet_api::TlsFiles::new(&cert, &key)),
            app,
            tokio_util::sync::CancellationToken::new(),
        )
        .await
        .unwrap_err()
    });
    let text = format!("{err} {err:?}");
    assert!(text.contains("private key"), "{text}");
    assert!(text.contains("key.pem"), "{text}");
    assert!(!text.contains("S3CRETKEYMATERIAL"), "{text}");
}
