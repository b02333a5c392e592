//! Tests of the worker model.

use super::*;
use crate::provider::names;
use serde_json::json;

pub(crate) fn pool() -> PoolConfig {
    serde_json::from_value(json!({
        "pool_id": "ci/linux",
        "provider_id": names::AWS,
        "min_capacity": 0,
        "max_capacity": 10,
        "launch_configs": [{"id": "a", "launch": {"instance_type": "m5.large"}}]
    }))
    .unwrap()
}

#[test]
fn pool_validation_names_the_field() {
    assert!(pool().validate(&[names::AWS]).is_ok());
    let field = |p: PoolConfig| match p.validate(&[names::AWS]).unwrap_err().kind().clone() {
        crate::ErrorKind::InvalidConfig { field } => field,
        k => panic!("unexpected {k:?}"),
    };
    let mut p = pool();
    p.min_capacity = 11;
    assert_eq!(field(p), "min_capacity");
    let mut p = pool();
    p.launch_configs.clear();
    assert_eq!(field(p), "launch_configs");
    let mut p = pool();
    p.launch_configs[0].weight = 0.0;
    assert_eq!(field(p), "launch_configs[0].weight");
    let mut p = pool();
    p.provider_id = "nope".into();
    assert_eq!(field(p), "provider_id");
    let mut p = pool();
    p.launch_configs.push(p.launch_configs[0].clone());
    assert_eq!(field(p), "launch_configs[1].id");
}

#[test]
fn unknown_pool_keys_are_refused() {
    let e = serde_json::from_value::<PoolConfig>(json!({
        "pool_id": "p", "provider_id": names::AWS, "max_capacity": 1, "launch_configs": [],
        "max_capacty": 3
    }))
    .unwrap_err();
    assert!(e.to_string().contains("max_capacty"), "{e}");
}

#[test]
fn worker_record_round_trips() {
    let now = OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap();
    let spec = WorkerSpec {
        worker_id: "w-1".into(),
        pool_id: "p".into(),
        provider_id: names::AWS.into(),
        launch_config_id: "a".into(),
        launch: json!({}),
        capacity: 1,
        lifecycle: Lifecycle::default(),
        tags: OwnershipTags {
            manager_id: "m".into(),
            pool_id: "p".into(),
            worker_id: "w-1".into(),
            provider_id: names::AWS.into(),
            store_id: None,
            extra: BTreeMap::new(),
        },
    };
    spec.validate().unwrap();
    let w = Worker::new(spec, now);
    let back: Worker = serde_json::from_str(&serde_json::to_string(&w).unwrap()).unwrap();
    assert_eq!(back, w);
    assert_eq!(w.provisioning_deadline() - now, time::Duration::minutes(30));
    let mut bad = w.spec.clone();
    bad.worker_id = "Bad_Id".into();
    assert!(matches!(
        bad.validate().unwrap_err().kind(),
        crate::ErrorKind::InvalidConfig { field } if field == "worker_id"
    ));
}

#[test]
fn the_store_tag_is_the_stores_id_and_cannot_come_from_pool_tags() {
    let mut tags = OwnershipTags {
        manager_id: "m".into(),
        pool_id: "p".into(),
        worker_id: "w-1".into(),
        provider_id: "aws".into(),
        store_id: None,
        extra: BTreeMap::from([(tag::STORE.to_string(), "spoofed".to_string())]),
    };
    assert_eq!(tags.to_map().get(tag::STORE), None, "{:?}", tags.to_map());
    tags.store_id = Some("0123456789abcdef0123456789abcdef".into());
    assert_eq!(
        tags.to_map().get(tag::STORE).map(String::as_str),
        Some("0123456789abcdef0123456789abcdef")
    );
    let r = OwnedResource::from_tags("i-1".into(), "instance", None, tags.to_map());
    assert_eq!(r.store_id, tags.store_id);
    assert_eq!(r.worker_id.as_deref(), Some("w-1"));
}

#[test]
fn ownership_tags_stored_before_store_ids_still_parse_without_one() {
    let old = json!({"manager_id": "m", "pool_id": "p", "worker_id": "w-1", "provider_id": "aws"});
    let tags: OwnershipTags = serde_json::from_value(old.clone()).unwrap();
    assert_eq!(tags.store_id, None);
    assert_eq!(
        serde_json::to_value(&tags).unwrap(),
        old,
        "written back unchanged"
    );
}
