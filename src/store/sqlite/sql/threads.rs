//! Slack threads on SQLite: one row per key, written only under the delivery's lease.

use rusqlite::{Connection, OptionalExtension, Row, named_params, params};

use crate::store::*;

const COLUMNS: &str = "destination, sender_key, template_code, channel, root_ts, status, status_at,
                       shown, applied, created_at, updated_at";

fn thread_from(r: &Row<'_>) -> rusqlite::Result<(Thread, String)> {
    Ok((
        Thread {
            key: ThreadKey {
                destination: r.get(0)?,
                sender_key: r.get(1)?,
                template_code: r.get(2)?,
            },
            channel: r.get(3)?,
            root_ts: r.get(4)?,
            status: r.get(5)?,
            status_at: r.get(6)?,
            shown: Vec::new(),
            applied: r.get(8)?,
            created_at: r.get(9)?,
            updated_at: r.get(10)?,
        },
        r.get(7)?,
    ))
}

/// The row with its `shown` list read from JSON.
fn finish((mut thread, shown): (Thread, String)) -> Result<Thread, StoreError> {
    thread.shown = serde_json::from_str(&shown).map_err(|e| {
        StoreError::Corrupt(format!(
            "thread {}: shown comments: {e}",
            thread.key.display()
        ))
    })?;
    Ok(thread)
}

pub(in crate::store::sqlite) fn thread(
    c: &Connection,
    key: &ThreadKey,
) -> Result<Option<Thread>, StoreError> {
    let row = c
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM threads
             WHERE destination = ?1 AND sender_key = ?2 AND template_code = ?3"
        ))?
        .query_row(
            params![key.destination, key.sender_key, key.template_code],
            thread_from,
        )
        .optional()?;
    row.map(finish).transpose()
}

pub(in crate::store::sqlite) fn save_thread(
    c: &Connection,
    lease: &Lease,
    t: &Thread,
) -> Result<bool, StoreError> {
    let shown = serde_json::to_string(&t.shown).unwrap_or_else(|_| "[]".into());
    let n = c
        .prepare_cached(&format!(
            "INSERT INTO threads ({COLUMNS})
             SELECT :dest, :sender, :code, :channel, :ts, :status, :status_at, :shown, :applied,
                    :created, :updated
             WHERE EXISTS (SELECT 1 FROM deliveries
                           WHERE id = :id AND state = 'leased' AND lease_token = :token)
             ON CONFLICT (destination, sender_key, template_code) DO UPDATE SET
                 channel = excluded.channel, root_ts = excluded.root_ts, status = excluded.status,
                 status_at = excluded.status_at, shown = excluded.shown, applied = excluded.applied,
                 updated_at = excluded.updated_at"
        ))?
        .execute(named_params! {
            ":dest": t.key.destination, ":sender": t.key.sender_key, ":code": t.key.template_code,
            ":channel": t.channel, ":ts": t.root_ts, ":status": t.status, ":status_at": t.status_at,
            ":shown": shown, ":applied": t.applied, ":created": t.created_at,
            ":updated": t.updated_at, ":id": lease.delivery.id, ":token": lease.token,
        })?;
    Ok(n > 0)
}

pub(in crate::store::sqlite) fn threads(
    c: &Connection,
    destination: Option<&str>,
) -> Result<Vec<Thread>, StoreError> {
    let mut stmt = c.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM threads WHERE ?1 IS NULL OR destination = ?1
         ORDER BY destination, sender_key, template_code"
    ))?;
    let rows = stmt
        .query_map(params![destination], thread_from)?
        .collect::<Result<Vec<_>, _>>()?;
    rows.into_iter().map(finish).collect()
}

pub(in crate::store::sqlite) fn forget_thread(
    c: &Connection,
    key: &ThreadKey,
) -> Result<bool, StoreError> {
    let n = c
        .prepare_cached(
            "DELETE FROM threads WHERE destination = ?1 AND sender_key = ?2 AND template_code = ?3",
        )?
        .execute(params![key.destination, key.sender_key, key.template_code])?;
    Ok(n > 0)
}

pub(in crate::store::sqlite) fn prune_threads(
    c: &Connection,
    before: i64,
) -> Result<usize, StoreError> {
    Ok(c.prepare_cached(&format!(
        "DELETE FROM threads WHERE (destination, sender_key, template_code) IN
           (SELECT destination, sender_key, template_code FROM threads WHERE updated_at < ?1 LIMIT {})",
        super::PRUNE_CHUNK
    ))?
    .execute(params![before])?)
}
