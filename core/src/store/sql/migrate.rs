//! The migration runner: applies the migrations a database lacks, in one
//! transaction, and records each in `skyfleet_schema`.

use sqlx::{Database, Decode, Encode, Executor, IntoArguments, Pool, Row, Type};

use super::{db_err, SqlDialect};
use crate::error::{Error, Result};
use crate::store::migrations;

/// Brings `pool`'s schema up to date. A database already at the latest
/// version is left untouched (no DDL runs); one newer than this build is an
/// error.
pub(crate) async fn migrate<D: SqlDialect>(pool: &Pool<D::Db>) -> Result<()>
where
    for<'c> &'c mut <D::Db as Database>::Connection: Executor<'c, Database = D::Db>,
    for<'q> <D::Db as Database>::Arguments<'q>: IntoArguments<'q, D::Db>,
    for<'q> i64: Encode<'q, D::Db> + Decode<'q, D::Db> + Type<D::Db>,
    for<'q> &'q str: Encode<'q, D::Db> + Type<D::Db>,
    usize: sqlx::ColumnIndex<<D::Db as Database>::Row>,
{
    let err = |e| db_err("migration", e);
    let mut tx = pool.begin().await.map_err(err)?;
    if !D::MIGRATION_LOCK.is_empty() {
        sqlx::query(D::MIGRATION_LOCK)
            .execute(&mut *tx)
            .await
            .map_err(|e| db_err("migration lock", e))?;
    }
    sqlx::query("CREATE TABLE IF NOT EXISTS skyfleet_schema (version INTEGER NOT NULL)")
        .execute(&mut *tx)
        .await
        .map_err(err)?;
    let row = sqlx::query("SELECT CAST(COALESCE(MAX(version), 0) AS BIGINT) FROM skyfleet_schema")
        .fetch_one(&mut *tx)
        .await
        .map_err(err)?;
    let applied: i64 = row.try_get(0).map_err(err)?;
    let applied = usize::try_from(applied).unwrap_or(0);
    let all = migrations::rendered(D::TYPES);
    if applied > all.len() {
        return Err(Error::invalid_config(
            "store",
            format!(
                "database schema version {applied} is newer than this skyfleet ({})",
                all.len()
            ),
        ));
    }
    for (i, m) in all.enumerate().skip(applied) {
        for stmt in migrations::statements(&m) {
            sqlx::query(stmt)
                .execute(&mut *tx)
                .await
                .map_err(|e| db_err(&format!("migration {}", i + 1), e))?;
        }
        sqlx::query("INSERT INTO skyfleet_schema (version) VALUES (CAST($1 AS INTEGER))")
            .bind((i + 1) as i64)
            .execute(&mut *tx)
            .await
            .map_err(err)?;
        if i + 1 == migrations::IDENTITY_MIGRATION {
            write_identity::<D>(&mut tx).await?;
        }
    }
    tx.commit().await.map_err(err)
}

/// Writes the store's identity (a random id, and now as its creation time)
/// in the transaction creating `store_identity`. A database upgraded from
/// an older schema gets its identity then: to the sweeper it is a new
/// store, which holds deletions back for one grace period.
async fn write_identity<D: SqlDialect>(tx: &mut sqlx::Transaction<'_, D::Db>) -> Result<()>
where
    for<'c> &'c mut <D::Db as Database>::Connection: Executor<'c, Database = D::Db>,
    for<'q> <D::Db as Database>::Arguments<'q>: IntoArguments<'q, D::Db>,
    for<'q> i64: Encode<'q, D::Db> + Type<D::Db>,
    for<'q> &'q str: Encode<'q, D::Db> + Type<D::Db>,
{
    let id = uuid::Uuid::new_v4().simple().to_string();
    let now = crate::clock::to_millis(time::OffsetDateTime::now_utc());
    sqlx::query("INSERT INTO store_identity (singleton, store_id, created_at) VALUES (1, $1, $2)")
        .bind(id.as_str())
        .bind(now)
        .execute(&mut **tx)
        .await
        .map_err(|e| db_err("writing the store identity", e))?;
    Ok(())
}
