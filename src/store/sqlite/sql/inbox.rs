//! The inbox: storing received hooks with dedup, claiming them for routing, recording what
//! routing decided (with its deliveries and group memberships), failures and quarantine,
//! rerouting, and the rejected hooks.

use std::collections::{BTreeMap, HashSet};

use rusqlite::{Connection, OptionalExtension, params};

use super::{HOOK_COLUMNS, add_kept, clip, hook_from, hooks_from};
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
        "INSERT INTO hooks (v, received_at, envelope, raw, owner, claim_until, state, sent_to)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?;
    // Routed before the write: each hook's outcome, by position.
    let outcomes: Vec<Option<&HookOutcome>> = match &post.routed {
        Some(r) => {
            let mut by_position = vec![None; post.hooks.len()];
            for h in &r.batch.hooks {
                if let Some(slot) = usize::try_from(h.row)
                    .ok()
                    .and_then(|p| by_position.get_mut(p))
                {
                    *slot = Some(h);
                }
            }
            by_position
        }
        None => Vec::new(),
    };
    let (owner, until) = match &post.claim {
        Some(w) => (Some(w.owner.as_str()), Some(post.received_at + w.ttl_ms)),
        None => (None, None),
    };
    // The dedup upserts come first, so the POST's envelope can be written once when it
    // leaves several fresh hooks (see `posts` in schema.sql).
    for h in &post.hooks {
        let fresh = seen.execute(params![h.dedup_key, post.received_at, dedup_cutoff])? == 1;
        out.fresh.push(fresh);
    }
    let shared = out.fresh.iter().filter(|f| **f).count() > 1;
    let envelope = if shared { "" } else { &post.envelope_json };
    let mut unrouted = 0;
    for (position, h) in post.hooks.iter().enumerate() {
        if !out.fresh[position] {
            out.duplicates += 1;
            out.rows.push(None);
            continue;
        }
        let (state, sent_to) = match outcomes.get(position).copied().flatten() {
            Some(o) => (
                if o.routed { "routed" } else { "unrouted" },
                sent_to_json(&o.sent_to),
            ),
            None => ("waiting", None),
        };
        if state == "unrouted" {
            unrouted += 1;
        }
        insert.execute(params![
            FORMAT_VERSION,
            post.received_at,
            envelope,
            h.raw,
            owner,
            until,
            state,
            sent_to
        ])?;
        out.rows.push(Some(c.last_insert_rowid()));
        out.accepted += 1;
    }
    if shared {
        share_envelope(c, post, &out.rows)?;
    }
    add_kept(c, "unrouted", unrouted)?;
    if let Some(routed) = &post.routed {
        // Positions become rows as the work is written (no copy of it on the writer thread).
        // Only hooks stored routed (fresh, with an outcome) get their work filed; one
        // stored waiting is the dispatcher's to route.
        let row_of = |position: i64| {
            let p = usize::try_from(position).ok()?;
            outcomes.get(p).copied().flatten()?;
            out.rows.get(p).copied().flatten()
        };
        file_routing(c, &routed.batch, &row_of, &routed.rules)?;
    }
    Ok(out)
}

/// Writes the envelope of a POST's fresh hooks (`rows`, stored with an empty `envelope`) once,
/// as the `posts` row covering them. Rows written in one transaction are consecutive, unless
/// SQLite ran out of ids and picks them at random: then each row gets the envelope itself.
fn share_envelope(c: &Connection, post: &NewPost, rows: &[Option<i64>]) -> Result<(), StoreError> {
    let rows: Vec<i64> = rows.iter().flatten().copied().collect();
    let (Some(&first), Some(&last)) = (rows.first(), rows.last()) else {
        return Ok(());
    };
    let consecutive = rows.windows(2).all(|w| w[1] == w[0] + 1);
    if consecutive {
        c.prepare_cached(
            "INSERT INTO posts (first_row, last_row, received_at, envelope) VALUES (?1, ?2, ?3, ?4)",
        )?
        .execute(params![first, last, post.received_at, post.envelope_json])?;
    } else {
        let mut inline = c.prepare_cached("UPDATE hooks SET envelope = ?2 WHERE id = ?1")?;
        for row in rows {
            inline.execute(params![row, post.envelope_json])?;
        }
    }
    Ok(())
}

/// `sent_to` as stored: a JSON list, or NULL when empty.
fn sent_to_json(sent_to: &[String]) -> Option<String> {
    (!sent_to.is_empty()).then(|| serde_json::to_string(sent_to).unwrap_or_else(|_| "[]".into()))
}

pub(in crate::store::sqlite) fn claim_hooks(
    c: &Connection,
    who: &Claimant,
    now: i64,
    limit: usize,
) -> Result<Vec<StoredHook>, StoreError> {
    let ids: Vec<i64> = c
        .prepare_cached(
            "UPDATE hooks SET owner = ?1, claim_until = ?2 WHERE id IN (
               SELECT id FROM hooks WHERE state = 'waiting'
                 AND (claim_until IS NULL OR claim_until < ?3)
               ORDER BY id LIMIT ?4)
             RETURNING id",
        )?
        .query_map(
            params![who.owner, now + who.ttl_ms, now, limit as i64],
            |r| r.get(0),
        )?
        .collect::<Result<_, _>>()?;
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let list = ids.iter().map(i64::to_string).collect::<Vec<_>>().join(",");
    let mut stmt = c.prepare(&format!(
        "SELECT {HOOK_COLUMNS} FROM hooks h WHERE h.id IN ({list}) ORDER BY h.id"
    ))?;
    let mut rows = stmt.query([])?;
    hooks_from(&mut rows)
}

pub(in crate::store::sqlite) fn commit_dispatch(
    c: &Connection,
    who: &Claimant,
    batch: &DispatchBatch,
    rules: &Rules,
) -> Result<DispatchCommit, StoreError> {
    let mut settle = c.prepare_cached(
        "UPDATE hooks SET state = ?3, sent_to = ?4, owner = NULL, claim_until = NULL, reason = NULL
         WHERE id = ?1 AND state = 'waiting' AND owner = ?2",
    )?;
    let mut out = DispatchCommit::default();
    let mut held = HashSet::new();
    let mut unrouted = 0;
    for h in &batch.hooks {
        let state = if h.routed { "routed" } else { "unrouted" };
        let sent_to = sent_to_json(&h.sent_to);
        if settle.execute(params![h.row, who.owner, state, sent_to])? == 1 {
            held.insert(h.row);
            out.committed += 1;
            unrouted += i64::from(!h.routed);
        } else {
            out.lost.push(h.row);
        }
    }
    add_kept(c, "unrouted", unrouted)?;
    file_routing(c, batch, &|row| held.contains(&row).then_some(row), rules)?;
    Ok(out)
}

/// Writes what routing produced for the hooks `row_of` maps to a row (whose routing this
/// transaction records; the others are left out): their deliveries, digest memberships,
/// silenced counts and rate counts.
fn file_routing(
    c: &Connection,
    batch: &DispatchBatch,
    row_of: &dyn Fn(i64) -> Option<i64>,
    rules: &Rules,
) -> Result<(), StoreError> {
    for d in &batch.deliveries {
        if let Some(row) = d.hook_row.and_then(row_of) {
            super::insert_delivery(c, d, Some(row), None)?;
        }
    }
    join_groups(
        c,
        batch
            .members
            .iter()
            .filter_map(|m| Some((m, row_of(m.hook_row)?))),
        rules,
    )?;
    let mut count_silenced = c.prepare_cached(
        "INSERT INTO group_silenced (route, group_key, count) VALUES (?1, ?2, 1)
         ON CONFLICT (route, group_key) DO UPDATE SET count = count + 1",
    )?;
    let mut hold_resolve = c.prepare_cached(
        "UPDATE groups SET resolve_at = MAX(resolve_at, ?3)
         WHERE route = ?1 AND group_key = ?2 AND resolve_at IS NOT NULL",
    )?;
    for s in batch
        .silenced
        .iter()
        .filter(|s| row_of(s.hook_row).is_some())
    {
        count_silenced.execute(params![s.route, s.group_key])?;
        if let Some(until) = s.resolve_until {
            hold_resolve.execute(params![s.route, s.group_key, until])?;
        }
    }
    super::count_rates(
        c,
        batch.rates.iter().filter(|n| row_of(n.hook_row).is_some()),
    )
}

/// Files members into their groups; each group's row is read and written once per batch.
fn join_groups<'a>(
    c: &Connection,
    members: impl Iterator<Item = (&'a NewMember, i64)>,
    rules: &Rules,
) -> Result<(), StoreError> {
    let mut by_group: BTreeMap<(&str, &str), Vec<&NewMember>> = BTreeMap::new();
    let mut insert = c.prepare_cached(
        "INSERT OR IGNORE INTO group_members
           (route, group_key, hook_row, received_at, kind, result_code, message_type, sender_key)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?;
    for (m, row) in members {
        let added = insert.execute(params![
            m.route,
            m.group_key,
            row,
            m.joined_at,
            m.kind.as_str(),
            m.result_code,
            m.message_type,
            m.sender_key
        ])?;
        if added == 1 {
            by_group
                .entry((m.route.as_str(), m.group_key.as_str()))
                .or_default()
                .push(m);
        }
    }
    for ((route, key), joined) in by_group {
        let mut timing = super::group_timing(c, route, key)?;
        for m in &joined {
            timing = Some((rules.join)(
                timing,
                Join {
                    at: m.joined_at,
                    routed_at: m.routed_at,
                    wait_ms: m.settings.wait_ms,
                    interval_ms: m.settings.interval_ms,
                    resolve_after_ms: m.settings.resolve_after_ms,
                },
            ));
        }
        let (Some(t), Some(last)) = (timing, joined.last()) else {
            continue;
        };
        let settings = serde_json::to_string(&last.settings)
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        super::save_timing(c, route, key, &t, Some(&settings))?;
    }
    Ok(())
}

pub(in crate::store::sqlite) fn fail_dispatch(
    c: &Connection,
    who: &Claimant,
    f: &RoutingFailure,
) -> Result<Vec<i64>, StoreError> {
    let mut stmt = c.prepare_cached(
        "UPDATE hooks SET failures = failures + 1, reason = ?3,
           state = CASE WHEN failures + 1 >= ?4 THEN 'quarantined' ELSE state END,
           owner = NULL, claim_until = ?5
         WHERE id = ?1 AND state = 'waiting' AND owner = ?2
         RETURNING state",
    )?;
    let mut quarantined = Vec::new();
    for row in &f.rows {
        let states: Vec<String> = stmt
            .query_map(
                params![row, who.owner, f.reason, f.quarantine_after, f.retry_at],
                |r| r.get(0),
            )?
            .collect::<Result<_, _>>()?;
        if states.iter().any(|s| s == "quarantined") {
            quarantined.push(*row);
        }
    }
    add_kept(c, "quarantined", quarantined.len() as i64)?;
    Ok(quarantined)
}

pub(in crate::store::sqlite) fn reroute(
    c: &Connection,
    which: &Reroute,
) -> Result<usize, StoreError> {
    const SET: &str =
        "UPDATE hooks SET state = 'waiting', owner = NULL, claim_until = NULL, failures = 0";
    // Each rerouted hook's state before, so the kept counts lose what leaves them.
    let before: Vec<String> = match which {
        Reroute::Since(t) => c
            .prepare_cached(
                "SELECT state FROM hooks WHERE received_at >= ?1 AND state != 'waiting'",
            )?
            .query_map([t], |r| r.get(0))?
            .collect::<Result<_, _>>()?,
        Reroute::Unrouted | Reroute::Quarantined => Vec::new(),
        Reroute::Rows(rows) => {
            let mut stmt =
                c.prepare_cached("SELECT state FROM hooks WHERE id = ?1 AND state != 'waiting'")?;
            let mut states = Vec::new();
            for r in rows {
                if let Some(s) = stmt.query_row([r], |r| r.get(0)).optional()? {
                    states.push(s);
                }
            }
            states
        }
    };
    let moved = match which {
        Reroute::Since(t) => c.execute(
            &format!("{SET} WHERE received_at >= ?1 AND state != 'waiting'"),
            [t],
        )?,
        Reroute::Unrouted => {
            let n = c.execute(&format!("{SET} WHERE state = 'unrouted'"), [])?;
            add_kept(c, "unrouted", -(n as i64))?;
            n
        }
        Reroute::Quarantined => {
            let n = c.execute(&format!("{SET} WHERE state = 'quarantined'"), [])?;
            add_kept(c, "quarantined", -(n as i64))?;
            n
        }
        Reroute::Rows(rows) => {
            let mut stmt =
                c.prepare_cached(&format!("{SET} WHERE id = ?1 AND state != 'waiting'"))?;
            let mut n = 0;
            for r in rows {
                n += stmt.execute([r])?;
            }
            n
        }
    };
    for kept in ["unrouted", "quarantined"] {
        let n = before.iter().filter(|s| *s == kept).count();
        add_kept(c, kept, -(n as i64))?;
    }
    Ok(moved)
}

pub(in crate::store::sqlite) fn hooks_in(
    c: &Connection,
    state: HookState,
    limit: usize,
) -> Result<Vec<ListedHook>, StoreError> {
    let mut stmt = c.prepare_cached(&format!(
        "SELECT {HOOK_COLUMNS}, h.reason FROM hooks h WHERE h.state = ?1 ORDER BY h.id DESC LIMIT ?2"
    ))?;
    let mut rows = stmt.query(params![state.as_str(), limit as i64])?;
    let mut cache = EnvelopeCache::default();
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        out.push(ListedHook {
            hook: hook_from(r, &mut cache)?,
            state,
            reason: r.get(6)?,
        });
    }
    Ok(out)
}

pub(in crate::store::sqlite) fn inbox_stats(c: &Connection) -> Result<InboxStats, StoreError> {
    let (waiting, oldest): (i64, Option<i64>) = c
        .prepare_cached("SELECT COUNT(*), MIN(received_at) FROM hooks WHERE state = 'waiting'")?
        .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))?;
    let count = |state: &str| -> Result<i64, StoreError> {
        Ok(
            c.prepare_cached("SELECT n FROM inbox_counts WHERE state = ?1")?
                .query_row([state], |r| r.get(0))
                .optional()?
                .unwrap_or(0),
        )
    };
    Ok(InboxStats {
        waiting,
        oldest_waiting_at: oldest,
        unrouted: count("unrouted")?,
        quarantined: count("quarantined")?,
    })
}

fn rejected_filter(selection: &Selection) -> (String, Vec<rusqlite::types::Value>) {
    use rusqlite::types::Value;
    match selection {
        Selection::All | Selection::Destination(_) => ("1 = 1".into(), vec![]),
        Selection::OlderThan(t) => ("received_at < ?1".into(), vec![Value::Integer(*t)]),
        Selection::Ids(ids) => {
            let list = ids.iter().map(i64::to_string).collect::<Vec<_>>().join(",");
            (format!("id IN ({list})"), vec![])
        }
    }
}

pub(in crate::store::sqlite) fn rejected(
    c: &Connection,
    selection: &Selection,
) -> Result<Vec<RejectedHook>, StoreError> {
    let (filter, args) = rejected_filter(selection);
    let mut stmt = c.prepare(&format!(
        "SELECT id, received_at, hooks_id, position, reason, raw FROM rejected WHERE {filter} ORDER BY id DESC"
    ))?;
    let rows = stmt.query_map(rusqlite::params_from_iter(args), |r| {
        Ok(RejectedHook {
            id: r.get(0)?,
            received_at: r.get(1)?,
            hooks_id: r.get(2)?,
            position: r.get(3)?,
            reason: r.get(4)?,
            raw: r.get(5)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

pub(in crate::store::sqlite) fn purge_rejected(
    c: &Connection,
    selection: &Selection,
) -> Result<usize, StoreError> {
    let (filter, args) = rejected_filter(selection);
    Ok(c.execute(
        &format!("DELETE FROM rejected WHERE {filter}"),
        rusqlite::params_from_iter(args),
    )?)
}
