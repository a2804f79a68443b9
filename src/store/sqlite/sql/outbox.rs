//! The outbox: deliveries, their attempts, dead letters and queue figures.

use rusqlite::{Connection, OptionalExtension, Row, params};

use super::{HOOK_COLUMNS, hooks_from};
use crate::store::*;

pub(in crate::store::sqlite) fn insert_delivery(
    c: &Connection,
    d: &NewDelivery,
    digest_id: Option<i64>,
) -> Result<(), StoreError> {
    let state = if d.dead.is_some() { "dead" } else { "pending" };
    c.prepare_cached(
        "INSERT INTO deliveries (v, destination, route, template, hook_row, digest_id, hook_id, payload,
                                 state, attempts, created_at, received_at, next_attempt_at, reason)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, 0, ?10, ?11, ?10, ?12)",
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
        state,
        d.created_at,
        d.received_at,
        d.dead
    ])?;
    Ok(())
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

pub(in crate::store::sqlite) fn due_deliveries(
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

pub(in crate::store::sqlite) fn next_due_at(
    c: &Connection,
    destination: &str,
) -> Result<Option<i64>, StoreError> {
    Ok(c.prepare_cached(
        "SELECT MIN(next_attempt_at) FROM deliveries WHERE destination = ?1 AND state = 'pending'",
    )?
    .query_row([destination], |r| r.get(0))?)
}

pub(in crate::store::sqlite) fn record_attempt(
    c: &Connection,
    id: i64,
    attempt: &Attempt,
) -> Result<(), StoreError> {
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

pub(in crate::store::sqlite) fn dead_letters(
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

pub(in crate::store::sqlite) fn dead_sources(
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
        "SELECT {HOOK_COLUMNS} FROM hooks h WHERE h.id = ?1"
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

pub(in crate::store::sqlite) fn requeue(
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

pub(in crate::store::sqlite) fn purge(
    c: &Connection,
    selection: &Selection,
) -> Result<usize, StoreError> {
    let (filter, args) = selection_filter(selection);
    Ok(c.execute(
        &format!("DELETE FROM deliveries WHERE state = 'dead' AND {filter}"),
        rusqlite::params_from_iter(args),
    )?)
}

pub(in crate::store::sqlite) fn queue_stats(c: &Connection) -> Result<Vec<QueueStat>, StoreError> {
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

pub(in crate::store::sqlite) fn dead_letter_orphans(
    c: &Connection,
    known: &[String],
    now: i64,
) -> Result<usize, StoreError> {
    let pending: Vec<String> = c
        .prepare_cached("SELECT DISTINCT destination FROM deliveries WHERE state = 'pending'")?
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    let mut n = 0;
    for dest in pending.iter().filter(|d| !known.contains(d)) {
        n += c
            .prepare_cached(
                "UPDATE deliveries SET state = 'dead', last_attempt_at = COALESCE(last_attempt_at, ?2),
                   reason = 'destination `' || destination || '` is no longer in the config (add it back, then replay)'
                 WHERE state = 'pending' AND destination = ?1",
            )?
            .execute(params![dest, now])?;
    }
    Ok(n)
}
