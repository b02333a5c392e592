//! The [`WorkerStore`] contract on SQL, once for every dialect.
//!
//! Claims are one `UPDATE ... WHERE worker_id IN (SELECT ... LIMIT n)
//! RETURNING` statement, atomic without an explicit transaction; PostgreSQL
//! adds `FOR UPDATE SKIP LOCKED` to the inner select
//! ([`SqlDialect::CLAIM_LOCK`]) so replicas claiming at the same instant get
//! disjoint sets instead of waiting on each other's row locks.
//!
//! Lease times use [`SqlDialect::database_now`] where the dialect has a
//! clock of its own, else the caller's `now`.

use std::time::Duration;

use async_trait::async_trait;
use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Row, Type};
use time::OffsetDateTime;

use super::rows::{self, POOL_ERROR_COLUMNS, WORKER_COLUMNS};
use super::{
    batch, count_one, db_err, fenced, offerings::Offerings, registrations, retention, SqlDialect,
};
use crate::clock::to_millis;
use crate::error::{Error, ErrorKind, Result};
use crate::model::{Registration, Worker};
use crate::store::{
    finished_at, sort_error_groups, Claim, InterruptionCount, OfferingMark, PartitionFilter,
    PoolDecision, PoolError, PoolErrorGroup, PoolLease, StoreIdentity, WorkerCursor, WorkerFilter,
    WorkerStore,
};

/// The final phases, which claims and partitions skip.
const NOT_FINAL: &str = "phase NOT IN ('stopped', 'failed')";

/// Inserts a worker (bound in the order of [`bind_worker`]) with its lease
/// expiry `{lease_expires_at}`.
pub(super) const INSERT_WORKER: &str =
    "INSERT INTO workers (worker_id, pool_id, provider_id, phase, \
    next_check_at, version, lease_owner, lease_expires_at, created_at, body, scan_partition, \
    finished_at) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, {lease_expires_at}, $9, $10, $11, $12)";

/// A worker's `finished_at` column.
pub(super) fn finished_millis(w: &Worker) -> Option<i64> {
    finished_at(w).map(to_millis)
}

/// A duration in milliseconds, saturating.
pub(super) fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// The SQL condition (appended to a `WHERE`) selecting `filter`'s partition,
/// with `mark` as the placeholder, and the value to bind to it if any.
/// `IS NULL` and `=` are written out (rather than a null-safe comparison) so
/// both dialects can use the `(provider_id, scan_partition, next_check_at)`
/// index.
fn partition_condition<'a>(filter: &'a PartitionFilter, mark: &str) -> (String, Option<&'a str>) {
    match filter {
        PartitionFilter::Any => (String::new(), None),
        PartitionFilter::Only(None) => (" AND scan_partition IS NULL".into(), None),
        PartitionFilter::Only(Some(p)) => (format!(" AND scan_partition = {mark}"), Some(p)),
    }
}

#[async_trait]
impl<S> WorkerStore for S
where
    S: SqlDialect,
    for<'c> &'c mut <S::Db as Database>::Connection: Executor<'c, Database = S::Db>,
    for<'q> <S::Db as Database>::Arguments<'q>: IntoArguments<'q, S::Db>,
    for<'q> &'q str: Encode<'q, S::Db> + Decode<'q, S::Db> + Type<S::Db>,
    for<'q> String: Decode<'q, S::Db> + Type<S::Db>,
    for<'q> i64: Encode<'q, S::Db> + Decode<'q, S::Db> + Type<S::Db>,
    for<'q> Option<&'q str>: Encode<'q, S::Db>,
    for<'q> Option<i64>: Encode<'q, S::Db>,
    &'static str: ColumnIndex<<S::Db as Database>::Row>,
{
    async fn create_worker(&self, worker: &Worker) -> Result<Worker> {
        let mut w = worker.clone();
        w.version = 1;
        let body = serde_json::to_string(&w)?;
        count_one("create_worker");
        let sql = INSERT_WORKER.replace("{lease_expires_at}", "$8");
        let r = sqlx::query(&sql)
            .bind(w.id())
            .bind(w.spec.pool_id.as_str())
            .bind(w.spec.provider_id.as_str())
            .bind(w.phase.as_str())
            .bind(to_millis(w.next_check_at))
            .bind(w.version)
            .bind(w.lease_owner.as_deref())
            .bind(w.lease_expires_at.map(to_millis))
            .bind(to_millis(w.created_at))
            .bind(body.as_str())
            .bind(w.partition.as_deref())
            .bind(finished_millis(&w))
            .execute(self.sql_pool())
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
        count_one("get_worker");
        let sql = format!("SELECT {WORKER_COLUMNS} FROM workers WHERE worker_id = $1");
        let row = sqlx::query(&sql)
            .bind(worker_id)
            .fetch_optional(self.sql_pool())
            .await
            .map_err(|e| db_err("get worker", e))?;
        row.as_ref().map(rows::worker).transpose()
    }

    async fn update_worker(&self, worker: &Worker) -> Result<Worker> {
        batch::update_worker(self, worker).await
    }

    async fn update_workers(&self, workers: &[Worker]) -> Result<Vec<Result<Worker>>> {
        batch::update_workers(self, workers).await
    }

    async fn list_workers_page(
        &self,
        filter: &WorkerFilter,
        after: Option<&WorkerCursor>,
        limit: usize,
    ) -> Result<Vec<Worker>> {
        retention::list_workers_page(self, filter, after, limit).await
    }

    async fn delete_finished_workers(&self, before: OffsetDateTime, limit: usize) -> Result<u64> {
        retention::delete_finished_workers(self, before, limit).await
    }

    async fn prune_pool_errors(&self, before: OffsetDateTime, keep_per_pool: usize) -> Result<u64> {
        retention::prune_pool_errors(self, before, keep_per_pool).await
    }

    async fn registrations_of(&self, worker_ids: &[&str]) -> Result<Vec<Registration>> {
        retention::registrations_of(self, worker_ids).await
    }

    async fn list_workers(&self, filter: &WorkerFilter) -> Result<Vec<Worker>> {
        count_one("list_workers");
        let mut sql = format!("SELECT {WORKER_COLUMNS} FROM workers WHERE 1 = 1");
        let mut marks = 0;
        let mut mark = || {
            marks += 1;
            format!("${marks}")
        };
        if filter.pool_id.is_some() {
            sql.push_str(&format!(" AND pool_id = {}", mark()));
        }
        if filter.provider_id.is_some() {
            sql.push_str(&format!(" AND provider_id = {}", mark()));
        }
        if !filter.phases.is_empty() {
            let phases: Vec<String> = filter.phases.iter().map(|_| mark()).collect();
            sql.push_str(&format!(" AND phase IN ({})", phases.join(", ")));
        }
        sql.push_str(" ORDER BY created_at, worker_id");
        let mut q = sqlx::query(&sql);
        if let Some(p) = &filter.pool_id {
            q = q.bind(p.as_str());
        }
        if let Some(p) = &filter.provider_id {
            q = q.bind(p.as_str());
        }
        for p in &filter.phases {
            q = q.bind(p.as_str());
        }
        let found = q
            .fetch_all(self.sql_pool())
            .await
            .map_err(|e| db_err("list workers", e))?;
        found.iter().map(rows::worker).collect()
    }

    async fn claim_due(&self, claim: &Claim, now: OffsetDateTime) -> Result<Vec<Worker>> {
        count_one("claim_due");
        let (partition_sql, partition) = partition_condition(&claim.partition, "$6");
        // Due by the caller's clock (which wrote `next_check_at`); leased
        // and expired by the store's.
        let lease_now = self.database_now().unwrap_or("$4");
        let sql = format!(
            "UPDATE workers SET lease_owner = $1, lease_expires_at = {lease_now} + $2, \
             version = version + 1 \
             WHERE worker_id IN (SELECT worker_id FROM workers \
               WHERE provider_id = $3{partition_sql} AND {NOT_FINAL} \
               AND next_check_at <= $4 \
               AND (lease_owner IS NULL OR lease_expires_at IS NULL \
                    OR lease_expires_at <= {lease_now}) \
               ORDER BY next_check_at LIMIT $5{lock}) \
             RETURNING {WORKER_COLUMNS}",
            lock = S::CLAIM_LOCK,
        );
        let mut q = sqlx::query(&sql)
            .bind(claim.owner.as_str())
            .bind(millis(claim.lease))
            .bind(claim.provider_id.as_str())
            .bind(to_millis(now))
            .bind(i64::try_from(claim.limit).unwrap_or(i64::MAX));
        if let Some(p) = partition {
            q = q.bind(p);
        }
        let claimed = q
            .fetch_all(self.sql_pool())
            .await
            .map_err(|e| db_err("claim due workers", e))?;
        let mut v = claimed
            .iter()
            .map(rows::worker)
            .collect::<Result<Vec<_>>>()?;
        v.sort_by_key(|w| w.next_check_at);
        Ok(v)
    }

    async fn partitions(&self, provider_id: &str) -> Result<Vec<Option<String>>> {
        let sql = format!(
            "SELECT DISTINCT scan_partition FROM workers WHERE provider_id = $1 AND {NOT_FINAL} \
             ORDER BY scan_partition NULLS FIRST"
        );
        count_one("partitions");
        let found = sqlx::query(&sql)
            .bind(provider_id)
            .fetch_all(self.sql_pool())
            .await
            .map_err(|e| db_err("list partitions", e))?;
        found
            .iter()
            .map(|r| {
                r.try_get("scan_partition")
                    .map_err(|e| db_err("reading a partition", e))
            })
            .collect()
    }

    async fn release(&self, worker_id: &str, owner: &str) -> Result<()> {
        count_one("release");
        sqlx::query(
            "UPDATE workers SET lease_owner = NULL, lease_expires_at = NULL, version = version + 1 \
             WHERE worker_id = $1 AND lease_owner = $2",
        )
        .bind(worker_id)
        .bind(owner)
        .execute(self.sql_pool())
        .await
        .map_err(|e| db_err("release lease", e))?;
        Ok(())
    }

    async fn release_all(&self, owner: &str) -> Result<u64> {
        count_one("release_all");
        let r = sqlx::query(
            "UPDATE workers SET lease_owner = NULL, lease_expires_at = NULL, version = version + 1 \
             WHERE lease_owner = $1",
        )
        .bind(owner)
        .execute(self.sql_pool())
        .await
        .map_err(|e| db_err("release leases", e))?;
        Ok(S::rows_affected(&r))
    }

    async fn delete_worker(&self, worker_id: &str) -> Result<()> {
        // The registration first: a crash in between leaves a worker
        // without one (it is being deleted), never an orphan registration.
        count_one("delete_worker");
        sqlx::query("DELETE FROM worker_registrations WHERE worker_id = $1")
            .bind(worker_id)
            .execute(self.sql_pool())
            .await
            .map_err(|e| db_err("delete registration", e))?;
        count_one("delete_worker");
        sqlx::query("DELETE FROM workers WHERE worker_id = $1")
            .bind(worker_id)
            .execute(self.sql_pool())
            .await
            .map_err(|e| db_err("delete worker", e))?;
        Ok(())
    }

    async fn acquire_pool_lease(
        &self,
        pool_id: &str,
        owner: &str,
        now: OffsetDateTime,
        lease: Duration,
    ) -> Result<Option<PoolLease>> {
        // One statement: insert, or take over if ours or expired, bumping
        // the fencing token; a row held by someone else is left alone (no
        // row returned). `$4`, the caller's now, comes last so that it may
        // go unused when the database's clock is.
        let lease_now = self.database_now().unwrap_or("$4");
        let sql = format!(
            "INSERT INTO pool_leases (pool_id, owner, expires_at, token) \
             VALUES ($1, $2, {lease_now} + $3, 1) \
             ON CONFLICT (pool_id) DO UPDATE SET owner = excluded.owner, \
             expires_at = excluded.expires_at, token = pool_leases.token + 1 \
             WHERE pool_leases.owner = excluded.owner OR pool_leases.expires_at <= {lease_now} \
             RETURNING token"
        );
        count_one("acquire_pool_lease");
        let mut q = sqlx::query(&sql)
            .bind(pool_id)
            .bind(owner)
            .bind(millis(lease));
        if self.database_now().is_none() {
            q = q.bind(to_millis(now));
        }
        let row = q
            .fetch_optional(self.sql_pool())
            .await
            .map_err(|e| db_err("acquire pool lease", e))?;
        let Some(row) = row else {
            return Ok(None);
        };
        let token: i64 = row
            .try_get("token")
            .map_err(|e| db_err("reading a pool lease token", e))?;
        Ok(Some(PoolLease {
            pool_id: pool_id.to_string(),
            owner: owner.to_string(),
            token,
        }))
    }

    async fn create_workers(
        &self,
        lease: &PoolLease,
        workers: &[Worker],
        worker_lease: Duration,
    ) -> Result<Vec<Worker>> {
        fenced::create_workers(self, lease, workers, worker_lease).await
    }

    async fn record_pool_error(&self, error: &PoolError) -> Result<()> {
        count_one("record_pool_error");
        sqlx::query(
            "INSERT INTO pool_errors (pool_id, kind, title, message, launch_config_id, reported_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(error.pool_id.as_str())
        .bind(error.kind.name())
        .bind(error.title.as_str())
        .bind(error.message.as_str())
        .bind(error.launch_config_id.as_deref())
        .bind(to_millis(error.reported_at))
        .execute(self.sql_pool())
        .await
        .map_err(|e| db_err("record pool error", e))?;
        Ok(())
    }

    async fn list_pool_errors(&self, pool_id: &str, limit: usize) -> Result<Vec<PoolError>> {
        let sql = format!(
            "SELECT {POOL_ERROR_COLUMNS} FROM pool_errors \
             WHERE pool_id = $1 ORDER BY error_id DESC LIMIT $2"
        );
        count_one("list_pool_errors");
        let found = sqlx::query(&sql)
            .bind(pool_id)
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .fetch_all(self.sql_pool())
            .await
            .map_err(|e| db_err("list pool errors", e))?;
        found.iter().map(rows::pool_error).collect()
    }

    async fn pool_error_groups(&self, since: OffsetDateTime) -> Result<Vec<PoolErrorGroup>> {
        count_one("pool_error_groups");
        let found = sqlx::query(
            "SELECT pool_id, kind, launch_config_id, CAST(COUNT(*) AS BIGINT) AS n, \
             CAST(MAX(reported_at) AS BIGINT) AS last_at FROM pool_errors \
             WHERE reported_at >= $1 GROUP BY pool_id, kind, launch_config_id",
        )
        .bind(to_millis(since))
        .fetch_all(self.sql_pool())
        .await
        .map_err(|e| db_err("count pool errors", e))?;
        let mut groups = found
            .iter()
            .map(rows::pool_error_group)
            .collect::<Result<Vec<_>>>()?;
        sort_error_groups(&mut groups);
        Ok(groups)
    }

    async fn put_pool_decision(&self, decision: &PoolDecision) -> Result<()> {
        let body = serde_json::to_string(decision)?;
        count_one("put_pool_decision");
        sqlx::query(
            "INSERT INTO pool_decisions (pool_id, decided_at, body) VALUES ($1, $2, $3) \
             ON CONFLICT (pool_id) DO UPDATE SET decided_at = excluded.decided_at, \
             body = excluded.body",
        )
        .bind(decision.pool_id.as_str())
        .bind(to_millis(decision.decided_at))
        .bind(body.as_str())
        .execute(self.sql_pool())
        .await
        .map_err(|e| db_err("record pool decision", e))?;
        Ok(())
    }

    async fn list_pool_decisions(&self) -> Result<Vec<PoolDecision>> {
        count_one("list_pool_decisions");
        let found = sqlx::query("SELECT body FROM pool_decisions ORDER BY pool_id")
            .fetch_all(self.sql_pool())
            .await
            .map_err(|e| db_err("list pool decisions", e))?;
        found
            .iter()
            .map(|r| {
                let body: &str = r
                    .try_get("body")
                    .map_err(|e| db_err("reading a pool decision", e))?;
                serde_json::from_str(body)
                    .map_err(|e| Error::internal(format!("store: unreadable pool decision: {e}")))
            })
            .collect()
    }

    async fn create_registration(&self, registration: &Registration) -> Result<Registration> {
        registrations::Registrations(self)
            .create(registration)
            .await
    }

    async fn get_registration(&self, worker_id: &str) -> Result<Option<Registration>> {
        registrations::Registrations(self)
            .get(worker_id, "get_registration")
            .await
    }

    async fn update_registration(&self, registration: &Registration) -> Result<Registration> {
        registrations::Registrations(self)
            .update(registration)
            .await
    }

    async fn list_registrations(&self, pool_id: &str) -> Result<Vec<Registration>> {
        registrations::Registrations(self).of_pool(pool_id).await
    }

    async fn store_identity(&self) -> Result<StoreIdentity> {
        count_one("store_identity");
        let row =
            sqlx::query("SELECT store_id, created_at FROM store_identity WHERE singleton = 1")
                .fetch_optional(self.sql_pool())
                .await
                .map_err(|e| db_err("reading the store identity", e))?;
        let Some(row) = row else {
            return Err(Error::internal(
                "the store has no identity row (table `store_identity` is empty)",
            ));
        };
        let id: String = row
            .try_get("store_id")
            .map_err(|e| db_err("reading store_identity.store_id", e))?;
        let created_at: i64 = row
            .try_get("created_at")
            .map_err(|e| db_err("reading store_identity.created_at", e))?;
        Ok(StoreIdentity {
            id,
            created_at: crate::clock::from_millis(created_at),
        })
    }

    async fn mark_offering(&self, mark: &OfferingMark) -> Result<OfferingMark> {
        Offerings(self).mark(mark).await
    }

    async fn live_offering_marks(&self, now: OffsetDateTime) -> Result<Vec<OfferingMark>> {
        Offerings(self).live(now).await
    }

    async fn delete_expired_offering_marks(&self, now: OffsetDateTime) -> Result<u64> {
        Offerings(self).delete_expired(now).await
    }

    async fn record_interruption(
        &self,
        offering: &crate::offering::Offering,
        at: OffsetDateTime,
    ) -> Result<InterruptionCount> {
        Offerings(self).record_interruption(offering, at).await
    }

    async fn interruption_counts(&self) -> Result<Vec<InterruptionCount>> {
        Offerings(self).counts(None, "interruption_counts").await
    }
}
