//! What the SQL stores share: the SQL text, row decoding, the claim and the
//! migration runner. A dialect ([`SqliteStore`](super::SqliteStore),
//! `PostgresStore`) brings only its connection setup and the few clauses
//! that differ, through [`SqlDialect`].
//!
//! Queries use `$N` placeholders, which both PostgreSQL and (through sqlx)
//! SQLite accept, so one text serves both.
//!
//! Every statement a [`WorkerStore`](super::WorkerStore) method sends is
//! counted ([`count`]) under the method's name, with its transactions, so a
//! bench or a dashboard sees what each call costs the database.

use sqlx::{Database, Pool};

use super::migrations::Types;
use crate::error::{Error, ErrorKind};
use crate::metrics_catalogue as names;

mod batch;
mod fenced;
mod migrate;
mod offerings;
mod registrations;
mod retention;
mod rows;
mod store;

pub(crate) use migrate::migrate;

/// What one SQL dialect adds to the shared store logic. A store type
/// implementing it is a [`WorkerStore`](super::WorkerStore).
///
/// Public only so the blanket `WorkerStore` impl may name it; it lives in a
/// private module and cannot be implemented outside this crate.
pub trait SqlDialect: Send + Sync + std::fmt::Debug {
    /// The sqlx database.
    type Db: Database;
    /// Appended to the claim's inner `SELECT` (row locking), or empty.
    const CLAIM_LOCK: &'static str;
    /// Run first in the migration transaction to serialise concurrent
    /// migrations of replicas, or empty.
    const MIGRATION_LOCK: &'static str;
    /// The column types substituted into the migrations.
    const TYPES: Types;

    /// The connection pool.
    fn sql_pool(&self) -> &Pool<Self::Db>;

    /// The SQL expression of the database's now in Unix milliseconds, when
    /// lease times are the database's ([`StoreClock::Database`]); `None`:
    /// the caller's `now` is bound instead.
    ///
    /// [`StoreClock::Database`]: crate::store::StoreClock::Database
    fn database_now(&self) -> Option<&'static str>;

    /// How many rows a statement changed.
    fn rows_affected(result: &<Self::Db as Database>::QueryResult) -> u64;
}

/// A database error, as a skyfleet error: pool timeouts and I/O are
/// transient, everything else internal.
pub(crate) fn db_err(context: &str, e: sqlx::Error) -> Error {
    let kind = match &e {
        sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) => ErrorKind::Transient,
        _ => ErrorKind::Internal,
    };
    Error::new(kind, format!("store: {context}: {e}")).with_source(e)
}

/// Every store method the SQL stores count under `op`, in alphabetical
/// order: the fleet registers each at zero when it starts, so dashboards see
/// the series before the first statement. A method counted under a name
/// missing here still counts; it only starts absent.
pub const OPS: &[&str] = &[
    "acquire_pool_lease",
    "claim_due",
    "create_registration",
    "create_worker",
    "create_workers",
    "delete_expired_offering_marks",
    "delete_finished_workers",
    "delete_worker",
    "get_registration",
    "get_worker",
    "interruption_counts",
    "list_pool_decisions",
    "list_pool_errors",
    "list_registrations",
    "list_workers",
    "list_workers_page",
    "live_offering_marks",
    "mark_offering",
    "partitions",
    "pool_error_groups",
    "prune_pool_errors",
    "put_pool_decision",
    "record_interruption",
    "record_pool_error",
    "registrations_of",
    "release",
    "release_all",
    "store_identity",
    "update_registration",
    "update_worker",
    "update_workers",
];

/// Counts the SQL work of store method `op`: `statements` statements sent
/// (BEGIN and COMMIT not counted) in `transactions` transactions (an
/// explicit one, or each statement sent on its own, its implicit one).
/// Counted when sent, whether or not the database accepted them: the cost
/// was paid either way.
pub(crate) fn count(op: &'static str, statements: u64, transactions: u64) {
    metrics::counter!(names::STORE_STATEMENTS, "op" => op).increment(statements);
    if transactions > 0 {
        metrics::counter!(names::STORE_TRANSACTIONS, "op" => op).increment(transactions);
    }
}

/// [`count`] for one statement sent on its own (its implicit transaction).
pub(crate) fn count_one(op: &'static str) {
    count(op, 1, 1);
}

#[cfg(test)]
mod tests {
    use super::OPS;
    use crate::metrics_catalogue as names;
    use crate::store::test_counters::Counters;
    use std::sync::Arc;

    use crate::store::{conformance, SqliteStore, WorkerStore};

    /// Every store method the conformance suite drives is counted under a
    /// name in [`OPS`], so the fleet registers its series at zero.
    // A current-thread runtime: the recorder is this thread's.
    #[tokio::test(flavor = "current_thread")]
    async fn every_counted_method_is_listed() {
        let counters = Counters::default();
        let _local = metrics::set_default_local_recorder(&counters);
        let dir = tempfile::tempdir().expect("tempdir");
        let n = std::sync::atomic::AtomicU32::new(0);
        conformance::run(|| {
            let i = n.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let path = dir.path().join(format!("c{i}.db"));
            async move {
                let path = path.to_str().expect("utf-8 path").to_string();
                let a: Arc<dyn WorkerStore> =
                    Arc::new(SqliteStore::open(&path).await.expect("open"));
                let b: Arc<dyn WorkerStore> =
                    Arc::new(SqliteStore::open(&path).await.expect("open"));
                (a, b)
            }
        })
        .await;
        let seen = counters.ops(names::STORE_STATEMENTS);
        assert!(seen.len() >= 10, "the suite counted too little: {seen:?}");
        let missing: Vec<_> = seen
            .iter()
            .filter(|op| !OPS.contains(&op.as_str()))
            .collect();
        assert!(missing.is_empty(), "counted but not in OPS: {missing:?}");
        let mut sorted = OPS.to_vec();
        sorted.sort_unstable();
        assert_eq!(sorted, OPS, "OPS is kept in alphabetical order");
    }
}
