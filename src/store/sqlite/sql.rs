//! The SQL behind [`super::SqliteStore`]: one function per store operation, each given the
//! connection (inside the writer's savepoint for writes).

use std::collections::HashMap;

use rusqlite::{Connection, OptionalExtension, Row, params};

use super::SCHEMA_VERSION;
use crate::bizmessage::Envelope;
use crate::digest;
use crate::store::*;

/// Rejected hooks are kept for inspection up to this many bytes each.
const MAX_REJECTED_RAW: usize = 64 * 1024;
/// Rows deleted per table per prune call, so pruning never holds the write lock for long.
pub(super) const PRUNE_CHUNK: usize = 5000;

pub(super) fn init_schema(c: &Connection) -> Result<(), StoreError> {
    c.execute_batch(include_str!("schema.sql"))?;
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
    let v: String = c.query_row(
        "SELECT value FROM meta WHERE key = 'dispatch_cursor'",
        [],
        |r| r.get(0),
    )?;
    v.parse()
        .map_err(|_| StoreError::Corrupt("meta.dispatch_cursor is not a number".into()))
}

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

pub(super) fn ingest(
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
                post.envelope.hooks_id,
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
        "INSERT INTO hooks (v, post_id, received_at, dedup_key, kind, hook_id, raw)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?;
    let mut post_id = None;
    for h in &post.hooks {
        if seen.execute(params![h.dedup_key, post.received_at, dedup_cutoff])? == 0 {
            out.duplicates += 1;
            out.fresh.push(false);
            continue;
        }
        out.fresh.push(true);
        let pid = match post_id {
            Some(id) => id,
            None => {
                let envelope = serde_json::to_string(&post.envelope)
                    .map_err(|e| StoreError::Corrupt(e.to_string()))?;
                c.prepare_cached("INSERT INTO posts (received_at, envelope) VALUES (?1, ?2)")?
                    .execute(params![post.received_at, envelope])?;
                let id = c.last_insert_rowid();
                post_id = Some(id);
                id
            }
        };
        insert.execute(params![
            FORMAT_VERSION,
            pid,
            post.received_at,
            h.dedup_key,
            h.kind.as_str(),
            h.hook_id,
            h.raw
        ])?;
        out.accepted += 1;
    }
    Ok(out)
}

/// Reads hooks joined with their envelopes, parsing each envelope once.
fn hooks_from(rows: &mut rusqlite::Rows<'_>) -> Result<Vec<StoredHook>, StoreError> {
    let mut envelopes: HashMap<i64, Envelope> = HashMap::new();
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        let post_id: i64 = r.get(3)?;
        let envelope = match envelopes.get(&post_id) {
            Some(e) => e.clone(),
            None => {
                let text: String = r.get(4)?;
                let e: Envelope = serde_json::from_str(&text)
                    .map_err(|e| StoreError::Corrupt(format!("envelope of post {post_id}: {e}")))?;
                envelopes.insert(post_id, e.clone());
                e
            }
        };
        out.push(StoredHook {
            row: r.get(0)?,
            received_at: r.get(1)?,
            raw: r.get(2)?,
            envelope,
        });
    }
    Ok(out)
}

const HOOK_COLUMNS: &str = "h.id, h.received_at, h.raw, h.post_id, p.envelope";

pub(super) fn undispatched(c: &Connection, limit: usize) -> Result<Vec<StoredHook>, StoreError> {
    let from = cursor(c)?;
    let mut stmt = c.prepare_cached(&format!(
        "SELECT {HOOK_COLUMNS} FROM hooks h JOIN posts p ON p.id = h.post_id
         WHERE h.id > ?1 ORDER BY h.id LIMIT ?2"
    ))?;
    let mut rows = stmt.query(params![from, limit as i64])?;
    hooks_from(&mut rows)
}

fn insert_delivery(
    c: &Connection,
    d: &NewDelivery,
    digest_id: Option<i64>,
) -> Result<(), StoreError> {
    c.prepare_cached(
        "INSERT INTO deliveries (v, destination, route, template, hook_row, digest_id, hook_id, payload,
                                 state, attempts, created_at, received_at, next_attempt_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 'pending', 0, ?9, ?10, ?9)",
    )?
    .execute(params![
        FORMAT_VERSION,
        d.destination,
        d.route,
        d.template,
        d.hook_row,
        digest_id,
        d.hook_id,
        d.payload,
        d.created_at,
        d.received_at
    ])?;
    Ok(())
}

fn timing_from(r: &Row<'_>) -> rusqlite::Result<GroupTiming> {
    Ok(GroupTiming {
        started_at: r.get(0)?,
        total: r.get(1)?,
        pending: r.get(2)?,
        last_flush_at: r.get(3)?,
        next_flush_at: r.get(4)?,
    })
}

pub(super) fn group_timing(
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

fn save_timing(
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
    .execute(params![
        route,
        key,
        t.started_at,
        t.total,
        t.pending,
        t.last_flush_at,
        t.next_flush_at,
        settings
    ])?;
    Ok(())
}

pub(super) fn commit_dispatch(c: &Connection, batch: &DispatchBatch) -> Result<(), StoreError> {
    let current = cursor(c)?;
    if batch.upto <= current {
        return Err(StoreError::Corrupt(format!(
            "dispatch of hooks up to {} after the cursor reached {current} (two dispatchers on one store?)",
            batch.upto
        )));
    }
    for d in &batch.deliveries {
        insert_delivery(c, d, None)?;
    }
    for m in &batch.members {
        let added = c
            .prepare_cached("INSERT OR IGNORE INTO group_members (route, group_key, hook_row) VALUES (?1, ?2, ?3)")?
            .execute(params![m.route, m.group_key, m.hook_row])?;
        if added == 0 {
            continue;
        }
        let existing = group_timing(c, &m.route, &m.group_key)?;
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

pub(super) fn next_flush_at(c: &Connection) -> Result<Option<i64>, StoreError> {
    Ok(c.query_row(
        "SELECT MIN(next_flush_at) FROM groups WHERE pending > 0",
        [],
        |r| r.get(0),
    )?)
}

pub(super) fn due_groups(
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
    let mut members = c.prepare_cached(&format!(
        "SELECT {HOOK_COLUMNS} FROM group_members m
         JOIN hooks h ON h.id = m.hook_row JOIN posts p ON p.id = h.post_id
         WHERE m.route = ?1 AND m.group_key = ?2 ORDER BY h.id"
    ))?;
    let mut out = Vec::new();
    for (route, group_key, settings, started_at, total_before) in heads {
        let settings: GroupSettings = serde_json::from_str(&settings).map_err(|e| {
            StoreError::Corrupt(format!("settings of group {route}/{group_key}: {e}"))
        })?;
        let mut rows = members.query(params![route, group_key])?;
        let members = hooks_from(&mut rows)?;
        out.push(DueGroup {
            route,
            group_key,
            settings,
            started_at,
            total_before,
            members,
        });
    }
    Ok(out)
}

pub(super) fn commit_flush(c: &Connection, flush: &Flush) -> Result<(), StoreError> {
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
    let mut removed = 0i64;
    let mut delete = c.prepare_cached(
        "DELETE FROM group_members WHERE route = ?1 AND group_key = ?2 AND hook_row = ?3",
    )?;
    for row in &flush.member_rows {
        removed += delete.execute(params![flush.route, flush.group_key, row])? as i64;
    }
    if removed != flush.member_rows.len() as i64 {
        // Some member was already in another digest: refuse, so nothing is counted twice.
        return Err(StoreError::Corrupt(format!(
            "group {}/{}: {} of {} members were not pending",
            flush.route,
            flush.group_key,
            flush.member_rows.len() as i64 - removed,
            flush.member_rows.len()
        )));
    }
    c.prepare_cached(
        "INSERT INTO digests (v, route, group_key, count, created_at, context) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![FORMAT_VERSION, flush.route, flush.group_key, removed, flush.now, flush.context])?;
    let digest_id = c.last_insert_rowid();
    for d in &flush.deliveries {
        insert_delivery(c, d, Some(digest_id))?;
    }
    let after = digest::on_flush(timing, removed, flush.now, interval);
    save_timing(c, &flush.route, &flush.group_key, &after, None)
}

fn delivery_from(r: &Row<'_>) -> rusqlite::Result<Delivery> {
    Ok(Delivery {
        id: r.get(0)?,
        destination: r.get(1)?,
        route: r.get(2)?,
        hook_id: r.get(3)?,
        payload: r.get(4)?,
        attempts: r.get(5)?,
        created_at: r.get(6)?,
        received_at: r.get(7)?,
    })
}

pub(super) fn due_deliveries(
    c: &Connection,
    destination: &str,
    now: i64,
    limit: usize,
) -> Result<Vec<Delivery>, StoreError> {
    let mut stmt = c.prepare_cached(
        "SELECT id, destination, route, hook_id, payload, attempts, created_at, received_at
         FROM deliveries WHERE destination = ?1 AND state = 'pending' AND next_attempt_at <= ?2
         ORDER BY id LIMIT ?3",
    )?;
    let rows = stmt.query_map(params![destination, now, limit as i64], delivery_from)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

pub(super) fn next_due_at(c: &Connection, destination: &str) -> Result<Option<i64>, StoreError> {
    Ok(c.prepare_cached(
        "SELECT MIN(next_attempt_at) FROM deliveries WHERE destination = ?1 AND state = 'pending'",
    )?
    .query_row([destination], |r| r.get(0))?)
}

pub(super) fn record_attempt(c: &Connection, id: i64, attempt: &Attempt) -> Result<(), StoreError> {
    const SET: &str = "attempts = attempts + 1, first_attempt_at = COALESCE(first_attempt_at, ?2),
                       last_attempt_at = ?2, last_status = ?3";
    match attempt {
        Attempt::Delivered { status, at } => c
            .prepare_cached(&format!(
                "UPDATE deliveries SET state = 'done', {SET}, done_at = ?2, reason = NULL
                 WHERE id = ?1 AND state = 'pending'"
            ))?
            .execute(params![id, at, status])?,
        Attempt::Retry { status, error, at, next_at } => c
            .prepare_cached(&format!(
                "UPDATE deliveries SET {SET}, reason = ?4, next_attempt_at = ?5 WHERE id = ?1 AND state = 'pending'"
            ))?
            .execute(params![id, at, status, error, next_at])?,
        Attempt::Dead { status, reason, at } => c
            .prepare_cached(&format!(
                "UPDATE deliveries SET state = 'dead', {SET}, reason = ?4 WHERE id = ?1 AND state = 'pending'"
            ))?
            .execute(params![id, at, status, reason])?,
    };
    Ok(())
}

const DEAD_COLUMNS: &str = "id, destination, route, template, hook_id, attempts, created_at,
                            first_attempt_at, last_attempt_at, last_status, COALESCE(reason, ''), hook_row, digest_id";

fn dead_from(r: &Row<'_>) -> rusqlite::Result<(DeadLetter, Option<i64>, Option<i64>)> {
    Ok((
        DeadLetter {
            id: r.get(0)?,
            destination: r.get(1)?,
            route: r.get(2)?,
            template: r.get(3)?,
            hook_id: r.get(4)?,
            attempts: r.get(5)?,
            created_at: r.get(6)?,
            first_attempt_at: r.get(7)?,
            last_attempt_at: r.get(8)?,
            last_status: r.get(9)?,
            reason: r.get(10)?,
        },
        r.get(11)?,
        r.get(12)?,
    ))
}

pub(super) fn dead_letters(
    c: &Connection,
    destination: Option<&str>,
) -> Result<Vec<DeadLetter>, StoreError> {
    let mut stmt = c.prepare_cached(&format!(
        "SELECT {DEAD_COLUMNS} FROM deliveries WHERE state = 'dead' AND (?1 IS NULL OR destination = ?1) ORDER BY id"
    ))?;
    let rows = stmt.query_map([destination], dead_from)?;
    rows.map(|r| r.map(|(d, _, _)| d).map_err(StoreError::from))
        .collect()
}

/// SQL condition and parameter for a selection of dead letters.
fn selection_filter(selection: &Selection) -> (String, Vec<rusqlite::types::Value>) {
    use rusqlite::types::Value;
    match selection {
        Selection::All => ("1 = 1".into(), vec![]),
        Selection::Destination(d) => ("destination = ?1".into(), vec![Value::Text(d.clone())]),
        Selection::OlderThan(t) => (
            "COALESCE(last_attempt_at, created_at) < ?1".into(),
            vec![Value::Integer(*t)],
        ),
        Selection::Ids(ids) => {
            let list = ids.iter().map(i64::to_string).collect::<Vec<_>>().join(",");
            (format!("id IN ({list})"), vec![])
        }
    }
}

pub(super) fn dead_sources(
    c: &Connection,
    selection: &Selection,
) -> Result<Vec<(DeadLetter, DeadSource)>, StoreError> {
    let (filter, args) = selection_filter(selection);
    let mut stmt = c.prepare(&format!(
        "SELECT {DEAD_COLUMNS} FROM deliveries WHERE state = 'dead' AND {filter} ORDER BY id"
    ))?;
    let letters: Vec<_> = stmt
        .query_map(rusqlite::params_from_iter(args), dead_from)?
        .collect::<Result<_, _>>()?;
    let mut hook = c.prepare_cached(&format!(
        "SELECT {HOOK_COLUMNS} FROM hooks h JOIN posts p ON p.id = h.post_id WHERE h.id = ?1"
    ))?;
    let mut out = Vec::new();
    for (letter, hook_row, digest_id) in letters {
        let source = if let Some(row) = hook_row {
            let mut rows = hook.query([row])?;
            match hooks_from(&mut rows)?.pop() {
                Some(h) => DeadSource::Hook { hook: h },
                None => DeadSource::Gone,
            }
        } else if let Some(id) = digest_id {
            c.query_row("SELECT context FROM digests WHERE id = ?1", [id], |r| {
                r.get(0)
            })
            .optional()?
            .map_or(DeadSource::Gone, |context| DeadSource::Digest { context })
        } else {
            DeadSource::Gone
        };
        out.push((letter, source));
    }
    Ok(out)
}

pub(super) fn requeue(
    c: &Connection,
    items: &[(i64, Option<String>)],
    now: i64,
) -> Result<usize, StoreError> {
    let mut stmt = c.prepare_cached(
        "UPDATE deliveries SET state = 'pending', attempts = 0, next_attempt_at = ?2, created_at = ?2,
                reason = NULL, last_status = NULL, payload = COALESCE(?3, payload)
         WHERE id = ?1 AND state = 'dead'",
    )?;
    let mut n = 0;
    for (id, payload) in items {
        n += stmt.execute(params![id, now, payload])?;
    }
    Ok(n)
}

pub(super) fn purge(c: &Connection, selection: &Selection) -> Result<usize, StoreError> {
    let (filter, args) = selection_filter(selection);
    Ok(c.execute(
        &format!("DELETE FROM deliveries WHERE state = 'dead' AND {filter}"),
        rusqlite::params_from_iter(args),
    )?)
}

pub(super) fn queue_stats(c: &Connection) -> Result<Vec<QueueStat>, StoreError> {
    let mut stmt = c.prepare_cached(
        "SELECT destination, SUM(state = 'pending'), MIN(CASE WHEN state = 'pending' THEN created_at END),
                SUM(state = 'dead')
         FROM deliveries WHERE state IN ('pending', 'dead') GROUP BY destination ORDER BY destination",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(QueueStat {
            destination: r.get(0)?,
            pending: r.get(1)?,
            oldest_pending_at: r.get(2)?,
            dead: r.get(3)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
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
    let hooks = c.execute(
        "DELETE FROM hooks WHERE id IN (SELECT h.id FROM hooks h
           WHERE h.id <= ?1 AND h.received_at < ?2
             AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.hook_row = h.id)
             AND NOT EXISTS (SELECT 1 FROM group_members m WHERE m.hook_row = h.id)
           LIMIT ?3)",
        params![cursor, delivered_before, chunk],
    )?;
    c.execute(
        "DELETE FROM posts WHERE id IN (SELECT p.id FROM posts p WHERE p.received_at < ?1
           AND NOT EXISTS (SELECT 1 FROM hooks h WHERE h.post_id = p.id) LIMIT ?2)",
        params![delivered_before, chunk],
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
