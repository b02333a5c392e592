//! Inserting a provisioning pass's workers under its pool lease's fencing
//! token, all or none, in one transaction.

use std::time::Duration;

use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Type};

use super::rows::{self, WORKER_COLUMNS};
use super::store::{finished_millis, millis, INSERT_WORKER};
use super::{count, db_err, SqlDialect};
use crate::clock::to_millis;
use crate::error::{Error, ErrorKind, Result};
use crate::model::Worker;
use crate::store::{lease_lost, PoolLease};

/// The store method whose statements this module counts.
const OP: &str = "create_workers";

/// [`WorkerStore::create_workers`](crate::store::WorkerStore::create_workers)
/// on SQL.
pub(super) async fn create_workers<S>(
    s: &S,
    lease: &PoolLease,
    workers: &[Worker],
    worker_lease: Duration,
) -> Result<Vec<Worker>>
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
    let mut tx = s
        .sql_pool()
        .begin()
        .await
        .map_err(|e| db_err("begin creating workers", e))?;
    count(OP, 0, 1);
    // A write first: it locks the lease row (PostgreSQL) or the
    // database (SQLite) until commit, so no acquisition slips in
    // between this check and the inserts.
    count(OP, 1, 0);
    let held = sqlx::query(
        "UPDATE pool_leases SET token = token \
         WHERE pool_id = $1 AND owner = $2 AND token = $3",
    )
    .bind(lease.pool_id.as_str())
    .bind(lease.owner.as_str())
    .bind(lease.token)
    .execute(&mut *tx)
    .await
    .map_err(|e| db_err("check pool lease", e))?;
    if S::rows_affected(&held) != 1 {
        // Dropping the transaction rolls it back.
        return Err(lease_lost(lease));
    }
    let leased_sql = format!(
        "{} RETURNING {WORKER_COLUMNS}",
        INSERT_WORKER.replace(
            "{lease_expires_at}",
            &s.database_now()
                .map_or("$8".to_string(), |n| format!("{n} + $8"))
        )
    );
    let plain_sql = format!(
        "{} RETURNING {WORKER_COLUMNS}",
        INSERT_WORKER.replace("{lease_expires_at}", "$8")
    );
    let mut out = Vec::with_capacity(workers.len());
    for worker in workers {
        let mut w = worker.clone();
        w.version = 1;
        let body = serde_json::to_string(&w)?;
        let (sql, expiry) = match (&w.lease_owner, s.database_now()) {
            (Some(_), Some(_)) => (&leased_sql, Some(millis(worker_lease))),
            _ => (&plain_sql, w.lease_expires_at.map(to_millis)),
        };
        count(OP, 1, 0);
        let r = sqlx::query(sql)
            .bind(w.id())
            .bind(w.spec.pool_id.as_str())
            .bind(w.spec.provider_id.as_str())
            .bind(w.phase.as_str())
            .bind(to_millis(w.next_check_at))
            .bind(w.version)
            .bind(w.lease_owner.as_deref())
            .bind(expiry)
            .bind(to_millis(w.created_at))
            .bind(body.as_str())
            .bind(w.partition.as_deref())
            .bind(finished_millis(&w))
            .fetch_one(&mut *tx)
            .await;
        match r {
            Ok(row) => out.push(rows::worker(&row)?),
            Err(sqlx::Error::Database(d)) if d.is_unique_violation() => {
                return Err(Error::new(
                    ErrorKind::AlreadyExists,
                    format!("worker {} already exists", w.id()),
                ))
            }
            Err(e) => return Err(db_err("create worker", e)),
        }
    }
    tx.commit()
        .await
        .map_err(|e| db_err("commit created workers", e))?;
    Ok(out)
}
