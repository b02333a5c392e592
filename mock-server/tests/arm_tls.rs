//! ARM over real TLS with reqwest, following the LRO headers as the Azure SDK
//! pollers do, and the Azure AD token endpoint with azure_identity's
//! `ClientSecretCredential` (authority host pointed at the mock).

use std::sync::Arc;
use std::time::Duration;

use azure_core::cloud::{CloudConfiguration, CustomConfiguration};
use azure_core::credentials::{Secret, TokenCredential};
use azure_core::http::{ClientOptions, Transport};
use azure_identity::{ClientSecretCredential, ClientSecretCredentialOptions};
use reqwest::{Client, Method, StatusCode};
use serde_json::{json, Value};
use skyfleet_mock::arm::{ArmConfig, ArmDurations};
use skyfleet_mock::{MockCloud, MockConfig};

const API: &str = "api-version=2024-07-01";

async fn start() -> (MockCloud, Client) {
    let d = 2.0;
    let cfg = MockConfig {
        azure: Some(ArmConfig {
            durations: ArmDurations {
                public_ip_s: d,
                network_interface_s: d,
                virtual_network_s: d,
                disk_s: d,
                vm_create_s: d,
                vm_update_s: d,
                vm_delete_s: d,
                delete_s: d,
            },
            ..ArmConfig::default()
        }),
        ..MockConfig::default()
    };
    let mock = MockCloud::builder()
        .tls(true)
        .time_scale(0.1)
        .config(cfg)
        .start()
        .await
        .unwrap();
    let cert = reqwest::Certificate::from_pem(mock.cert_pem().unwrap().as_bytes()).unwrap();
    let client = Client::builder()
        .add_root_certificate(cert)
        .build()
        .unwrap();
    (mock, client)
}

async fn call(
    c: &Client,
    token: &str,
    method: Method,
    url: &str,
    body: Option<Value>,
) -> (StatusCode, reqwest::header::HeaderMap, Value) {
    let mut rb = c.request(method, url).bearer_auth(token);
    if let Some(b) = body {
        rb = rb.json(&b);
    }
    let res = rb.send().await.unwrap();
    let status = res.status();
    let headers = res.headers().clone();
    let bytes = res.bytes().await.unwrap();
    (
        status,
        headers,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// The polling hint as azure-core reads it: `Retry-After` (never 0) if
/// present, else `retry-after-ms` (what a sub-second scaled delay is sent as).
fn retry_after(h: &reqwest::header::HeaderMap) -> Duration {
    let num = |name: &str| {
        h.get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
    };
    if let Some(s) = num("retry-after") {
        assert!(s >= 1, "Retry-After is never 0");
        return Duration::from_secs(s);
    }
    let ms = num("retry-after-ms").expect("a polling hint on every accepted operation");
    assert!(ms >= 1, "retry-after-ms is never 0");
    Duration::from_millis(ms)
}

/// What the Go/Rust async pollers do for a PUT: honour the hint, poll the
/// absolute Azure-AsyncOperation URL until terminal, then GET the original URL.
async fn begin_put(c: &Client, token: &str, url: &str, body: Value) -> Value {
    let (status, h, initial) = call(c, token, Method::PUT, url, Some(body)).await;
    assert!(matches!(status.as_u16(), 200..=202), "{status} {initial}");
    let op = h["azure-asyncoperation"].to_str().unwrap().to_string();
    assert!(
        op.starts_with("https://127.0.0.1:"),
        "absolute https URL: {op}"
    );
    let mut wait = retry_after(&h);
    loop {
        tokio::time::sleep(wait).await;
        let (s, h, st) = call(c, token, Method::GET, &op, None).await;
        assert_eq!(s, StatusCode::OK);
        match st["status"].as_str().unwrap() {
            "InProgress" => wait = retry_after(&h),
            "Succeeded" => break,
            other => panic!("operation {other}: {st}"),
        }
    }
    let (s, _, res) = call(c, token, Method::GET, url, None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(res["properties"]["provisioningState"], "Succeeded");
    res
}

/// What Python's DELETE poller (final-state-via location) does: follow
/// Location until it stops answering 202.
async fn begin_delete(c: &Client, token: &str, url: &str) {
    let (status, h, _) = call(c, token, Method::DELETE, url, None).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let mut loc = h["location"].to_str().unwrap().to_string();
    let mut wait = retry_after(&h);
    loop {
        tokio::time::sleep(wait).await;
        let (s, h, _) = call(c, token, Method::GET, &loc, None).await;
        if s != StatusCode::ACCEPTED {
            assert!(s == StatusCode::OK || s == StatusCode::NO_CONTENT, "{s}");
            break;
        }
        if let Some(l) = h.get("location") {
            loc = l.to_str().unwrap().to_string();
        }
        wait = retry_after(&h);
    }
}

fn credential(mock: &MockCloud, client: &Client) -> Arc<ClientSecretCredential> {
    let mut custom = CustomConfiguration::default();
    custom.authority_host = mock.url().to_string();
    let options = ClientSecretCredentialOptions {
        client_options: ClientOptions {
            cloud: Some(Arc::new(CloudConfiguration::Custom(custom))),
            transport: Some(Transport::new(Arc::new(client.clone()))),
            ..ClientOptions::default()
        },
    };
    ClientSecretCredential::new(
        "00000000-0000-0000-0000-000000000001",
        "11111111-2222-3333-4444-555555555555".into(),
        Secret::new("s3cret"),
        Some(options),
    )
    .unwrap()
}

#[tokio::test]
async fn chain_over_tls_with_an_azure_identity_token() {
    let (mock, c) = start().await;
    let cred = credential(&mock, &c);
    let token = cred
        .get_token(&["https://management.azure.com/.default"], None)
        .await
        .unwrap();
    let token = token.token.secret().to_string();
    assert_eq!(token.split('.').count(), 3, "JWT-shaped");

    let base = format!("{}/subscriptions/sub-tls/resourceGroups/rg", mock.url());
    let (s, _, _) = call(
        &c,
        &token,
        Method::PUT,
        &format!("{base}?{API}"),
        Some(json!({"location": "eastus"})),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED);
    let vnet = format!("{base}/providers/Microsoft.Network/virtualNetworks/vnet?{API}");
    let v = begin_put(
        &c,
        &token,
        &vnet,
        json!({"location": "eastus", "properties": {
        "addressSpace": {"addressPrefixes": ["10.0.0.0/16"]},
        "subnets": [{"name": "default", "properties": {"addressPrefix": "10.0.0.0/24"}}]}}),
    )
    .await;
    let subnet = v["properties"]["subnets"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let pip = begin_put(&c, &token, &format!("{base}/providers/Microsoft.Network/publicIPAddresses/pip?{API}"),
        json!({"location": "eastus", "sku": {"name": "Standard"}, "properties": {"publicIPAllocationMethod": "Static"}}))
    .await;
    let nic = begin_put(&c, &token, &format!("{base}/providers/Microsoft.Network/networkInterfaces/nic?{API}"),
        json!({"location": "eastus", "properties": {"ipConfigurations": [{"name": "ipconfig1", "properties": {
            "subnet": {"id": subnet}, "publicIPAddress": {"id": pip["id"], "properties": {"deleteOption": "Delete"}}}}]}}))
    .await;
    assert_eq!(
        nic["properties"]["ipConfigurations"][0]["properties"]["privateIPAddress"],
        "10.0.0.4"
    );
    let vm_url = format!("{base}/providers/Microsoft.Compute/virtualMachines/vm?{API}");
    let vm = begin_put(&c, &token, &vm_url, json!({"location": "eastus", "properties": {
        "hardwareProfile": {"vmSize": "Standard_D2s_v5"},
        "storageProfile": {"osDisk": {"createOption": "FromImage", "deleteOption": "Delete"}},
        "osProfile": {"computerName": "vm", "adminUsername": "u", "customData": "eA=="},
        "networkProfile": {"networkInterfaces": [{"id": nic["id"], "properties": {"deleteOption": "Delete"}}]}}}))
    .await;
    assert!(vm["properties"]["osProfile"].get("customData").is_none());
    let (_, _, iv) = call(
        &c,
        &token,
        Method::GET,
        &format!("{base}/providers/Microsoft.Compute/virtualMachines/vm/instanceView?{API}"),
        None,
    )
    .await;
    assert_eq!(iv["statuses"][1]["code"], "PowerState/running");

    begin_delete(&c, &token, &vm_url).await;
    let (s, _, e) = call(&c, &token, Method::GET, &vm_url, None).await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("ResourceNotFound"))
    );
    let live: Vec<String> = live_kinds(&c, &mock, "sub-tls").await;
    assert_eq!(
        live,
        ["resourceGroup", "virtualNetwork"],
        "the cascade left nothing behind"
    );

    // No bearer: 401 with a challenge.
    let res = c.get(&vm_url).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert!(res.headers().contains_key("www-authenticate"));
}

/// The kinds `GET /_mock/resources` lists for one subscription, sorted.
async fn live_kinds(c: &Client, mock: &MockCloud, sub: &str) -> Vec<String> {
    let url = format!("{}/_mock/resources?cloud=azure&scope={sub}", mock.url());
    let all: Vec<Value> = c.get(url).send().await.unwrap().json().await.unwrap();
    let mut kinds: Vec<String> = all
        .iter()
        .map(|r| r["kind"].as_str().unwrap().to_string())
        .collect();
    kinds.sort();
    kinds
}

#[tokio::test]
async fn token_endpoint_errors_reach_azure_identity() {
    let (mock, c) = start().await;
    // Missing client_id: AAD's invalid_request JSON.
    let res = c
        .post(format!("{}/tenant1/oauth2/v2.0/token", mock.url()))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_secret", "x"),
            ("scope", "https://management.azure.com/.default"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"], "invalid_request");
    assert!(body["error_description"]
        .as_str()
        .unwrap()
        .contains("client_id"));
    assert_eq!(body["error_codes"][0], 900144);
    // A scope without /.default: invalid_scope, surfaced by azure_identity as an error.
    let cred = credential(&mock, &c);
    let err = cred
        .get_token(&["https://management.azure.com/user_impersonation"], None)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("AADSTS1002012"), "{err}");
    // Faults reach the token endpoint too.
    mock.ctx()
        .set_faults(serde_json::from_value(json!([{"cloud": "azure", "operation": "AzureAD_Token", "count": 1,
            "effect": {"kind": "error", "status": 401, "code": "invalid_client", "message": "bad secret"}}])).unwrap())
        .unwrap();
    let err = cred
        .get_token(&["https://management.azure.com/.default"], None)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("bad secret"), "{err}");
    // The reset fault drops the connection.
    mock.ctx()
        .set_faults(
            serde_json::from_value(
                json!([{"cloud": "azure", "operation": "ResourceGroups_Get", "count": 1,
            "effect": {"kind": "reset"}}]),
            )
            .unwrap(),
        )
        .unwrap();
    let url = format!("{}/subscriptions/s/resourceGroups/rg?{API}", mock.url());
    assert!(c.get(&url).bearer_auth("t").send().await.is_err());
    assert_eq!(
        c.get(&url).bearer_auth("t").send().await.unwrap().status(),
        StatusCode::NOT_FOUND
    );
}
