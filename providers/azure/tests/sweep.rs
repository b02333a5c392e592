//! The orphan sweeper on Azure (the mock ARM): the OS disk a VM makes from
//! its image carries the ownership tags (ARM does not copy the VM's), so a
//! disk left behind is listed with its store id and swept; `tag_owned`
//! adopts resources made before store ids.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;
use skyfleet_core::fleet::{FixedDemand, Fleet, FleetConfig};
use skyfleet_core::model::tag;
use skyfleet_core::store::{MemoryStore, WorkerStore};
use skyfleet_core::testing::fixtures;
use skyfleet_core::{OwnedResource, OwnershipScope, Phase, PoolConfig, Provider};

fn scope() -> OwnershipScope {
    OwnershipScope {
        manager_id: MANAGER.into(),
        provider_id: "azure".into(),
    }
}

/// Waits until the mock holds no resource of kind `kind` named like
/// `name_part`.
async fn until_gone(env: &Env, kind: &str, name_part: &str) {
    let start = Instant::now();
    loop {
        let left: Vec<Value> = env
            .ours()
            .await
            .into_iter()
            .filter(|r| r["kind"] == kind && r["id"].as_str().unwrap_or("").contains(name_part))
            .collect();
        if left.is_empty() {
            return;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "{left:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A VM made with `deleteOption: Detach` is deleted behind the fleet's
/// back, leaving its NIC and its OS disk. The disk (made by ARM with the
/// VM) carries every ownership tag, the store id among them; the fleet's
/// sweep lists it as its own orphan and deletes it, with the NIC.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_os_disk_carries_the_ownership_tags_and_an_orphaned_one_is_swept() {
    let env = Env::start().await;
    let p = Arc::new(env.provider());
    let store: Arc<dyn WorkerStore> = Arc::new(MemoryStore::created_at(
        time::OffsetDateTime::now_utc() - Duration::from_secs(3600),
    ));
    let store_id = store.store_identity().await.unwrap().id;
    let mut l = launch(false, 0);
    l["delete_with_vm"] = Value::Bool(false);
    let mut w = fixtures::worker("w-disk")
        .provider(skyfleet_core::provider::names::AZURE)
        .manager(MANAGER)
        .store(&store_id)
        .launch(l.clone())
        .build_now();
    drive(p.as_ref(), &mut w, &[Phase::Running]).await;
    assert_eq!(w.phase, Phase::Running, "{:?}", w.last_error);

    let owned = p.list_owned(&scope()).await.unwrap();
    let disk = owned
        .iter()
        .find(|r| r.kind == "disk")
        .unwrap_or_else(|| panic!("the OS disk is listed: {owned:#?}"));
    let expected = w.spec.tags.to_map();
    for (k, v) in &expected {
        assert_eq!(disk.tags.get(k), Some(v), "disk tag {k}: {:?}", disk.tags);
    }
    assert_eq!(disk.store_id.as_deref(), Some(store_id.as_str()));
    assert_eq!(disk.worker_id.as_deref(), Some("w-disk"));
    assert!(owned
        .iter()
        .all(|r| r.store_id.as_deref() == Some(&store_id)));

    // The VM goes behind the fleet's back; its NIC and disk stay.
    let vm = owned.iter().find(|r| r.kind == "virtualMachine").unwrap();
    p.delete_owned(vm).await.unwrap();
    until_gone(&env, "virtualMachine", "").await;
    assert_eq!(env.count("disk").await, 1);

    // A fleet on the store (which has no record of w-disk) sweeps.
    let pool: PoolConfig = serde_json::from_value(serde_json::json!({
        "pool_id": "pool", "provider_id": "azure", "max_capacity": 1,
        "launch_configs": [{"id": "lc", "launch": l}],
    }))
    .unwrap();
    let fleet = Fleet::builder()
        .config(FleetConfig {
            manager_id: MANAGER.into(),
            sweep_grace: Duration::ZERO,
            sweep_max_delete: Some(10),
            ..FleetConfig::default()
        })
        .store(store)
        .provider(p.clone())
        .pool(pool)
        .demand(Arc::new(FixedDemand::new()))
        .build()
        .unwrap();
    let r = fleet.sweep_once().await.unwrap();
    assert_eq!((r.seen, r.deleted, r.failed), (2, 2, 0), "{r:?}");
    assert!(r
        .resources
        .iter()
        .any(|x| x.kind == "disk" && x.verdict == skyfleet_core::fleet::Verdict::Deleted));
    until_gone(&env, "disk", "").await;
    assert!(p.list_owned(&scope()).await.unwrap().is_empty());
}

/// Resources made before store ids are listed without one; `tag_owned`
/// adds the store tag with one PATCH, keeping the other tags.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tag_owned_adds_the_store_id_keeping_the_other_tags() {
    const STORE: &str = "0123456789abcdef0123456789abcdef";
    let env = Env::start().await;
    let p = env.provider();
    let mut w = worker("w-old", launch(false, 0));
    drive(&p, &mut w, &[Phase::Running]).await;
    assert_eq!(w.phase, Phase::Running, "{:?}", w.last_error);
    let owned = p.list_owned(&scope()).await.unwrap();
    assert!(!owned.is_empty());
    assert!(owned.iter().all(|r| r.store_id.is_none()), "{owned:#?}");
    let vm: &OwnedResource = owned.iter().find(|r| r.kind == "virtualMachine").unwrap();
    let tags = [(tag::STORE.to_string(), STORE.to_string())].into();
    p.tag_owned(vm, &tags).await.unwrap();
    let after = p.list_owned(&scope()).await.unwrap();
    let vm2 = after.iter().find(|r| r.id == vm.id).unwrap();
    assert_eq!(vm2.store_id.as_deref(), Some(STORE));
    assert_eq!(vm2.worker_id.as_deref(), Some("w-old"));
    assert_eq!(
        vm2.tags.get(tag::MANAGER).map(String::as_str),
        Some(MANAGER)
    );
    assert_eq!(vm2.tags.len(), vm.tags.len() + 1, "{:?}", vm2.tags);
}
