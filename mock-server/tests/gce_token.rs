//! `POST /token`: the real `gcp_auth` crate gets a token from the mock with
//! a service-account key whose `token_uri` points at it, and the token opens
//! Compute; malformed grants get Google's OAuth errors.

mod gce_support;

use gce_support::*;
use gcp_auth::{CustomServiceAccount, TokenProvider};
use serde_json::{json, Value};

const SCOPE: &str = "https://www.googleapis.com/auth/compute";

fn key_json(token_uri: &str) -> String {
    let pem = include_str!("data/gce_service_account_key.pem");
    json!({
        "type": "service_account",
        "project_id": "tok-project",
        "private_key_id": "0123456789abcdef",
        "private_key": pem,
        "client_email": "worker@tok-project.iam.gserviceaccount.com",
        "client_id": "100000000000000000001",
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": token_uri,
    })
    .to_string()
}

#[tokio::test]
async fn gcp_auth_gets_a_token_from_the_mock() {
    let (_ctx, _gce, router) = gce(0.0);
    let base = serve(router).await;
    let sa = CustomServiceAccount::from_json(&key_json(&format!("{base}/token"))).unwrap();
    let token = sa.token(&[SCOPE]).await.unwrap();
    assert!(token.as_str().starts_with("ya29.mock-"));
    assert!(!token.has_expired());

    let resp = reqwest::Client::new()
        .get(format!("{base}{}/instances", zone_url("tok-project")))
        .bearer_auth(token.as_str())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn bad_grants_get_oauth_errors() {
    let (_ctx, _gce, router) = gce(0.0);
    let base = serve(router).await;
    let client = reqwest::Client::new();
    let post = |form: Vec<(&'static str, String)>| {
        let client = client.clone();
        let url = format!("{base}/token");
        async move {
            let resp = client.post(url).form(&form).send().await.unwrap();
            let status = resp.status().as_u16();
            (status, resp.json::<Value>().await.unwrap())
        }
    };
    let grant = "urn:ietf:params:oauth:grant-type:jwt-bearer".to_string();
    let (s, v) = post(vec![
        ("grant_type", grant.clone()),
        ("assertion", "not-a-jwt".into()),
    ])
    .await;
    assert_eq!((s, v["error"].as_str()), (400, Some("invalid_grant")));
    assert!(v["error_description"].is_string());
    let (s, v) = post(vec![("grant_type", "client_credentials".into())]).await;
    assert_eq!(
        (s, v["error"].as_str()),
        (400, Some("unsupported_grant_type"))
    );
    let (s, v) = post(vec![("grant_type", grant.clone())]).await;
    assert_eq!((s, v["error"].as_str()), (400, Some("invalid_grant")));
    // A JWT without the scope claim.
    use base64::Engine;
    let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = json!({"iss": "a@b", "aud": "x/token", "iat": now, "exp": now + 600}).to_string();
    let jwt = format!("{}.{}.sig", b64(r#"{"alg":"RS256"}"#), b64(&claims));
    let (s, v) = post(vec![("grant_type", grant), ("assertion", jwt)]).await;
    assert_eq!((s, v["error"].as_str()), (400, Some("invalid_scope")));
}
