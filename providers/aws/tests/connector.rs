//! A real aws-sdk-ec2 client, pointed at a local server speaking EC2's query
//! protocol, sends its signed requests through the skyfleet transport: the
//! stack's limiter, retry policy and metrics see every attempt.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_ec2::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_ec2::error::ProvideErrorMetadata;
use aws_smithy_types::retry::RetryConfig;
use axum::body::Bytes;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use skyfleet_aws::TransportConnector;
use skyfleet_core::transport::{ApiClass, Key, Limit, Transport, TransportConfig};

const THROTTLE: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error><Code>RequestLimitExceeded</Code><Message>Request limit exceeded.</Message></Error></Errors><RequestID>req-throttle</RequestID></Response>";

const DESCRIBE: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<DescribeInstancesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">
  <requestId>req-ok</requestId>
  <reservationSet>
    <item>
      <reservationId>r-0123456789abcdef0</reservationId>
      <ownerId>123456789012</ownerId>
      <instancesSet>
        <item>
          <instanceId>i-0123456789abcdef0</instanceId>
          <instanceState><code>16</code><name>running</name></instanceState>
        </item>
      </instancesSet>
    </item>
  </reservationSet>
</DescribeInstancesResponse>"#;

/// The bodies received, in order.
type Log = Arc<Mutex<Vec<String>>>;

/// Serves EC2 XML on 127.0.0.1: `DescribeInstances` is throttled once then
/// answered; `RunInstances` is always throttled.
async fn server() -> (String, Log) {
    let log: Log = Arc::default();
    let l = log.clone();
    let app = axum::Router::new().route(
        "/",
        axum::routing::post(move |body: Bytes| {
            let l = l.clone();
            async move {
                let body = String::from_utf8_lossy(&body).into_owned();
                let n = {
                    let mut log = l.lock().unwrap();
                    log.push(body.clone());
                    log.iter()
                        .filter(|b| b.contains("Action=DescribeInstances"))
                        .count()
                };
                let throttled = (
                    StatusCode::SERVICE_UNAVAILABLE,
                    [("x-amz-retry-after", "50")],
                    THROTTLE,
                );
                if body.contains("Action=RunInstances") || n == 1 {
                    throttled.into_response()
                } else {
                    (StatusCode::OK, [("content-type", "text/xml")], DESCRIBE).into_response()
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), log)
}

fn ec2(transport: &Transport, endpoint: &str) -> aws_sdk_ec2::Client {
    let connector = TransportConnector::new(transport, "123456789012", "us-east-1");
    let config = aws_sdk_ec2::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("AKIDTEST", "secret", None, None, "test"))
        .endpoint_url(endpoint)
        .http_client(connector)
        .retry_config(RetryConfig::disabled())
        .build();
    aws_sdk_ec2::Client::from_conf(config)
}

fn transport() -> Transport {
    let config = TransportConfig::default()
        .with_backoff(Duration::from_millis(10), Duration::from_millis(100))
        .with_max_attempts(3)
        .with_limit("aws", ApiClass::Poll, Limit::per_second(100, 10))
        .with_operation_limit("aws", "RunInstances", Limit::per_second(100, 10));
    Transport::builder().config(config).build().unwrap()
}

#[tokio::test]
async fn ec2_calls_flow_through_the_stack() {
    let (endpoint, log) = server().await;
    let transport = transport();
    let client = ec2(&transport, &endpoint);

    // Throttled once (RequestLimitExceeded), retried by the stack, answered.
    let out = client.describe_instances().send().await.unwrap();
    let ids: Vec<_> = out
        .reservations()
        .iter()
        .flat_map(|r| r.instances())
        .filter_map(|i| i.instance_id())
        .collect();
    assert_eq!(ids, ["i-0123456789abcdef0"]);

    let poll = Key::new("aws", "123456789012", "us-east-1", ApiClass::Poll);
    let stats = transport.metrics().snapshot().get(&poll);
    assert_eq!(stats.calls, 1);
    assert_eq!(stats.attempts, 2);
    assert_eq!(stats.retries, 1);
    assert_eq!(stats.throttles, 1);
    assert_eq!(stats.statuses.get(&503), Some(&1));
    assert_eq!(stats.statuses.get(&200), Some(&1));
    // Both attempts carried the same SigV4-signed body.
    let bodies = log.lock().unwrap().clone();
    assert_eq!(bodies.len(), 2);
    assert_eq!(bodies[0], bodies[1]);
}

#[tokio::test]
async fn a_persistent_throttle_reaches_the_sdk_as_its_error_code() {
    let (endpoint, log) = server().await;
    let transport = transport();
    let client = ec2(&transport, &endpoint);

    let err = client
        .run_instances()
        .image_id("ami-12345678")
        .min_count(1)
        .max_count(1)
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("RequestLimitExceeded"));

    let write = Key::new("aws", "123456789012", "us-east-1", ApiClass::Write);
    let stats = transport.metrics().snapshot().get(&write);
    // Three attempts by the stack, none by the SDK (its retries are off).
    assert_eq!((stats.calls, stats.attempts, stats.retries), (1, 3, 2));
    assert_eq!(stats.throttles, 3);
    let bodies = log.lock().unwrap().clone();
    assert_eq!(bodies.len(), 3);
    // The SDK's ClientToken is generated once and sent verbatim each time.
    let token = |b: &str| {
        b.split('&')
            .find(|f| f.starts_with("ClientToken="))
            .map(str::to_owned)
    };
    assert!(token(&bodies[0]).is_some(), "{}", bodies[0]);
    assert!(bodies.iter().all(|b| token(b) == token(&bodies[0])));
}
