//! `skyfleet workers` streams: listing 100,000 workers peaks at no more
//! than 1.2 times the memory of listing 1,000.
//!
//! Each listing runs the built binary on a SQLite store filled beforehand
//! (one statement copying a worker's record under new ids) and samples the
//! child's peak resident set (`VmHWM`) from `/proc`.
#![cfg(target_os = "linux")]

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use skyfleet_core::store::conformance::worker;
use skyfleet_core::store::{SqliteStore, WorkerStore};

/// Fills a new SQLite store at `path` with `n` workers: one statement
/// copying one worker's record `n` times under new ids (a debug build
/// writing 100,000 records one by one takes half a minute).
async fn fill(path: &str, n: usize) {
    let store = SqliteStore::open(path).await.expect("open store");
    let now = time::OffsetDateTime::now_utc();
    let model = worker("w-0000000", "p", "aws", now);
    store.create_worker(&model).await.expect("model worker");
    let template: String = sqlx::query_scalar("SELECT body FROM workers WHERE worker_id = ?")
        .bind(model.id())
        .fetch_one(&pool(path).await)
        .await
        .expect("model body");
    sqlx::query(
        "WITH RECURSIVE seq(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM seq WHERE n + 1 < ?1) \
         INSERT INTO workers (worker_id, pool_id, provider_id, phase, next_check_at, version, \
           created_at, body) \
         SELECT printf('w-%07d', n), pool_id, provider_id, phase, next_check_at, 1, \
           created_at, replace(?2, 'w-0000000', printf('w-%07d', n)) \
         FROM seq, (SELECT * FROM workers WHERE worker_id = 'w-0000000')",
    )
    .bind(n as i64)
    .bind(template)
    .execute(&pool(path).await)
    .await
    .expect("fill");
    let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM workers")
        .fetch_one(&pool(path).await)
        .await
        .expect("count");
    assert_eq!(count, n as i64, "filled");
}

async fn pool(path: &str) -> sqlx::SqlitePool {
    sqlx::SqlitePool::connect(&format!("sqlite://{path}"))
        .await
        .expect("raw pool")
}

/// The peak resident set of process `pid` so far (`VmHWM`), in KiB; `None`
/// once it has exited.
fn high_water_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Runs `skyfleet workers [--json]` on the store at `path`; its peak
/// resident set in KiB and how many lines it printed.
///
/// The peak is the child's `VmHWM`, read every 2 ms until it exits: that
/// of its own address space since exec. (wait4's `ru_maxrss` would not do:
/// Linux carries the spawning process's resident set across exec into it.)
/// The mark only rises, so the last reading misses at most 2 ms of growth.
fn peak_kib(path: &str, json: bool) -> (u64, usize) {
    let out = tempfile::NamedTempFile::new().expect("temp file");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_skyfleet"));
    cmd.args(["workers", "--store", &format!("sqlite:{path}")]);
    if json {
        cmd.arg("--json");
    }
    let mut child = cmd
        .stdout(Stdio::from(out.reopen().expect("reopen")))
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn skyfleet");
    let mut peak = 0;
    // Bounded: a listing that outlives two minutes fails the test.
    let deadline = Instant::now() + Duration::from_secs(120);
    while let Some(kib) = high_water_kib(child.id()) {
        peak = peak.max(kib);
        assert!(Instant::now() < deadline, "skyfleet workers hung");
        std::thread::sleep(Duration::from_millis(2));
    }
    let status = child.wait().expect("wait");
    assert!(status.success(), "skyfleet workers failed: {status}");
    assert!(peak > 0, "no memory reading");
    let text = std::fs::read_to_string(out.path()).expect("read listing");
    (peak, text.lines().count())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listing_100k_workers_peaks_at_most_1_2_times_the_memory_of_1k() {
    let dir = tempfile::tempdir().expect("tempdir");
    let small = dir.path().join("1k.db");
    let large = dir.path().join("100k.db");
    let (small, large) = (small.to_str().unwrap(), large.to_str().unwrap());
    let started = Instant::now();
    fill(small, 1_000).await;
    fill(large, 100_000).await;
    eprintln!("filled in {:.1} s", started.elapsed().as_secs_f64());

    for json in [false, true] {
        let (peak_small, lines_small) = peak_kib(small, json);
        let (peak_large, lines_large) = peak_kib(large, json);
        eprintln!(
            "skyfleet workers{}: peak RSS {peak_small} KiB at 1,000 workers, \
             {peak_large} KiB at 100,000 ({:.2}x)",
            if json { " --json" } else { "" },
            peak_large as f64 / peak_small as f64
        );
        if json {
            assert!(lines_large > 100_000, "every worker printed");
        } else {
            assert_eq!(lines_small, 1_001, "a header and every worker");
            assert_eq!(lines_large, 100_001, "a header and every worker");
        }
        assert!(
            peak_large as f64 <= 1.2 * peak_small as f64,
            "peak RSS at 100,000 workers ({peak_large} KiB) is over 1.2 x that at 1,000 \
             ({peak_small} KiB)"
        );
    }
}
