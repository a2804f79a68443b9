//! The inbox on PostgreSQL: ingest (one transaction for a whole batch of POSTs: group
//! commit), claims with `FOR UPDATE SKIP LOCKED`, the routing commit fenced by the claim,
//! failures and quarantine, rerouting and the rejected hooks.

use std::collections::{BTreeMap, HashSet};

use deadpool_postgres::{Pool, Transaction};
use tokio_postgres::Row;

use super::kept::{Kept, counted, tally};
use super::{hook_from, map};
use crate::store::*;

/// Rejected hooks are kept for inspection up to this many bytes each.
const MAX_REJECTED_RAW: usize = 64 * 1024;

const HOOK_COLUMNS: &str = "id, received_at, raw, envelope, sent_to, failures";

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

/// Stores several POSTs in one transaction. Keys are inserted in sorted order, so two
/// replicas storing the same keys at once wait for each other instead of deadlocking; a key
/// that appears twice in the batch is a duplicate at its second appearance.
pub(super) async fn ingest(
    tx: &Transaction<'_>,
    posts: &[NewPost],
    dedup_window_ms: i64,
) -> Result<Vec<IngestOutcome>, StoreError> {
    let reject = tx
        .prepare_cached(
            "INSERT INTO rejected (received_at, hooks_id, position, reason, raw)
             SELECT * FROM unnest($1::bigint[], $2::text[], $3::bigint[], $4::text[], $5::text[])",
        )
        .await
        .map_err(map)?;
    let (mut r_at, mut r_id, mut r_pos, mut r_reason, mut r_raw) =
        (vec![], vec![], vec![], vec![], vec![]);
    for p in posts {
        for r in &p.rejected {
            r_at.push(p.received_at);
            r_id.push(p.hooks_id.clone());
            r_pos.push(r.position as i64);
            r_reason.push(r.reason.clone());
            r_raw.push(clip(&r.raw, MAX_REJECTED_RAW).to_string());
        }
    }
    if !r_at.is_empty() {
        tx.execute(&reject, &[&r_at, &r_id, &r_pos, &r_reason, &r_raw])
            .await
            .map_err(map)?;
    }
    // First appearance of every key in the batch, with when its POST arrived.
    let mut first: BTreeMap<&str, i64> = BTreeMap::new();
    for p in posts {
        for h in &p.hooks {
            first.entry(h.dedup_key.as_str()).or_insert(p.received_at);
        }
    }
    let keys: Vec<&str> = first.keys().copied().collect();
    let seen_at: Vec<i64> = first.values().copied().collect();
    let fresh_keys: HashSet<String> = if keys.is_empty() {
        Default::default()
    } else {
        let stmt = tx
            .prepare_cached(
                "INSERT INTO seen AS s (key, seen_at)
                 SELECT * FROM unnest($1::text[], $2::bigint[])
                 ON CONFLICT (key) DO UPDATE SET seen_at = excluded.seen_at
                   WHERE s.seen_at < excluded.seen_at - $3
                 RETURNING key",
            )
            .await
            .map_err(map)?;
        tx.query(&stmt, &[&keys, &seen_at, &dedup_window_ms])
            .await
            .map_err(map)?
            .iter()
            .map(|r| r.get::<_, String>(0))
            .collect()
    };
    let mut taken: HashSet<&str> = Default::default();
    let mut outcomes = Vec::with_capacity(posts.len());
    let (mut h_at, mut h_env, mut h_raw) = (vec![], vec![], vec![]);
    let (mut h_owner, mut h_until): (Vec<Option<&str>>, Vec<Option<i64>>) = (vec![], vec![]);
    let (mut h_state, mut h_sent): (Vec<&str>, Vec<Option<String>>) = (vec![], vec![]);
    // (post, hook) of every inserted row, in insertion order.
    let mut slots: Vec<(usize, usize)> = Vec::new();
    for (pi, p) in posts.iter().enumerate() {
        // Routed before the write: each hook's outcome, by position.
        let mut routed: Vec<Option<&HookOutcome>> = vec![None; p.hooks.len()];
        for h in p.routed.iter().flat_map(|r| &r.batch.hooks) {
            if let Some(slot) = usize::try_from(h.row).ok().and_then(|i| routed.get_mut(i)) {
                *slot = Some(h);
            }
        }
        let mut out = IngestOutcome {
            rejected: p.rejected.len(),
            ..IngestOutcome::default()
        };
        for (hi, h) in p.hooks.iter().enumerate() {
            let fresh = fresh_keys.contains(&h.dedup_key) && taken.insert(h.dedup_key.as_str());
            out.fresh.push(fresh);
            out.rows.push(None);
            if fresh {
                out.accepted += 1;
                h_at.push(p.received_at);
                h_env.push(p.envelope_json.as_str());
                h_raw.push(&*h.raw);
                h_owner.push(p.claim.as_ref().map(|w| w.owner.as_str()));
                h_until.push(p.claim.as_ref().map(|w| p.received_at + w.ttl_ms));
                match routed[hi] {
                    Some(o) => {
                        h_state.push(if o.routed { "routed" } else { "unrouted" });
                        h_sent.push(sent_to_json(&o.sent_to));
                    }
                    None => {
                        h_state.push("waiting");
                        h_sent.push(None);
                    }
                }
                slots.push((pi, hi));
            } else {
                out.duplicates += 1;
            }
        }
        outcomes.push(out);
    }
    if !h_at.is_empty() {
        // Only hooks routed before the write can be stored unrouted; a batch without any
        // (hooks left waiting for the dispatcher, or all routed somewhere) counts nothing.
        let count = if h_state.contains(&"unrouted") {
            counted("stored")
        } else {
            String::new()
        };
        let insert = tx
            .prepare_cached(&format!(
                "WITH stored AS (
                   INSERT INTO hooks (v, received_at, envelope, raw, owner, claim_until, state, sent_to)
                   SELECT $1, * FROM unnest($2::bigint[], $3::text[], $4::text[], $5::text[],
                     $6::bigint[], $7::text[], $8::text[])
                   RETURNING id, state)
                 {count}
                 SELECT id FROM stored"
            ))
            .await
            .map_err(map)?;
        // Identity values follow the order rows are inserted, which is the arrays' order.
        let mut ids: Vec<i64> = tx
            .query(
                &insert,
                &[
                    &FORMAT_VERSION,
                    &h_at,
                    &h_env,
                    &h_raw,
                    &h_owner,
                    &h_until,
                    &h_state,
                    &h_sent,
                ],
            )
            .await
            .map_err(map)?
            .iter()
            .map(|r| r.get(0))
            .collect();
        ids.sort_unstable();
        for ((pi, hi), id) in slots.into_iter().zip(ids) {
            outcomes[pi].rows[hi] = Some(id);
        }
    }
    // The routing of the posts routed before the write, in one piece: one sorted order of
    // group locks for the whole transaction (no deadlock with another replica's).
    let mut routing = DispatchBatch::default();
    let mut rules = None;
    for (p, out) in posts.iter().zip(&outcomes) {
        if let Some(r) = &p.routed {
            routing.absorb(r.batch.clone().placed(&out.rows));
            rules = Some(r.rules);
        }
    }
    if let Some(rules) = rules {
        let held: HashSet<i64> = routing.hooks.iter().map(|h| h.row).collect();
        file_routing(tx, &routing, &held, &rules).await?;
    }
    Ok(outcomes)
}

/// `sent_to` as stored: a JSON list, or NULL when empty.
fn sent_to_json(sent_to: &[String]) -> Option<String> {
    (!sent_to.is_empty()).then(|| serde_json::to_string(sent_to).unwrap_or_default())
}

pub(super) async fn claim_hooks(
    pool: &Pool,
    who: &Claimant,
    now: i64,
    limit: usize,
) -> Result<Vec<StoredHook>, StoreError> {
    let client = pool.get().await.map_err(map)?;
    let stmt = client
        .prepare_cached(&format!(
            "WITH c AS (
               SELECT id FROM hooks WHERE state = 'waiting'
                 AND (claim_until IS NULL OR claim_until < $3)
               ORDER BY id LIMIT $4 FOR UPDATE SKIP LOCKED)
             UPDATE hooks h SET owner = $1, claim_until = $2 FROM c WHERE h.id = c.id
             RETURNING {}",
            HOOK_COLUMNS
                .split(", ")
                .map(|c| format!("h.{c}"))
                .collect::<Vec<_>>()
                .join(", ")
        ))
        .await
        .map_err(map)?;
    let rows = client
        .query(
            &stmt,
            &[&who.owner, &(now + who.ttl_ms), &now, &(limit as i64)],
        )
        .await
        .map_err(map)?;
    let mut hooks = hooks_from(&rows)?;
    hooks.sort_by_key(|h| h.row);
    Ok(hooks)
}

pub(super) fn hooks_from(rows: &[Row]) -> Result<Vec<StoredHook>, StoreError> {
    let mut cache = EnvelopeCache::default();
    rows.iter().map(|r| hook_from(r, &mut cache)).collect()
}

pub(super) async fn commit_dispatch(
    pool: &Pool,
    who: &Claimant,
    batch: &DispatchBatch,
    rules: &Rules,
) -> Result<DispatchCommit, StoreError> {
    let mut client = pool.get().await.map_err(map)?;
    let tx = client.transaction().await.map_err(map)?;
    let ids: Vec<i64> = batch.hooks.iter().map(|h| h.row).collect();
    let states: Vec<&str> = batch
        .hooks
        .iter()
        .map(|h| if h.routed { "routed" } else { "unrouted" })
        .collect();
    let sent_to: Vec<Option<String>> = batch
        .hooks
        .iter()
        .map(|h| sent_to_json(&h.sent_to))
        .collect();
    let count = if states.contains(&"unrouted") {
        counted("settled")
    } else {
        String::new()
    };
    let settle = tx
        .prepare_cached(&format!(
            "WITH settled AS (
               UPDATE hooks h SET state = v.state, sent_to = v.sent_to, owner = NULL,
                   claim_until = NULL, reason = NULL
               FROM unnest($2::bigint[], $3::text[], $4::text[]) AS v(id, state, sent_to)
               WHERE h.id = v.id AND h.state = 'waiting' AND h.owner = $1
               RETURNING h.id, h.state)
             {count}
             SELECT id FROM settled"
        ))
        .await
        .map_err(map)?;
    let held: HashSet<i64> = tx
        .query(&settle, &[&who.owner, &ids, &states, &sent_to])
        .await
        .map_err(map)?
        .iter()
        .map(|r| r.get(0))
        .collect();
    file_routing(&tx, batch, &held, rules).await?;
    tx.commit().await.map_err(map)?;
    let mut lost: Vec<i64> = ids.into_iter().filter(|id| !held.contains(id)).collect();
    lost.sort_unstable();
    Ok(DispatchCommit {
        committed: held.len(),
        lost,
    })
}

/// Writes what routing produced for the hooks in `held` (whose routing this transaction
/// records): their deliveries, digest memberships, silenced counts and rate counts.
async fn file_routing(
    tx: &Transaction<'_>,
    batch: &DispatchBatch,
    held: &HashSet<i64>,
    rules: &Rules,
) -> Result<(), StoreError> {
    let deliveries: Vec<&NewDelivery> = batch
        .deliveries
        .iter()
        .filter(|d| d.hook_row.is_some_and(|r| held.contains(&r)))
        .collect();
    super::outbox::insert_deliveries(tx, &deliveries, None).await?;
    let members: Vec<&NewMember> = batch
        .members
        .iter()
        .filter(|m| held.contains(&m.hook_row))
        .collect();
    // Silenced hooks of a group with `resolve_after` hold its resolved message back. Those
    // updates lock group rows after the joins do, so when there are any, every group row the
    // commit touches is locked first, in one sorted order (no deadlock between replicas).
    let hold_resolve: Vec<(&str, &str, i64)> = batch
        .silenced
        .iter()
        .filter(|s| held.contains(&s.hook_row))
        .filter_map(|s| Some((s.route.as_str(), s.group_key.as_str(), s.resolve_until?)))
        .collect();
    if !hold_resolve.is_empty() {
        // Member groups are created before they are locked, as `join_groups` does, so both
        // take the same rows in the same order (a row created later would break the order).
        let joined: std::collections::BTreeSet<(&str, &str)> = members
            .iter()
            .map(|m| (m.route.as_str(), m.group_key.as_str()))
            .collect();
        let groups: std::collections::BTreeSet<(&str, &str)> = joined
            .iter()
            .copied()
            .chain(hold_resolve.iter().map(|h| (h.0, h.1)))
            .collect();
        for (route, key) in groups {
            if joined.contains(&(route, key)) {
                tx.execute(ENSURE_GROUP, &[&route, &key])
                    .await
                    .map_err(map)?;
            }
            tx.execute(
                "SELECT 1 FROM groups WHERE route = $1 AND group_key = $2 FOR UPDATE",
                &[&route, &key],
            )
            .await
            .map_err(map)?;
        }
    }
    join_groups(tx, &members, rules).await?;
    for (route, key, until) in &hold_resolve {
        tx.execute(
            "UPDATE groups SET resolve_at = GREATEST(resolve_at, $3)
             WHERE route = $1 AND group_key = $2 AND resolve_at IS NOT NULL",
            &[route, key, until],
        )
        .await
        .map_err(map)?;
    }
    let mut silenced: Vec<(&str, &str)> = batch
        .silenced
        .iter()
        .filter(|s| held.contains(&s.hook_row))
        .map(|s| (s.route.as_str(), s.group_key.as_str()))
        .collect();
    // Sorted, so replicas counting into the same groups lock their rows in one order.
    silenced.sort_unstable();
    if !silenced.is_empty() {
        let routes: Vec<&str> = silenced.iter().map(|s| s.0).collect();
        let keys: Vec<&str> = silenced.iter().map(|s| s.1).collect();
        tx.execute(
            "INSERT INTO group_silenced (route, group_key, count)
             SELECT r, k, COUNT(*) FROM unnest($1::text[], $2::text[]) AS u(r, k)
             GROUP BY r, k ORDER BY r, k
             ON CONFLICT (route, group_key) DO UPDATE
               SET count = group_silenced.count + excluded.count",
            &[&routes, &keys],
        )
        .await
        .map_err(map)?;
    }
    let rates: Vec<&NewRateCount> = batch
        .rates
        .iter()
        .filter(|n| held.contains(&n.hook_row))
        .collect();
    super::rates::count_rates(tx, &rates).await
}

/// Creates a group's row if it has none yet (its timing is then decided under its lock).
const ENSURE_GROUP: &str =
    "INSERT INTO groups (route, group_key, started_at, total, pending, settings)
     VALUES ($1, $2, 0, 0, 0, '{}') ON CONFLICT DO NOTHING";

/// Files members into their groups. Group rows are locked in sorted order (so concurrent
/// replicas never deadlock) and each is read and written once per batch, under its lock.
async fn join_groups(
    tx: &Transaction<'_>,
    members: &[&NewMember],
    rules: &Rules,
) -> Result<(), StoreError> {
    if members.is_empty() {
        return Ok(());
    }
    let insert = tx
        .prepare_cached(
            "INSERT INTO group_members (route, group_key, hook_row, received_at, kind, result_code, message_type, sender_key)
             SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[], $5::text[], $6::text[], $7::text[], $8::text[])
             ON CONFLICT DO NOTHING
             RETURNING route, group_key, hook_row",
        )
        .await
        .map_err(map)?;
    let col = |f: fn(&NewMember) -> Option<String>| -> Vec<Option<String>> {
        members.iter().map(|m| f(m)).collect()
    };
    let routes: Vec<&str> = members.iter().map(|m| m.route.as_str()).collect();
    let keys: Vec<&str> = members.iter().map(|m| m.group_key.as_str()).collect();
    let rows: Vec<i64> = members.iter().map(|m| m.hook_row).collect();
    let at: Vec<i64> = members.iter().map(|m| m.joined_at).collect();
    let kinds: Vec<&str> = members.iter().map(|m| m.kind.as_str()).collect();
    let added: HashSet<(String, String, i64)> = tx
        .query(
            &insert,
            &[
                &routes,
                &keys,
                &rows,
                &at,
                &kinds,
                &col(|m| m.result_code.clone()),
                &col(|m| m.message_type.clone()),
                &col(|m| m.sender_key.clone()),
            ],
        )
        .await
        .map_err(map)?
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    let mut by_group: BTreeMap<(&str, &str), Vec<&NewMember>> = BTreeMap::new();
    for m in members {
        if added.contains(&(m.route.clone(), m.group_key.clone(), m.hook_row)) {
            by_group
                .entry((m.route.as_str(), m.group_key.as_str()))
                .or_default()
                .push(m);
        }
    }
    let ensure = tx.prepare_cached(ENSURE_GROUP).await.map_err(map)?;
    for ((route, key), joined) in by_group {
        tx.execute(&ensure, &[&route, &key]).await.map_err(map)?;
        let mut timing = super::groups::lock_timing(tx, route, key).await?;
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
        super::groups::save_timing(tx, route, key, &t, Some(&settings)).await?;
    }
    Ok(())
}

pub(super) async fn fail_dispatch(
    pool: &Pool,
    who: &Claimant,
    f: &RoutingFailure,
) -> Result<Vec<i64>, StoreError> {
    let mut client = pool.get().await.map_err(map)?;
    let tx = client.transaction().await.map_err(map)?;
    let stmt = tx
        .prepare_cached(
            "UPDATE hooks SET failures = failures + 1, reason = $3,
               state = CASE WHEN failures + 1 >= $4 THEN 'quarantined' ELSE state END,
               owner = NULL, claim_until = $5
             WHERE id = ANY($1) AND state = 'waiting' AND owner = $2
             RETURNING id, state",
        )
        .await
        .map_err(map)?;
    let rows = tx
        .query(
            &stmt,
            &[
                &f.rows,
                &who.owner,
                &f.reason,
                &f.quarantine_after,
                &f.retry_at,
            ],
        )
        .await
        .map_err(map)?;
    let quarantined: Vec<i64> = rows
        .iter()
        .filter(|r| r.get::<_, &str>(1) == "quarantined")
        .map(|r| r.get(0))
        .collect();
    let mut kept = Kept::default();
    kept.add("quarantined", quarantined.len() as i64);
    kept.save(&tx).await?;
    tx.commit().await.map_err(map)?;
    Ok(quarantined)
}

pub(super) async fn reroute(pool: &Pool, which: &Reroute) -> Result<usize, StoreError> {
    let mut client = pool.get().await.map_err(map)?;
    let tx = client.transaction().await.map_err(map)?;
    // The rows are locked and their states read first: the counts need what they were.
    let sql = |cond: &str| {
        format!(
            "WITH moved AS (
               UPDATE hooks h SET state = 'waiting', owner = NULL, claim_until = NULL, failures = 0
               FROM (SELECT id, state FROM hooks WHERE {cond} FOR UPDATE) was
               WHERE h.id = was.id
               RETURNING was.state)
             SELECT state, COUNT(*) FROM moved GROUP BY state"
        )
    };
    let moved = match which {
        Reroute::Since(t) => {
            tx.query(&sql("received_at >= $1 AND state <> 'waiting'"), &[t])
                .await
        }
        Reroute::Unrouted => tx.query(&sql("state = 'unrouted'"), &[]).await,
        Reroute::Quarantined => tx.query(&sql("state = 'quarantined'"), &[]).await,
        Reroute::Rows(rows) => {
            tx.query(&sql("id = ANY($1) AND state <> 'waiting'"), &[rows])
                .await
        }
    }
    .map_err(map)?;
    let n: i64 = moved.iter().map(|r| r.get::<_, i64>(1)).sum();
    tally(&moved, -1).save(&tx).await?;
    tx.commit().await.map_err(map)?;
    Ok(n as usize)
}

pub(super) async fn hooks_in(
    pool: &Pool,
    state: HookState,
    limit: usize,
) -> Result<Vec<ListedHook>, StoreError> {
    let client = pool.get().await.map_err(map)?;
    let rows = client
        .query(
            &format!(
                "SELECT {HOOK_COLUMNS}, reason FROM hooks WHERE state = $1 ORDER BY id DESC LIMIT $2"
            ),
            &[&state.as_str(), &(limit as i64)],
        )
        .await
        .map_err(map)?;
    let mut cache = EnvelopeCache::default();
    rows.iter()
        .map(|r| {
            Ok(ListedHook {
                hook: hook_from(r, &mut cache)?,
                state,
                reason: r.get(6),
            })
        })
        .collect()
}

pub(super) async fn inbox_stats(pool: &Pool) -> Result<InboxStats, StoreError> {
    let client = pool.get().await.map_err(map)?;
    // Waiting hooks are few (the dispatcher keeps up) and indexed by `hooks_waiting`.
    let r = client
        .query_one(
            "SELECT COUNT(*), MIN(received_at) FROM hooks WHERE state = 'waiting'",
            &[],
        )
        .await
        .map_err(map)?;
    let kept = super::kept::read(&client).await?;
    Ok(InboxStats {
        waiting: r.get(0),
        oldest_waiting_at: r.get(1),
        unrouted: kept.unrouted,
        quarantined: kept.quarantined,
    })
}

fn rejected_filter(selection: &Selection) -> (String, Option<Vec<i64>>, Option<i64>) {
    match selection {
        Selection::All | Selection::Destination(_) => ("TRUE".into(), None, None),
        Selection::OlderThan(t) => ("received_at < $1".into(), None, Some(*t)),
        Selection::Ids(ids) => ("id = ANY($1)".into(), Some(ids.clone()), None),
    }
}

pub(super) async fn rejected(
    pool: &Pool,
    selection: &Selection,
) -> Result<Vec<RejectedHook>, StoreError> {
    let client = pool.get().await.map_err(map)?;
    let (filter, ids, older) = rejected_filter(selection);
    let sql = format!(
        "SELECT id, received_at, hooks_id, position, reason, raw FROM rejected WHERE {filter} ORDER BY id DESC"
    );
    let rows = match (&ids, &older) {
        (Some(ids), _) => client.query(&sql, &[ids]).await,
        (_, Some(t)) => client.query(&sql, &[t]).await,
        _ => client.query(&sql, &[]).await,
    }
    .map_err(map)?;
    Ok(rows
        .iter()
        .map(|r| RejectedHook {
            id: r.get(0),
            received_at: r.get(1),
            hooks_id: r.get(2),
            position: r.get(3),
            reason: r.get(4),
            raw: r.get(5),
        })
        .collect())
}

pub(super) async fn purge_rejected(
    pool: &Pool,
    selection: &Selection,
) -> Result<usize, StoreError> {
    let client = pool.get().await.map_err(map)?;
    let (filter, ids, older) = rejected_filter(selection);
    let sql = format!("DELETE FROM rejected WHERE {filter}");
    let n = match (&ids, &older) {
        (Some(ids), _) => client.execute(&sql, &[ids]).await,
        (_, Some(t)) => client.execute(&sql, &[t]).await,
        _ => client.execute(&sql, &[]).await,
    }
    .map_err(map)?;
    Ok(n as usize)
}
