//! Schema migrations, embedded and applied automatically on open.
//!
//! Each dialect has an ordered list; the applied count is kept in
//! `skyfleet_schema`. A migration is never edited once released: a change is a
//! new entry. Both dialects store times as Unix milliseconds (`BIGINT`) and
//! the worker record as JSON text, with the columns the queries filter on
//! (phase, provider, partition, due time, lease, version) kept beside it.

/// SQLite migrations.
pub const SQLITE: &[&str] = &[
    r#"
CREATE TABLE workers (
    worker_id        TEXT PRIMARY KEY NOT NULL,
    pool_id          TEXT NOT NULL,
    provider_id      TEXT NOT NULL,
    phase            TEXT NOT NULL,
    next_check_at    INTEGER NOT NULL,
    version          INTEGER NOT NULL,
    lease_owner      TEXT,
    lease_expires_at INTEGER,
    created_at       INTEGER NOT NULL,
    body             TEXT NOT NULL
);
CREATE INDEX workers_due ON workers (provider_id, next_check_at)
    WHERE phase NOT IN ('stopped', 'failed');
CREATE INDEX workers_pool ON workers (pool_id, phase);
CREATE INDEX workers_lease_owner ON workers (lease_owner) WHERE lease_owner IS NOT NULL;
CREATE TABLE pool_errors (
    error_id         INTEGER PRIMARY KEY AUTOINCREMENT,
    pool_id          TEXT NOT NULL,
    kind             TEXT NOT NULL,
    title            TEXT NOT NULL,
    message          TEXT NOT NULL,
    launch_config_id TEXT,
    reported_at      INTEGER NOT NULL
);
CREATE INDEX pool_errors_pool ON pool_errors (pool_id, error_id);
"#,
    r#"
CREATE TABLE pool_leases (
    pool_id          TEXT PRIMARY KEY NOT NULL,
    owner            TEXT NOT NULL,
    expires_at       INTEGER NOT NULL
);
"#,
    // Scheduling partitions (regions, zones): one scanner per partition
    // claims through this index. Older rows stay NULL until their next step.
    // It replaces `workers_due`: every step moves `next_check_at`, so each
    // extra index on it costs every update (28 % of claim+update cycles).
    r#"
ALTER TABLE workers ADD COLUMN scan_partition TEXT;
CREATE INDEX workers_due_partition ON workers (provider_id, scan_partition, next_check_at)
    WHERE phase NOT IN ('stopped', 'failed');
DROP INDEX workers_due;
"#,
];

/// PostgreSQL migrations.
#[cfg(feature = "postgres")]
pub const POSTGRES: &[&str] = &[
    r#"
CREATE TABLE workers (
    worker_id        TEXT PRIMARY KEY NOT NULL,
    pool_id          TEXT NOT NULL,
    provider_id      TEXT NOT NULL,
    phase            TEXT NOT NULL,
    next_check_at    BIGINT NOT NULL,
    version          BIGINT NOT NULL,
    lease_owner      TEXT,
    lease_expires_at BIGINT,
    created_at       BIGINT NOT NULL,
    body             TEXT NOT NULL
);
CREATE INDEX workers_due ON workers (provider_id, next_check_at)
    WHERE phase NOT IN ('stopped', 'failed');
CREATE INDEX workers_pool ON workers (pool_id, phase);
CREATE INDEX workers_lease_owner ON workers (lease_owner) WHERE lease_owner IS NOT NULL;
CREATE TABLE pool_errors (
    error_id         BIGSERIAL PRIMARY KEY,
    pool_id          TEXT NOT NULL,
    kind             TEXT NOT NULL,
    title            TEXT NOT NULL,
    message          TEXT NOT NULL,
    launch_config_id TEXT,
    reported_at      BIGINT NOT NULL
);
CREATE INDEX pool_errors_pool ON pool_errors (pool_id, error_id);
"#,
    r#"
CREATE TABLE pool_leases (
    pool_id          TEXT PRIMARY KEY NOT NULL,
    owner            TEXT NOT NULL,
    expires_at       BIGINT NOT NULL
);
"#,
    // Scheduling partitions (regions, zones): one scanner per partition
    // claims through this index. Older rows stay NULL until their next step.
    // It replaces `workers_due`: every step moves `next_check_at`, so each
    // extra index on it costs every update (28 % of claim+update cycles).
    r#"
ALTER TABLE workers ADD COLUMN scan_partition TEXT;
CREATE INDEX workers_due_partition ON workers (provider_id, scan_partition, next_check_at)
    WHERE phase NOT IN ('stopped', 'failed');
DROP INDEX workers_due;
"#,
];

/// Splits a migration into statements (they contain no semicolons inside
/// literals, so a plain split is exact).
pub fn statements(migration: &str) -> impl Iterator<Item = &str> {
    migration
        .split(';')
        .map(str::trim)
        .filter(|s| !s.is_empty())
}
