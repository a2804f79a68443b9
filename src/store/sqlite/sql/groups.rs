//! Digest groups: timing, claiming a due group (which marks the members its digest covers),
//! what those members count (SQL aggregates, so memory does not grow with the group), and
//! the flush that removes exactly them. The claim and its marks are written by the writer;
//! what the marked members count is read after that commits, on a reader connection.

use rusqlite::{Connection, OptionalExtension, Row, params};

use super::{HOOK_COLUMNS, hooks_from, token};
use crate::store::*;

fn timing_from(r: &Row<'_>) -> rusqlite::Result<GroupTiming> {
    Ok(GroupTiming {
        started_at: r.get(0)?,
        total: r.get(1)?,
        pending: r.get(2)?,
        last_flush_at: r.get(3)?,
        next_flush_at: r.get(4)?,
        resolve_at: r.get(5)?,
    })
}

pub(in crate::store::sqlite) fn group_timing(
    c: &Connection,
    route: &str,
    key: &str,
) -> Result<Option<GroupTiming>, StoreError> {
    Ok(c.prepare_cached(
        "SELECT started_at, total, pending, last_flush_at, next_flush_at, resolve_at FROM groups
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
        "INSERT INTO groups (route, group_key, started_at, total, pending, last_flush_at, next_flush_at, settings, resolve_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, COALESCE(?8, '{}'), ?9)
         ON CONFLICT (route, group_key) DO UPDATE SET
           started_at = excluded.started_at, total = excluded.total, pending = excluded.pending,
           last_flush_at = excluded.last_flush_at, next_flush_at = excluded.next_flush_at,
           settings = COALESCE(?8, groups.settings), resolve_at = excluded.resolve_at",
    )?
    .execute(params![route, key, t.started_at, t.total, t.pending, t.last_flush_at, t.next_flush_at, settings, t.resolve_at])?;
    Ok(())
}

pub(in crate::store::sqlite) fn next_flush_at(c: &Connection) -> Result<Option<i64>, StoreError> {
    Ok(c.prepare_cached(
        "SELECT MIN(CASE WHEN pending > 0 THEN next_flush_at ELSE resolve_at END) FROM groups
             WHERE pending > 0 OR resolve_at IS NOT NULL",
    )?
    .query_row([], |r| r.get(0))?)
}

/// `(value, count)` of one column over the members marked with `token`, by count descending,
/// ties by value.
fn breakdown(
    c: &Connection,
    column: &str,
    route: &str,
    key: &str,
    token: i64,
) -> Result<Vec<(Option<String>, usize)>, StoreError> {
    let mut stmt = c.prepare_cached(&format!(
        "SELECT {column}, COUNT(*) AS n FROM group_members
         WHERE route = ?1 AND group_key = ?2 AND flush_token = ?3
         GROUP BY {column} ORDER BY n DESC, {column}"
    ))?;
    let rows = stmt.query_map(params![route, key, token], |r| {
        Ok((r.get::<_, Option<String>>(0)?, r.get::<_, i64>(1)? as usize))
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// A due group claimed and its members marked, before what they count is read.
pub(in crate::store::sqlite) struct ClaimedGroup {
    route: String,
    group_key: String,
    settings: GroupSettings,
    timing: GroupTiming,
    token: i64,
}

/// Claims due groups and marks the members each digest covers (the writer's part: no
/// aggregate runs here, so a large group holds the one writer only for the marking).
pub(in crate::store::sqlite) fn claim_groups(
    c: &Connection,
    who: &Claimant,
    now: i64,
    limit: usize,
) -> Result<Vec<ClaimedGroup>, StoreError> {
    type Head = (String, String, String, GroupTiming);
    let heads: Vec<Head> = c
        .prepare_cached(
            "SELECT route, group_key, settings, started_at, total, pending, last_flush_at, next_flush_at, resolve_at
             FROM groups
             WHERE ((pending > 0 AND next_flush_at <= ?1) OR (pending = 0 AND resolve_at <= ?1))
               AND (claim_token IS NULL OR claim_until < ?1 OR claim_owner = ?2)
             ORDER BY CASE WHEN pending > 0 THEN next_flush_at ELSE resolve_at END LIMIT ?3",
        )?
        .query_map(params![now, who.owner, limit as i64], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                GroupTiming {
                    started_at: r.get(3)?,
                    total: r.get(4)?,
                    pending: r.get(5)?,
                    last_flush_at: r.get(6)?,
                    next_flush_at: r.get(7)?,
                    resolve_at: r.get(8)?,
                },
            ))
        })?
        .collect::<Result<_, _>>()?;
    let mut out = Vec::new();
    for (route, group_key, settings, timing) in heads {
        let settings: GroupSettings = serde_json::from_str(&settings).map_err(|e| {
            StoreError::Corrupt(format!("settings of group {route}/{group_key}: {e}"))
        })?;
        let token = token();
        c.prepare_cached(
            "UPDATE groups SET claim_owner = ?3, claim_token = ?4, claim_until = ?5
             WHERE route = ?1 AND group_key = ?2",
        )?
        .execute(params![
            route,
            group_key,
            who.owner,
            token,
            now + who.ttl_ms
        ])?;
        // Members marked by any earlier claim belong to this digest too: one claim per group
        // is live, so every other token is dead.
        c.prepare_cached(
            "UPDATE group_members SET flush_token = ?3
             WHERE route = ?1 AND group_key = ?2 AND flush_token IS NOT ?3",
        )?
        .execute(params![route, group_key, token])?;
        out.push(ClaimedGroup {
            route,
            group_key,
            settings,
            timing,
            token,
        });
    }
    Ok(out)
}

/// What the marked members of claimed groups count, with samples (read after the claim
/// committed, on a reader connection: members joining since are not marked, and only the
/// claim's holder removes the marked ones).
pub(in crate::store::sqlite) fn tally_claimed(
    c: &Connection,
    claimed: Vec<ClaimedGroup>,
) -> Result<Vec<DueGroup>, StoreError> {
    let mut out = Vec::with_capacity(claimed.len());
    for ClaimedGroup {
        route,
        group_key,
        settings,
        timing,
        token,
    } in claimed
    {
        let (count, first_at, last_at, non_results): (i64, Option<i64>, Option<i64>, Option<i64>) =
            c.prepare_cached(
                "SELECT COUNT(*), MIN(received_at), MAX(received_at), SUM(kind != 'message_result')
                 FROM group_members WHERE route = ?1 AND group_key = ?2 AND flush_token = ?3",
            )?
            .query_row(params![route, group_key, token], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            })?;
        let tally = Tally {
            count: count as usize,
            non_results: non_results.unwrap_or(0) as usize,
            first_at,
            last_at,
            codes: breakdown(c, "result_code", &route, &group_key, token)?,
            message_types: breakdown(c, "message_type", &route, &group_key, token)?,
            senders: breakdown(c, "sender_key", &route, &group_key, token)?,
        };
        let mut samples = c.prepare_cached(&format!(
            "SELECT {HOOK_COLUMNS} FROM group_members m JOIN hooks h ON h.id = m.hook_row
             WHERE m.route = ?1 AND m.group_key = ?2 AND m.flush_token = ?3 ORDER BY m.hook_row LIMIT ?4"
        ))?;
        let mut rows =
            samples.query(params![route, group_key, token, settings.max_items as i64])?;
        let samples = hooks_from(&mut rows)?;
        let silenced: i64 = c
            .prepare_cached("SELECT count FROM group_silenced WHERE route = ?1 AND group_key = ?2")?
            .query_row(params![route, group_key], |r| r.get(0))
            .optional()?
            .unwrap_or(0);
        out.push(DueGroup {
            route,
            group_key,
            settings,
            timing,
            token,
            tally,
            samples,
            silenced,
        });
    }
    Ok(out)
}

pub(in crate::store::sqlite) fn commit_flush(
    c: &Connection,
    who: &Claimant,
    flush: &Flush,
    rules: &Rules,
) -> Result<bool, StoreError> {
    let held: Option<(Option<String>, i64)> = c
        .prepare_cached(
            "SELECT claim_owner, COALESCE(json_extract(settings, '$.interval_ms'), 0) FROM groups
             WHERE route = ?1 AND group_key = ?2 AND claim_token = ?3",
        )?
        .query_row(params![flush.route, flush.group_key, flush.token], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .optional()?;
    let Some((owner, interval_ms)) = held else {
        return Ok(false);
    };
    if owner.as_deref() != Some(who.owner.as_str()) {
        return Ok(false);
    }
    let Some(timing) = group_timing(c, &flush.route, &flush.group_key)? else {
        return Ok(false);
    };
    if flush.resolved && !resolve_still_due(&timing, flush.now) {
        // A hook joined after the claim: the group is not quiet any more.
        release_group(c, &flush.route, &flush.group_key)?;
        return Ok(false);
    }
    let removed = c
        .prepare_cached(
            "DELETE FROM group_members WHERE route = ?1 AND group_key = ?2 AND flush_token = ?3",
        )?
        .execute(params![flush.route, flush.group_key, flush.token])? as i64;
    if removed != flush.count {
        // The members changed under the digest: refuse, so no hook is ever in two digests or
        // in none.
        return Err(StoreError::Corrupt(format!(
            "group {}/{}: the digest counts {} members but {removed} were marked for it",
            flush.route, flush.group_key, flush.count
        )));
    }
    c.prepare_cached(
        "INSERT INTO digests (v, route, group_key, count, created_at, context) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![FORMAT_VERSION, flush.route, flush.group_key, removed, flush.now, flush.context])?;
    let digest_id = c.last_insert_rowid();
    for d in &flush.deliveries {
        super::insert_delivery(c, d, d.hook_row, Some(digest_id))?;
    }
    let after = (rules.flushed)(
        timing,
        Flushed {
            members: removed,
            at: flush.now,
            interval_ms,
            resolved: flush.resolved,
        },
    );
    save_timing(c, &flush.route, &flush.group_key, &after, None)?;
    if flush.silenced > 0 {
        c.prepare_cached(
            "UPDATE group_silenced SET count = count - ?3 WHERE route = ?1 AND group_key = ?2",
        )?
        .execute(params![flush.route, flush.group_key, flush.silenced])?;
        c.prepare_cached(
            "DELETE FROM group_silenced WHERE route = ?1 AND group_key = ?2 AND count <= 0",
        )?
        .execute(params![flush.route, flush.group_key])?;
    }
    release_group(c, &flush.route, &flush.group_key)?;
    Ok(true)
}

fn release_group(c: &Connection, route: &str, key: &str) -> Result<(), StoreError> {
    c.prepare_cached(
        "UPDATE groups SET claim_owner = NULL, claim_token = NULL, claim_until = NULL
         WHERE route = ?1 AND group_key = ?2",
    )?
    .execute(params![route, key])?;
    Ok(())
}
