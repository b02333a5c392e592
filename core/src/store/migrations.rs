//! Schema migrations, embedded and applied automatically on open.
//!
//! One ordered list serves both dialects: each migration is written once,
//! with `{int}` (a 64-bit integer column) and `{serial_key}` (an
//! auto-incrementing 64-bit primary key) substituted per dialect by
//! [`rendered`]. The applied count is kept in `skyfleet_schema`. A migration
//! is never edited once released: a change is a new entry (the rendered
//! text of migrations 1 to 3 is pinned by a test against the DDL released
//! databases were created with). Times are Unix milliseconds and the worker
//! record is JSON text, with the columns the queries filter on (phase,
//! provider, partition, due time, lease, version) kept beside it.

/// The column types that differ between dialects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Types {
    /// A 64-bit integer (`{int}`).
    pub int: &'static str,
    /// An auto-incrementing 64-bit primary key (`{serial_key}`).
    pub serial_key: &'static str,
}

/// SQLite's types.
pub(crate) const SQLITE: Types = Types {
    int: "INTEGER",
    serial_key: "INTEGER PRIMARY KEY AUTOINCREMENT",
};

/// PostgreSQL's types.
#[cfg(feature = "postgres")]
pub(crate) const POSTGRES: Types = Types {
    int: "BIGINT",
    serial_key: "BIGSERIAL PRIMARY KEY",
};

/// The migrations, in order, before type substitution.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE workers (
    worker_id        TEXT PRIMARY KEY NOT NULL,
    pool_id          TEXT NOT NULL,
    provider_id      TEXT NOT NULL,
    phase            TEXT NOT NULL,
    next_check_at    {int} NOT NULL,
    version          {int} NOT NULL,
    lease_owner      TEXT,
    lease_expires_at {int},
    created_at       {int} NOT NULL,
    body             TEXT NOT NULL
);
CREATE INDEX workers_due ON workers (provider_id, next_check_at)
    WHERE phase NOT IN ('stopped', 'failed');
CREATE INDEX workers_pool ON workers (pool_id, phase);
CREATE INDEX workers_lease_owner ON workers (lease_owner) WHERE lease_owner IS NOT NULL;
CREATE TABLE pool_errors (
    error_id         {serial_key},
    pool_id          TEXT NOT NULL,
    kind             TEXT NOT NULL,
    title            TEXT NOT NULL,
    message          TEXT NOT NULL,
    launch_config_id TEXT,
    reported_at      {int} NOT NULL
);
CREATE INDEX pool_errors_pool ON pool_errors (pool_id, error_id);
"#,
    r#"
CREATE TABLE pool_leases (
    pool_id          TEXT PRIMARY KEY NOT NULL,
    owner            TEXT NOT NULL,
    expires_at       {int} NOT NULL
);
"#,
    // Scheduling partitions (regions, zones): one scanner per partition
    // claims through this index. Older rows stay NULL until their next step.
    // It replaces `workers_due`: every step moves `next_check_at`, so each
    // extra index on it slows every update (BENCHMARKS.md, store).
    r#"
ALTER TABLE workers ADD COLUMN scan_partition TEXT;
CREATE INDEX workers_due_partition ON workers (provider_id, scan_partition, next_check_at)
    WHERE phase NOT IN ('stopped', 'failed');
DROP INDEX workers_due;
"#,
    // Each pool's latest provisioning decision (bounds, demand, capacity,
    // target) for `skyfleet status`, one row per pool; and pool errors by
    // time, which `skyfleet errors` and `skyfleet status` count per kind
    // over the last hour across pools.
    r#"
CREATE TABLE pool_decisions (
    pool_id          TEXT PRIMARY KEY NOT NULL,
    decided_at       {int} NOT NULL,
    body             TEXT NOT NULL
);
CREATE INDEX pool_errors_reported ON pool_errors (reported_at);
"#,
    // Registrations of workers' agents (secret digest, heartbeats, drain),
    // apart from the worker rows: heartbeats then never bump a worker's
    // version under a scanner's step (model::registration).
    r#"
CREATE TABLE worker_registrations (
    worker_id        TEXT PRIMARY KEY NOT NULL,
    pool_id          TEXT NOT NULL,
    version          {int} NOT NULL,
    body             TEXT NOT NULL
);
CREATE INDEX worker_registrations_pool ON worker_registrations (pool_id);
"#,
    // The store's identity: one row (`singleton` = 1) with a random id and
    // the time it was written, inserted by the migration runner in the
    // transaction that applies this migration (`IDENTITY_MIGRATION`). The
    // orphan sweeper deletes nothing while the store is younger than its
    // grace period, so a replica pointed at a new store cannot mistake the
    // whole fleet for orphans.
    r#"
CREATE TABLE store_identity (
    singleton        {int} PRIMARY KEY NOT NULL,
    store_id         TEXT NOT NULL,
    created_at       {int} NOT NULL
);
"#,
    // The fencing token of a pool's provisioning lease, bumped by every
    // acquisition and re-checked in the transaction inserting a pass's
    // workers, so a pass that outlived its lease inserts nothing.
    r#"
ALTER TABLE pool_leases ADD COLUMN token {int} NOT NULL DEFAULT 0;
"#,
    // Retention and paged listings. `finished_at`: when a final worker
    // finished (its last transition), set by every write; workers already
    // final get the time of their final step, which parked them 365 days
    // (31,536,000,000 ms) ahead (`fleet::scanner`). Listings page on
    // (created_at, worker_id).
    r#"
ALTER TABLE workers ADD COLUMN finished_at {int};
UPDATE workers SET finished_at = next_check_at - 31536000000 WHERE phase IN ('stopped', 'failed');
CREATE INDEX workers_finished ON workers (finished_at) WHERE phase IN ('stopped', 'failed');
CREATE INDEX workers_listing ON workers (created_at, worker_id);
"#,
    // The shared offering cache (issue 17): offerings marked unavailable
    // per class until `until_at`, and interruptions counted per offering.
    r#"
CREATE TABLE offering_marks (
    offering_key     TEXT NOT NULL,
    class            TEXT NOT NULL,
    provider_id      TEXT NOT NULL,
    location         TEXT NOT NULL,
    instance_type    TEXT NOT NULL,
    capacity_type    TEXT NOT NULL,
    quota_scope      TEXT,
    code             TEXT,
    message          TEXT NOT NULL,
    marked_at        {int} NOT NULL,
    until_at         {int} NOT NULL,
    marked_by        TEXT NOT NULL,
    PRIMARY KEY (offering_key, class)
);
CREATE INDEX offering_marks_until ON offering_marks (until_at);
CREATE TABLE offering_interruptions (
    offering_key     TEXT PRIMARY KEY NOT NULL,
    provider_id      TEXT NOT NULL,
    location         TEXT NOT NULL,
    instance_type    TEXT NOT NULL,
    capacity_type    TEXT NOT NULL,
    quota_scope      TEXT,
    n                {int} NOT NULL,
    last_at          {int} NOT NULL
);
"#,
];

/// The migration (1-based) creating `store_identity`; the runner writes the
/// identity row when it applies it.
pub(crate) const IDENTITY_MIGRATION: usize = 6;

/// The migrations in order, with `types` substituted.
pub(crate) fn rendered(types: Types) -> impl ExactSizeIterator<Item = String> {
    MIGRATIONS.iter().map(move |m| {
        m.replace("{int}", types.int)
            .replace("{serial_key}", types.serial_key)
    })
}

/// Splits a migration into statements (they contain no semicolons inside
/// literals, so a plain split is exact).
pub(crate) fn statements(migration: &str) -> impl Iterator<Item = &str> {
    migration
        .split(';')
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The DDL statements of a checked-in schema-3 database script, without
    /// its comments and `skyfleet_schema` bookkeeping.
    fn released_ddl(script: &str) -> Vec<String> {
        let code: String = script
            .lines()
            .filter(|l| !l.starts_with("--"))
            .map(|l| format!("{l}\n"))
            .collect();
        statements(&code)
            .filter(|s| !s.contains("skyfleet_schema"))
            .map(str::to_string)
            .collect()
    }

    fn rendered_ddl(types: Types) -> Vec<String> {
        rendered(types)
            .take(3)
            .flat_map(|m| statements(&m).map(str::to_string).collect::<Vec<_>>())
            .collect()
    }

    /// Released migrations are never edited: rendered, migrations 1 to 3 are
    /// the exact statements released databases were created with.
    #[test]
    fn released_migrations_render_unchanged() {
        let sqlite = include_str!("../../tests/fixtures/schema3-sqlite.sql");
        assert_eq!(rendered_ddl(SQLITE)[..], released_ddl(sqlite)[..]);
        #[cfg(feature = "postgres")]
        {
            let postgres = include_str!("../../tests/fixtures/schema3-postgres.sql");
            assert_eq!(rendered_ddl(POSTGRES)[..], released_ddl(postgres)[..]);
        }
    }
}
