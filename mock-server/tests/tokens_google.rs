//! `POST /token` with `grant_type=refresh_token`, as google-auth's
//! authorized-user credentials send it: good refreshes open Compute, and
//! unknown clients, wrong secrets and bad refresh tokens get Google's
//! OAuth errors.

use serde_json::{json, Value};
use skyfleet_mock::config::{AuthorizedUser, GceConfig};
use skyfleet_mock::{MockCloud, MockConfig};

async fn refresh(mock: &MockCloud, form: &[(&str, &str)]) -> (u16, Value) {
    let res = reqwest::Client::new()
        .post(format!("{}/token", mock.url()))
        .form(form)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap())
}

fn form<'a>(client: &'a str, secret: &'a str, token: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("grant_type", "refresh_token"),
        ("client_id", client),
        ("client_secret", secret),
        ("refresh_token", token),
    ]
}

#[tokio::test]
async fn the_default_user_refreshes_and_the_token_opens_compute() {
    let mock = MockCloud::builder().start().await.unwrap();
    let d = AuthorizedUser::default();
    let (status, body) = refresh(
        &mock,
        &form(&d.client_id, &d.client_secret, &d.refresh_token),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let token = body["access_token"].as_str().unwrap();
    assert!(token.starts_with("ya29.mock-"), "{token}");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3599);
    assert_eq!(
        body["scope"],
        "https://www.googleapis.com/auth/cloud-platform"
    );
    let c = reqwest::Client::new();
    let url = format!(
        "{}/compute/v1/projects/p/zones/us-central1-a/instances",
        mock.url()
    );
    assert_eq!(c.get(&url).send().await.unwrap().status(), 401);
    assert_eq!(
        c.get(&url)
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    // A requested scope is reported back.
    let mut scoped = form(&d.client_id, &d.client_secret, &d.refresh_token);
    scoped.push(("scope", "https://www.googleapis.com/auth/compute"));
    let (status, body) = refresh(&mock, &scoped).await;
    assert_eq!(status, 200);
    assert_eq!(body["scope"], "https://www.googleapis.com/auth/compute");
}

#[tokio::test]
async fn refusals_have_googles_shapes() {
    let users = vec![
        AuthorizedUser {
            client_id: "1.apps.googleusercontent.com".into(),
            client_secret: "s1".into(),
            refresh_token: "1//r1".into(),
        },
        AuthorizedUser {
            client_id: "2.apps.googleusercontent.com".into(),
            client_secret: "s2".into(),
            refresh_token: "1//r2".into(),
        },
    ];
    let cfg = MockConfig {
        gcp: Some(GceConfig {
            authorized_users: users,
            ..GceConfig::default()
        }),
        ..MockConfig::default()
    };
    let mock = MockCloud::builder().config(cfg).start().await.unwrap();
    assert_eq!(
        refresh(&mock, &form("1.apps.googleusercontent.com", "s1", "1//r1"))
            .await
            .0,
        200
    );
    assert_eq!(
        refresh(&mock, &form("2.apps.googleusercontent.com", "s2", "1//r2"))
            .await
            .0,
        200
    );
    let bad_grant = json!({"error": "invalid_grant", "error_description": "Bad Request"});
    let bad_client = json!({"error": "invalid_client", "error_description": "Unauthorized"});
    // Unknown, blank, and another client's refresh token.
    for token in ["1//nope", "", "1//r2"] {
        assert_eq!(
            refresh(&mock, &form("1.apps.googleusercontent.com", "s1", token)).await,
            (400, bad_grant.clone()),
            "{token:?}"
        );
    }
    let mut no_token = form("1.apps.googleusercontent.com", "s1", "");
    no_token.pop();
    assert_eq!(refresh(&mock, &no_token).await, (400, bad_grant.clone()));
    // Wrong secret, and another client's secret.
    for secret in ["wrong", "s2", ""] {
        assert_eq!(
            refresh(
                &mock,
                &form("1.apps.googleusercontent.com", secret, "1//r1")
            )
            .await,
            (401, bad_client.clone()),
            "{secret:?}"
        );
    }
    // The default user is gone once the list is replaced; unknown clients.
    let d = AuthorizedUser::default();
    let not_found =
        json!({"error": "invalid_client", "error_description": "The OAuth client was not found."});
    assert_eq!(
        refresh(
            &mock,
            &form(&d.client_id, &d.client_secret, &d.refresh_token)
        )
        .await,
        (401, not_found.clone())
    );
    assert_eq!(
        refresh(&mock, &form("", "s1", "1//r1")).await,
        (401, not_found)
    );
}

#[test]
fn bad_user_lists_name_the_field() {
    let err = MockConfig::from_json(
        r#"{"gcp": {"authorized_users": [{"client_id": "c", "client_secret": "", "refresh_token": "r"}]}}"#,
    )
    .unwrap_err();
    assert_eq!(
        err,
        "gcp.authorized_users[0].client_secret: must not be empty"
    );
    let many: Vec<Value> = (0..1001)
        .map(|i| json!({"client_id": format!("c{i}"), "client_secret": "s", "refresh_token": "r"}))
        .collect();
    let err =
        MockConfig::from_json(&json!({"gcp": {"authorized_users": many}}).to_string()).unwrap_err();
    assert!(err.contains("at most 1000"), "{err}");
    let err = MockConfig::from_json(r#"{"gcp": {"authorized_users": [{"client_id": "c"}]}}"#)
        .unwrap_err();
    assert!(err.starts_with("gcp.authorized_users"), "{err}");
}
