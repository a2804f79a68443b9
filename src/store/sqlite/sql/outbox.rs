//! The outbox: deliveries, leases on them under the destination's shared pace, their
//! attempts, dead letters and queue figures.

use rusqlite::{Connection, OptionalExtension, Row, named_params, params};

use super::{HOOK_COLUMNS, hooks_from};
use crate::store::*;

pub(in crate::store::sqlite) fn insert_delivery(
    c: &Connection,
    d: &NewDelivery,
    hook_row: Option<i64>,
    digest_id: Option<i64>,
) -> Result<(), StoreError> {
    let state = if d.dead.is_some() { "dead" } else { "pending" };
    c.prepare_cached(
        "INSERT INTO deliveries (v, destination, route, template, hook_row, digest_id, hook_id, payload,
                                 state, attempts, created_at, received_at, next_attempt_at, reason)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, 0, ?10, ?11, ?10, ?12)
         ON CONFLICT DO NOTHING",
    )?
    .execute(params![
        FORMAT_VERSION,
        d.destination,
        d.route,
        d.template,
        hook_row,
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

const DELIVERY_COLUMNS: &str =
    "id, destination, route, hook_id, payload, attempts, created_at, received_at";

fn pace_state(c: &Connection, destination: &str) -> Result<PaceState, StoreError> {
    Ok(
        c.prepare_cached("SELECT tat, blocked_until FROM destinations WHERE name = ?1")?
            .query_row([destination], |r| {
                Ok(PaceState {
                    tat: r.get(0)?,
                    blocked_until: r.get(1)?,
                })
            })
            .optional()?
            .unwrap_or_default(),
    )
}

fn save_pace(c: &Connection, destination: &str, p: &PaceState) -> Result<(), StoreError> {
    c.prepare_cached(
        "INSERT INTO destinations (name, tat, blocked_until) VALUES (?1, ?2, ?3)
         ON CONFLICT (name) DO UPDATE SET tat = excluded.tat, blocked_until = excluded.blocked_until",
    )?
    .execute(params![destination, p.tat, p.blocked_until])?;
    Ok(())
}

pub(in crate::store::sqlite) fn lease_delivery(
    c: &Connection,
    destination: &str,
    who: &Claimant,
    now: i64,
    pacer: &Pacer,
) -> Result<LeaseOutcome, StoreError> {
    let live: Option<i64> = c
        .prepare_cached(
            "SELECT MAX(lease_until) FROM deliveries
             WHERE destination = ?1 AND state = 'leased' AND lease_until >= ?2",
        )?
        .query_row(params![destination, now], |r| r.get(0))?;
    if let Some(until) = live {
        return Ok(LeaseOutcome::Busy(until));
    }
    let next = c
        .prepare_cached(&format!(
            "SELECT {DELIVERY_COLUMNS} FROM deliveries
             WHERE destination = ?1 AND state IN ('pending', 'leased') AND next_attempt_at <= ?2
             ORDER BY id LIMIT 1"
        ))?
        .query_row(params![destination, now], delivery_from)
        .optional()?;
    let Some(delivery) = next else {
        let due: Option<i64> = c
            .prepare_cached(
                "SELECT MIN(next_attempt_at) FROM deliveries
                 WHERE destination = ?1 AND state IN ('pending', 'leased')",
            )?
            .query_row([destination], |r| r.get(0))?;
        return Ok(LeaseOutcome::Idle(due));
    };
    let pace = match (pacer.admit)(pacer, pace_state(c, destination)?, now) {
        Ok(p) => p,
        Err(at) => return Ok(LeaseOutcome::Paced(at)),
    };
    save_pace(c, destination, &pace)?;
    let lease = Lease {
        token: super::token(),
        until: now + who.ttl_ms,
        delivery,
    };
    c.prepare_cached(
        "UPDATE deliveries SET state = 'leased', lease_owner = ?2, lease_token = ?3, lease_until = ?4
         WHERE id = ?1",
    )?
    .execute(params![lease.delivery.id, who.owner, lease.token, lease.until])?;
    Ok(LeaseOutcome::Leased(lease))
}

pub(in crate::store::sqlite) fn record_attempt(
    c: &Connection,
    lease: &Lease,
    attempt: &Attempt,
    pause: Option<&Pause>,
) -> Result<bool, StoreError> {
    const SET: &str = "attempts = attempts + 1, first_attempt_at = COALESCE(first_attempt_at, :at),
                       last_attempt_at = :at, last_status = :status,
                       lease_owner = NULL, lease_token = NULL, lease_until = NULL";
    const HELD: &str = "id = :id AND state = 'leased' AND lease_token = :token";
    let (id, token) = (lease.delivery.id, lease.token);
    let n = match attempt {
        Attempt::Delivered { status, at } => c
            .prepare_cached(&format!(
                "UPDATE deliveries SET state = 'done', {SET}, done_at = :at, reason = NULL WHERE {HELD}"
            ))?
            .execute(named_params! {":id": id, ":token": token, ":at": at, ":status": status})?,
        Attempt::Retry { status, error, at, next_at } => c
            .prepare_cached(&format!(
                "UPDATE deliveries SET state = 'pending', {SET}, reason = :reason, next_attempt_at = :next
                 WHERE {HELD}"
            ))?
            .execute(named_params! {":id": id, ":token": token, ":at": at, ":status": status,
                ":reason": error, ":next": next_at})?,
        Attempt::Dead { status, reason, at } => c
            .prepare_cached(&format!(
                "UPDATE deliveries SET state = 'dead', {SET}, reason = :reason WHERE {HELD}"
            ))?
            .execute(named_params! {":id": id, ":token": token, ":at": at, ":status": status,
                ":reason": reason})?,
    };
    if n == 0 {
        return Ok(false);
    }
    if let Some(p) = pause {
        let dest = &lease.delivery.destination;
        let paused = (p.pacer.pause)(&p.pacer, pace_state(c, dest)?, p.until);
        save_pace(c, dest, &paused)?;
    }
    Ok(true)
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
                Some(h) => DeadSource::Hook { hook: Box::new(h) },
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
        "SELECT destination, SUM(state IN ('pending', 'leased')),
                MIN(CASE WHEN state IN ('pending', 'leased') THEN created_at END), SUM(state = 'dead')
         FROM deliveries WHERE state IN ('pending', 'leased', 'dead') GROUP BY destination ORDER BY destination",
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

pub(in crate::store::sqlite) fn queued_destinations(
    c: &Connection,
) -> Result<Vec<String>, StoreError> {
    Ok(c
        .prepare_cached(
            "SELECT DISTINCT destination FROM deliveries WHERE state IN ('pending', 'leased') ORDER BY 1",
        )?
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?)
}

pub(in crate::store::sqlite) fn dead_letter_destinations(
    c: &Connection,
    destinations: &[String],
    now: i64,
) -> Result<usize, StoreError> {
    let mut stmt = c.prepare_cached(
        "UPDATE deliveries SET state = 'dead', last_attempt_at = COALESCE(last_attempt_at, ?2),
           lease_owner = NULL, lease_token = NULL, lease_until = NULL,
           reason = 'destination `' || destination || '` is no longer in the config (add it back, then replay)'
         WHERE state IN ('pending', 'leased') AND destination = ?1",
    )?;
    let mut n = 0;
    for dest in destinations {
        n += stmt.execute(params![dest, now])?;
    }
    Ok(n)
}
