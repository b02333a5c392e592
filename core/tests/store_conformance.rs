//! The store conformance suite on every store.

use std::sync::Arc;

use skyfleet_core::store::{conformance, MemoryStore, PoolDecision, SqliteStore, WorkerStore};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_store_conforms() {
    conformance::run(|| async {
        let s: Arc<dyn WorkerStore> = Arc::new(MemoryStore::new());
        (s.clone(), s)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_store_conforms() {
    let dir = tempfile::tempdir().unwrap();
    let n = std::sync::atomic::AtomicU32::new(0);
    conformance::run(|| {
        let path = dir.path().join(format!(
            "case-{}.db",
            n.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
        ));
        async move {
            let path = path.to_str().unwrap().to_string();
            let a: Arc<dyn WorkerStore> = Arc::new(SqliteStore::open(&path).await.unwrap());
            // A second, independent pool on the same file, as a second process.
            let b: Arc<dyn WorkerStore> = Arc::new(SqliteStore::open(&path).await.unwrap());
            (a, b)
        }
    })
    .await;
}

#[tokio::test]
async fn sqlite_reopen_keeps_data_and_schema() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keep.db");
    let path = path.to_str().unwrap();
    let now = time::OffsetDateTime::now_utc();
    {
        let s = SqliteStore::open(path).await.unwrap();
        s.create_worker(&conformance::worker("w-1", "p", "aws", now))
            .await
            .unwrap();
    }
    let s = SqliteStore::open(path).await.unwrap();
    assert!(s.get_worker("w-1").await.unwrap().is_some());
}

/// A SQLite file keeps its store identity (id and creation time) across
/// closing and reopening; another file has another id.
#[tokio::test]
async fn sqlite_store_identity_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ident.db");
    let path = path.to_str().unwrap();
    let first = {
        let s = SqliteStore::open(path).await.unwrap();
        s.store_identity().await.unwrap()
    };
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let s = SqliteStore::open(path).await.unwrap();
    assert_eq!(s.store_identity().await.unwrap(), first);
    let other = SqliteStore::open(dir.path().join("other.db").to_str().unwrap())
        .await
        .unwrap();
    assert_ne!(other.store_identity().await.unwrap().id, first.id);
}

#[tokio::test]
async fn bad_store_urls_are_refused() {
    let e = skyfleet_core::store::open("mysql://x").await.unwrap_err();
    assert!(
        matches!(e.kind(), skyfleet_core::ErrorKind::InvalidConfig { field } if field == "store")
    );
}

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_store_conforms() {
    use skyfleet_core::store::PostgresStore;
    let Ok(url) = std::env::var("SKYFLEET_TEST_POSTGRES_URL") else {
        eprintln!("SKYFLEET_TEST_POSTGRES_URL is unset: PostgreSQL store conformance SKIPPED");
        return;
    };
    use skyfleet_core::store::StoreClock;
    let schemas = std::sync::Mutex::new(Vec::new());
    let tag = format!("t{}_{}", std::process::id(), uuid::Uuid::new_v4().simple());
    let make = |clock: StoreClock| {
        let schema = format!("sf_{tag}_{}", schemas.lock().unwrap().len());
        schemas.lock().unwrap().push(schema.clone());
        let url = url.clone();
        async move {
            let a = PostgresStore::connect_in_schema(&url, Some(&schema))
                .await
                .unwrap()
                .with_clock(clock);
            let b = PostgresStore::connect_in_schema(&url, Some(&schema))
                .await
                .unwrap()
                .with_clock(clock);
            (
                Arc::new(a) as Arc<dyn WorkerStore>,
                Arc::new(b) as Arc<dyn WorkerStore>,
            )
        }
    };
    // The cases that move time by hand, on the callers' (simulated) clock;
    // then what only the database's clock guarantees, on the default store.
    conformance::run(|| make(StoreClock::Caller)).await;
    conformance::run_database_clock(|| make(StoreClock::Database)).await;
    let admin = sqlx::PgPool::connect(&url).await.unwrap();
    let schemas = schemas.lock().unwrap().clone();
    for s in schemas.iter() {
        sqlx::query(&format!("DROP SCHEMA IF EXISTS {s} CASCADE"))
            .execute(&admin)
            .await
            .unwrap();
    }
}

/// The statements of a checked-in script (comments dropped; the scripts
/// have no semicolons inside literals).
fn script_statements(script: &str) -> Vec<String> {
    let code: String = script
        .lines()
        .filter(|l| !l.starts_with("--"))
        .map(|l| format!("{l}\n"))
        .collect();
    code.split(';')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// Uses a store opened on a database created by an earlier skyfleet at
/// schema 3: its worker is there and claimable, and new ones can be written.
async fn use_released_database(s: &dyn WorkerStore) {
    use skyfleet_core::store::{Claim, PartitionFilter};
    let now = skyfleet_core::clock::from_millis(1_750_000_000_000);
    let old = s
        .get_worker("w-old")
        .await
        .unwrap()
        .expect("the old worker");
    assert_eq!(old.partition.as_deref(), Some("us-east-1"));
    let claim = Claim {
        provider_id: "aws".into(),
        partition: PartitionFilter::Only(Some("us-east-1".into())),
        owner: "r".into(),
        lease: std::time::Duration::from_secs(60),
        limit: 10,
    };
    let mut got = s.claim_due(&claim, now).await.unwrap();
    assert_eq!(got.len(), 1, "the old worker is claimed");
    let mut w = got.remove(0);
    w.partition = Some("us-west-2".into());
    s.update_worker(&w).await.unwrap();
    s.create_worker(&conformance::worker("w-new", "p", "aws", now))
        .await
        .unwrap();
    assert_eq!(
        s.partitions("aws").await.unwrap(),
        vec![None, Some("us-west-2".to_string())]
    );
    // Written before last-transition times existed: none, until the next.
    assert_eq!(w.transitioned_at, None);
    // What migration 4 added works on the old database.
    let d = PoolDecision {
        pool_id: "p".into(),
        provider_id: "aws".into(),
        min_capacity: 0,
        max_capacity: 3,
        demand: Default::default(),
        have: Default::default(),
        estimate: Default::default(),
        created: 0,
        removed: 0,
        owner: "r".into(),
        decided_at: now,
        offerings: Vec::new(),
    };
    s.put_pool_decision(&d).await.unwrap();
    assert_eq!(s.list_pool_decisions().await.unwrap(), vec![d]);
    assert!(s.pool_error_groups(now).await.unwrap().is_empty());
}

/// An upgraded store's identity was created at the upgrade, not dated back.
async fn assert_identity_made_now(s: &dyn WorkerStore) {
    let id = s.store_identity().await.unwrap();
    let age = time::OffsetDateTime::now_utc() - id.created_at;
    assert!(
        age >= time::Duration::ZERO && age < time::Duration::minutes(5),
        "identity {id:?} is {age} old"
    );
}

/// The schema objects an up-to-date database has beyond a schema-3 one
/// (a changed object counts as new), once every object of `before` but the
/// tables `pool_leases` and `workers` (migrations 7 and 8 give each a
/// column) is found unchanged.
fn added_by_migrations(before: &[String], after: &[String]) -> Vec<String> {
    for b in before {
        let altered = [
            "table pool_leases ",
            "table workers ",
            "pool_leases r ",
            "workers r ",
        ]
        .iter()
        .any(|t| b.starts_with(t));
        assert!(altered || after.contains(b), "{b} was changed or dropped");
    }
    after
        .iter()
        .filter(|a| !before.contains(a))
        .map(|a| a.split_whitespace().take(2).collect::<Vec<_>>().join(" "))
        .collect()
}

/// A row as the released code wrote it (schema 3), for the scripts above.
const RELEASED_ROW: &str = "INSERT INTO workers (worker_id, pool_id, provider_id, phase, \
    next_check_at, version, lease_owner, lease_expires_at, created_at, body, scan_partition) \
    VALUES ('w-old', 'p', 'aws', 'requested', 1750000000000, 1, NULL, NULL, 1750000000000, $1, \
    'us-east-1')";

fn released_body() -> String {
    let now = skyfleet_core::clock::from_millis(1_750_000_000_000);
    let mut w = conformance::worker("w-old", "p", "aws", now);
    w.version = 1;
    w.phase = skyfleet_core::Phase::Requested;
    w.partition = Some("us-east-1".into());
    // As the released code wrote it: no last-transition time.
    let mut v = serde_json::to_value(&w).unwrap();
    v.as_object_mut().unwrap().remove("transitioned_at");
    v.to_string()
}

/// A SQLite database created by the released code (schema 3, its exact DDL
/// and bookkeeping) opens: migrations 4 to 9 alone run, adding their tables
/// and indexes, the pool leases' token and the workers' `finished_at`, and
/// altering nothing else that was there; it gets a store identity created at the upgrade (young to the
/// sweeper).
#[tokio::test]
async fn sqlite_database_at_schema_3_opens_and_gains_only_migrations_4_to_9() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("released.db");
    let url = format!("sqlite://{}?mode=rwc", path.display());
    let raw = sqlx::SqlitePool::connect(&url).await.unwrap();
    for stmt in script_statements(include_str!("fixtures/schema3-sqlite.sql")) {
        sqlx::query(&stmt).execute(&raw).await.unwrap();
    }
    sqlx::query(RELEASED_ROW)
        .bind(released_body())
        .execute(&raw)
        .await
        .unwrap();
    let schema =
        "SELECT type || ' ' || name || ' ' || COALESCE(sql, '') FROM sqlite_master ORDER BY name";
    let before: Vec<String> = sqlx::query_scalar(schema).fetch_all(&raw).await.unwrap();
    raw.close().await;

    let s = SqliteStore::open(path.to_str().unwrap()).await.unwrap();
    use_released_database(&s).await;
    assert_identity_made_now(&s).await;
    drop(s);

    let raw = sqlx::SqlitePool::connect(&url).await.unwrap();
    let after: Vec<String> = sqlx::query_scalar(schema).fetch_all(&raw).await.unwrap();
    assert_eq!(
        added_by_migrations(&before, &after),
        vec![
            "table offering_interruptions",
            "table offering_marks",
            "index offering_marks_until",
            "table pool_decisions",
            "index pool_errors_reported",
            "table pool_leases",
            "index sqlite_autoindex_offering_interruptions_1",
            "index sqlite_autoindex_offering_marks_1",
            "index sqlite_autoindex_pool_decisions_1",
            "index sqlite_autoindex_worker_registrations_1",
            "table store_identity",
            "table worker_registrations",
            "index worker_registrations_pool",
            "table workers",
            "index workers_finished",
            "index workers_listing"
        ],
        "only migrations 4 to 9's objects are new"
    );
    let versions: Vec<i64> =
        sqlx::query_scalar("SELECT version FROM skyfleet_schema ORDER BY version")
            .fetch_all(&raw)
            .await
            .unwrap();
    assert_eq!(
        versions,
        vec![1, 2, 3, 4, 5, 6, 7, 8, 9],
        "no migration re-ran; 4 to 9 ran once"
    );
}

/// A PostgreSQL database created by the released code (schema 3) opens:
/// migrations 4 to 9 alone run, altering nothing that was there but the
/// pool leases' new token and the workers' `finished_at`; it gets a store identity created at the upgrade.
#[cfg(feature = "postgres")]
#[tokio::test]
async fn postgres_database_at_schema_3_opens_and_gains_only_migrations_4_to_9() {
    use skyfleet_core::store::PostgresStore;
    use sqlx::Connection;
    let Ok(url) = std::env::var("SKYFLEET_TEST_POSTGRES_URL") else {
        eprintln!("SKYFLEET_TEST_POSTGRES_URL is unset: PostgreSQL schema-3 test SKIPPED");
        return;
    };
    let schema = format!("sf_released_{}", uuid::Uuid::new_v4().simple());
    let mut raw = sqlx::PgConnection::connect(&url).await.unwrap();
    sqlx::query(&format!("CREATE SCHEMA {schema}"))
        .execute(&mut raw)
        .await
        .unwrap();
    sqlx::query(&format!("SET search_path TO {schema}"))
        .execute(&mut raw)
        .await
        .unwrap();
    for stmt in script_statements(include_str!("fixtures/schema3-postgres.sql")) {
        sqlx::query(&stmt).execute(&mut raw).await.unwrap();
    }
    sqlx::query(RELEASED_ROW)
        .bind(released_body())
        .execute(&mut raw)
        .await
        .unwrap();
    let describe = "SELECT c.relname || ' ' || c.relkind::text || ' ' || COALESCE(string_agg(a.attname || ':' \
        || format_type(a.atttypid, a.atttypmod), ',' ORDER BY a.attnum), '') \
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
        LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped \
        WHERE n.nspname = $1 GROUP BY c.relname, c.relkind ORDER BY c.relname";
    let before: Vec<String> = sqlx::query_scalar(describe)
        .bind(&schema)
        .fetch_all(&mut raw)
        .await
        .unwrap();

    let s = PostgresStore::connect_in_schema(&url, Some(&schema))
        .await
        .unwrap();
    use_released_database(&s).await;
    assert_identity_made_now(&s).await;
    s.pool().close().await;

    let after: Vec<String> = sqlx::query_scalar(describe)
        .bind(&schema)
        .fetch_all(&mut raw)
        .await
        .unwrap();
    assert_eq!(
        added_by_migrations(&before, &after),
        vec![
            "offering_interruptions r",
            "offering_interruptions_pkey i",
            "offering_marks r",
            "offering_marks_pkey i",
            "offering_marks_until i",
            "pool_decisions r",
            "pool_decisions_pkey i",
            "pool_errors_reported i",
            "pool_leases r",
            "store_identity r",
            "store_identity_pkey i",
            "worker_registrations r",
            "worker_registrations_pkey i",
            "worker_registrations_pool i",
            "workers r",
            "workers_finished i",
            "workers_listing i"
        ],
        "only migrations 4 to 9's objects are new"
    );
    let versions: Vec<i32> =
        sqlx::query_scalar("SELECT version FROM skyfleet_schema ORDER BY version")
            .fetch_all(&mut raw)
            .await
            .unwrap();
    assert_eq!(
        versions,
        vec![1, 2, 3, 4, 5, 6, 7, 8, 9],
        "no migration re-ran; 4 to 9 ran once"
    );
    sqlx::query(&format!("DROP SCHEMA {schema} CASCADE"))
        .execute(&mut raw)
        .await
        .unwrap();
}

/// A worker that was already stopped when migration 8 ran finished when
/// its final step parked it 365 days ahead: retention counts from then.
#[tokio::test]
async fn a_worker_stopped_before_migration_8_ages_out_from_its_final_step() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("released.db");
    let url = format!("sqlite://{}?mode=rwc", path.display());
    let raw = sqlx::SqlitePool::connect(&url).await.unwrap();
    for stmt in script_statements(include_str!("fixtures/schema3-sqlite.sql")) {
        sqlx::query(&stmt).execute(&raw).await.unwrap();
    }
    // Stopped by a step at 1,750,000,000,000 ms: parked 365 days ahead.
    let final_step = 1_750_000_000_000_i64;
    let stopped = RELEASED_ROW.replace("'requested'", "'stopped'").replacen(
        "1750000000000",
        &(final_step + 31_536_000_000).to_string(),
        1,
    );
    sqlx::query(&stopped)
        .bind(released_body())
        .execute(&raw)
        .await
        .unwrap();
    raw.close().await;

    let s = SqliteStore::open(path.to_str().unwrap()).await.unwrap();
    let at = skyfleet_core::clock::from_millis;
    assert_eq!(
        s.delete_finished_workers(at(final_step - 1), 10)
            .await
            .unwrap(),
        0,
        "not before its final step"
    );
    assert_eq!(
        s.delete_finished_workers(at(final_step + 1), 10)
            .await
            .unwrap(),
        1,
        "finished at its final step"
    );
    assert!(s.get_worker("w-old").await.unwrap().is_none());
}
