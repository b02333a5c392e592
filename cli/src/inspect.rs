//! `skyfleet workers`, `skyfleet errors` and `skyfleet remove`: a store
//! read (or one removal written) by a process separate from the fleet.

use std::collections::HashMap;
use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use skyfleet_core::fleet::lifecycle::{request_removal, RemovalReason, RemovalRequest};
use skyfleet_core::model::Registration;
use skyfleet_core::store::{PoolError, PoolErrorGroup, WorkerCursor, WorkerFilter};
use skyfleet_core::{Phase, Worker, WorkerStore};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::store_url;

/// The window `skyfleet errors` and `skyfleet status` count errors over.
pub const ERROR_WINDOW: Duration = Duration::from_secs(3600);

/// Creates a SQLite store's file private (0600) if it is missing, as `run`
/// does; an error names the (redacted) URL and exits 2.
fn create_private(url: &str) -> Result<(), ExitCode> {
    crate::private_file::create_sqlite_store(url).map_err(|e| {
        eprintln!(
            "skyfleet: store {}: creating the file: {e}",
            store_url::redacted(url)
        );
        ExitCode::from(2)
    })
}

/// Opens a store (a SQLite file it creates is private, as `run` makes
/// it); an error names the (redacted) URL and exits 2.
pub async fn open_store(url: &str) -> Result<Arc<dyn WorkerStore>, ExitCode> {
    create_private(url)?;
    skyfleet_core::store::open(url).await.map_err(|e| {
        eprintln!("skyfleet: store {}: {e}", store_url::redacted(url));
        ExitCode::from(2)
    })
}

/// [`open_store`] for one sequential reader (one SQLite connection).
async fn open_reader(url: &str) -> Result<Arc<dyn WorkerStore>, ExitCode> {
    create_private(url)?;
    skyfleet_core::store::open_reader(url).await.map_err(|e| {
        eprintln!("skyfleet: store {}: {e}", store_url::redacted(url));
        ExitCode::from(2)
    })
}

/// A time as RFC 3339 to the second, `-` when unknown.
pub fn timestamp(t: Option<OffsetDateTime>) -> String {
    t.and_then(|t| t.replace_nanosecond(0).ok())
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| "-".into())
}

/// Prints `value` as pretty JSON; a failure is exit 1.
pub fn print_json<T: Serialize>(command: &str, value: &T) -> ExitCode {
    match serde_json::to_string_pretty(value) {
        Ok(s) => {
            println!("{s}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("skyfleet {command}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// What a worker's agent last said, as `skyfleet workers` shows it:
/// `-` (never registered), `registered` (registered without the worker
/// API), or the registration's state: `idle`, `busy`, `draining`,
/// `drained`, `removing`.
pub fn agent_state(w: &Worker, reg: Option<&Registration>) -> &'static str {
    match reg {
        None if w.registered_at.is_some() => "registered",
        None => "-",
        Some(r) if r.removal.is_some() => "removing",
        Some(r) => match &r.drain {
            Some(d) if d.drained_at.is_some() => "drained",
            Some(_) => "draining",
            None => r.activity.as_str(),
        },
    }
}

/// One row of `skyfleet workers`.
fn worker_row(w: &Worker, reg: Option<&Registration>) -> String {
    format!(
        "{:<38} {:<18} {:<12} {:<16} {:<9} {:<8} {:<10} {:<20} {:<20} {:<30} {:<44} {}",
        w.id(),
        w.spec.pool_id,
        w.spec.provider_id,
        w.partition.as_deref().unwrap_or("-"),
        w.phase.as_str(),
        format!("{:?}", w.desired).to_lowercase(),
        agent_state(w, reg),
        timestamp(reg.map(|r| r.last_heartbeat_at)),
        timestamp(w.transitioned_at),
        w.removal_reason.as_deref().unwrap_or("-"),
        w.offering.as_ref().map_or("-".to_string(), |o| o.key()),
        w.last_error
            .as_ref()
            .map(|e| format!("{}: {}", e.kind, e.message))
            .unwrap_or_default()
    )
}

/// Workers per page of `skyfleet workers`: what the command holds in
/// memory at once, whatever the store's size.
pub const WORKERS_PAGE: usize = 100;

/// One worker as `skyfleet workers --json` shows it: the record, with its
/// agent's state and registration (no secret: the store holds a digest,
/// left out here too).
fn worker_json(w: &Worker, reg: Option<&Registration>) -> serde_json::Value {
    let mut v = serde_json::to_value(w).unwrap_or_default();
    if let Some(o) = v.as_object_mut() {
        o.insert("agent".into(), agent_state(w, reg).into());
        o.insert(
            "registration".into(),
            reg.map(|r| {
                let mut r = serde_json::to_value(r).unwrap_or_default();
                if let Some(o) = r.as_object_mut() {
                    o.remove("secret_sha256");
                }
                r
            })
            .unwrap_or_default(),
        );
    }
    v
}

/// Writes one page of workers (text rows, or JSON array elements after
/// `first`), returning whether the write succeeded.
fn write_page(
    out: &mut impl Write,
    page: &[Worker],
    regs: &HashMap<String, Registration>,
    json: bool,
    first: &mut bool,
) -> std::io::Result<()> {
    for w in page {
        let reg = regs.get(w.id());
        if json {
            let sep = if *first { "\n" } else { ",\n" };
            *first = false;
            let text = serde_json::to_string_pretty(&worker_json(w, reg))
                .map_err(std::io::Error::other)?;
            // Indented as an element of the array.
            write!(out, "{sep}  {}", text.replace('\n', "\n  "))?;
        } else {
            writeln!(out, "{}", worker_row(w, reg))?;
        }
    }
    Ok(())
}

/// `skyfleet workers`: the workers of a store, with why each is being (or
/// was) removed and when it last changed. Streams: it reads and writes
/// [`WORKERS_PAGE`] workers at a time, so its memory does not grow with the
/// store.
pub async fn workers(
    url: &str,
    pool: Option<String>,
    phase: Option<String>,
    json: bool,
) -> ExitCode {
    let store = match open_reader(url).await {
        Ok(s) => s,
        Err(c) => return c,
    };
    let mut filter = WorkerFilter {
        pool_id: pool,
        ..Default::default()
    };
    if let Some(p) = phase {
        match Phase::parse(&p) {
            Ok(p) => filter.phases = vec![p],
            Err(_) => {
                eprintln!(
                    "skyfleet workers: --phase `{p}`: expected one of requested, running, stopping, stopped, failed"
                );
                return ExitCode::from(2);
            }
        }
    }
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    match stream_workers(store.as_ref(), &filter, json, &mut out).await {
        Ok(()) => ExitCode::SUCCESS,
        // A closed pipe (`| head`) is the reader's choice, not a failure.
        Err(StreamError::Io(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(StreamError::Io(e)) => {
            eprintln!("skyfleet workers: writing the listing: {e}");
            ExitCode::FAILURE
        }
        Err(StreamError::Store(e)) => {
            eprintln!("skyfleet workers: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Why a streamed listing stopped.
enum StreamError {
    Store(skyfleet_core::Error),
    Io(std::io::Error),
}

/// Writes the listing of `filter`'s workers to `out`, page by page.
async fn stream_workers(
    store: &dyn WorkerStore,
    filter: &WorkerFilter,
    json: bool,
    out: &mut impl Write,
) -> Result<(), StreamError> {
    if json {
        write!(out, "[").map_err(StreamError::Io)?;
    } else {
        writeln!(
            out,
            "{:<38} {:<18} {:<12} {:<16} {:<9} {:<8} {:<10} {:<20} {:<20} {:<30} {:<44} last error",
            "worker",
            "pool",
            "provider",
            "partition",
            "phase",
            "desired",
            "agent",
            "last heartbeat",
            "last transition",
            "removal reason",
            "offering"
        )
        .map_err(StreamError::Io)?;
    }
    let mut after: Option<WorkerCursor> = None;
    let mut first = true;
    // Bounded by the store: each page starts after the last one's end, so
    // the loop ends when a page comes back short.
    loop {
        let page = store
            .list_workers_page(filter, after.as_ref(), WORKERS_PAGE)
            .await
            .map_err(StreamError::Store)?;
        let ids: Vec<&str> = page.iter().map(|w| w.id()).collect();
        let regs: HashMap<String, Registration> = store
            .registrations_of(&ids)
            .await
            .map_err(StreamError::Store)?
            .into_iter()
            .map(|r| (r.worker_id.clone(), r))
            .collect();
        write_page(out, &page, &regs, json, &mut first).map_err(StreamError::Io)?;
        match page.last() {
            Some(last) if page.len() == WORKERS_PAGE => after = Some(WorkerCursor::after(last)),
            _ => break,
        }
    }
    if json {
        writeln!(out, "{}]", if first { "" } else { "\n" }).map_err(StreamError::Io)?;
    }
    out.flush().map_err(StreamError::Io)
}

/// Error counts of one kind over the window, across launch configs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KindCount {
    /// The error kind.
    pub kind: String,
    /// How many.
    pub count: u64,
    /// The latest.
    #[serde(with = "time::serde::rfc3339")]
    pub last_at: OffsetDateTime,
}

/// Sums `groups` of `pool` per kind, most frequent first.
pub fn counts_by_kind(groups: &[PoolErrorGroup], pool: &str) -> Vec<KindCount> {
    let mut by_kind: Vec<KindCount> = Vec::new();
    for g in groups.iter().filter(|g| g.pool_id == pool) {
        match by_kind.iter_mut().find(|k| k.kind == g.kind) {
            Some(k) => {
                k.count += g.count;
                k.last_at = k.last_at.max(g.last_at);
            }
            None => by_kind.push(KindCount {
                kind: g.kind.clone(),
                count: g.count,
                last_at: g.last_at,
            }),
        }
    }
    by_kind.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.kind.cmp(&b.kind)));
    by_kind
}

/// `skyfleet errors --json`.
#[derive(Debug, Serialize)]
struct ErrorsReport {
    pool: String,
    window_s: u64,
    by_kind: Vec<KindCount>,
    recent: Vec<PoolError>,
    /// The pool's offerings marked unavailable now.
    unavailable: Vec<crate::status::Unavailable>,
}

/// `skyfleet errors`: a pool's errors counted by kind over the last hour,
/// then the most recent entries.
pub async fn errors(url: &str, pool: &str, limit: usize, json: bool) -> ExitCode {
    let store = match open_store(url).await {
        Ok(s) => s,
        Err(c) => return c,
    };
    let since = OffsetDateTime::now_utc() - ERROR_WINDOW;
    let now = OffsetDateTime::now_utc();
    let live = WorkerFilter::pool(pool).with_phases(&[Phase::Requested, Phase::Running]);
    let (groups, recent, decisions, marks, workers) = match tokio::try_join!(
        store.pool_error_groups(since),
        store.list_pool_errors(pool, limit),
        store.list_pool_decisions(),
        store.live_offering_marks(now),
        store.list_workers(&live),
    ) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("skyfleet errors: {e}");
            return ExitCode::FAILURE;
        }
    };
    let by_kind = counts_by_kind(&groups, pool);
    let mut offerings: Vec<skyfleet_core::offering::Offering> = decisions
        .into_iter()
        .find(|d| d.pool_id == pool)
        .map(|d| d.offerings)
        .unwrap_or_default();
    offerings.extend(workers.into_iter().filter_map(|w| w.offering));
    let unavailable = crate::status::unavailable_of(&offerings, &marks);
    if json {
        return print_json(
            "errors",
            &ErrorsReport {
                pool: pool.to_string(),
                window_s: ERROR_WINDOW.as_secs(),
                by_kind,
                recent,
                unavailable,
            },
        );
    }
    println!("errors of pool {pool} in the last hour, by kind:");
    if by_kind.is_empty() {
        println!("  (none)");
    }
    for k in &by_kind {
        println!(
            "  {:<18} {:>6}   latest {}",
            k.kind,
            k.count,
            timestamp(Some(k.last_at))
        );
    }
    println!();
    println!("offerings marked unavailable:");
    if unavailable.is_empty() {
        println!("  (none)");
    }
    for u in &unavailable {
        println!(
            "  {:<44} {:<12} until {}  {}  {}",
            u.offering,
            u.class,
            timestamp(Some(u.until)),
            u.code.as_deref().unwrap_or("-"),
            u.message
        );
    }
    println!();
    println!("most recent (at most {limit}):");
    for e in recent {
        println!(
            "  {}  {:<18} {:<10} {}  {}",
            timestamp(Some(e.reported_at)),
            e.kind,
            e.launch_config_id.unwrap_or_else(|| "-".into()),
            e.title,
            e.message
        );
    }
    ExitCode::SUCCESS
}

/// `skyfleet remove`: marks workers for removal with the reason
/// `operator`; the fleet that steps them tears them down.
pub async fn remove(url: &str, worker_ids: &[String]) -> ExitCode {
    let store = match open_store(url).await {
        Ok(s) => s,
        Err(c) => return c,
    };
    let mut code = ExitCode::SUCCESS;
    for id in worker_ids {
        let now = OffsetDateTime::now_utc();
        match request_removal(store.as_ref(), id, RemovalReason::Operator, now).await {
            Ok(RemovalRequest::Marked(_)) => println!("{id}: marked for removal (operator)"),
            Ok(RemovalRequest::AlreadyRemoving(w)) => println!(
                "{id}: already {} ({})",
                if w.phase.is_final() {
                    w.phase.as_str()
                } else {
                    "being removed"
                },
                w.removal_reason.as_deref().unwrap_or("no reason recorded")
            ),
            Err(e) => {
                eprintln!("skyfleet remove: {id}: {e}");
                code = ExitCode::FAILURE;
            }
        }
    }
    code
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_sum_launch_configs_per_kind_most_frequent_first() {
        let t = OffsetDateTime::from_unix_timestamp(1_750_000_000).unwrap();
        let g = |pool: &str, kind: &str, lc: Option<&str>, count, s| PoolErrorGroup {
            pool_id: pool.into(),
            kind: kind.into(),
            launch_config_id: lc.map(str::to_string),
            count,
            last_at: t + Duration::from_secs(s),
        };
        let groups = [
            g("p", "capacity_or_quota", Some("a"), 2, 5),
            g("p", "capacity_or_quota", Some("b"), 3, 9),
            g("p", "timeout", None, 7, 1),
            g("q", "timeout", None, 100, 1),
        ];
        let c = counts_by_kind(&groups, "p");
        assert_eq!(c.len(), 2);
        assert_eq!((c[0].kind.as_str(), c[0].count), ("timeout", 7));
        assert_eq!((c[1].kind.as_str(), c[1].count), ("capacity_or_quota", 5));
        assert_eq!(c[1].last_at, t + Duration::from_secs(9));
        assert!(counts_by_kind(&groups, "none").is_empty());
        assert_eq!(timestamp(None), "-");
        assert_eq!(timestamp(Some(t)), "2025-06-15T15:06:40Z");
    }
}
