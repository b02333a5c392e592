//! The provisioning deadline, Azure AD credentials through azure_identity,
//! and `list_owned` over ARM list pages.

mod common;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::*;
use serde_json::json;
use skyfleet_azure::{AzureBuilder, Credential, CredentialConfig, Secret};
use skyfleet_core::transport::Transport;
use skyfleet_core::{OwnershipScope, Phase, Provider};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chain_missing_its_provisioning_deadline_is_torn_down() {
    // VM creation takes 45 s * 0.05 = 2.25 s; the deadline is 1 s.
    let env = Env::start_scaled(0.05).await;
    let p = env.provider();
    let mut w = worker("d-1", launch(true, 0));
    w.spec.lifecycle.provisioning_deadline = Duration::from_secs(1);
    drive(&p, &mut w, &[Phase::Running]).await;
    assert_eq!(w.phase, Phase::Failed);
    let e = w.last_error.unwrap();
    assert_eq!(
        e.code.as_deref(),
        Some("ProvisioningDeadlineExceeded"),
        "{e:?}"
    );
    assert_eq!(e.kind, "timeout");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(env.ours().await.is_empty(), "{:#?}", env.ours().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_secret_credential_gets_tokens_from_azure_ad() {
    let env = Env::start().await;
    let cfg = CredentialConfig::ClientSecret {
        tenant_id: "00000000-0000-0000-0000-00000000000a".into(),
        client_id: "app".into(),
        client_secret: Secret::new("s3cret"),
        authority_host: Some(env.mock.url().to_string()),
    };
    let c = Credential::from_config(&cfg, env.mock.cert_pem()).unwrap();
    let t1 = c.token().await.unwrap();
    assert!(!t1.is_empty());
    assert_eq!(c.token().await.unwrap(), t1, "cached");
    let mut pc = env.config();
    pc.credential = cfg;
    let p = AzureBuilder::from_config(pc).build().unwrap();
    let mut w = worker("cred-1", launch(false, 0));
    drive(&p, &mut w, &[Phase::Running]).await;
    assert_eq!(w.phase, Phase::Running, "{:?}", w.last_error);
    // An http authority is refused before any request.
    let bad = CredentialConfig::ClientSecret {
        tenant_id: "t".into(),
        client_id: "app".into(),
        client_secret: Secret::new("s"),
        authority_host: Some("http://login.invalid".into()),
    };
    assert!(Credential::from_config(&bad, None).is_err());
}

/// The mock serves no list routes, so `list_owned` is checked against a
/// fake ARM that answers list pages (with a nextLink) from canned JSON.
#[tokio::test]
async fn list_owned_filters_by_ownership_tags_across_pages() {
    let mut cfg = skyfleet_azure::AzureConfig::new(SUB);
    cfg.endpoint = "https://arm.test".into();
    cfg.resource_groups = vec![RG.into()];
    let svc = tower::service_fn(|req: http::Request<Bytes>| async move {
        let uri = req.uri().to_string();
        let tags = |mgr: &str, w: &str| json!({"skyfleet-manager": mgr, "skyfleet-provider": "azure", "skyfleet-worker": w});
        let id = |ty: &str, n: &str| {
            format!("/subscriptions/{SUB}/resourceGroups/{RG}/providers/{ty}/{n}")
        };
        let body = if uri.contains("virtualMachines") && !uri.contains("page=2") {
            json!({"value": [{"id": id("Microsoft.Compute/virtualMachines", "a-vm"), "tags": tags(MANAGER, "a")},
                             {"id": id("Microsoft.Compute/virtualMachines", "other-vm"), "tags": tags("someone-else", "x")}],
                   "nextLink": format!("https://arm.test/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.Compute/virtualMachines?api-version=2024-07-01&page=2")})
        } else if uri.contains("virtualMachines") {
            json!({"value": [{"id": id("Microsoft.Compute/virtualMachines", "b-vm"), "tags": tags(MANAGER, "b")}]})
        } else if uri.contains("networkInterfaces") {
            json!({"value": [{"id": id("Microsoft.Network/networkInterfaces", "a-nic"), "tags": tags(MANAGER, "a")},
                             {"id": id("Microsoft.Network/networkInterfaces", "untagged")}]})
        } else {
            json!({"value": []})
        };
        Ok::<_, skyfleet_core::Error>(
            http::Response::builder()
                .status(200)
                .body(Bytes::from(serde_json::to_vec(&body).unwrap()))
                .unwrap(),
        )
    });
    let transport = Transport::builder().build_with(svc).unwrap();
    let p = AzureBuilder::from_config(cfg)
        .with_transport(transport)
        .with_token_source(Arc::new(Credential::static_token("t")))
        .build()
        .unwrap();
    let mut owned = p
        .list_owned(&OwnershipScope {
            manager_id: MANAGER.into(),
            provider_id: "azure".into(),
        })
        .await
        .unwrap();
    owned.sort_by(|a, b| a.id.cmp(&b.id));
    let names: Vec<_> = owned
        .iter()
        .map(|r| (r.kind.as_str(), r.worker_id.as_deref()))
        .collect();
    assert_eq!(
        names,
        vec![
            ("virtualMachine", Some("a")),
            ("virtualMachine", Some("b")),
            ("networkInterface", Some("a")),
        ]
    );
}
