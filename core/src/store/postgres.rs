//! The PostgreSQL store, for several fleet replicas sharing one database.
//!
//! Replicas split the work with leases: `claim_due` selects due rows
//! `FOR UPDATE SKIP LOCKED` inside the same statement that leases them, so two
//! replicas claiming at the same instant get disjoint sets instead of waiting
//! on each other's row locks. A replica that dies simply stops renewing; its
//! leases expire and the others pick the workers up. The queries are shared
//! with SQLite (`store::sql`); this module only connects.
//!
//! Lease expiry is the database server's clock (`clock_timestamp()`), not
//! the replicas' ([`StoreClock::Database`]), so a replica whose clock is
//! minutes off can neither steal a live lease nor keep one past its term.
//!
//! TLS: the URL's `sslmode` (`disable`, `prefer`, `require`, `verify-ca`,
//! `verify-full`) and `sslrootcert` (a PEM file of the CA that signed the
//! server's certificate) are honoured, through rustls.

use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgQueryResult, PgSslMode};
use sqlx::{Executor, PgPool, Postgres};

use super::migrations::{self, Types};
use super::sql::{self, db_err, SqlDialect};
use super::StoreClock;
use crate::error::{Error, Result};

/// The PostgreSQL worker store.
#[derive(Debug, Clone)]
pub struct PostgresStore {
    pool: PgPool,
    clock: StoreClock,
}

/// The database's now in Unix milliseconds.
const DATABASE_NOW: &str = "CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)";

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
        // sqlx's TLS uses rustls's process-wide crypto provider. When a
        // program's dependencies enable more than one rustls backend (ring
        // and aws-lc-rs), rustls cannot pick one and panics at the first
        // TLS connection: install aws-lc-rs, the workspace's backend, unless
        // the program installed one already.
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
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
            .connect_lazy_with(opts.clone());
        // Connect once now, so that a refused certificate or login is
        // reported as such (naming the server, never the password) rather
        // than as the failure of the first statement.
        pool.acquire().await.map_err(|e| {
            db_err(
                &format!(
                    "connecting to PostgreSQL at {}:{} (sslmode={})",
                    opts.get_host(),
                    opts.get_port(),
                    ssl_mode_name(opts.get_ssl_mode())
                ),
                e,
            )
        })?;
        if let Some(s) = schema {
            sqlx::query(&format!("CREATE SCHEMA IF NOT EXISTS {s}"))
                .execute(&pool)
                .await
                .map_err(|e| db_err("create schema", e))?;
        }
        sql::migrate::<Self>(&pool).await?;
        Ok(PostgresStore {
            pool,
            clock: StoreClock::Database,
        })
    }

    /// The same store with lease times from `clock`. The default,
    /// [`StoreClock::Database`], is what replicas need;
    /// [`StoreClock::Caller`] is for tests that simulate time.
    pub fn with_clock(mut self, clock: StoreClock) -> Self {
        self.clock = clock;
        self
    }

    /// The connection pool, for callers that need raw access (tests).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

/// `mode` as the URL spells it.
fn ssl_mode_name(mode: PgSslMode) -> &'static str {
    match mode {
        PgSslMode::Disable => "disable",
        PgSslMode::Allow => "allow",
        PgSslMode::Prefer => "prefer",
        PgSslMode::Require => "require",
        PgSslMode::VerifyCa => "verify-ca",
        PgSslMode::VerifyFull => "verify-full",
    }
}

impl SqlDialect for PostgresStore {
    type Db = Postgres;
    const CLAIM_LOCK: &'static str = " FOR UPDATE SKIP LOCKED";
    // An arbitrary constant (0x736b_7966_6c65_6574, "skyfleet") naming the
    // advisory lock that serialises concurrent migrations of replicas.
    const MIGRATION_LOCK: &'static str = "SELECT pg_advisory_xact_lock(8316874617681962356)";
    const TYPES: Types = migrations::POSTGRES;

    fn sql_pool(&self) -> &PgPool {
        &self.pool
    }

    fn database_now(&self) -> Option<&'static str> {
        match self.clock {
            StoreClock::Database => Some(DATABASE_NOW),
            StoreClock::Caller => None,
        }
    }

    fn rows_affected(result: &PgQueryResult) -> u64 {
        result.rows_affected()
    }
}
