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
