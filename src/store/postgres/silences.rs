//! Silences on PostgreSQL: every replica reads the few live ones to refresh its cache; adding
//! and expiring are single-row statements, so replicas need no coordination.

use deadpool_postgres::Pool;
use tokio_postgres::Row;

use super::map;
use crate::store::*;

const COLUMNS: &str = "id, matchers, starts_at, ends_at, comment, author, created_at";

fn silence_from(r: &Row) -> Result<StoredSilence, StoreError> {
    let id: i64 = r.get(0);
    let text: &str = r.get(1);
    Ok(StoredSilence {
        id,
        matchers: serde_json::from_str(text)
            .map_err(|e| StoreError::Corrupt(format!("matchers of silence {id}: {e}")))?,
        starts_at: r.get(2),
        ends_at: r.get(3),
        comment: r.get(4),
        author: r.get(5),
        created_at: r.get(6),
    })
}

pub(super) async fn add_silence(pool: &Pool, s: &NewSilence) -> Result<StoredSilence, StoreError> {
    let matchers =
        serde_json::to_string(&s.matchers).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let client = pool.get().await.map_err(map)?;
    let row = client
        .query_one(
            &format!(
                "INSERT INTO silences (v, matchers, starts_at, ends_at, comment, author, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {COLUMNS}"
            ),
            &[
                &FORMAT_VERSION,
                &matchers,
                &s.starts_at,
                &s.ends_at,
                &s.comment,
                &s.author,
                &s.created_at,
            ],
        )
        .await
        .map_err(map)?;
    silence_from(&row)
}

pub(super) async fn silences(
    pool: &Pool,
    now: i64,
    ended_since: Option<i64>,
) -> Result<Vec<StoredSilence>, StoreError> {
    let since = ended_since.map_or(now + 1, |t| t.min(now + 1));
    let client = pool.get().await.map_err(map)?;
    let stmt = client
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM silences WHERE ends_at > $1 OR ends_at >= $2 ORDER BY id"
        ))
        .await
        .map_err(map)?;
    client
        .query(&stmt, &[&now, &since])
        .await
        .map_err(map)?
        .iter()
        .map(silence_from)
        .collect()
}

pub(super) async fn expire_silence(pool: &Pool, id: i64, now: i64) -> Result<Expired, StoreError> {
    let client = pool.get().await.map_err(map)?;
    // One statement: the old end is read under the row lock the update takes.
    let row = client
        .query_opt(
            "WITH old AS (SELECT id, ends_at FROM silences WHERE id = $1 FOR UPDATE),
                  upd AS (UPDATE silences s SET ends_at = $2 FROM old
                          WHERE s.id = old.id AND old.ends_at > $2 RETURNING s.id)
             SELECT old.ends_at, EXISTS (SELECT 1 FROM upd) FROM old",
            &[&id, &now],
        )
        .await
        .map_err(map)?;
    Ok(match row {
        None => Expired::Unknown,
        Some(r) if r.get::<_, bool>(1) => Expired::Now,
        Some(r) => Expired::Already(r.get(0)),
    })
}
