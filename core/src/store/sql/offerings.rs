//! The offering cache on SQL: marks upserted in one statement that keeps
//! the later `until` (never shortened), rows checked before they are
//! trusted, and interruptions counted per offering.

use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Row, Type};
use time::OffsetDateTime;

use super::{count_one, db_err, SqlDialect};
use crate::clock::{from_millis, to_millis};
use crate::error::{Error, Result};
use crate::offering::{CapacityType, Offering};
use crate::store::offerings::{InterruptionCount, OfferingMark, RawMark};

/// The columns [`raw_mark`] reads.
const MARK_COLUMNS: &str = "provider_id, location, instance_type, capacity_type, quota_scope, \
     class, code, message, marked_at, until_at, marked_by";

/// The offering cache queries of one SQL store.
pub(super) struct Offerings<'a, S>(pub(super) &'a S);

impl<S> Offerings<'_, S>
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
    /// Upserts a mark (validated first); returns it as stored.
    pub(super) async fn mark(&self, mark: &OfferingMark) -> Result<OfferingMark> {
        mark.validate()?;
        let key = mark.key();
        let r = RawMark::of(mark);
        count_one("mark_offering");
        sqlx::query(
            "INSERT INTO offering_marks (offering_key, class, provider_id, location, \
             instance_type, capacity_type, quota_scope, code, message, marked_at, until_at, \
             marked_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
             ON CONFLICT (offering_key, class) DO UPDATE SET \
             quota_scope = excluded.quota_scope, code = excluded.code, \
             message = excluded.message, marked_by = excluded.marked_by, \
             marked_at = CASE WHEN excluded.marked_at > offering_marks.marked_at \
               THEN excluded.marked_at ELSE offering_marks.marked_at END, \
             until_at = CASE WHEN excluded.until_at > offering_marks.until_at \
               THEN excluded.until_at ELSE offering_marks.until_at END",
        )
        .bind(key.as_str())
        .bind(r.class.as_str())
        .bind(r.provider_id.as_str())
        .bind(r.location.as_str())
        .bind(r.instance_type.as_str())
        .bind(r.capacity_type.as_str())
        .bind(r.quota_scope.as_deref())
        .bind(r.code.as_deref())
        .bind(r.message.as_str())
        .bind(to_millis(r.marked_at))
        .bind(to_millis(r.until))
        .bind(r.marked_by.as_str())
        .execute(self.0.sql_pool())
        .await
        .map_err(|e| db_err("mark an offering", e))?;
        let sql = format!(
            "SELECT {MARK_COLUMNS} FROM offering_marks WHERE offering_key = $1 AND class = $2"
        );
        count_one("mark_offering");
        let row = sqlx::query(&sql)
            .bind(key.as_str())
            .bind(r.class.as_str())
            .fetch_one(self.0.sql_pool())
            .await
            .map_err(|e| db_err("read back an offering mark", e))?;
        raw_mark(&row)?.trusted().ok_or_else(|| {
            Error::internal(format!(
                "store: the mark of {key} read back is not valid (refused)"
            ))
        })
    }

    /// The marks live at `now`, by key and class; bad rows skipped.
    pub(super) async fn live(&self, now: OffsetDateTime) -> Result<Vec<OfferingMark>> {
        let sql = format!(
            "SELECT {MARK_COLUMNS} FROM offering_marks WHERE until_at > $1 \
             ORDER BY offering_key, class"
        );
        count_one("live_offering_marks");
        let found = sqlx::query(&sql)
            .bind(to_millis(now))
            .fetch_all(self.0.sql_pool())
            .await
            .map_err(|e| db_err("list offering marks", e))?;
        let mut out = Vec::new();
        for row in &found {
            if let Some(m) = raw_mark(row)?.trusted() {
                out.push(m);
            }
        }
        Ok(out)
    }

    /// Deletes marks whose `until` is at or before `now`.
    pub(super) async fn delete_expired(&self, now: OffsetDateTime) -> Result<u64> {
        count_one("delete_expired_offering_marks");
        let r = sqlx::query("DELETE FROM offering_marks WHERE until_at <= $1")
            .bind(to_millis(now))
            .execute(self.0.sql_pool())
            .await
            .map_err(|e| db_err("delete expired offering marks", e))?;
        Ok(S::rows_affected(&r))
    }

    /// Counts one interruption of `offering` at `at`.
    pub(super) async fn record_interruption(
        &self,
        offering: &Offering,
        at: OffsetDateTime,
    ) -> Result<InterruptionCount> {
        let key = offering.key();
        const OP: &str = "record_interruption";
        count_one(OP);
        sqlx::query(
            "INSERT INTO offering_interruptions (offering_key, provider_id, location, \
             instance_type, capacity_type, quota_scope, n, last_at) \
             VALUES ($1, $2, $3, $4, $5, $6, 1, $7) \
             ON CONFLICT (offering_key) DO UPDATE SET n = offering_interruptions.n + 1, \
             last_at = CASE WHEN excluded.last_at > offering_interruptions.last_at \
               THEN excluded.last_at ELSE offering_interruptions.last_at END",
        )
        .bind(key.as_str())
        .bind(offering.provider_id.as_str())
        .bind(offering.location.as_str())
        .bind(offering.instance_type.as_str())
        .bind(offering.capacity_type.as_str())
        .bind(offering.quota_scope.as_deref())
        .bind(to_millis(at))
        .execute(self.0.sql_pool())
        .await
        .map_err(|e| db_err("record an interruption", e))?;
        self.counts(Some(&key), OP)
            .await?
            .pop()
            .ok_or_else(|| Error::internal(format!("store: interruptions of {key} not found")))
    }

    /// Interruption counts (of one offering key, or all), by key; rows with
    /// an unknown capacity type are skipped. The statement is counted under
    /// store method `op`.
    pub(super) async fn counts(
        &self,
        key: Option<&str>,
        op: &'static str,
    ) -> Result<Vec<InterruptionCount>> {
        count_one(op);
        let mut sql = "SELECT provider_id, location, instance_type, capacity_type, quota_scope, \
             n, last_at FROM offering_interruptions"
            .to_string();
        if key.is_some() {
            sql.push_str(" WHERE offering_key = $1");
        }
        sql.push_str(" ORDER BY offering_key");
        let mut q = sqlx::query(&sql);
        if let Some(k) = key {
            q = q.bind(k);
        }
        let found = q
            .fetch_all(self.0.sql_pool())
            .await
            .map_err(|e| db_err("list interruption counts", e))?;
        let get = |e: sqlx::Error| db_err("reading an interruption count", e);
        let mut out = Vec::new();
        for row in &found {
            let ct: String = row.try_get("capacity_type").map_err(get)?;
            let Some(capacity_type) = CapacityType::from_name(&ct) else {
                continue;
            };
            let n: i64 = row.try_get("n").map_err(get)?;
            out.push(InterruptionCount {
                offering: Offering {
                    provider_id: row.try_get("provider_id").map_err(get)?,
                    location: row.try_get("location").map_err(get)?,
                    instance_type: row.try_get("instance_type").map_err(get)?,
                    capacity_type,
                    quota_scope: row.try_get("quota_scope").map_err(get)?,
                },
                count: u64::try_from(n).unwrap_or(0),
                last_at: from_millis(row.try_get("last_at").map_err(get)?),
            });
        }
        Ok(out)
    }
}

/// A mark row's fields, untrusted.
fn raw_mark<R: Row>(row: &R) -> Result<RawMark>
where
    &'static str: ColumnIndex<R>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
{
    let get = |e: sqlx::Error| db_err("reading an offering mark", e);
    Ok(RawMark {
        provider_id: row.try_get("provider_id").map_err(get)?,
        location: row.try_get("location").map_err(get)?,
        instance_type: row.try_get("instance_type").map_err(get)?,
        capacity_type: row.try_get("capacity_type").map_err(get)?,
        quota_scope: row.try_get("quota_scope").map_err(get)?,
        class: row.try_get("class").map_err(get)?,
        code: row.try_get("code").map_err(get)?,
        message: row.try_get("message").map_err(get)?,
        marked_at: from_millis(row.try_get("marked_at").map_err(get)?),
        until: from_millis(row.try_get("until_at").map_err(get)?),
        marked_by: row.try_get("marked_by").map_err(get)?,
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::store::{SqliteStore, WorkerStore};

    /// Rows written behind the store's back with an unknown capacity type,
    /// an unknown class or a TTL out of range are skipped, never trusted;
    /// a good row beside them is listed.
    #[tokio::test]
    async fn bad_rows_are_refused_when_read() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("marks.db");
        let s = SqliteStore::open(path.to_str().expect("utf-8 path"))
            .await
            .expect("open");
        let now = from_millis(1_750_000_000_000);
        let at = to_millis(now);
        let hour = 3_600_000;
        let rows = [
            ("a/z/t/spot", "capacity", "spot", at, at + hour),
            ("b/z/t/warm", "capacity", "warm", at, at + hour),
            ("c/z/t/spot", "sunspots", "spot", at, at + hour),
            ("d/z/t/spot", "capacity", "spot", at, at + 400 * 24 * hour),
            ("e/z/t/spot", "quota", "spot", at, at + 10),
        ];
        for (key, class, ct, marked, until) in rows {
            let provider = key.split('/').next().unwrap_or_default();
            sqlx::query(
                "INSERT INTO offering_marks (offering_key, class, provider_id, location, \
                 instance_type, capacity_type, quota_scope, code, message, marked_at, until_at, \
                 marked_by) VALUES ($1, $2, $3, 'z', 't', $4, NULL, NULL, 'm', $5, $6, 'r')",
            )
            .bind(key)
            .bind(class)
            .bind(provider)
            .bind(ct)
            .bind(marked)
            .bind(until)
            .execute(s.sql_pool())
            .await
            .expect("insert raw row");
        }
        let live = s
            .live_offering_marks(now + Duration::from_millis(1))
            .await
            .expect("live marks");
        let keys: Vec<String> = live.iter().map(OfferingMark::key).collect();
        assert_eq!(keys, vec!["a/z/t/spot".to_string()]);
    }
}
