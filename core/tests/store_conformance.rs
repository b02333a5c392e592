//! The store conformance suite on every store.

use std::sync::Arc;

use skyfleet_core::store::{conformance, MemoryStore, SqliteStore, WorkerStore};

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
    let schemas = std::sync::Mutex::new(Vec::new());
    let tag = format!("t{}_{}", std::process::id(), uuid::Uuid::new_v4().simple());
    conformance::run(|| {
        let schema = format!("sf_{tag}_{}", schemas.lock().unwrap().len());
        schemas.lock().unwrap().push(schema.clone());
        let url = url.clone();
        async move {
            let a = PostgresStore::connect_in_schema(&url, Some(&schema))
                .await
                .unwrap();
            let b = PostgresStore::connect_in_schema(&url, Some(&schema))
                .await
                .unwrap();
            (
                Arc::new(a) as Arc<dyn WorkerStore>,
                Arc::new(b) as Arc<dyn WorkerStore>,
            )
        }
    })
    .await;
    let admin = sqlx::PgPool::connect(&url).await.unwrap();
    let schemas = schemas.lock().unwrap().clone();
    for s in schemas.iter() {
        sqlx::query(&format!("DROP SCHEMA IF EXISTS {s} CASCADE"))
            .execute(&admin)
            .await
            .unwrap();
    }
}
