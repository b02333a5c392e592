//! The embedded default store: one SQLite file, WAL mode.
//!
//! WAL lets readers (the CLI's `workers` command, the estimator) run while a
//! scanner writes. `synchronous = NORMAL` is durable across process crashes
//! (the WAL is fsynced at checkpoints; a crash of the *process* loses
//! nothing), which is the failure the fleet runtime is built to survive.
//! Claims are one `UPDATE ... RETURNING` statement, so they are atomic
//! without an explicit transaction.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqlitePool};
use time::OffsetDateTime;

use super::{migrations, Claim, PartitionFilter, PoolError, WorkerFilter, WorkerStore};
use crate::clock::{from_millis, to_millis};
use crate::error::{Error, ErrorKind, Result};
use crate::model::{Phase, Worker};

/// The SQLite worker store.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
}

pub(crate) fn db_err(context: &str, e: sqlx::Error) -> Error {
    let kind = match &e {
        sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) => ErrorKind::Transient,
        _ => ErrorKind::Internal,
    };
    Error::new(kind, format!("store: {context}: {e}")).with_source(e)
}

/// Rebuilds a worker from its JSON body and the authoritative columns.
pub(crate) fn decode_worker(
    body: &str,
    phase: &str,
    next_check_at: i64,
    version: i64,
    lease_owner: Option<String>,
    lease_expires_at: Option<i64>,
) -> Result<Worker> {
    let mut w: Worker = serde_json::from_str(body)
        .map_err(|e| Error::internal(format!("store: unreadable worker record: {e}")))?;
    w.phase = Phase::parse(phase)?;
    w.next_check_at = from_millis(next_check_at);
    w.version = version;
    w.lease_owner = lease_owner;
    w.lease_expires_at = lease_expires_at.map(from_millis);
    Ok(w)
}

fn row_worker(row: &sqlx::sqlite::SqliteRow) -> Result<Worker> {
    let get = |e: sqlx::Error| db_err("reading a worker row", e);
    decode_worker(
        row.try_get::<&str, _>("body").map_err(get)?,
        row.try_get::<&str, _>("phase").map_err(get)?,
        row.try_get("next_check_at").map_err(get)?,
        row.try_get("version").map_err(get)?,
        row.try_get("lease_owner").map_err(get)?,
        row.try_get("lease_expires_at").map_err(get)?,
    )
}

const COLUMNS: &str = "body, phase, next_check_at, version, lease_owner, lease_expires_at";

/// The SQL condition (appended to a `WHERE`) selecting `filter`'s partition,
/// with `mark` as the placeholder, and the value to bind to it if any.
/// `IS NULL` and `=` are written out (rather than a null-safe comparison) so
/// both dialects can use the `(provider_id, scan_partition, next_check_at)`
/// index.
pub(crate) fn partition_condition<'a>(
    filter: &'a PartitionFilter,
    mark: &str,
) -> (String, Option<&'a str>) {
    match filter {
        PartitionFilter::Any => (String::new(), None),
        PartitionFilter::Only(None) => (" AND scan_partition IS NULL".into(), None),
        PartitionFilter::Only(Some(p)) => (format!(" AND scan_partition = {mark}"), Some(p)),
    }
}

impl SqliteStore {
    /// Opens (creating if needed) the database file at `path` and applies
    /// migrations.
    pub async fn open(path: &str) -> Result<Self> {
        let opts = SqliteConnectOptions::from_str(&format!("sqlite://{path}"))
            .map_err(|e| Error::invalid_config("store", format!("bad SQLite path `{path}`: {e}")))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(opts)
            .await
            .map_err(|e| db_err(&format!("opening {path}"), e))?;
        let store = SqliteStore { pool };
        store.migrate().await?;
        Ok(store)
    }

    async fn migrate(&self) -> Result<()> {
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(|e| db_err("migration", e))?;
        sqlx::query("CREATE TABLE IF NOT EXISTS skyfleet_schema (version INTEGER NOT NULL)")
            .execute(&mut *tx)
            .await
            .map_err(|e| db_err("migration", e))?;
        let applied: Option<i64> = sqlx::query_scalar("SELECT MAX(version) FROM skyfleet_schema")
            .fetch_one(&mut *tx)
            .await
            .map_err(|e| db_err("migration", e))?;
        let applied = applied.unwrap_or(0) as usize;
        if applied > migrations::SQLITE.len() {
            return Err(Error::invalid_config(
                "store",
                format!(
                    "database schema version {applied} is newer than this skyfleet ({})",
                    migrations::SQLITE.len()
                ),
            ));
        }
        for (i, m) in migrations::SQLITE.iter().enumerate().skip(applied) {
            for stmt in migrations::statements(m) {
                sqlx::query(stmt)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| db_err(&format!("migration {}", i + 1), e))?;
            }
            sqlx::query("INSERT INTO skyfleet_schema (version) VALUES (?)")
                .bind((i + 1) as i64)
                .execute(&mut *tx)
                .await
                .map_err(|e| db_err("migration", e))?;
        }
        tx.commit().await.map_err(|e| db_err("migration", e))
    }
}

#[async_trait]
impl WorkerStore for SqliteStore {
    async fn create_worker(&self, worker: &Worker) -> Result<Worker> {
        let mut w = worker.clone();
        w.version = 1;
        let body = serde_json::to_string(&w)?;
        let r = sqlx::query(
            "INSERT INTO workers (worker_id, pool_id, provider_id, phase, next_check_at, version, \
             lease_owner, lease_expires_at, created_at, body, scan_partition) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(w.id())
        .bind(&w.spec.pool_id)
        .bind(&w.spec.provider_id)
        .bind(w.phase.as_str())
        .bind(to_millis(w.next_check_at))
        .bind(w.version)
        .bind(&w.lease_owner)
        .bind(w.lease_expires_at.map(to_millis))
        .bind(to_millis(w.created_at))
        .bind(body)
        .bind(&w.partition)
        .execute(&self.pool)
        .await;
        match r {
            Ok(_) => Ok(w),
            Err(sqlx::Error::Database(d)) if d.is_unique_violation() => Err(Error::new(
                ErrorKind::AlreadyExists,
                format!("worker {} already exists", w.id()),
            )),
            Err(e) => Err(db_err("create worker", e)),
        }
    }

    async fn get_worker(&self, worker_id: &str) -> Result<Option<Worker>> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM workers WHERE worker_id = ?"
        ))
        .bind(worker_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(|e| db_err("get worker", e))?;
        row.as_ref().map(row_worker).transpose()
    }

    async fn update_worker(&self, worker: &Worker) -> Result<Worker> {
        let mut w = worker.clone();
        w.version = worker.version + 1;
        let body = serde_json::to_string(&w)?;
        let r = sqlx::query(
            "UPDATE workers SET phase = ?, next_check_at = ?, version = ?, lease_owner = ?, \
             lease_expires_at = ?, body = ?, scan_partition = ? WHERE worker_id = ? AND version = ?",
        )
        .bind(w.phase.as_str())
        .bind(to_millis(w.next_check_at))
        .bind(w.version)
        .bind(&w.lease_owner)
        .bind(w.lease_expires_at.map(to_millis))
        .bind(body)
        .bind(&w.partition)
        .bind(w.id())
        .bind(worker.version)
        .execute(&self.pool)
        .await
        .map_err(|e| db_err("update worker", e))?;
        if r.rows_affected() == 1 {
            return Ok(w);
        }
        match self.get_worker(worker.id()).await? {
            None => Err(Error::not_found(format!(
                "worker {} not found",
                worker.id()
            ))),
            Some(cur) => Err(Error::new(
                ErrorKind::Conflict,
                format!(
                    "worker {} changed: version {} in store, {} in update",
                    worker.id(),
                    cur.version,
                    worker.version
                ),
            )),
        }
    }

    async fn list_workers(&self, filter: &WorkerFilter) -> Result<Vec<Worker>> {
        let mut sql = format!("SELECT {COLUMNS} FROM workers WHERE 1 = 1");
        if filter.pool_id.is_some() {
            sql.push_str(" AND pool_id = ?");
        }
        if filter.provider_id.is_some() {
            sql.push_str(" AND provider_id = ?");
        }
        if !filter.phases.is_empty() {
            let marks = vec!["?"; filter.phases.len()].join(", ");
            sql.push_str(&format!(" AND phase IN ({marks})"));
        }
        sql.push_str(" ORDER BY created_at, worker_id");
        let mut q = sqlx::query(&sql);
        if let Some(p) = &filter.pool_id {
            q = q.bind(p);
        }
        if let Some(p) = &filter.provider_id {
            q = q.bind(p);
        }
        for p in &filter.phases {
            q = q.bind(p.as_str());
        }
        let rows = q
            .fetch_all(&self.pool)
            .await
            .map_err(|e| db_err("list workers", e))?;
        rows.iter().map(row_worker).collect()
    }

    async fn claim_due(&self, claim: &Claim, now: OffsetDateTime) -> Result<Vec<Worker>> {
        let now_ms = to_millis(now);
        let (partition_sql, partition) = partition_condition(&claim.partition, "?");
        let sql = format!(
            "UPDATE workers SET lease_owner = ?, lease_expires_at = ?, version = version + 1 \
             WHERE worker_id IN (SELECT worker_id FROM workers \
               WHERE provider_id = ?{partition_sql} AND phase NOT IN ('stopped', 'failed') \
               AND next_check_at <= ? \
               AND (lease_owner IS NULL OR lease_expires_at IS NULL OR lease_expires_at <= ?) \
               ORDER BY next_check_at LIMIT ?) \
             RETURNING {COLUMNS}"
        );
        let mut q = sqlx::query(&sql)
            .bind(&claim.owner)
            .bind(to_millis(now + claim.lease))
            .bind(&claim.provider_id);
        if let Some(p) = partition {
            q = q.bind(p);
        }
        let rows = q
            .bind(now_ms)
            .bind(now_ms)
            .bind(claim.limit as i64)
            .fetch_all(&self.pool)
            .await
            .map_err(|e| db_err("claim due workers", e))?;
        let mut v = rows.iter().map(row_worker).collect::<Result<Vec<_>>>()?;
        v.sort_by_key(|w| w.next_check_at);
        Ok(v)
    }

    async fn partitions(&self, provider_id: &str) -> Result<Vec<Option<String>>> {
        sqlx::query_scalar(
            "SELECT DISTINCT scan_partition FROM workers \
             WHERE provider_id = ? AND phase NOT IN ('stopped', 'failed') ORDER BY scan_partition",
        )
        .bind(provider_id)
        .fetch_all(&self.pool)
        .await
        .map_err(|e| db_err("list partitions", e))
    }

    async fn release(&self, worker_id: &str, owner: &str) -> Result<()> {
        sqlx::query(
            "UPDATE workers SET lease_owner = NULL, lease_expires_at = NULL, version = version + 1 \
             WHERE worker_id = ? AND lease_owner = ?",
        )
        .bind(worker_id)
        .bind(owner)
        .execute(&self.pool)
        .await
        .map_err(|e| db_err("release lease", e))?;
        Ok(())
    }

    async fn release_all(&self, owner: &str) -> Result<u64> {
        let r = sqlx::query(
            "UPDATE workers SET lease_owner = NULL, lease_expires_at = NULL, version = version + 1 \
             WHERE lease_owner = ?",
        )
        .bind(owner)
        .execute(&self.pool)
        .await
        .map_err(|e| db_err("release leases", e))?;
        Ok(r.rows_affected())
    }

    async fn delete_worker(&self, worker_id: &str) -> Result<()> {
        sqlx::query("DELETE FROM workers WHERE worker_id = ?")
            .bind(worker_id)
            .execute(&self.pool)
            .await
            .map_err(|e| db_err("delete worker", e))?;
        Ok(())
    }

    async fn acquire_pool_lease(
        &self,
        pool_id: &str,
        owner: &str,
        now: OffsetDateTime,
        lease: std::time::Duration,
    ) -> Result<bool> {
        // One statement: insert, or take over if ours or expired; a row
        // held by someone else is left alone (0 rows affected).
        let r = sqlx::query(
            "INSERT INTO pool_leases (pool_id, owner, expires_at) VALUES (?, ?, ?) \
             ON CONFLICT (pool_id) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at \
             WHERE pool_leases.owner = excluded.owner OR pool_leases.expires_at <= ?",
        )
        .bind(pool_id)
        .bind(owner)
        .bind(to_millis(now + lease))
        .bind(to_millis(now))
        .execute(&self.pool)
        .await
        .map_err(|e| db_err("acquire pool lease", e))?;
        Ok(r.rows_affected() == 1)
    }

    async fn record_pool_error(&self, error: &PoolError) -> Result<()> {
        sqlx::query(
            "INSERT INTO pool_errors (pool_id, kind, title, message, launch_config_id, reported_at) \
             VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(&error.pool_id)
        .bind(&error.kind)
        .bind(&error.title)
        .bind(&error.message)
        .bind(&error.launch_config_id)
        .bind(to_millis(error.reported_at))
        .execute(&self.pool)
        .await
        .map_err(|e| db_err("record pool error", e))?;
        Ok(())
    }

    async fn list_pool_errors(&self, pool_id: &str, limit: usize) -> Result<Vec<PoolError>> {
        let rows = sqlx::query(
            "SELECT pool_id, kind, title, message, launch_config_id, reported_at FROM pool_errors \
             WHERE pool_id = ? ORDER BY error_id DESC LIMIT ?",
        )
        .bind(pool_id)
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await
        .map_err(|e| db_err("list pool errors", e))?;
        rows.iter()
            .map(|r| {
                let get = |e: sqlx::Error| db_err("reading a pool error row", e);
                Ok(PoolError {
                    pool_id: r.try_get("pool_id").map_err(get)?,
                    kind: r.try_get("kind").map_err(get)?,
                    title: r.try_get("title").map_err(get)?,
                    message: r.try_get("message").map_err(get)?,
                    launch_config_id: r.try_get("launch_config_id").map_err(get)?,
                    reported_at: from_millis(r.try_get("reported_at").map_err(get)?),
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::conformance::worker;

    /// A database written by an older skyfleet (schema 2: no partitions)
    /// opens, migrates, and its workers are claimed by the scanner of
    /// workers without a partition.
    #[tokio::test]
    async fn upgrades_a_schema_2_database() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("old.db");
        let url = format!("sqlite://{}?mode=rwc", path.display());
        let pool = SqlitePool::connect(&url).await.expect("open");
        sqlx::query("CREATE TABLE skyfleet_schema (version INTEGER NOT NULL)")
            .execute(&pool)
            .await
            .expect("schema table");
        for (i, m) in migrations::SQLITE.iter().take(2).enumerate() {
            for stmt in migrations::statements(m) {
                sqlx::query(stmt)
                    .execute(&pool)
                    .await
                    .expect("old migration");
            }
            sqlx::query("INSERT INTO skyfleet_schema (version) VALUES (?)")
                .bind((i + 1) as i64)
                .execute(&pool)
                .await
                .expect("version");
        }
        let now = crate::clock::from_millis(1_750_000_000_000);
        let mut w = worker("w-old", "p", "aws", now);
        w.version = 1;
        // The body as the old version wrote it: no `partition` key.
        let body = serde_json::to_string(&w).expect("body");
        assert!(!body.contains("partition"));
        sqlx::query(
            "INSERT INTO workers (worker_id, pool_id, provider_id, phase, next_check_at, version, \
             lease_owner, lease_expires_at, created_at, body) VALUES (?, ?, ?, ?, ?, ?, NULL, NULL, ?, ?)",
        )
        .bind(w.id())
        .bind("p")
        .bind("aws")
        .bind(w.phase.as_str())
        .bind(to_millis(now))
        .bind(1i64)
        .bind(to_millis(now))
        .bind(body)
        .execute(&pool)
        .await
        .expect("old row");
        pool.close().await;

        let store = SqliteStore::open(path.to_str().expect("utf-8 path"))
            .await
            .expect("migrate");
        assert_eq!(
            store.partitions("aws").await.expect("partitions"),
            vec![None]
        );
        let claim = Claim {
            provider_id: "aws".into(),
            partition: PartitionFilter::Only(None),
            owner: "r".into(),
            lease: Duration::from_secs(60),
            limit: 10,
        };
        let mut got = store.claim_due(&claim, now).await.expect("claim");
        assert_eq!(got.len(), 1, "the old worker is claimed");
        // Its next step places it; the column follows.
        let mut w = got.remove(0);
        w.partition = Some("us-east-1".into());
        store.update_worker(&w).await.expect("update");
        assert_eq!(
            store.partitions("aws").await.expect("partitions"),
            vec![Some("us-east-1".to_string())]
        );
    }
}
