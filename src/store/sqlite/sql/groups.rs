//! Digest groups: timing, what a due group counts (SQL aggregates, so memory does not grow
//! with the group), and the flush that removes exactly the members it covers.

use rusqlite::{Connection, OptionalExtension, Row, params};

use super::{HOOK_COLUMNS, hooks_from};
use crate::digest::{self, Tally};
use crate::store::*;

fn timing_from(r: &Row<'_>) -> rusqlite::Result<GroupTiming> {
    Ok(GroupTiming {
        started_at: r.get(0)?,
        total: r.get(1)?,
        pending: r.get(2)?,
        last_flush_at: r.get(3)?,
        next_flush_at: r.get(4)?,
    })
}

pub(in crate::store::sqlite) fn group_timing(
    c: &Connection,
    route: &str,
    key: &str,
) -> Result<Option<GroupTiming>, StoreError> {
    Ok(c.prepare_cached(
        "SELECT started_at, total, pending, last_flush_at, next_flush_at FROM groups
         WHERE route = ?1 AND group_key = ?2",
    )?
    .query_row(params![route, key], timing_from)
    .optional()?)
}

pub(in crate::store::sqlite) fn save_timing(
    c: &Connection,
    route: &str,
    key: &str,
    t: &GroupTiming,
    settings: Option<&str>,
) -> Result<(), StoreError> {
    c.prepare_cached(
        "INSERT INTO groups (route, group_key, started_at, total, pending, last_flush_at, next_flush_at, settings)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, COALESCE(?8, '{}'))
         ON CONFLICT (route, group_key) DO UPDATE SET
           started_at = excluded.started_at, total = excluded.total, pending = excluded.pending,
           last_flush_at = excluded.last_flush_at, next_flush_at = excluded.next_flush_at,
           settings = COALESCE(?8, groups.settings)",
    )?
    .execute(params![route, key, t.started_at, t.total, t.pending, t.last_flush_at, t.next_flush_at, settings])?;
    Ok(())
}

pub(in crate::store::sqlite) fn next_flush_at(c: &Connection) -> Result<Option<i64>, StoreError> {
    Ok(
        c.prepare_cached("SELECT MIN(next_flush_at) FROM groups WHERE pending > 0")?
            .query_row([], |r| r.get(0))?,
    )
}

/// `(value, count)` of one column over a group's members, by count descending, ties by value.
fn breakdown(
    c: &Connection,
    column: &str,
    route: &str,
    key: &str,
    upto: i64,
) -> Result<Vec<(Option<String>, usize)>, StoreError> {
    let mut stmt = c.prepare_cached(&format!(
        "SELECT {column}, COUNT(*) AS n FROM group_members
         WHERE route = ?1 AND group_key = ?2 AND hook_row <= ?3
         GROUP BY {column} ORDER BY n DESC, {column}"
    ))?;
    let rows = stmt.query_map(params![route, key, upto], |r| {
        Ok((r.get::<_, Option<String>>(0)?, r.get::<_, i64>(1)? as usize))
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

pub(in crate::store::sqlite) fn due_groups(
    c: &Connection,
    now: i64,
    limit: usize,
) -> Result<Vec<DueGroup>, StoreError> {
    let mut stmt = c.prepare_cached(
        "SELECT route, group_key, settings, started_at, total FROM groups
         WHERE pending > 0 AND next_flush_at <= ?1 ORDER BY next_flush_at LIMIT ?2",
    )?;
    let heads: Vec<(String, String, String, i64, i64)> = stmt
        .query_map(params![now, limit as i64], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })?
        .collect::<Result<_, _>>()?;
    let mut out = Vec::new();
    for (route, group_key, settings, started_at, total_before) in heads {
        let settings: GroupSettings = serde_json::from_str(&settings).map_err(|e| {
            StoreError::Corrupt(format!("settings of group {route}/{group_key}: {e}"))
        })?;
        let (upto, count, first_at, last_at, non_results): (Option<i64>, i64, Option<i64>, Option<i64>, Option<i64>) = c
            .prepare_cached(
                "SELECT MAX(hook_row), COUNT(*), MIN(received_at), MAX(received_at), SUM(kind != 'message_result')
                 FROM group_members WHERE route = ?1 AND group_key = ?2",
            )?
            .query_row(params![route, group_key], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))?;
        let Some(upto) = upto else { continue };
        let tally = Tally {
            count: count as usize,
            non_results: non_results.unwrap_or(0) as usize,
            first_at,
            last_at,
            codes: breakdown(c, "result_code", &route, &group_key, upto)?,
            message_types: breakdown(c, "message_type", &route, &group_key, upto)?,
            senders: breakdown(c, "sender_key", &route, &group_key, upto)?,
        };
        let mut samples = c.prepare_cached(&format!(
            "SELECT {HOOK_COLUMNS} FROM group_members m JOIN hooks h ON h.id = m.hook_row
             WHERE m.route = ?1 AND m.group_key = ?2 ORDER BY m.hook_row LIMIT ?3"
        ))?;
        let mut rows = samples.query(params![route, group_key, settings.max_items as i64])?;
        let samples = hooks_from(&mut rows)?;
        out.push(DueGroup {
            route,
            group_key,
            settings,
            started_at,
            total_before,
            upto,
            tally,
            samples,
        });
    }
    Ok(out)
}

pub(in crate::store::sqlite) fn commit_flush(
    c: &Connection,
    flush: &Flush,
) -> Result<(), StoreError> {
    let Some(timing) = group_timing(c, &flush.route, &flush.group_key)? else {
        return Err(StoreError::Corrupt(format!(
            "no group {}/{}",
            flush.route, flush.group_key
        )));
    };
    let interval: i64 = c.query_row(
        "SELECT COALESCE(json_extract(settings, '$.interval_ms'), 0) FROM groups WHERE route = ?1 AND group_key = ?2",
        params![flush.route, flush.group_key],
        |r| r.get(0),
    )?;
    let removed = c
        .prepare_cached(
            "DELETE FROM group_members WHERE route = ?1 AND group_key = ?2 AND hook_row <= ?3",
        )?
        .execute(params![flush.route, flush.group_key, flush.upto])? as i64;
    if removed != flush.count {
        // The group changed under the digest (a member counted twice, or one missed): refuse,
        // so no hook is ever in two digests or in none.
        return Err(StoreError::Corrupt(format!(
            "group {}/{}: the digest counts {} members but {removed} were pending",
            flush.route, flush.group_key, flush.count
        )));
    }
    c.prepare_cached(
        "INSERT INTO digests (v, route, group_key, count, created_at, context) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![FORMAT_VERSION, flush.route, flush.group_key, removed, flush.now, flush.context])?;
    let digest_id = c.last_insert_rowid();
    for d in &flush.deliveries {
        super::insert_delivery(c, d, Some(digest_id))?;
    }
    let after = digest::on_flush(timing, removed, flush.now, interval);
    save_timing(c, &flush.route, &flush.group_key, &after, None)
}
