//! The managed-identity token endpoint with azure_identity's
//! `ManagedIdentityCredential`, pointed at the mock through the App Service
//! variables (`IDENTITY_ENDPOINT`, `IDENTITY_HEADER`). One test per binary:
//! it sets process environment variables.

use std::sync::Arc;

use azure_core::credentials::TokenCredential;
use azure_core::http::{ClientOptions, Transport};
use azure_identity::{ManagedIdentityCredential, ManagedIdentityCredentialOptions};
use reqwest::StatusCode;
use serde_json::Value;
use skyfleet_mock::MockCloud;

#[tokio::test]
async fn managed_identity_credential_gets_a_token() {
    let mock = MockCloud::builder().tls(true).start().await.unwrap();
    let cert = reqwest::Certificate::from_pem(mock.cert_pem().unwrap().as_bytes()).unwrap();
    let client = reqwest::Client::builder()
        .add_root_certificate(cert)
        .build()
        .unwrap();
    let endpoint = format!("{}/metadata/identity/oauth2/token", mock.url());

    // IMDS rules: the Metadata header is required.
    let res = client
        .get(format!(
            "{endpoint}?api-version=2018-02-01&resource=https://management.azure.com/"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"], "invalid_request");

    std::env::set_var("IDENTITY_ENDPOINT", &endpoint);
    std::env::set_var("IDENTITY_HEADER", "secret-header");
    let options = ManagedIdentityCredentialOptions {
        client_options: ClientOptions {
            transport: Some(Transport::new(Arc::new(client.clone()))),
            ..ClientOptions::default()
        },
        ..ManagedIdentityCredentialOptions::default()
    };
    let cred = ManagedIdentityCredential::new(Some(options)).unwrap();
    let token = cred
        .get_token(&["https://management.azure.com/.default"], None)
        .await
        .unwrap();
    assert_eq!(token.token.secret().split('.').count(), 3);
    let left = token.expires_on - time::OffsetDateTime::now_utc();
    assert!(left > time::Duration::hours(23), "{left}");
}
