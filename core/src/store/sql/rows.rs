//! Decoding rows into worker records and pool errors.

use sqlx::{ColumnIndex, Decode, Row, Type};

use super::db_err;
use crate::clock::from_millis;
use crate::error::{Error, ErrorKind, Result};
use crate::model::{Phase, Registration, Worker};
use crate::store::{PoolError, PoolErrorGroup};

/// The columns [`worker`] reads, in a `SELECT` or `RETURNING` list.
pub(super) const WORKER_COLUMNS: &str =
    "body, phase, next_check_at, version, lease_owner, lease_expires_at";

/// The columns [`pool_error`] reads.
pub(super) const POOL_ERROR_COLUMNS: &str =
    "pool_id, kind, title, message, launch_config_id, reported_at";

/// Rebuilds a worker from its JSON body and the authoritative columns.
pub(super) fn worker<R: Row>(row: &R) -> Result<Worker>
where
    &'static str: ColumnIndex<R>,
    for<'r> &'r str: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
{
    let get = |e: sqlx::Error| db_err("reading a worker row", e);
    let body: &str = row.try_get("body").map_err(get)?;
    let mut w: Worker = serde_json::from_str(body)
        .map_err(|e| Error::internal(format!("store: unreadable worker record: {e}")))?;
    w.phase = Phase::parse(row.try_get("phase").map_err(get)?)?;
    w.next_check_at = from_millis(row.try_get("next_check_at").map_err(get)?);
    w.version = row.try_get("version").map_err(get)?;
    w.lease_owner = row.try_get("lease_owner").map_err(get)?;
    w.lease_expires_at = row
        .try_get::<Option<i64>, _>("lease_expires_at")
        .map_err(get)?
        .map(from_millis);
    Ok(w)
}

/// Rebuilds a registration from its JSON body and version column.
pub(super) fn registration<R: Row>(row: &R) -> Result<Registration>
where
    &'static str: ColumnIndex<R>,
    for<'r> &'r str: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
{
    let get = |e: sqlx::Error| db_err("reading a registration row", e);
    let body: &str = row.try_get("body").map_err(get)?;
    let mut r: Registration = serde_json::from_str(body)
        .map_err(|e| Error::internal(format!("store: unreadable registration: {e}")))?;
    r.version = row.try_get("version").map_err(get)?;
    Ok(r)
}

/// Reads a pool error row.
pub(super) fn pool_error<R: Row>(row: &R) -> Result<PoolError>
where
    &'static str: ColumnIndex<R>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
{
    let get = |e: sqlx::Error| db_err("reading a pool error row", e);
    Ok(PoolError {
        pool_id: row.try_get("pool_id").map_err(get)?,
        kind: ErrorKind::from_name(&row.try_get::<String, _>("kind").map_err(get)?),
        title: row.try_get("title").map_err(get)?,
        message: row.try_get("message").map_err(get)?,
        launch_config_id: row.try_get("launch_config_id").map_err(get)?,
        reported_at: from_millis(row.try_get("reported_at").map_err(get)?),
    })
}

/// Reads a row of counted pool errors (`pool_id`, `kind`,
/// `launch_config_id`, `n`, `last_at`).
pub(super) fn pool_error_group<R: Row>(row: &R) -> Result<PoolErrorGroup>
where
    &'static str: ColumnIndex<R>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
{
    let get = |e: sqlx::Error| db_err("reading a pool error count", e);
    let n: i64 = row.try_get("n").map_err(get)?;
    Ok(PoolErrorGroup {
        pool_id: row.try_get("pool_id").map_err(get)?,
        kind: row.try_get("kind").map_err(get)?,
        launch_config_id: row.try_get("launch_config_id").map_err(get)?,
        count: u64::try_from(n).unwrap_or(0),
        last_at: from_millis(row.try_get("last_at").map_err(get)?),
    })
}
