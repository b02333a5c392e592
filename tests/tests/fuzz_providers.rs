//! Fuzzing the providers' response parsers and state deserialization
//! (proptest, so it runs on stable in CI).
//!
//! A local server answers every request with a random status and a random
//! body (bytes, arbitrary JSON, or a truncated plausible answer); each
//! provider steps a worker against it, from a fresh state and from random
//! persisted states. Whatever comes back, a step must end with `Ok` or a
//! classified `Err`, never a panic or a hang.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use proptest::prelude::*;
use skyfleet_core::testing::fixtures;
use skyfleet_core::transport::{Transport, TransportConfig};
use skyfleet_core::{DesiredState, DynProvider, Phase, Worker};

#[derive(Clone, Default)]
struct Answer {
    status: u16,
    body: Vec<u8>,
    content_type: &'static str,
}

/// A local HTTPS server (Azure refuses to send a bearer token over plain
/// HTTP) answering every request with the current `Answer`.
async fn garbage_server() -> (String, String, Arc<Mutex<Answer>>) {
    let answer = Arc::new(Mutex::new(Answer {
        status: 500,
        body: Vec::new(),
        content_type: "application/json",
    }));
    let a = answer.clone();
    let app = axum::Router::new().fallback(move || {
        let a = a.clone();
        async move {
            let ans = a.lock().unwrap().clone();
            let status = axum::http::StatusCode::from_u16(ans.status)
                .unwrap_or(axum::http::StatusCode::INTERNAL_SERVER_ERROR);
            (status, [("content-type", ans.content_type)], ans.body)
        }
    });
    let cert =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()]).unwrap();
    let pem = cert.cert.pem();
    let tls = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(
        vec![cert.cert.der().clone()],
        rustls::pki_types::PrivateKeyDer::Pkcs8(cert.key_pair.serialize_der().into()),
    )
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("https://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let (acceptor, app) = (acceptor.clone(), app.clone());
            tokio::spawn(async move {
                let Ok(stream) = acceptor.accept(tcp).await else {
                    return;
                };
                let svc = hyper_util::service::TowerToHyperService::new(app);
                let _ = hyper_util::server::conn::auto::Builder::new(
                    hyper_util::rt::TokioExecutor::new(),
                )
                .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                .await;
            });
        }
    });
    (url, pem, answer)
}

fn transport(ca_pem: &str) -> Transport {
    Transport::builder()
        .config(
            TransportConfig::default()
                .with_root_certificate_pem(ca_pem.as_bytes().to_vec())
                .with_max_attempts(1)
                .with_backoff(Duration::from_millis(1), Duration::from_millis(5))
                .with_max_throttle_pause(Duration::from_millis(10))
                .with_default_throttle_pause(Duration::from_millis(10)),
        )
        .build()
        .unwrap()
}

async fn providers(url: &str, ca_pem: &str) -> Vec<(DynProvider, serde_json::Value)> {
    let t = transport(ca_pem);
    let aws = skyfleet_aws::AwsBuilder::new()
        .with_regions(["us-east-1"])
        .with_endpoint_url(url)
        .with_static_credentials("AKIDFUZZ", "fuzz-secret", None)
        .with_transport(t.clone())
        .build()
        .await
        .unwrap();
    let gcp = skyfleet_gcp::GcpBuilder::new("fuzz-project")
        .with_id("gcp")
        .with_endpoint(url)
        .with_credentials(skyfleet_gcp::Credentials::static_token("t"))
        .with_zones(["europe-west1-b"])
        .with_transport(t.clone())
        .build()
        .unwrap();
    let mut az = skyfleet_azure::AzureConfig::new("00000000-0000-0000-0000-00000000f022");
    az.resource_groups = vec!["rg".into()];
    az.endpoint = url.to_string();
    az.credential = skyfleet_azure::CredentialConfig::StaticToken {
        token: skyfleet_azure::Secret::new("t"),
    };
    az.ca_pem = Some(ca_pem.to_string());
    let azure = skyfleet_azure::AzureBuilder::from_config(az)
        .with_transport(t)
        .build()
        .unwrap();
    vec![
        (
            Arc::new(aws) as DynProvider,
            serde_json::json!({"region": "us-east-1", "ImageId": "ami-0123456789abcdef0", "InstanceType": "m5.large"}),
        ),
        (
            Arc::new(gcp) as DynProvider,
            serde_json::json!({"zone": "europe-west1-b", "machineType": "e2-small",
                "disks": [{"boot": true, "initializeParams": {"sourceImage": "projects/x/global/images/y"}}]}),
        ),
        (
            Arc::new(azure) as DynProvider,
            serde_json::json!({"location": "westeurope", "vm_size": "Standard_D2s_v5",
                "subnet_id": "/subscriptions/00000000-0000-0000-0000-00000000f022/resourceGroups/rg/providers/Microsoft.Network/virtualNetworks/v/subnets/s"}),
        ),
    ]
}

fn worker(
    provider: &str,
    launch: serde_json::Value,
    state: serde_json::Value,
    removing: bool,
) -> Worker {
    let mut w = fixtures::worker("w-fuzz")
        .pool("p")
        .provider(provider)
        .manager("m")
        .launch(launch)
        .build_now();
    w.provider_state = state;
    if removing {
        w.desired = DesiredState::Removed;
        w.phase = Phase::Stopping;
    }
    w
}

fn json_value() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        "[a-zA-Z0-9_./:-]{0,24}".prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
            proptest::collection::btree_map(
                prop_oneof![
                    Just("status".to_string()),
                    Just("error".to_string()),
                    Just("properties".to_string()),
                    Just("provisioningState".to_string()),
                    Just("items".to_string()),
                    Just("name".to_string()),
                    Just("id".to_string()),
                    "[a-z]{1,8}",
                ],
                inner,
                0..5
            )
            .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

fn body() -> impl Strategy<Value = (Vec<u8>, &'static str)> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..256).prop_map(|b| (b, "application/json")),
        json_value().prop_map(|v| (v.to_string().into_bytes(), "application/json")),
        json_value().prop_map(|v| {
            let s = v.to_string();
            (s.as_bytes()[..s.len() / 2].to_vec(), "application/json")
        }),
        "[<>/a-zA-Z ]{0,64}".prop_map(|s| (
            format!("<Response><Errors><Error><Code>{s}</Code></Error></Errors></Response>").into_bytes(),
            "text/xml"
        )),
        "[a-zA-Z ]{0,32}".prop_map(|s| (
            format!("<DescribeInstancesResponse><reservationSet><item>{s}</item></reservationSet></DescribeInstancesResponse>").into_bytes(),
            "text/xml"
        )),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn steps_survive_garbage_answers_and_states(
        status in prop_oneof![Just(200u16), Just(201), Just(202), Just(204), Just(400), Just(404), Just(409), Just(429), Just(500)],
        (bytes, content_type) in body(),
        state in prop_oneof![Just(serde_json::Value::Null), json_value()],
        removing in any::<bool>(),
    ) {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let (url, pem, answer) = garbage_server().await;
            *answer.lock().unwrap() = Answer { status, body: bytes, content_type };
            for (p, launch) in providers(&url, &pem).await {
                let w = worker(p.id(), launch, state.clone(), removing);
                // Several steps: the first may only persist names.
                let mut w = w;
                for _ in 0..3 {
                    let r = tokio::time::timeout(Duration::from_secs(30), p.step(&w)).await;
                    prop_assert!(r.is_ok(), "{} step hung", p.id());
                    match r.unwrap() {
                        Ok(step) => skyfleet_core::provider::apply_step(&mut w, &step, time::OffsetDateTime::now_utc()),
                        Err(e) => {
                            prop_assert!(!e.message().is_empty(), "{}: empty error message", p.id());
                            break;
                        }
                    }
                }
            }
            Ok(())
        })?;
    }
}
