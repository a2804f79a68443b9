//! The inbox: storing received hooks with dedup, and handing them to the dispatcher once.

use rusqlite::{Connection, params};

use super::{HOOK_COLUMNS, clip, cursor, hooks_from, save_timing};
use crate::digest;
use crate::store::*;

/// Rejected hooks are kept for inspection up to this many bytes each.
const MAX_REJECTED_RAW: usize = 64 * 1024;

pub(in crate::store::sqlite) fn ingest(
    c: &Connection,
    post: &NewPost,
    dedup_cutoff: i64,
) -> Result<IngestOutcome, StoreError> {
    let mut out = IngestOutcome {
        rejected: post.rejected.len(),
        ..IngestOutcome::default()
    };
    if !post.rejected.is_empty() {
        let mut stmt = c.prepare_cached(
            "INSERT INTO rejected (received_at, hooks_id, position, reason, raw) VALUES (?1, ?2, ?3, ?4, ?5)",
        )?;
        for r in &post.rejected {
            stmt.execute(params![
                post.received_at,
                post.hooks_id,
                r.position as i64,
                r.reason,
                clip(&r.raw, MAX_REJECTED_RAW)
            ])?;
        }
    }
    let mut seen = c.prepare_cached(
        "INSERT INTO seen (key, seen_at) VALUES (?1, ?2)
         ON CONFLICT (key) DO UPDATE SET seen_at = excluded.seen_at WHERE seen.seen_at < ?3",
    )?;
    let mut insert = c.prepare_cached(
        "INSERT INTO hooks (v, received_at, envelope, raw) VALUES (?1, ?2, ?3, ?4)",
    )?;
    for h in &post.hooks {
        let fresh = seen.execute(params![h.dedup_key, post.received_at, dedup_cutoff])? == 1;
        out.fresh.push(fresh);
        if !fresh {
            out.duplicates += 1;
            continue;
        }
        insert.execute(params![
            FORMAT_VERSION,
            post.received_at,
            post.envelope_json,
            h.raw
        ])?;
        out.accepted += 1;
    }
    Ok(out)
}

pub(in crate::store::sqlite) fn undispatched(
    c: &Connection,
    limit: usize,
) -> Result<Vec<StoredHook>, StoreError> {
    let from = cursor(c)?;
    let mut stmt = c.prepare_cached(&format!(
        "SELECT {HOOK_COLUMNS} FROM hooks h WHERE h.id > ?1 ORDER BY h.id LIMIT ?2"
    ))?;
    let mut rows = stmt.query(params![from, limit as i64])?;
    hooks_from(&mut rows)
}

pub(in crate::store::sqlite) fn commit_dispatch(
    c: &Connection,
    batch: &DispatchBatch,
) -> Result<(), StoreError> {
    let current = cursor(c)?;
    if batch.upto <= current {
        return Err(StoreError::Corrupt(format!(
            "dispatch of hooks up to {} after the cursor reached {current} (two dispatchers on one store?)",
            batch.upto
        )));
    }
    for d in &batch.deliveries {
        super::insert_delivery(c, d, None)?;
    }
    for m in &batch.members {
        let added = c
            .prepare_cached(
                "INSERT OR IGNORE INTO group_members
                   (route, group_key, hook_row, received_at, kind, result_code, message_type, sender_key)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?
            .execute(params![
                m.route,
                m.group_key,
                m.hook_row,
                m.joined_at,
                m.kind.as_str(),
                m.result_code,
                m.message_type,
                m.sender_key
            ])?;
        if added == 0 {
            continue;
        }
        let existing = super::group_timing(c, &m.route, &m.group_key)?;
        let timing = digest::on_join(
            existing,
            m.joined_at,
            m.settings.wait_ms,
            m.settings.interval_ms,
        );
        let settings =
            serde_json::to_string(&m.settings).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        save_timing(c, &m.route, &m.group_key, &timing, Some(&settings))?;
    }
    c.prepare_cached("UPDATE meta SET value = ?1 WHERE key = 'dispatch_cursor'")?
        .execute([batch.upto.to_string()])?;
    Ok(())
}
