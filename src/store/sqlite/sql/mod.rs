//! The SQL behind [`super::SqliteStore`]: one function per store operation, each given the
//! connection (inside the writer's transaction for writes). The inbox, the digest groups and
//! the outbox each have their own file; this one holds the schema, shared readers and pruning.

mod groups;
mod inbox;
mod outbox;

use rusqlite::{Connection, OptionalExtension, params};

pub(super) use groups::*;
pub(super) use inbox::*;
pub(super) use outbox::*;

use super::SCHEMA_VERSION;
use crate::bizmessage::Envelope;
use crate::store::*;

/// Rows deleted per table per prune call, so pruning never holds the write lock for long.
pub(super) const PRUNE_CHUNK: usize = 5000;

pub(super) fn init_schema(c: &Connection) -> Result<(), StoreError> {
    c.execute_batch(include_str!("../schema.sql"))?;
    let found: Option<String> = c
        .query_row(
            "SELECT value FROM meta WHERE key = 'schema_version'",
            [],
            |r| r.get(0),
        )
        .optional()?;
    match found.map(|v| v.parse::<i64>()) {
        None => {
            c.execute(
                "INSERT INTO meta (key, value) VALUES ('schema_version', ?1), ('dispatch_cursor', '0')",
                [SCHEMA_VERSION.to_string()],
            )?;
        }
        Some(Ok(v)) if v > SCHEMA_VERSION => {
            return Err(StoreError::NewerSchema {
                found: v,
                known: SCHEMA_VERSION,
            });
        }
        Some(Ok(_)) => {}
        Some(Err(_)) => {
            return Err(StoreError::Corrupt(
                "meta.schema_version is not a number".into(),
            ));
        }
    }
    Ok(())
}

fn cursor(c: &Connection) -> Result<i64, StoreError> {
    let v: String = c
        .prepare_cached("SELECT value FROM meta WHERE key = 'dispatch_cursor'")?
        .query_row([], |r| r.get(0))?;
    v.parse()
        .map_err(|_| StoreError::Corrupt("meta.dispatch_cursor is not a number".into()))
}

/// The longest prefix of `s` of at most `max` bytes that ends on a character boundary.
fn clip(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Columns read by [`hooks_from`], from `hooks h`.
const HOOK_COLUMNS: &str = "h.id, h.received_at, h.raw, h.envelope";

/// Reads hooks; the hooks of one POST share their envelope text, which is parsed once.
fn hooks_from(rows: &mut rusqlite::Rows<'_>) -> Result<Vec<StoredHook>, StoreError> {
    let mut last: Option<(String, Envelope)> = None;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        let row: i64 = r.get(0)?;
        let text: String = r.get(3)?;
        let envelope = match &last {
            Some((t, e)) if *t == text => e.clone(),
            _ => {
                let e: Envelope = serde_json::from_str(&text)
                    .map_err(|e| StoreError::Corrupt(format!("envelope of hook row {row}: {e}")))?;
                last = Some((text, e.clone()));
                e
            }
        };
        out.push(StoredHook {
            row,
            received_at: r.get(1)?,
            raw: r.get(2)?,
            envelope,
        });
    }
    Ok(out)
}

pub(super) fn prune(
    c: &Connection,
    seen_before: i64,
    delivered_before: i64,
) -> Result<PruneStats, StoreError> {
    let chunk = PRUNE_CHUNK as i64;
    let cursor = cursor(c)?;
    let seen = c.execute(
        "DELETE FROM seen WHERE key IN (SELECT key FROM seen WHERE seen_at < ?1 LIMIT ?2)",
        params![seen_before, chunk],
    )?;
    let deliveries = c.execute(
        "DELETE FROM deliveries WHERE id IN
           (SELECT id FROM deliveries WHERE state = 'done' AND done_at < ?1 LIMIT ?2)",
        params![delivered_before, chunk],
    )?;
    // The newest hook always stays: hook ids must never be reused below the dispatch cursor.
    let hooks = c.execute(
        "DELETE FROM hooks WHERE id IN (SELECT h.id FROM hooks h
           WHERE h.id <= ?1 AND h.id < (SELECT MAX(id) FROM hooks) AND h.received_at < ?2
             AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.hook_row = h.id)
             AND NOT EXISTS (SELECT 1 FROM group_members m WHERE m.hook_row = h.id)
           LIMIT ?3)",
        params![cursor, delivered_before, chunk],
    )?;
    c.execute(
        "DELETE FROM digests WHERE id IN (SELECT g.id FROM digests g WHERE g.created_at < ?1
           AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.digest_id = g.id) LIMIT ?2)",
        params![delivered_before, chunk],
    )?;
    c.execute(
        "DELETE FROM groups WHERE pending = 0 AND last_flush_at < ?1",
        params![delivered_before],
    )?;
    let rejected = c.execute(
        "DELETE FROM rejected WHERE id IN (SELECT id FROM rejected WHERE received_at < ?1 LIMIT ?2)",
        params![seen_before, chunk],
    )?;
    Ok(PruneStats {
        seen,
        hooks,
        deliveries,
        rejected,
    })
}

pub(super) fn ping(c: &Connection) -> Result<(), StoreError> {
    c.execute(
        "INSERT INTO meta (key, value) VALUES ('ping', strftime('%s', 'now'))
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        [],
    )?;
    Ok(())
}
