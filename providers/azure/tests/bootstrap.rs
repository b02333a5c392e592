//! A worker created by the Azure provider finds out who it is from its
//! VM's metadata service: `compute/userData` (`Metadata: true`, base64),
//! read with a plain HTTP client and parsed with core's
//! [`Bootstrap::parse_base64`]; it names exactly the worker and the
//! provider's configured root URL.

mod common;

use common::*;
use serde_json::{json, Value};
use skyfleet_azure::testing::ChainState;
use skyfleet_azure::AzureBuilder;
use skyfleet_core::{Bootstrap, Phase, Provider, Worker};

const ROOT_URL: &str = "https://manager.example:8443";

/// The VM's `vmId`, read from ARM.
async fn vm_id(env: &Env, w: &Worker) -> String {
    let st = ChainState::from_worker(w).unwrap().unwrap();
    let url = format!(
        "{}/subscriptions/{SUB}/resourceGroups/{}/providers/Microsoft.Compute/virtualMachines/{}?api-version=2024-07-01",
        env.mock.url(),
        st.resource_group,
        st.names.vm
    );
    let r = env.http.get(url).bearer_auth("test").send().await.unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    let body: Value = r.json().await.unwrap();
    body["properties"]["vmId"].as_str().unwrap().to_string()
}

/// `compute/userData` as text, as the VM's agent reads it.
async fn user_data(env: &Env, vm_id: &str) -> reqwest::Response {
    let url = format!(
        "{}/_imds/azure/{vm_id}/metadata/instance/compute/userData?api-version=2021-01-01&format=text",
        env.mock.imds_url()
    );
    reqwest::Client::new()
        .get(url)
        .header("Metadata", "true")
        .send()
        .await
        .unwrap()
}

fn launch_with_config(base: Value) -> Value {
    let mut l = base;
    l["worker_config"] = json!({"engine": "docker"});
    l
}

async fn check(env: &Env, p: &dyn Provider, mut w: Worker, custom_data_in_doc: bool) {
    drive(p, &mut w, &[Phase::Running]).await;
    assert_eq!(w.phase, Phase::Running, "{:?}", w.last_error);
    let vm = vm_id(env, &w).await;
    let resp = user_data(env, &vm).await;
    assert_eq!(resp.status(), 200);
    let doc = Bootstrap::parse_base64(&resp.text().await.unwrap()).unwrap();
    assert_eq!(doc.root_url, ROOT_URL);
    assert_eq!(doc.worker_id, w.id());
    assert_eq!(doc.worker_pool_id, w.spec.pool_id);
    assert_eq!(doc.provider_id, "azure-test");
    assert_eq!(doc.worker_group, LOCATION);
    assert_eq!(doc.launch_config_id, w.spec.launch_config_id);
    assert_eq!(doc.worker_config, json!({"engine": "docker"}));
    if custom_data_in_doc {
        // An attached OS disk takes no osProfile: the custom data rides in
        // the document.
        assert_eq!(doc.extra["customData"], "#cloud-config\n");
    } else {
        assert!(doc.extra.is_empty(), "{:?}", doc.extra);
    }
    // Without the header, refused as Azure's IMDS does.
    let url = format!(
        "{}/_imds/azure/{vm}/metadata/instance/compute/userData?api-version=2021-01-01&format=text",
        env.mock.imds_url()
    );
    let refused = reqwest::get(url).await.unwrap();
    assert_eq!(refused.status(), 400);
    // Gone with the VM.
    w.desired = skyfleet_core::DesiredState::Removed;
    w.next_check_at = time::OffsetDateTime::now_utc();
    drive(p, &mut w, &[]).await;
    assert_ne!(user_data(env, &vm).await.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_worker_reads_its_own_identity_from_user_data() {
    let env = Env::start().await;
    let mut config = env.config();
    config.id = "azure-test".into();
    let p = AzureBuilder::from_config(config)
        .with_root_url(ROOT_URL)
        .build()
        .unwrap();
    let worker_of = |id: &str, launch: Value| {
        let mut w = worker(id, launch_with_config(launch));
        w.spec.provider_id = "azure-test".into();
        w.spec.tags.provider_id = "azure-test".into();
        w
    };
    check(&env, &p, worker_of("boot-1", launch(false, 0)), false).await;
    check(&env, &p, worker_of("boot-2", explicit_os_launch()), true).await;
}
