//! Worker registrations on SQL: one row per worker, its body as JSON and a
//! version every update is conditional on.

use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Type};

use super::rows;
use super::{count_one, db_err, SqlDialect};
use crate::error::{Error, ErrorKind, Result};
use crate::model::Registration;

/// The registration queries of one SQL store.
pub(super) struct Registrations<'a, S>(pub(super) &'a S);

impl<S> Registrations<'_, S>
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
    /// Records a registration at version 1; `AlreadyExists` if the worker
    /// registered before.
    pub(super) async fn create(&self, registration: &Registration) -> Result<Registration> {
        let mut r = registration.clone();
        r.version = 1;
        let body = serde_json::to_string(&r)?;
        count_one("create_registration");
        let done = sqlx::query(
            "INSERT INTO worker_registrations (worker_id, pool_id, version, body) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(r.worker_id.as_str())
        .bind(r.pool_id.as_str())
        .bind(r.version)
        .bind(body.as_str())
        .execute(self.0.sql_pool())
        .await;
        match done {
            Ok(_) => Ok(r),
            Err(sqlx::Error::Database(d)) if d.is_unique_violation() => Err(Error::new(
                ErrorKind::AlreadyExists,
                format!("worker {} registered already", r.worker_id),
            )),
            Err(e) => Err(db_err("create registration", e)),
        }
    }

    /// A worker's registration, its statement counted under store method
    /// `op`.
    pub(super) async fn get(
        &self,
        worker_id: &str,
        op: &'static str,
    ) -> Result<Option<Registration>> {
        count_one(op);
        let row =
            sqlx::query("SELECT body, version FROM worker_registrations WHERE worker_id = $1")
                .bind(worker_id)
                .fetch_optional(self.0.sql_pool())
                .await
                .map_err(|e| db_err("get registration", e))?;
        row.as_ref().map(rows::registration).transpose()
    }

    /// Replaces a registration whose stored version is `registration.version`.
    pub(super) async fn update(&self, registration: &Registration) -> Result<Registration> {
        let mut r = registration.clone();
        r.version = registration.version + 1;
        let body = serde_json::to_string(&r)?;
        count_one("update_registration");
        let done = sqlx::query(
            "UPDATE worker_registrations SET version = $1, body = $2 \
             WHERE worker_id = $3 AND version = $4",
        )
        .bind(r.version)
        .bind(body.as_str())
        .bind(r.worker_id.as_str())
        .bind(registration.version)
        .execute(self.0.sql_pool())
        .await
        .map_err(|e| db_err("update registration", e))?;
        if S::rows_affected(&done) == 1 {
            return Ok(r);
        }
        match self
            .get(&registration.worker_id, "update_registration")
            .await?
        {
            None => Err(Error::not_found(format!(
                "registration of worker {} not found",
                registration.worker_id
            ))),
            Some(cur) => Err(Error::new(
                ErrorKind::Conflict,
                format!(
                    "registration of worker {} changed: version {} in store, {} in update",
                    registration.worker_id, cur.version, registration.version
                ),
            )),
        }
    }

    /// A pool's registrations, by worker id.
    pub(super) async fn of_pool(&self, pool_id: &str) -> Result<Vec<Registration>> {
        count_one("list_registrations");
        let found = sqlx::query(
            "SELECT body, version FROM worker_registrations WHERE pool_id = $1 \
             ORDER BY worker_id",
        )
        .bind(pool_id)
        .fetch_all(self.0.sql_pool())
        .await
        .map_err(|e| db_err("list registrations", e))?;
        found.iter().map(rows::registration).collect()
    }
}
