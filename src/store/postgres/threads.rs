//! Slack threads on PostgreSQL: one row per key, written only under the delivery's lease
//! (the lease check and the upsert are one statement, so a replica that lost its lease
//! changes nothing).

use deadpool_postgres::Pool;
use tokio_postgres::Row;

use super::map;
use crate::store::*;

const COLUMNS: &str = "destination, sender_key, template_code, channel, root_ts, status, status_at,
                       shown, applied, created_at, updated_at";

fn thread_from(r: &Row) -> Result<Thread, StoreError> {
    let key = ThreadKey {
        destination: r.get(0),
        sender_key: r.get(1),
        template_code: r.get(2),
    };
    let shown: String = r.get(7);
    let shown = serde_json::from_str(&shown).map_err(|e| {
        StoreError::Corrupt(format!("thread {}: shown comments: {e}", key.display()))
    })?;
    Ok(Thread {
        key,
        channel: r.get(3),
        root_ts: r.get(4),
        status: r.get(5),
        status_at: r.get(6),
        shown,
        applied: r.get(8),
        created_at: r.get(9),
        updated_at: r.get(10),
    })
}

pub(super) async fn thread(pool: &Pool, key: &ThreadKey) -> Result<Option<Thread>, StoreError> {
    let client = pool.get().await.map_err(map)?;
    let row = client
        .query_opt(
            &format!(
                "SELECT {COLUMNS} FROM threads
                 WHERE destination = $1 AND sender_key = $2 AND template_code = $3"
            ),
            &[&key.destination, &key.sender_key, &key.template_code],
        )
        .await
        .map_err(map)?;
    row.as_ref().map(thread_from).transpose()
}

pub(super) async fn save_thread(
    pool: &Pool,
    lease: &Lease,
    t: &Thread,
) -> Result<bool, StoreError> {
    let client = pool.get().await.map_err(map)?;
    let shown = serde_json::to_string(&t.shown).unwrap_or_else(|_| "[]".into());
    let n = client
        .execute(
            &format!(
                "INSERT INTO threads ({COLUMNS})
                 SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11
                 WHERE EXISTS (SELECT 1 FROM deliveries
                               WHERE id = $12 AND state = 'leased' AND lease_token = $13)
                 ON CONFLICT (destination, sender_key, template_code) DO UPDATE SET
                     channel = excluded.channel, root_ts = excluded.root_ts,
                     status = excluded.status, status_at = excluded.status_at,
                     shown = excluded.shown, applied = excluded.applied,
                     updated_at = excluded.updated_at"
            ),
            &[
                &t.key.destination,
                &t.key.sender_key,
                &t.key.template_code,
                &t.channel,
                &t.root_ts,
                &t.status,
                &t.status_at,
                &shown,
                &t.applied,
                &t.created_at,
                &t.updated_at,
                &lease.delivery.id,
                &lease.token,
            ],
        )
        .await
        .map_err(map)?;
    Ok(n > 0)
}

pub(super) async fn threads(
    pool: &Pool,
    destination: Option<&str>,
) -> Result<Vec<Thread>, StoreError> {
    let client = pool.get().await.map_err(map)?;
    let rows = client
        .query(
            &format!(
                "SELECT {COLUMNS} FROM threads WHERE $1::text IS NULL OR destination = $1
                 ORDER BY destination, sender_key, template_code"
            ),
            &[&destination],
        )
        .await
        .map_err(map)?;
    rows.iter().map(thread_from).collect()
}

pub(super) async fn forget_thread(pool: &Pool, key: &ThreadKey) -> Result<bool, StoreError> {
    let client = pool.get().await.map_err(map)?;
    let n = client
        .execute(
            "DELETE FROM threads WHERE destination = $1 AND sender_key = $2 AND template_code = $3",
            &[&key.destination, &key.sender_key, &key.template_code],
        )
        .await
        .map_err(map)?;
    Ok(n > 0)
}

pub(super) async fn prune_threads(pool: &Pool, before: i64) -> Result<usize, StoreError> {
    let client = pool.get().await.map_err(map)?;
    let n = client
        .execute(
            &format!(
                "DELETE FROM threads WHERE (destination, sender_key, template_code) IN
                   (SELECT destination, sender_key, template_code FROM threads
                    WHERE updated_at < $1 LIMIT {})",
                super::PRUNE_CHUNK
            ),
            &[&before],
        )
        .await
        .map_err(map)?;
    Ok(usize::try_from(n).unwrap_or(usize::MAX))
}
