//! The embedded default store: one SQLite file, WAL mode.
//!
//! WAL lets readers (the CLI's `workers` command, the estimator) run while a
//! scanner writes. `synchronous = NORMAL` is durable across process crashes
//! (the WAL is fsynced at checkpoints; a crash of the *process* loses
//! nothing), which is the failure the fleet runtime is built to survive.
//! The queries are shared with PostgreSQL (`store::sql`); this module only
//! opens the file.

use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteQueryResult,
    SqliteSynchronous,
};
use sqlx::{Sqlite, SqlitePool};

use super::migrations::{self, Types};
use super::sql::{self, db_err, SqlDialect};
use crate::error::{Error, Result};

/// The SQLite worker store.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating if needed) the database file at `path` and applies
    /// migrations.
    pub async fn open(path: &str) -> Result<Self> {
        Self::open_with_connections(path, 4).await
    }

    /// [`open`](Self::open) with at most `max_connections` connections
    /// (at least 1). Each caches up to 2 MiB of pages (SQLite's default), so
    /// a one-shot sequential reader, such as a CLI listing, takes one: a
    /// pool returns connections asynchronously, and back-to-back queries
    /// would otherwise open (and fill the caches of) several.
    pub async fn open_with_connections(path: &str, max_connections: u32) -> Result<Self> {
        let opts = SqliteConnectOptions::from_str(&format!("sqlite://{path}"))
            .map_err(|e| Error::invalid_config("store", format!("bad SQLite path `{path}`: {e}")))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(max_connections.max(1))
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(opts)
            .await
            .map_err(|e| db_err(&format!("opening {path}"), e))?;
        sql::migrate::<Self>(&pool).await?;
        Ok(SqliteStore { pool })
    }
}

impl SqlDialect for SqliteStore {
    type Db = Sqlite;
    // One writer at a time: the claim's statement is atomic without locks.
    const CLAIM_LOCK: &'static str = "";
    // SQLite's write transaction already serialises migrations.
    const MIGRATION_LOCK: &'static str = "";
    const TYPES: Types = migrations::SQLITE;

    fn sql_pool(&self) -> &SqlitePool {
        &self.pool
    }

    // One file on one machine: the callers' clock is the only clock.
    fn database_now(&self) -> Option<&'static str> {
        None
    }

    fn rows_affected(result: &SqliteQueryResult) -> u64 {
        result.rows_affected()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::to_millis;
    use crate::store::conformance::worker;
    use crate::store::{Claim, PartitionFilter, WorkerStore};

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
        for (i, m) in migrations::rendered(migrations::SQLITE).take(2).enumerate() {
            for stmt in migrations::statements(&m) {
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
