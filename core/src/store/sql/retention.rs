//! Bounded reads and deletes of the SQL stores: keyset-paged worker
//! listings, registrations of a page of workers, and retention (finished
//! workers and pool errors).

use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Type};
use time::OffsetDateTime;

use super::rows::{self, WORKER_COLUMNS};
use super::{count, count_one, db_err, SqlDialect};
use crate::clock::to_millis;
use crate::error::Result;
use crate::model::{Registration, Worker};
use crate::store::{WorkerCursor, WorkerFilter};

pub(super) async fn list_workers_page<S>(
    s: &S,
    filter: &WorkerFilter,
    after: Option<&WorkerCursor>,
    limit: usize,
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
    count_one("list_workers_page");
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
    if after.is_some() {
        // A row-value comparison, which both dialects answer with a range
        // scan of the (created_at, worker_id) index: no sort per page.
        let (at, id) = (mark(), mark());
        sql.push_str(&format!(" AND (created_at, worker_id) > ({at}, {id})"));
    }
    sql.push_str(&format!(" ORDER BY created_at, worker_id LIMIT {}", mark()));
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
    if let Some(c) = after {
        q = q.bind(c.created_at_ms).bind(c.worker_id.as_str());
    }
    let found = q
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(s.sql_pool())
        .await
        .map_err(|e| db_err("list a page of workers", e))?;
    found.iter().map(rows::worker).collect()
}

pub(super) async fn delete_finished_workers<S>(
    s: &S,
    before: OffsetDateTime,
    limit: usize,
) -> Result<u64>
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
        .map_err(|e| db_err("begin deleting finished workers", e))?;
    const OP: &str = "delete_finished_workers";
    count(OP, 0, 1);
    let old = "SELECT worker_id FROM workers \
         WHERE phase IN ('stopped', 'failed') AND finished_at < $1 \
         ORDER BY finished_at LIMIT $2";
    // Registrations first, in the same transaction: never an orphan
    // registration, never a half-deleted batch.
    count(OP, 1, 0);
    sqlx::query(&format!(
        "DELETE FROM worker_registrations WHERE worker_id IN ({old})"
    ))
    .bind(to_millis(before))
    .bind(i64::try_from(limit).unwrap_or(i64::MAX))
    .execute(&mut *tx)
    .await
    .map_err(|e| db_err("delete finished workers' registrations", e))?;
    count(OP, 1, 0);
    let r = sqlx::query(&format!("DELETE FROM workers WHERE worker_id IN ({old})"))
        .bind(to_millis(before))
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .execute(&mut *tx)
        .await
        .map_err(|e| db_err("delete finished workers", e))?;
    tx.commit()
        .await
        .map_err(|e| db_err("commit deleting finished workers", e))?;
    Ok(S::rows_affected(&r))
}

pub(super) async fn prune_pool_errors<S>(
    s: &S,
    before: OffsetDateTime,
    keep_per_pool: usize,
) -> Result<u64>
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
    count_one("prune_pool_errors");
    let r = sqlx::query(
        "DELETE FROM pool_errors WHERE reported_at < $1 OR error_id IN \
         (SELECT error_id FROM (SELECT error_id, ROW_NUMBER() OVER \
           (PARTITION BY pool_id ORDER BY error_id DESC) AS newer FROM pool_errors) ranked \
          WHERE newer > $2)",
    )
    .bind(to_millis(before))
    .bind(i64::try_from(keep_per_pool).unwrap_or(i64::MAX))
    .execute(s.sql_pool())
    .await
    .map_err(|e| db_err("prune pool errors", e))?;
    Ok(S::rows_affected(&r))
}

pub(super) async fn registrations_of<S>(s: &S, worker_ids: &[&str]) -> Result<Vec<Registration>>
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
    let mut out = Vec::new();
    // Bounded statements: SQLite takes at most 32,766 parameters.
    for ids in worker_ids.chunks(500) {
        let marks: Vec<String> = (1..=ids.len()).map(|i| format!("${i}")).collect();
        let sql = format!(
            "SELECT body, version FROM worker_registrations WHERE worker_id IN ({})",
            marks.join(", ")
        );
        count_one("registrations_of");
        let mut q = sqlx::query(&sql);
        for id in ids {
            q = q.bind(*id);
        }
        let found = q
            .fetch_all(s.sql_pool())
            .await
            .map_err(|e| db_err("get registrations", e))?;
        for r in &found {
            out.push(rows::registration(r)?);
        }
    }
    out.sort_by(|a, b| a.worker_id.cmp(&b.worker_id));
    out.dedup_by(|a, b| a.worker_id == b.worker_id);
    Ok(out)
}
