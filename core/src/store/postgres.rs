//! The PostgreSQL store, for several fleet replicas sharing one database.
//!
//! Replicas split the work with leases: `claim_due` selects due rows
//! `FOR UPDATE SKIP LOCKED` inside the same statement that leases them, so two
//! replicas claiming at the same instant get disjoint sets instead of waiting
//! on each other's row locks. A replica that dies simply stops renewing; its
//! leases expire and the others pick the workers up.

use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Executor, PgPool, Row};
use time::OffsetDateTime;

use super::sqlite::{db_err, decode_worker, partition_condition};
use super::{migrations, Claim, PoolError, WorkerFilter, WorkerStore};
use crate::clock::{from_millis, to_millis};
use crate::error::{Error, ErrorKind, Result};
use crate::model::Worker;

/// The PostgreSQL worker store.
#[derive(Debug, Clone)]
pub struct PostgresStore {
    pool: PgPool,
}

const COLUMNS: &str = "body, phase, next_check_at, version, lease_owner, lease_expires_at";

/// An arbitrary constant that serialises concurrent migrations of replicas.
const MIGRATION_LOCK: i64 = 0x736b_7966_6c65_6574;

fn row_worker(row: &sqlx::postgres::PgRow) -> Result<Worker> {
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

impl PostgresStore {
    /// Connects to `url` and applies migrations in the default schema.
    pub async fn connect(url: &str) -> Result<Self> {
        Self::connect_in_schema(url, None).await
    }

    /// Connects to `url` and works in `schema` (created if missing), so that
    /// several independent stores (tests, tenants) can share one database.
    pub async fn connect_in_schema(url: &str, schema: Option<&str>) -> Result<Self> {
        let opts: PgConnectOptions = url
            .parse()
            .map_err(|e| Error::invalid_config("store", format!("bad PostgreSQL URL: {e}")))?;
        if let Some(s) = schema {
            if s.is_empty() || !s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(Error::invalid_config(
                    "store.schema",
                    format!("`{s}` must be letters, digits and '_'"),
                ));
            }
        }
        let search_path = schema.map(|s| format!("SET search_path TO {s}"));
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(30))
            .after_connect(move |conn, _| {
                let sp = search_path.clone();
                Box::pin(async move {
                    if let Some(sp) = sp {
                        conn.execute(sp.as_str()).await?;
                    }
                    Ok(())
                })
            })
            .connect_lazy_with(opts);
        if let Some(s) = schema {
            sqlx::query(&format!("CREATE SCHEMA IF NOT EXISTS {s}"))
                .execute(&pool)
                .await
                .map_err(|e| db_err("create schema", e))?;
        }
        let store = PostgresStore { pool };
        store.migrate().await?;
        Ok(store)
    }

    /// The connection pool, for callers that need raw access (tests).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    async fn migrate(&self) -> Result<()> {
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(|e| db_err("migration", e))?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(MIGRATION_LOCK)
            .execute(&mut *tx)
            .await
            .map_err(|e| db_err("migration lock", e))?;
        sqlx::query("CREATE TABLE IF NOT EXISTS skyfleet_schema (version INTEGER NOT NULL)")
            .execute(&mut *tx)
            .await
            .map_err(|e| db_err("migration", e))?;
        let applied: Option<i32> = sqlx::query_scalar("SELECT MAX(version) FROM skyfleet_schema")
            .fetch_one(&mut *tx)
            .await
            .map_err(|e| db_err("migration", e))?;
        let applied = applied.unwrap_or(0) as usize;
        if applied > migrations::POSTGRES.len() {
            return Err(Error::invalid_config(
                "store",
                format!(
                    "database schema version {applied} is newer than this skyfleet ({})",
                    migrations::POSTGRES.len()
                ),
            ));
        }
        for (i, m) in migrations::POSTGRES.iter().enumerate().skip(applied) {
            for stmt in migrations::statements(m) {
                sqlx::query(stmt)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| db_err(&format!("migration {}", i + 1), e))?;
            }
            sqlx::query("INSERT INTO skyfleet_schema (version) VALUES ($1)")
                .bind((i + 1) as i32)
                .execute(&mut *tx)
                .await
                .map_err(|e| db_err("migration", e))?;
        }
        tx.commit().await.map_err(|e| db_err("migration", e))
    }
}

#[async_trait]
impl WorkerStore for PostgresStore {
    async fn create_worker(&self, worker: &Worker) -> Result<Worker> {
        let mut w = worker.clone();
        w.version = 1;
        let body = serde_json::to_string(&w)?;
        let r = sqlx::query(
            "INSERT INTO workers (worker_id, pool_id, provider_id, phase, next_check_at, version, \
             lease_owner, lease_expires_at, created_at, body, scan_partition) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
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
            "SELECT {COLUMNS} FROM workers WHERE worker_id = $1"
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
            "UPDATE workers SET phase = $1, next_check_at = $2, version = $3, lease_owner = $4, \
             lease_expires_at = $5, body = $6, scan_partition = $9 \
             WHERE worker_id = $7 AND version = $8",
        )
        .bind(w.phase.as_str())
        .bind(to_millis(w.next_check_at))
        .bind(w.version)
        .bind(&w.lease_owner)
        .bind(w.lease_expires_at.map(to_millis))
        .bind(body)
        .bind(w.id())
        .bind(worker.version)
        .bind(&w.partition)
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
        let phases: Vec<String> = filter
            .phases
            .iter()
            .map(|p| p.as_str().to_string())
            .collect();
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM workers WHERE ($1::text IS NULL OR pool_id = $1) \
             AND ($2::text IS NULL OR provider_id = $2) \
             AND (cardinality($3::text[]) = 0 OR phase = ANY($3)) \
             ORDER BY created_at, worker_id"
        ))
        .bind(&filter.pool_id)
        .bind(&filter.provider_id)
        .bind(&phases)
        .fetch_all(&self.pool)
        .await
        .map_err(|e| db_err("list workers", e))?;
        rows.iter().map(row_worker).collect()
    }

    async fn claim_due(&self, claim: &Claim, now: OffsetDateTime) -> Result<Vec<Worker>> {
        let now_ms = to_millis(now);
        let (partition_sql, partition) = partition_condition(&claim.partition, "$6");
        let sql = format!(
            "UPDATE workers SET lease_owner = $1, lease_expires_at = $2, version = version + 1 \
             WHERE worker_id IN (SELECT worker_id FROM workers \
               WHERE provider_id = $3{partition_sql} AND phase NOT IN ('stopped', 'failed') \
               AND next_check_at <= $4 \
               AND (lease_owner IS NULL OR lease_expires_at IS NULL OR lease_expires_at <= $4) \
               ORDER BY next_check_at LIMIT $5 FOR UPDATE SKIP LOCKED) \
             RETURNING {COLUMNS}"
        );
        let mut q = sqlx::query(&sql)
            .bind(&claim.owner)
            .bind(to_millis(now + claim.lease))
            .bind(&claim.provider_id)
            .bind(now_ms)
            .bind(claim.limit as i64);
        if let Some(p) = partition {
            q = q.bind(p);
        }
        let rows = q
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
             WHERE provider_id = $1 AND phase NOT IN ('stopped', 'failed') \
             ORDER BY scan_partition NULLS FIRST",
        )
        .bind(provider_id)
        .fetch_all(&self.pool)
        .await
        .map_err(|e| db_err("list partitions", e))
    }

    async fn release(&self, worker_id: &str, owner: &str) -> Result<()> {
        sqlx::query(
            "UPDATE workers SET lease_owner = NULL, lease_expires_at = NULL, version = version + 1 \
             WHERE worker_id = $1 AND lease_owner = $2",
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
             WHERE lease_owner = $1",
        )
        .bind(owner)
        .execute(&self.pool)
        .await
        .map_err(|e| db_err("release leases", e))?;
        Ok(r.rows_affected())
    }

    async fn delete_worker(&self, worker_id: &str) -> Result<()> {
        sqlx::query("DELETE FROM workers WHERE worker_id = $1")
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
            "INSERT INTO pool_leases (pool_id, owner, expires_at) VALUES ($1, $2, $3) \
             ON CONFLICT (pool_id) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at \
             WHERE pool_leases.owner = excluded.owner OR pool_leases.expires_at <= $4",
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
             VALUES ($1, $2, $3, $4, $5, $6)",
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
             WHERE pool_id = $1 ORDER BY error_id DESC LIMIT $2",
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
