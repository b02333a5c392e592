//! The LRO engine against scripted ARM answers: which header is followed,
//! synchronous completion, Location polling, resource polling, expired
//! operations, foreign URLs and bounded poll errors.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::Method;
use skyfleet_azure::testing::{
    ArmClient, ArmOperation, ArmResponse, PollKind, PollOutcome, Started,
};
use skyfleet_azure::{AzureBuilder, Credential};
use skyfleet_core::transport::{Transport, TransportConfig};
use skyfleet_core::{ErrorKind, FinalState, PollPolicy};

const BASE: &str = "https://arm.test";
const RES: &str = "https://arm.test/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/networkInterfaces/n?api-version=2024-05-01";

type Script = Arc<Mutex<VecDeque<(u16, Vec<(&'static str, String)>, &'static str)>>>;

fn client(script: Script) -> ArmClient {
    let svc = tower::service_fn(move |_req: http::Request<Bytes>| {
        let script = script.clone();
        async move {
            let (status, headers, body) =
                script
                    .lock()
                    .unwrap()
                    .pop_front()
                    .unwrap_or((500, vec![], "script exhausted"));
            let mut b = http::Response::builder().status(status);
            for (k, v) in headers {
                b = b.header(k, v);
            }
            Ok::<_, skyfleet_core::Error>(b.body(Bytes::from_static(body.as_bytes())).unwrap())
        }
    });
    let transport = Transport::builder()
        .config(TransportConfig::default().with_max_attempts(1))
        .build_with(svc)
        .unwrap();
    let provider = AzureBuilder::new("s")
        .with_endpoint(BASE)
        .with_transport(transport)
        .with_token_source(Arc::new(Credential::static_token("t")))
        .build()
        .unwrap();
    skyfleet_azure::testing::client(&provider).clone()
}

fn resp(status: u16, headers: &[(&str, &str)], body: &'static str) -> ArmResponse {
    let mut h = http::HeaderMap::new();
    for (k, v) in headers {
        h.insert(
            http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            v.parse().unwrap(),
        );
    }
    ArmResponse {
        status,
        headers: h,
        body: Bytes::from_static(body.as_bytes()),
    }
}

fn policy() -> PollPolicy {
    PollPolicy {
        min_interval: Duration::from_millis(1),
        max_interval: Duration::from_millis(5),
        default_interval: Duration::from_millis(1),
        deadline: Duration::from_secs(60),
        max_consecutive_errors: 3,
    }
}

fn start(c: &ArmClient, r: &ArmResponse, m: Method) -> skyfleet_core::Result<Started> {
    ArmOperation::start(
        c,
        r,
        &m,
        RES,
        FinalState::OriginalUri,
        time::OffsetDateTime::now_utc(),
        &policy(),
        "test",
    )
}

fn pending(s: Started) -> ArmOperation {
    match s {
        Started::Pending(op) => *op,
        Started::Done => panic!("expected pending"),
    }
}

#[test]
fn which_header_is_followed() {
    let c = client(Script::default());
    let async_url = format!("{BASE}/subscriptions/s/providers/Microsoft.Network/locations/eastus/operations/1?api-version=x");
    let loc_url = format!("{BASE}/subscriptions/s/providers/Microsoft.Network/locations/eastus/operationResults/1?api-version=x");
    let both = resp(
        201,
        &[
            ("azure-asyncoperation", &async_url),
            ("location", &loc_url),
            ("retry-after", "7"),
        ],
        r#"{"properties":{"provisioningState":"Updating"}}"#,
    );
    let op = pending(start(&c, &both, Method::PUT).unwrap());
    assert_eq!(op.kind, PollKind::AsyncOperation);
    assert_eq!(op.op.poll_url, async_url);
    assert_eq!(op.op.final_url.as_deref(), Some(RES));
    assert_eq!(op.op.retry_after_ms, Some(7000));
    let del = resp(202, &[("location", &loc_url)], "");
    let op = pending(start(&c, &del, Method::DELETE).unwrap());
    assert_eq!(op.kind, PollKind::Location);
    assert_eq!(op.op.final_state, FinalState::None);
    let body_only = resp(
        201,
        &[],
        r#"{"properties":{"provisioningState":"Creating"}}"#,
    );
    assert_eq!(
        pending(start(&c, &body_only, Method::PUT).unwrap()).kind,
        PollKind::Resource
    );
    assert!(matches!(
        start(
            &c,
            &resp(
                200,
                &[],
                r#"{"properties":{"provisioningState":"Succeeded"}}"#
            ),
            Method::PUT
        )
        .unwrap(),
        Started::Done
    ));
    assert!(matches!(
        start(&c, &resp(204, &[], ""), Method::DELETE).unwrap(),
        Started::Done
    ));
    let e = start(&c, &resp(200, &[], "<html>"), Method::PUT).unwrap_err();
    assert_eq!(e.code(), Some("GarbledResponse"));
    let e = start(
        &c,
        &resp(
            201,
            &[("azure-asyncoperation", "https://evil.test/op")],
            "{}",
        ),
        Method::PUT,
    )
    .unwrap_err();
    assert_eq!(
        e.code(),
        Some("ForeignUrl"),
        "the token never goes elsewhere"
    );
    let e = start(
        &c,
        &resp(200, &[], r#"{"properties":{"provisioningState":"Failed"}}"#),
        Method::PUT,
    )
    .unwrap_err();
    assert_eq!(e.kind(), &ErrorKind::OperationFailed);
}

fn now() -> time::OffsetDateTime {
    time::OffsetDateTime::now_utc()
}

#[tokio::test]
async fn location_and_resource_polling() {
    let script = Script::default();
    let c = client(script.clone());
    let loc = format!(
        "{BASE}/subscriptions/s/providers/Microsoft.Network/locations/eastus/operationResults/1"
    );
    let mut op = pending(start(&c, &resp(202, &[("location", &loc)], ""), Method::DELETE).unwrap());
    script
        .lock()
        .unwrap()
        .extend([(202, vec![], ""), (204, vec![], "")]);
    assert!(matches!(
        op.poll(&c, "eastus", "t", now, &policy()).await,
        PollOutcome::InProgress(None)
    ));
    assert!(matches!(
        op.poll(&c, "eastus", "t", now, &policy()).await,
        PollOutcome::Succeeded
    ));
    // A Location URL answering the operation's error: failed, with its code.
    let mut op = pending(start(&c, &resp(202, &[("location", &loc)], ""), Method::DELETE).unwrap());
    script.lock().unwrap().push_back((
        409,
        vec![],
        r#"{"error":{"code":"NicInUse","message":"in use"}}"#,
    ));
    match op.poll(&c, "eastus", "t", now, &policy()).await {
        PollOutcome::Failed(e) => assert_eq!(e.code(), Some("NicInUse")),
        o => panic!("{o:?}"),
    }
    // A DELETE polled by its resource ends with the 404.
    let mut op = pending(start(&c, &resp(202, &[], ""), Method::DELETE).unwrap());
    assert_eq!(op.kind, PollKind::Resource);
    script.lock().unwrap().extend([
        (
            200,
            vec![],
            r#"{"properties":{"provisioningState":"Deleting"}}"#,
        ),
        (404, vec![], ""),
    ]);
    assert!(matches!(
        op.poll(&c, "eastus", "t", now, &policy()).await,
        PollOutcome::InProgress(None)
    ));
    assert!(matches!(
        op.poll(&c, "eastus", "t", now, &policy()).await,
        PollOutcome::Succeeded
    ));
}

#[tokio::test]
async fn async_status_failures_expiry_and_error_streaks() {
    let script = Script::default();
    let c = client(script.clone());
    let url =
        format!("{BASE}/subscriptions/s/providers/Microsoft.Compute/locations/eastus/operations/9");
    let initial = resp(201, &[("azure-asyncoperation", &url)], "{}");
    let mut op = pending(start(&c, &initial, Method::PUT).unwrap());
    script.lock().unwrap().push_back((
        200,
        vec![],
        r#"{"status":"Failed","error":{"code":"ZonalAllocationFailed","message":"none"}}"#,
    ));
    match op
        .poll(
            &c,
            "eastus",
            "VirtualMachines_CreateOrUpdate",
            now,
            &policy(),
        )
        .await
    {
        PollOutcome::Failed(e) => {
            assert_eq!(e.kind(), &ErrorKind::CapacityOrQuota);
            assert_eq!(e.code(), Some("ZonalAllocationFailed"));
        }
        o => panic!("{o:?}"),
    }
    let mut op = pending(start(&c, &initial, Method::PUT).unwrap());
    script.lock().unwrap().push_back((
        404,
        vec![],
        r#"{"error":{"code":"ResourceNotFound","message":""}}"#,
    ));
    assert!(matches!(
        op.poll(&c, "eastus", "t", now, &policy()).await,
        PollOutcome::Expired
    ));
    // Garbled status bodies and 5xx: recorded, then given up after the streak.
    let mut op = pending(start(&c, &initial, Method::PUT).unwrap());
    script.lock().unwrap().extend([
        (200, vec![], "{\"nostatus\":1}"),
        (502, vec![], "bad gateway"),
        (200, vec![], "<garbage"),
    ]);
    assert!(matches!(
        op.poll(&c, "eastus", "t", now, &policy()).await,
        PollOutcome::InProgress(Some(_))
    ));
    assert!(matches!(
        op.poll(&c, "eastus", "t", now, &policy()).await,
        PollOutcome::InProgress(Some(_))
    ));
    match op.poll(&c, "eastus", "t", now, &policy()).await {
        PollOutcome::Failed(e) => assert!(e.message().contains("3 consecutive poll errors"), "{e}"),
        o => panic!("{o:?}"),
    }
}
