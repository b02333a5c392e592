//! SQLite store throughput with 100,000 workers in the store.
//!
//! `cargo bench -p skyfleet-core --bench store`
//!
//! - `claim_update/100`: one scanner cycle on 100 workers: claim 100 due
//!   workers, then update each (new state, next check, lease dropped) as the
//!   runtime does after a step. Throughput is in workers (claim+update
//!   cycles) per second.
//! - `claim/500`: the claim of 500 due workers alone.
//!
//! Targets and measured figures: BENCHMARKS.md, "Store".

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use skyfleet_core::store::{conformance::worker, Claim, PartitionFilter, SqliteStore, WorkerStore};
use time::OffsetDateTime;

const WORKERS: usize = 100_000;

fn setup(rt: &tokio::runtime::Runtime, dir: &tempfile::TempDir) -> Arc<SqliteStore> {
    rt.block_on(async {
        let path = dir.path().join("bench.db");
        let store = Arc::new(SqliteStore::open(path.to_str().expect("utf-8 path")).await.expect("open"));
        let start = OffsetDateTime::now_utc() - Duration::from_secs(3600);
        let mut tasks = Vec::new();
        for shard in 0..4 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                for i in (shard..WORKERS).step_by(4) {
                    let mut w = worker(&format!("w-{i:06}"), "pool", "aws", start);
                    w.partition = Some("us-east-1".into());
                    w.next_check_at = start + Duration::from_millis(i as u64);
                    w.provider_state = serde_json::json!({"instance_id": format!("i-{i:017x}"), "zone": "us-east-1a"});
                    store.create_worker(&w).await.expect("create");
                }
            }));
        }
        for t in tasks {
            t.await.expect("setup task");
        }
        store
    })
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let t = Instant::now();
    let store = setup(&rt, &dir);
    eprintln!("setup: {WORKERS} workers inserted in {:?}", t.elapsed());

    let mut g = c.benchmark_group("sqlite");
    g.sample_size(20);
    g.throughput(Throughput::Elements(100));
    g.bench_function("claim_update/100", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let now = OffsetDateTime::now_utc();
                    let start = Instant::now();
                    let claimed = store
                        .claim_due(
                            &Claim {
                                provider_id: "aws".into(),
                                partition: PartitionFilter::Only(Some("us-east-1".into())),
                                owner: "bench".into(),
                                lease: Duration::from_secs(60),
                                limit: 100,
                            },
                            now,
                        )
                        .await
                        .expect("claim");
                    assert_eq!(claimed.len(), 100);
                    for mut w in claimed {
                        // Still due (so the store never runs dry), lease dropped.
                        w.next_check_at = now - Duration::from_secs(1);
                        w.lease_owner = None;
                        w.lease_expires_at = None;
                        w.provider_state["polls"] = serde_json::json!(1);
                        store.update_worker(&w).await.expect("update");
                    }
                    total += start.elapsed();
                }
                total
            })
        })
    });
    g.throughput(Throughput::Elements(500));
    g.bench_function("claim/500", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let now = OffsetDateTime::now_utc();
                    let start = Instant::now();
                    let claimed = store
                        .claim_due(
                            &Claim {
                                provider_id: "aws".into(),
                                partition: PartitionFilter::Only(Some("us-east-1".into())),
                                owner: "bench".into(),
                                lease: Duration::from_secs(60),
                                limit: 500,
                            },
                            now,
                        )
                        .await
                        .expect("claim");
                    total += start.elapsed();
                    assert_eq!(claimed.len(), 500);
                    store.release_all("bench").await.expect("release");
                }
                total
            })
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
