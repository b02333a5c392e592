//! Compute Engine's metadata server: the `Metadata-Flavor` rule, the
//! instance and project trees, the identity token (decoded and verified
//! with jsonwebtoken against the mock's JWKS), and the per-VM port.

mod imds_support;

use imds_support::*;
use jsonwebtoken::{decode, decode_header, Algorithm, DecodingKey, Validation};
use serde_json::{json, Value};
use skyfleet_mock::MockCloud;

const FLAVOR: (&str, &str) = ("metadata-flavor", "Google");
const AUDIENCE: &str = "https://manager.example.invalid/";

fn base(mock: &MockCloud, project: &str, name: &str) -> String {
    format!("{}/_imds/gcp/{project}/{ZONE}/{name}", mock.imds_url())
}

fn md(mock: &MockCloud, project: &str, name: &str, path: &str) -> String {
    format!("{}/computeMetadata/v1/{path}", base(mock, project, name))
}

/// Decodes `token` with the JWKS the mock publishes.
async fn verify(
    mock: &MockCloud,
    token: &str,
    audience: &str,
) -> jsonwebtoken::errors::Result<Value> {
    let kid = decode_header(token)?.kid.unwrap_or_default();
    let jwks = get(&format!("{}/oauth2/v3/certs", mock.url()), &[])
        .await
        .json();
    let Some(jwk) = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == kid.as_str())
    else {
        return Err(jsonwebtoken::errors::ErrorKind::InvalidKeyFormat.into());
    };
    assert_eq!(jwk["alg"], "RS256");
    assert_eq!(jwk["kty"], "RSA");
    assert_eq!(jwk["use"], "sig");
    let key =
        DecodingKey::from_rsa_components(jwk["n"].as_str().unwrap(), jwk["e"].as_str().unwrap())?;
    let mut v = Validation::new(Algorithm::RS256);
    v.set_audience(&[audience]);
    v.set_issuer(&["https://accounts.google.com"]);
    Ok(decode::<Value>(token, &key, &v)?.claims)
}

#[tokio::test]
async fn the_identity_token_verifies_against_the_jwks_and_carries_googles_claims() {
    let mock = mock().await;
    let vm = gce_instance(&mock, "proj-a", "vm-1", json!([])).await;
    let url = md(
        &mock,
        "proj-a",
        "vm-1",
        "instance/service-accounts/default/identity",
    );
    let got = get(&format!("{url}?audience={AUDIENCE}&format=full"), &[FLAVOR]).await;
    assert_eq!(got.status, 200, "{}", got.text());
    assert_eq!(got.header("metadata-flavor"), Some("Google"));
    let token = got.text();
    let c = verify(&mock, &token, AUDIENCE).await.unwrap();
    assert_eq!(c["iss"], "https://accounts.google.com");
    assert_eq!(c["aud"], AUDIENCE);
    assert_eq!(
        c["exp"].as_u64().unwrap(),
        c["iat"].as_u64().unwrap() + 3600
    );
    assert_eq!(c["sub"], c["azp"]);
    assert_eq!(c["sub"].as_str().unwrap().len(), 21);
    assert_eq!(c["email_verified"], true);
    let ce = &c["google"]["compute_engine"];
    assert_eq!(ce["project_id"], "proj-a");
    assert_eq!(ce["instance_id"], vm["id"]);
    assert_eq!(ce["instance_name"], "vm-1");
    assert_eq!(ce["zone"], ZONE);
    let number = ce["project_number"].as_u64().unwrap();
    assert_eq!(
        c["email"],
        format!("{number}-compute@developer.gserviceaccount.com")
    );
    assert!(ce["instance_creation_timestamp"].as_i64().unwrap() > 1_700_000_000);
    let email = get(
        &md(
            &mock,
            "proj-a",
            "vm-1",
            "instance/service-accounts/default/email",
        ),
        &[FLAVOR],
    )
    .await;
    assert_eq!(email.text(), c["email"].as_str().unwrap());
    let numeric = get(
        &md(&mock, "proj-a", "vm-1", "project/numeric-project-id"),
        &[FLAVOR],
    )
    .await;
    assert_eq!(numeric.text(), number.to_string());

    // Another audience, a flipped signature byte: refused.
    assert!(verify(&mock, &token, "https://other.invalid/")
        .await
        .is_err());
    let (head, sig) = token.rsplit_once('.').unwrap();
    let mut sig = sig.as_bytes().to_vec();
    sig[10] = if sig[10] == b'A' { b'B' } else { b'A' };
    let forged = format!("{head}.{}", String::from_utf8(sig).unwrap());
    assert!(verify(&mock, &forged, AUDIENCE).await.is_err());

    // format=standard: no email, no google claims.
    let std = get(&format!("{url}?audience={AUDIENCE}"), &[FLAVOR])
        .await
        .text();
    let c = verify(&mock, &std, AUDIENCE).await.unwrap();
    assert!(c.get("google").is_none() && c.get("email").is_none(), "{c}");
    // The service account by its email works too.
    let by_email = md(
        &mock,
        "proj-a",
        "vm-1",
        &format!(
            "instance/service-accounts/{number}-compute@developer.gserviceaccount.com/identity"
        ),
    );
    assert_eq!(
        get(&format!("{by_email}?audience=x"), &[FLAVOR])
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn identity_requests_without_audience_or_with_a_bad_format_are_400() {
    let mock = mock().await;
    gce_instance(&mock, "proj-b", "vm-1", json!([])).await;
    let url = md(
        &mock,
        "proj-b",
        "vm-1",
        "instance/service-accounts/default/identity",
    );
    assert_eq!(get(&url, &[FLAVOR]).await.status, 400);
    assert_eq!(
        get(&format!("{url}?audience="), &[FLAVOR]).await.status,
        400
    );
    assert_eq!(
        get(&format!("{url}?audience=a&format=xml"), &[FLAVOR])
            .await
            .status,
        400
    );
    let other = md(
        &mock,
        "proj-b",
        "vm-1",
        "instance/service-accounts/someone@x.iam.gserviceaccount.com/identity",
    );
    assert_eq!(
        get(&format!("{other}?audience=a"), &[FLAVOR]).await.status,
        404
    );
}

#[tokio::test]
async fn metadata_needs_the_flavor_header_and_serves_the_instance() {
    let mock = mock().await;
    let items = json!([{"key": "skyfleet-worker-id", "value": "w-42"}, {"key": "startup-script", "value": "echo hi"}]);
    let vm = gce_instance(&mock, "proj-c", "vm-7", items).await;
    let leaf = |path: &str| md(&mock, "proj-c", "vm-7", path);
    let no_header = get(&leaf("instance/id"), &[]).await;
    assert_eq!(no_header.status, 403);
    assert_eq!(no_header.header("metadata-flavor"), Some("Google"));
    assert_eq!(
        get(&leaf("instance/id"), &[("metadata-flavor", "Amazon")])
            .await
            .status,
        403
    );

    assert_eq!(
        get(&leaf("instance/id"), &[FLAVOR]).await.text(),
        vm["id"].as_str().unwrap()
    );
    assert_eq!(get(&leaf("instance/name"), &[FLAVOR]).await.text(), "vm-7");
    let zone = get(&leaf("instance/zone"), &[FLAVOR]).await.text();
    assert!(
        zone.starts_with("projects/") && zone.ends_with(&format!("/zones/{ZONE}")),
        "{zone}"
    );
    assert_eq!(
        get(&leaf("instance/hostname"), &[FLAVOR]).await.text(),
        format!("vm-7.{ZONE}.c.proj-c.internal")
    );
    assert_eq!(
        get(&leaf("instance/attributes/skyfleet-worker-id"), &[FLAVOR])
            .await
            .text(),
        "w-42"
    );
    let keys = get(&leaf("instance/attributes/"), &[FLAVOR]).await.text();
    assert_eq!(keys, "skyfleet-worker-id\nstartup-script\n");
    assert_eq!(
        get(&leaf("instance/attributes/nope"), &[FLAVOR])
            .await
            .status,
        404
    );
    assert_eq!(
        get(&leaf("project/project-id"), &[FLAVOR]).await.text(),
        "proj-c"
    );
    let ip = get(&leaf("instance/network-interfaces/0/ip"), &[FLAVOR])
        .await
        .text();
    assert_eq!(
        ip,
        vm["networkInterfaces"][0]["networkIP"].as_str().unwrap()
    );

    let all = get(&format!("{}?recursive=true", leaf("instance/")), &[FLAVOR]).await;
    assert_eq!(all.header("content-type"), Some("application/json"));
    let all = all.json();
    assert_eq!(all["name"], "vm-7");
    assert_eq!(all["networkInterfaces"][0]["ip"], ip.as_str(), "{all}");
    assert_eq!(
        all["attributes"]["skyfleet-worker-id"], "w-42",
        "attribute keys kept"
    );
    let sa = get(
        &format!(
            "{}?recursive=true",
            leaf("instance/service-accounts/default/")
        ),
        &[FLAVOR],
    )
    .await
    .json();
    assert_eq!(sa["aliases"], json!(["default"]));
    let token = get(&leaf("instance/service-accounts/default/token"), &[FLAVOR])
        .await
        .json();
    assert_eq!(token["token_type"], "Bearer");
    assert!(token["access_token"].as_str().unwrap().starts_with("ya29."));
    let quoted = get(&format!("{}?alt=json", leaf("instance/name")), &[FLAVOR])
        .await
        .text();
    assert_eq!(quoted, "\"vm-7\"");
}

#[tokio::test]
async fn forwarded_unknown_stopped_and_deleted_instances_get_no_metadata() {
    let mock = mock().await;
    gce_instance(&mock, "proj-d", "vm-1", json!([])).await;
    gce_instance(&mock, "proj-d", "vm-2", json!([])).await;
    let url = |name: &str| md(&mock, "proj-d", name, "instance/id");
    let got = get(&url("vm-1"), &[FLAVOR, ("x-forwarded-for", "203.0.113.9")]).await;
    assert_eq!(got.status, 403);
    assert_eq!(get(&url("vm-9"), &[FLAVOR]).await.status, 404);
    assert_eq!(
        get(&md(&mock, "nope", "vm-1", "instance/id"), &[FLAVOR])
            .await
            .status,
        404
    );

    let stop = format!(
        "{}/compute/v1/projects/proj-d/zones/{ZONE}/instances/vm-2/stop",
        mock.url()
    );
    let resp = client()
        .post(stop)
        .header("authorization", "Bearer t")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    for _ in 0..500 {
        if get(&url("vm-2"), &[FLAVOR]).await.status == 404 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(get(&url("vm-2"), &[FLAVOR]).await.status, 404, "stopped");
    gce_delete(&mock, "proj-d", "vm-1").await;
    for _ in 0..500 {
        if get(&url("vm-1"), &[FLAVOR]).await.status == 404 {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("a deleted instance kept its metadata");
}

async fn listen(mock: &MockCloud, project: &str, name: &str) -> Got {
    let resp = client()
        .post(format!("{}/_mock/imds/listen", mock.url()))
        .json(&json!({"project": project, "zone": ZONE, "instance": name}))
        .send()
        .await
        .unwrap();
    Got {
        status: resp.status().as_u16(),
        headers: resp.headers().clone(),
        body: resp.bytes().await.unwrap().to_vec(),
    }
}

#[tokio::test]
async fn a_per_vm_port_serves_the_instance_at_its_root_until_closed() {
    let mock = mock().await;
    gce_instance(&mock, "proj-e", "vm-1", json!([])).await;
    let opened = listen(&mock, "proj-e", "vm-1").await;
    assert_eq!(opened.status, 200, "{}", opened.text());
    let host = opened.json()["host"].as_str().unwrap().to_string();
    assert_eq!(
        listen(&mock, "proj-e", "vm-1").await.json()["host"],
        host.as_str(),
        "one port per VM"
    );
    let root = get(&format!("http://{host}/"), &[FLAVOR]).await;
    assert_eq!(root.status, 200);
    assert_eq!(root.header("metadata-flavor"), Some("Google"));
    let name = get(
        &format!("http://{host}/computeMetadata/v1/instance/name"),
        &[FLAVOR],
    )
    .await;
    assert_eq!(name.text(), "vm-1");
    let id_token = get(
        &format!("http://{host}/computeMetadata/v1/instance/service-accounts/default/identity?audience={AUDIENCE}&format=full"),
        &[FLAVOR],
    )
    .await;
    let c = verify(&mock, &id_token.text(), AUDIENCE).await.unwrap();
    assert_eq!(c["google"]["compute_engine"]["instance_name"], "vm-1");
    let list = get(&format!("{}/_mock/imds/listen", mock.url()), &[])
        .await
        .json();
    assert_eq!(list[0]["instance"], "vm-1");

    // Deleted: the port answers nothing, like an unreachable server.
    gce_delete(&mock, "proj-e", "vm-1").await;
    let mut refused = false;
    for _ in 0..500 {
        let r = client()
            .get(format!("http://{host}/computeMetadata/v1/instance/name"))
            .header("metadata-flavor", "Google")
            .send()
            .await;
        if r.is_err() {
            refused = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(refused, "a deleted instance's port still answered");

    // Closed by DELETE, and by reset.
    gce_instance(&mock, "proj-e", "vm-2", json!([])).await;
    gce_instance(&mock, "proj-f", "vm-3", json!([])).await;
    let p2 = listen(&mock, "proj-e", "vm-2").await.json()["port"]
        .as_u64()
        .unwrap();
    let p3 = listen(&mock, "proj-f", "vm-3").await.json()["port"]
        .as_u64()
        .unwrap();
    let del = call(
        "DELETE",
        &format!("{}/_mock/imds/listen/{p2}", mock.url()),
        &[],
    )
    .await;
    assert_eq!(del.status, 200);
    assert_eq!(
        call(
            "DELETE",
            &format!("{}/_mock/imds/listen/{p2}", mock.url()),
            &[]
        )
        .await
        .status,
        404
    );
    let reset = call("POST", &format!("{}/_mock/reset", mock.url()), &[]).await;
    assert_eq!(reset.status, 200);
    let list = get(&format!("{}/_mock/imds/listen", mock.url()), &[])
        .await
        .json();
    assert_eq!(list, json!([]));
    for port in [p2, p3] {
        let r = client()
            .get(format!("http://127.0.0.1:{port}/"))
            .send()
            .await;
        assert!(r.is_err(), "port {port} still open");
    }
}

#[tokio::test]
async fn listen_refuses_bad_bodies_unknown_instances_and_more_than_64_ports() {
    let mock = mock().await;
    let post = |body: &'static str| {
        let url = format!("{}/_mock/imds/listen", mock.url());
        async move { client().post(url).body(body).send().await.unwrap() }
    };
    let r = post(r#"{"project":"p"}"#).await;
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("zone"));
    assert_eq!(
        post(r#"{"project":"p","zone":"z","instance":"i","x":1}"#)
            .await
            .status(),
        400
    );
    assert_eq!(
        post(r#"{"project":"p","zone":"z","instance":"i"}"#)
            .await
            .status(),
        404
    );

    for i in 0..65 {
        gce_instance(&mock, "proj-g", &format!("vm-{i}"), json!([])).await;
    }
    for i in 0..64 {
        assert_eq!(
            listen(&mock, "proj-g", &format!("vm-{i}")).await.status,
            200,
            "vm-{i}"
        );
    }
    let full = listen(&mock, "proj-g", "vm-64").await;
    assert_eq!(full.status, 409, "{}", full.text());
    assert!(full.json()["error"].as_str().unwrap().contains("64"));
}
