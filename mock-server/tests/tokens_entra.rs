//! Entra ID's token endpoint against registered apps (`azure.entra_apps`):
//! client secrets, certificate assertions (RS256 and PS256, signed with a
//! key this test makes), every refusal in AAD's shape with its AADSTS code,
//! open tenants, and the discovery documents MSAL reads first.

use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeyPair, KeySize};
use aws_lc_rs::signature::{RsaEncoding, RSA_PKCS1_SHA256, RSA_PSS_SHA256};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{json, Value};
use skyfleet_mock::arm::{ArmConfig, EntraApp};
use skyfleet_mock::{MockCloud, MockConfig};

const TENANT: &str = "7a1b2c3d-0000-4000-8000-00000000e1d1";
const SECRET_APP: &str = "11111111-0000-4000-8000-000000000001";
const CERT_APP: &str = "22222222-0000-4000-8000-000000000002";
const SCOPE: &str = "https://management.azure.com/.default";

/// An RSA key and a self-signed certificate for it.
struct TestCert {
    key: KeyPair,
    pem: String,
    der: Vec<u8>,
}

fn test_cert() -> TestCert {
    let key = KeyPair::generate(KeySize::Rsa2048).unwrap();
    let pkcs8: Pkcs8V1Der<'static> = key.as_der().unwrap();
    let der = rustls::pki_types::PrivatePkcs8KeyDer::from(pkcs8.as_ref());
    let signer =
        rcgen::KeyPair::from_pkcs8_der_and_sign_algo(&der, &rcgen::PKCS_RSA_SHA256).unwrap();
    let cert = rcgen::CertificateParams::new(vec!["entra-app.test".to_string()])
        .unwrap()
        .self_signed(&signer)
        .unwrap();
    TestCert {
        key,
        pem: cert.pem(),
        der: cert.der().to_vec(),
    }
}

fn b64(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn sha(alg: &'static aws_lc_rs::digest::Algorithm, der: &[u8]) -> String {
    b64(aws_lc_rs::digest::digest(alg, der))
}

/// A client assertion: `header` and `claims` signed with `key`.
fn sign(key: &KeyPair, header: Value, claims: Value) -> String {
    let enc: &'static dyn RsaEncoding = match header["alg"].as_str() {
        Some("PS256") => &RSA_PSS_SHA256,
        _ => &RSA_PKCS1_SHA256,
    };
    let input = format!("{}.{}", b64(header.to_string()), b64(claims.to_string()));
    let mut sig = vec![0; key.public_modulus_len()];
    key.sign(enc, &SystemRandom::new(), input.as_bytes(), &mut sig)
        .unwrap();
    format!("{input}.{}", b64(sig))
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

fn claims(aud: &str, client: &str) -> Value {
    json!({"aud": aud, "iss": client, "sub": client, "jti": uuid::Uuid::new_v4().to_string(),
           "nbf": now() - 10, "iat": now() - 10, "exp": now() + 600})
}

async fn start(cert: &TestCert) -> MockCloud {
    let cfg = MockConfig {
        azure: Some(ArmConfig {
            entra_apps: vec![
                EntraApp {
                    tenant: TENANT.into(),
                    client_id: SECRET_APP.into(),
                    client_secret: Some("right-secret".into()),
                    certificate_pem: None,
                },
                EntraApp {
                    tenant: TENANT.into(),
                    client_id: CERT_APP.into(),
                    client_secret: None,
                    certificate_pem: Some(cert.pem.clone()),
                },
            ],
            ..ArmConfig::default()
        }),
        ..MockConfig::default()
    };
    MockCloud::builder().config(cfg).start().await.unwrap()
}

async fn token(mock: &MockCloud, tenant: &str, form: &[(&str, &str)]) -> (u16, Value) {
    let res = reqwest::Client::new()
        .post(format!("{}/{tenant}/oauth2/v2.0/token", mock.url()))
        .form(form)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap())
}

fn secret_form<'a>(client: &'a str, secret: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("grant_type", "client_credentials"),
        ("client_id", client),
        ("client_secret", secret),
        ("scope", SCOPE),
    ]
}

fn assertion_form<'a>(client: &'a str, jwt: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("grant_type", "client_credentials"),
        ("client_id", client),
        (
            "client_assertion_type",
            "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        ),
        ("client_assertion", jwt),
        ("scope", SCOPE),
    ]
}

/// Asserts AAD's error JSON with `error` and AADSTS `code`.
fn assert_aad(got: &(u16, Value), status: u16, error: &str, code: u64) {
    let (s, body) = got;
    assert_eq!(*s, status, "{body}");
    assert_eq!(body["error"], error, "{body}");
    assert_eq!(body["error_codes"][0], code, "{body}");
    let desc = body["error_description"].as_str().unwrap();
    assert!(desc.starts_with(&format!("AADSTS{code}: ")), "{desc}");
    assert!(body["trace_id"].is_string() && body["correlation_id"].is_string());
}

#[tokio::test]
async fn client_secrets_are_checked_in_a_configured_tenant() {
    let cert = test_cert();
    let mock = start(&cert).await;
    let (status, body) = token(&mock, TENANT, &secret_form(SECRET_APP, "right-secret")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["token_type"], "Bearer");
    let claims = body["access_token"]
        .as_str()
        .unwrap()
        .split('.')
        .nth(1)
        .unwrap();
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(claims).unwrap()).unwrap();
    assert_eq!(claims["appid"], SECRET_APP);
    assert_eq!(claims["tid"], TENANT);
    // Client ids compare without regard to case, like GUIDs.
    let upper = SECRET_APP.to_uppercase();
    assert_eq!(
        token(&mock, TENANT, &secret_form(&upper, "right-secret"))
            .await
            .0,
        200
    );

    let wrong = token(&mock, TENANT, &secret_form(SECRET_APP, "wrong-secret")).await;
    assert_aad(&wrong, 401, "invalid_client", 7000215);
    assert!(wrong.1["error_description"]
        .as_str()
        .unwrap()
        .contains(SECRET_APP));
    // An app with a certificate only takes no secret.
    let no_secret = token(&mock, TENANT, &secret_form(CERT_APP, "anything")).await;
    assert_aad(&no_secret, 401, "invalid_client", 7000215);
    let unknown = token(
        &mock,
        TENANT,
        &secret_form("33333333-0000-4000-8000-000000000003", "x"),
    )
    .await;
    assert_aad(&unknown, 400, "unauthorized_client", 700016);
    let desc = unknown.1["error_description"].as_str().unwrap();
    assert!(
        desc.contains("33333333-0000-4000-8000-000000000003") && desc.contains(TENANT),
        "{desc}"
    );
}

#[tokio::test]
async fn open_tenants_and_the_default_app() {
    let cert = test_cert();
    let mock = start(&cert).await;
    // A tenant no app names takes any client and secret (what skyfleet's
    // own Azure tests rely on).
    let (status, body) = token(
        &mock,
        "00000000-0000-0000-0000-00000000000a",
        &secret_form("app", "s3cret"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    // The default configuration registers mock-client in mock-tenant.
    let default = MockCloud::builder().start().await.unwrap();
    assert_eq!(
        token(
            &default,
            "mock-tenant",
            &secret_form("mock-client", "mock-secret")
        )
        .await
        .0,
        200
    );
    let wrong = token(&default, "mock-tenant", &secret_form("mock-client", "nope")).await;
    assert_aad(&wrong, 401, "invalid_client", 7000215);
    assert_eq!(
        token(&default, "any-tenant", &secret_form("any", "any"))
            .await
            .0,
        200
    );
}

#[tokio::test]
async fn certificate_assertions_are_verified() {
    let cert = test_cert();
    let other = test_cert();
    let mock = start(&cert).await;
    let aud = format!("{}/{TENANT}/oauth2/v2.0/token", mock.url());
    let sha256 = sha(&aws_lc_rs::digest::SHA256, &cert.der);
    let sha1 = sha(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY, &cert.der);

    // RS256 with x5t#S256, PS256 with x5t (SHA-1): both good.
    let rs = sign(
        &cert.key,
        json!({"alg": "RS256", "typ": "JWT", "x5t#S256": sha256}),
        claims(&aud, CERT_APP),
    );
    let (status, body) = token(&mock, TENANT, &assertion_form(CERT_APP, &rs)).await;
    assert_eq!(status, 200, "{body}");
    let ps = sign(
        &cert.key,
        json!({"alg": "PS256", "typ": "JWT", "x5t": sha1}),
        claims(&aud, CERT_APP),
    );
    let (status, body) = token(&mock, TENANT, &assertion_form(CERT_APP, &ps)).await;
    assert_eq!(status, 200, "{body}");

    // Signed by another key under the registered thumbprint: bad signature.
    let forged = sign(
        &other.key,
        json!({"alg": "RS256", "x5t#S256": sha256}),
        claims(&aud, CERT_APP),
    );
    let got = token(&mock, TENANT, &assertion_form(CERT_APP, &forged)).await;
    assert_aad(&got, 401, "invalid_client", 700027);
    assert!(got.1["error_description"]
        .as_str()
        .unwrap()
        .contains("signature validation"));
    // A tampered payload under a good signature.
    let mut parts: Vec<String> = rs.split('.').map(str::to_string).collect();
    let mut c = claims(&aud, CERT_APP);
    c["exp"] = json!(now() + 7200);
    parts[1] = b64(c.to_string());
    let got = token(&mock, TENANT, &assertion_form(CERT_APP, &parts.join("."))).await;
    assert_aad(&got, 401, "invalid_client", 700027);
    // Another certificate's thumbprint: not registered.
    let other_thumb = sha(&aws_lc_rs::digest::SHA256, &other.der);
    let unregistered = sign(
        &other.key,
        json!({"alg": "RS256", "x5t#S256": other_thumb}),
        claims(&aud, CERT_APP),
    );
    let got = token(&mock, TENANT, &assertion_form(CERT_APP, &unregistered)).await;
    assert_aad(&got, 401, "invalid_client", 700027);
    assert!(got.1["error_description"]
        .as_str()
        .unwrap()
        .contains("not registered"));
    // No thumbprint at all.
    let bare = sign(&cert.key, json!({"alg": "RS256"}), claims(&aud, CERT_APP));
    assert_aad(
        &token(&mock, TENANT, &assertion_form(CERT_APP, &bare)).await,
        401,
        "invalid_client",
        700027,
    );
    // The secret-only app has no certificate.
    let mut c = claims(&aud, SECRET_APP);
    c["iss"] = json!(SECRET_APP);
    let no_cert = sign(&cert.key, json!({"alg": "RS256", "x5t#S256": sha256}), c);
    assert_aad(
        &token(&mock, TENANT, &assertion_form(SECRET_APP, &no_cert)).await,
        401,
        "invalid_client",
        700027,
    );

    let head = json!({"alg": "RS256", "x5t#S256": sha256});
    // Wrong audience.
    let wrong_aud = sign(
        &cert.key,
        head.clone(),
        claims(
            "https://login.microsoftonline.com/x/oauth2/v2.0/token",
            CERT_APP,
        ),
    );
    assert_aad(
        &token(&mock, TENANT, &assertion_form(CERT_APP, &wrong_aud)).await,
        401,
        "invalid_client",
        700023,
    );
    // iss / sub another client.
    let mut c = claims(&aud, CERT_APP);
    c["sub"] = json!(SECRET_APP);
    let wrong_sub = sign(&cert.key, head.clone(), c);
    assert_aad(
        &token(&mock, TENANT, &assertion_form(CERT_APP, &wrong_sub)).await,
        401,
        "invalid_client",
        700021,
    );
    // Expired, and not yet valid.
    let mut c = claims(&aud, CERT_APP);
    c["exp"] = json!(now() - 3600);
    let expired = sign(&cert.key, head.clone(), c);
    assert_aad(
        &token(&mock, TENANT, &assertion_form(CERT_APP, &expired)).await,
        401,
        "invalid_client",
        700024,
    );
    let mut c = claims(&aud, CERT_APP);
    c["nbf"] = json!(now() + 3600);
    let early = sign(&cert.key, head.clone(), c);
    assert_aad(
        &token(&mock, TENANT, &assertion_form(CERT_APP, &early)).await,
        401,
        "invalid_client",
        700024,
    );
    // No jti.
    let mut c = claims(&aud, CERT_APP);
    c.as_object_mut().unwrap().remove("jti");
    let no_jti = sign(&cert.key, head.clone(), c);
    assert_aad(
        &token(&mock, TENANT, &assertion_form(CERT_APP, &no_jti)).await,
        400,
        "invalid_request",
        50027,
    );
    // HS256 is not a certificate algorithm.
    let hs = sign(
        &cert.key,
        json!({"alg": "HS256", "x5t#S256": sha256}),
        claims(&aud, CERT_APP),
    );
    assert_aad(
        &token(&mock, TENANT, &assertion_form(CERT_APP, &hs)).await,
        400,
        "invalid_request",
        50027,
    );
    // Malformed shapes, in a configured tenant and an open one.
    for junk in [
        "",
        "a.b",
        "a.b.c",
        "!!!.???.sig",
        "e30.e30.",
        "e30.e30.c2ln.x",
    ] {
        for tenant in [TENANT, "open-tenant"] {
            let mut form = assertion_form(CERT_APP, junk);
            if junk.is_empty() {
                // An empty assertion is a missing secret or assertion.
                form.retain(|(k, _)| *k != "client_assertion");
                let got = token(&mock, tenant, &form).await;
                assert_aad(&got, 401, "invalid_client", 7000216);
                continue;
            }
            let got = token(&mock, tenant, &form).await;
            assert_aad(&got, 400, "invalid_request", 50027);
        }
    }
}

#[tokio::test]
async fn discovery_documents_point_at_the_mock() {
    let cert = test_cert();
    let mock = start(&cert).await;
    let c = reqwest::Client::new();
    let base = mock.url();
    let doc: Value = c
        .get(format!(
            "{base}/{TENANT}/v2.0/.well-known/openid-configuration"
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        doc["token_endpoint"],
        format!("{base}/{TENANT}/oauth2/v2.0/token")
    );
    assert_eq!(
        doc["authorization_endpoint"],
        format!("{base}/{TENANT}/oauth2/v2.0/authorize")
    );
    assert_eq!(doc["issuer"], format!("{base}/{TENANT}/v2.0"));
    let jwks_uri = doc["jwks_uri"].as_str().unwrap();
    assert_eq!(jwks_uri, format!("{base}/{TENANT}/discovery/v2.0/keys"));
    let keys: Value = c.get(jwks_uri).send().await.unwrap().json().await.unwrap();
    assert_eq!(keys, json!({"keys": []}));
    let common: Value = c
        .get(format!(
            "{base}/common/v2.0/.well-known/openid-configuration"
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(common["issuer"], format!("{base}/{{tenantid}}/v2.0"));
    // The Host the client used is the one it gets back.
    let host = base
        .trim_start_matches("http://")
        .replace("127.0.0.1", "localhost");
    let local: Value = c
        .get(format!(
            "http://{host}/{TENANT}/v2.0/.well-known/openid-configuration"
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        local["token_endpoint"],
        format!("http://{host}/{TENANT}/oauth2/v2.0/token")
    );

    // Instance discovery, as MSAL sends it.
    let auth = format!("{base}/{TENANT}/oauth2/v2.0/authorize");
    let res = c
        .get(format!("{base}/common/discovery/instance"))
        .query(&[
            ("api-version", "1.1"),
            ("authorization_endpoint", auth.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let inst: Value = res.json().await.unwrap();
    assert_eq!(
        inst["tenant_discovery_endpoint"],
        format!("{base}/{TENANT}/v2.0/.well-known/openid-configuration")
    );
    let authority = base.trim_start_matches("http://");
    assert_eq!(inst["metadata"][0]["aliases"], json!([authority]));
    assert_eq!(inst["metadata"][0]["preferred_network"], authority);
    // Another host is an unknown instance; a missing parameter is named.
    let res = c
        .get(format!("{base}/common/discovery/instance"))
        .query(&[
            ("api-version", "1.1"),
            (
                "authorization_endpoint",
                "https://login.example.com/t/oauth2/v2.0/authorize",
            ),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"], "invalid_instance");
    assert_eq!(body["error_codes"][0], 50049);
    let res = c
        .get(format!("{base}/common/discovery/instance?api-version=1.1"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let body: Value = res.json().await.unwrap();
    assert!(body["error_description"]
        .as_str()
        .unwrap()
        .contains("authorization_endpoint"));
    // POST is not a discovery method.
    let res = c
        .post(format!(
            "{base}/{TENANT}/v2.0/.well-known/openid-configuration"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 405);
}

#[test]
fn bad_app_configurations_name_the_field() {
    let err = MockConfig::from_json(
        r#"{"azure": {"entra_apps": [{"tenant": "t", "client_id": "c", "certificate_pem": "nope"}]}}"#,
    )
    .unwrap_err();
    assert!(
        err.starts_with("azure.entra_apps[0].certificate_pem: "),
        "{err}"
    );
    let err =
        MockConfig::from_json(r#"{"azure": {"entra_apps": [{"tenant": "", "client_id": "c"}]}}"#)
            .unwrap_err();
    assert!(err.starts_with("azure.entra_apps[0].tenant"), "{err}");
    let many: Vec<Value> = (0..1001)
        .map(|i| json!({"tenant": "t", "client_id": format!("c{i}")}))
        .collect();
    let err =
        MockConfig::from_json(&json!({"azure": {"entra_apps": many}}).to_string()).unwrap_err();
    assert!(err.contains("at most 1000"), "{err}");
    let cert = test_cert();
    let ok = json!({"azure": {"entra_apps": [{"tenant": "t", "client_id": "c", "certificate_pem": cert.pem}]}});
    assert!(MockConfig::from_json(&ok.to_string()).is_ok());
}
