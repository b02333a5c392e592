//! Conditional worker updates on SQL: one worker's
//! ([`WorkerStore::update_worker`](crate::store::WorkerStore::update_worker))
//! and a batch's in one transaction
//! ([`WorkerStore::update_workers`](crate::store::WorkerStore::update_workers)).
//!
//! A batch is one `UPDATE ... WHERE worker_id = $ AND version = $` per
//! worker inside one transaction, then, only for the rows that did not
//! match, one look-up each to tell a moved version (`Conflict`) from a
//! deleted worker (`NotFound`). The statements carry 10 parameters each,
//! far under SQLite's 32,766 per statement; transactions still take at most
//! [`PER_TRANSACTION`] workers, so a huge batch does not hold the database's
//! write lock (SQLite) or its rows' locks (PostgreSQL) for long.

use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Row, Type};

use super::store::finished_millis;
use super::{count, db_err, SqlDialect};
use crate::clock::to_millis;
use crate::error::{Error, ErrorKind, Result};
use crate::model::Worker;

/// At most this many workers per transaction: 500 updates take SQLite a
/// few milliseconds, the longest the write lock is held by one batch.
const PER_TRANSACTION: usize = 500;

/// The store method whose statements [`update_workers`] counts.
const OP: &str = "update_workers";

/// A worker as it will be stored (version bumped) and its JSON body.
struct Prepared {
    stored: Worker,
    body: String,
}

impl Prepared {
    fn of(worker: &Worker) -> Result<Self> {
        let mut stored = worker.clone();
        stored.version = worker.version + 1;
        let body = serde_json::to_string(&stored)?;
        Ok(Prepared { stored, body })
    }
}

/// Sends one worker's conditional update on `exec`: whether its row
/// matched (its stored version was `stored.version - 1`).
async fn update_one<'c, S, E>(exec: E, p: &Prepared) -> std::result::Result<bool, sqlx::Error>
where
    S: SqlDialect,
    E: Executor<'c, Database = S::Db>,
    for<'q> <S::Db as Database>::Arguments<'q>: IntoArguments<'q, S::Db>,
    for<'q> &'q str: Encode<'q, S::Db> + Type<S::Db>,
    for<'q> i64: Encode<'q, S::Db> + Type<S::Db>,
    for<'q> Option<&'q str>: Encode<'q, S::Db>,
    for<'q> Option<i64>: Encode<'q, S::Db>,
{
    let w = &p.stored;
    let r = sqlx::query(
        "UPDATE workers SET phase = $1, next_check_at = $2, version = $3, lease_owner = $4, \
         lease_expires_at = $5, body = $6, scan_partition = $7, finished_at = $10 \
         WHERE worker_id = $8 AND version = $9",
    )
    .bind(w.phase.as_str())
    .bind(to_millis(w.next_check_at))
    .bind(w.version)
    .bind(w.lease_owner.as_deref())
    .bind(w.lease_expires_at.map(to_millis))
    .bind(p.body.as_str())
    .bind(w.partition.as_deref())
    .bind(w.id())
    .bind(w.version - 1)
    .bind(finished_millis(w))
    .execute(exec)
    .await?;
    Ok(S::rows_affected(&r) == 1)
}

/// The stored version of a worker, if it exists.
async fn stored_version<'c, S, E>(exec: E, worker_id: &str) -> Result<Option<i64>>
where
    S: SqlDialect,
    E: Executor<'c, Database = S::Db>,
    for<'q> <S::Db as Database>::Arguments<'q>: IntoArguments<'q, S::Db>,
    for<'q> &'q str: Encode<'q, S::Db> + Type<S::Db>,
    for<'q> i64: Decode<'q, S::Db> + Type<S::Db>,
    &'static str: ColumnIndex<<S::Db as Database>::Row>,
{
    let row = sqlx::query("SELECT version FROM workers WHERE worker_id = $1")
        .bind(worker_id)
        .fetch_optional(exec)
        .await
        .map_err(|e| db_err("look up a worker's version", e))?;
    row.map(|r| r.try_get("version"))
        .transpose()
        .map_err(|e| db_err("reading a worker's version", e))
}

/// The error of an update of `worker` that matched no row, given the
/// version stored now (`None`: the worker is gone).
fn unmatched(worker: &Worker, stored: Option<i64>) -> Error {
    match stored {
        None => Error::not_found(format!("worker {} not found", worker.id())),
        Some(v) => Error::new(
            ErrorKind::Conflict,
            format!(
                "worker {} changed: version {v} in store, {} in update",
                worker.id(),
                worker.version
            ),
        ),
    }
}

/// [`WorkerStore::update_worker`](crate::store::WorkerStore::update_worker)
/// on SQL: one statement, and a look-up when it matched nothing.
pub(super) async fn update_worker<S>(s: &S, worker: &Worker) -> Result<Worker>
where
    S: SqlDialect,
    for<'c> &'c mut <S::Db as Database>::Connection: Executor<'c, Database = S::Db>,
    for<'q> <S::Db as Database>::Arguments<'q>: IntoArguments<'q, S::Db>,
    for<'q> &'q str: Encode<'q, S::Db> + Type<S::Db>,
    for<'q> i64: Encode<'q, S::Db> + Decode<'q, S::Db> + Type<S::Db>,
    for<'q> Option<&'q str>: Encode<'q, S::Db>,
    for<'q> Option<i64>: Encode<'q, S::Db>,
    &'static str: ColumnIndex<<S::Db as Database>::Row>,
{
    const OP: &str = "update_worker";
    let p = Prepared::of(worker)?;
    count(OP, 1, 1);
    if update_one::<S, _>(s.sql_pool(), &p)
        .await
        .map_err(|e| db_err("update worker", e))?
    {
        return Ok(p.stored);
    }
    count(OP, 1, 1);
    let stored = stored_version::<S, _>(s.sql_pool(), worker.id()).await?;
    Err(unmatched(worker, stored))
}

/// [`WorkerStore::update_workers`](crate::store::WorkerStore::update_workers)
/// on SQL: the workers in transactions of at most [`PER_TRANSACTION`].
///
/// A failed first transaction wrote nothing: the outer error. A later one
/// failing leaves the earlier ones committed, so its workers and the rest's
/// get the error each, unwritten, and the call still answers `Ok`.
pub(super) async fn update_workers<S>(s: &S, workers: &[Worker]) -> Result<Vec<Result<Worker>>>
where
    S: SqlDialect,
    for<'c> &'c mut <S::Db as Database>::Connection: Executor<'c, Database = S::Db>,
    for<'q> <S::Db as Database>::Arguments<'q>: IntoArguments<'q, S::Db>,
    for<'q> &'q str: Encode<'q, S::Db> + Type<S::Db>,
    for<'q> i64: Encode<'q, S::Db> + Decode<'q, S::Db> + Type<S::Db>,
    for<'q> Option<&'q str>: Encode<'q, S::Db>,
    for<'q> Option<i64>: Encode<'q, S::Db>,
    &'static str: ColumnIndex<<S::Db as Database>::Row>,
{
    let mut out = Vec::with_capacity(workers.len());
    for chunk in workers.chunks(PER_TRANSACTION) {
        match update_chunk(s, chunk).await {
            Ok(done) => out.extend(done),
            Err(e) if out.is_empty() => return Err(e),
            Err(e) => {
                let unwritten = workers.len() - out.len();
                out.extend(std::iter::repeat_n(Err(e), unwritten));
                break;
            }
        }
    }
    Ok(out)
}

/// One transaction's updates: each worker's outcome, in `chunk`'s order.
async fn update_chunk<S>(s: &S, chunk: &[Worker]) -> Result<Vec<Result<Worker>>>
where
    S: SqlDialect,
    for<'c> &'c mut <S::Db as Database>::Connection: Executor<'c, Database = S::Db>,
    for<'q> <S::Db as Database>::Arguments<'q>: IntoArguments<'q, S::Db>,
    for<'q> &'q str: Encode<'q, S::Db> + Type<S::Db>,
    for<'q> i64: Encode<'q, S::Db> + Decode<'q, S::Db> + Type<S::Db>,
    for<'q> Option<&'q str>: Encode<'q, S::Db>,
    for<'q> Option<i64>: Encode<'q, S::Db>,
    &'static str: ColumnIndex<<S::Db as Database>::Row>,
{
    // A worker whose body cannot be written fails alone, before the
    // transaction.
    let mut out: Vec<Option<Result<Worker>>> = Vec::with_capacity(chunk.len());
    let mut prepared = Vec::with_capacity(chunk.len());
    for (i, w) in chunk.iter().enumerate() {
        match Prepared::of(w) {
            Ok(p) => {
                prepared.push((i, p));
                out.push(None);
            }
            Err(e) => out.push(Some(Err(e))),
        }
    }
    if prepared.is_empty() {
        return Ok(out.into_iter().flatten().collect());
    }
    // Rows updated in id order: two replicas' overlapping batches lock
    // them in the same order (PostgreSQL), so they wait, never deadlock.
    prepared.sort_by(|(_, a), (_, b)| a.stored.id().cmp(b.stored.id()));
    let mut tx = s
        .sql_pool()
        .begin()
        .await
        .map_err(|e| db_err("begin updating workers", e))?;
    count(OP, 0, 1);
    let mut missed = Vec::new();
    for (i, p) in prepared {
        count(OP, 1, 0);
        let matched = update_one::<S, _>(&mut *tx, &p)
            .await
            .map_err(|e| db_err("update workers", e))?;
        if matched {
            out[i] = Some(Ok(p.stored));
        } else {
            missed.push(i);
        }
    }
    for i in missed {
        count(OP, 1, 0);
        let stored = stored_version::<S, _>(&mut *tx, chunk[i].id()).await?;
        out[i] = Some(Err(unmatched(&chunk[i], stored)));
    }
    tx.commit()
        .await
        .map_err(|e| db_err("commit updated workers", e))?;
    Ok(out
        .into_iter()
        .map(|o| {
            // Every index was filled above: prepared, then matched or missed.
            o.unwrap_or_else(|| Err(Error::internal("store: a batched update lost its outcome")))
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use crate::metrics_catalogue as names;
    use crate::store::conformance::worker;
    use crate::store::test_counters::Counters;
    use crate::store::{SqliteStore, WorkerStore};

    /// A batch of 3 workers on SQLite is 3 statements in 1 transaction; a
    /// stale one among them adds its look-up, not a transaction. A single
    /// update is 1 statement, its own transaction.
    // A current-thread runtime: the recorder is this thread's, and every
    // counter is recorded by the store's code on it.
    #[tokio::test(flavor = "current_thread")]
    async fn a_batch_is_one_transaction_of_one_statement_per_worker() {
        let counters = Counters::default();
        let _local = metrics::set_default_local_recorder(&counters);
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("count.db");
        let s = SqliteStore::open(path.to_str().expect("utf-8 path"))
            .await
            .expect("open");
        let now = crate::clock::from_millis(1_750_000_000_000);
        let mut batch = Vec::new();
        for id in ["w-1", "w-2", "w-3"] {
            batch.push(
                s.create_worker(&worker(id, "p", "aws", now))
                    .await
                    .expect("create"),
            );
        }
        let (stmts, txs) = (names::STORE_STATEMENTS, names::STORE_TRANSACTIONS);
        assert_eq!(counters.get(stmts, "create_worker"), 3);
        assert_eq!(counters.get(txs, "create_worker"), 3);

        let written = s.update_workers(&batch).await.expect("batch");
        assert!(written.iter().all(Result::is_ok), "{written:?}");
        assert_eq!(counters.get(stmts, "update_workers"), 3);
        assert_eq!(counters.get(txs, "update_workers"), 1);

        // w-1 and w-2 fresh, w-3 stale (the batch above moved it).
        let mut next: Vec<_> = written[..2].iter().flatten().cloned().collect();
        next.push(batch[2].clone());
        let answers = s.update_workers(&next).await.expect("batch");
        assert_eq!(answers.iter().filter(|a| a.is_ok()).count(), 2);
        assert_eq!(counters.get(stmts, "update_workers"), 3 + 4);
        assert_eq!(counters.get(txs, "update_workers"), 2);

        assert!(s.update_workers(&[]).await.expect("empty").is_empty());
        assert_eq!(counters.get(txs, "update_workers"), 2, "nothing to send");

        let one = answers[0].as_ref().expect("w-1 written");
        s.update_worker(one).await.expect("update");
        assert_eq!(counters.get(stmts, "update_worker"), 1);
        assert_eq!(counters.get(txs, "update_worker"), 1);
    }
}
