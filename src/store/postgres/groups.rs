//! Digest groups on PostgreSQL: a due group is claimed under `FOR UPDATE SKIP LOCKED` (in a
//! short transaction, so joins wait for no digest being built), its current members are
//! then marked with the claim's token and counted, and the flush removes exactly the marked
//! members with the group row locked, if the claim is still its own.

use deadpool_postgres::{Pool, Transaction};
use tokio_postgres::Row;

use super::inbox::hooks_from;
use super::{map, token};
use crate::store::*;

const TIMING: &str = "started_at, total, pending, last_flush_at, next_flush_at, resolve_at";

fn timing_from(r: &Row, at: usize) -> GroupTiming {
    GroupTiming {
        started_at: r.get(at),
        total: r.get(at + 1),
        pending: r.get(at + 2),
        last_flush_at: r.get(at + 3),
        next_flush_at: r.get(at + 4),
        resolve_at: r.get(at + 5),
    }
}

/// A group's timing, with its row locked until the transaction ends.
pub(super) async fn lock_timing(
    tx: &Transaction<'_>,
    route: &str,
    key: &str,
) -> Result<Option<GroupTiming>, StoreError> {
    let stmt = tx
        .prepare_cached(&format!(
            "SELECT {TIMING} FROM groups WHERE route = $1 AND group_key = $2 FOR UPDATE"
        ))
        .await
        .map_err(map)?;
    Ok(tx
        .query_opt(&stmt, &[&route, &key])
        .await
        .map_err(map)?
        .map(|r| timing_from(&r, 0)))
}

pub(super) async fn save_timing(
    tx: &Transaction<'_>,
    route: &str,
    key: &str,
    t: &GroupTiming,
    settings: Option<&str>,
) -> Result<(), StoreError> {
    let stmt = tx
        .prepare_cached(
            "UPDATE groups SET started_at = $3, total = $4, pending = $5, last_flush_at = $6,
               next_flush_at = $7, settings = COALESCE($8, settings), resolve_at = $9
             WHERE route = $1 AND group_key = $2",
        )
        .await
        .map_err(map)?;
    tx.execute(
        &stmt,
        &[
            &route,
            &key,
            &t.started_at,
            &t.total,
            &t.pending,
            &t.last_flush_at,
            &t.next_flush_at,
            &settings,
            &t.resolve_at,
        ],
    )
    .await
    .map_err(map)?;
    Ok(())
}

pub(super) async fn group_timing(
    pool: &Pool,
    route: &str,
    key: &str,
) -> Result<Option<GroupTiming>, StoreError> {
    let client = pool.get().await.map_err(map)?;
    Ok(client
        .query_opt(
            &format!("SELECT {TIMING} FROM groups WHERE route = $1 AND group_key = $2"),
            &[&route, &key],
        )
        .await
        .map_err(map)?
        .map(|r| timing_from(&r, 0)))
}

pub(super) async fn next_flush_at(pool: &Pool) -> Result<Option<i64>, StoreError> {
    let client = pool.get().await.map_err(map)?;
    Ok(client
        .query_one(
            "SELECT LEAST(
               (SELECT MIN(CASE WHEN pending > 0 THEN next_flush_at ELSE resolve_at END) FROM groups
                 WHERE pending > 0 OR resolve_at IS NOT NULL),
               (SELECT MIN(eval_window + window_ms) + $1 FROM rate_series WHERE eval_window IS NOT NULL))",
            &[&RATE_GRACE_MS],
        )
        .await
        .map_err(map)?
        .get(0))
}

async fn breakdown(
    tx: &Transaction<'_>,
    column: &str,
    route: &str,
    key: &str,
    token: i64,
) -> Result<Vec<(Option<String>, usize)>, StoreError> {
    let stmt = tx
        .prepare_cached(&format!(
            "SELECT {column}, COUNT(*) AS n FROM group_members
             WHERE route = $1 AND group_key = $2 AND flush_token = $3
             GROUP BY {column} ORDER BY n DESC, {column} NULLS FIRST"
        ))
        .await
        .map_err(map)?;
    Ok(tx
        .query(&stmt, &[&route, &key, &token])
        .await
        .map_err(map)?
        .iter()
        .map(|r| (r.get(0), r.get::<_, i64>(1) as usize))
        .collect())
}

pub(super) async fn claim_groups(
    pool: &Pool,
    who: &Claimant,
    now: i64,
    limit: usize,
) -> Result<Vec<DueGroup>, StoreError> {
    let mut client = pool.get().await.map_err(map)?;
    // The claims are taken in a short transaction of their own: its group rows are locked
    // only until they are claimed. Marking and counting the members (tens of milliseconds
    // for a storm's group) then runs under the claim alone, so the hooks joining the group
    // meanwhile (routed at ingest) do not wait for the digest to be built.
    let tx = client.transaction().await.map_err(map)?;
    let heads = tx
        .query(
            &format!(
                "SELECT route, group_key, settings, {TIMING} FROM groups
                 WHERE ((pending > 0 AND next_flush_at <= $1) OR (pending = 0 AND resolve_at <= $1))
                   AND (claim_token IS NULL OR claim_until < $1 OR claim_owner = $2)
                 ORDER BY CASE WHEN pending > 0 THEN next_flush_at ELSE resolve_at END
                 LIMIT $3 FOR UPDATE SKIP LOCKED"
            ),
            &[&now, &who.owner, &(limit as i64)],
        )
        .await
        .map_err(map)?;
    let mut claimed = Vec::with_capacity(heads.len());
    for head in heads {
        let route: String = head.get(0);
        let group_key: String = head.get(1);
        let settings: GroupSettings =
            serde_json::from_str(head.get::<_, &str>(2)).map_err(|e| {
                StoreError::Corrupt(format!("settings of group {route}/{group_key}: {e}"))
            })?;
        let timing = timing_from(&head, 3);
        let token = token();
        tx.execute(
            "UPDATE groups SET claim_owner = $3, claim_token = $4, claim_until = $5
             WHERE route = $1 AND group_key = $2",
            &[&route, &group_key, &who.owner, &token, &(now + who.ttl_ms)],
        )
        .await
        .map_err(map)?;
        claimed.push((route, group_key, settings, timing, token));
    }
    tx.commit().await.map_err(map)?;
    let mut out = Vec::with_capacity(claimed.len());
    for (route, group_key, settings, timing, token) in claimed {
        let tx = client.transaction().await.map_err(map)?;
        // Members marked by any earlier claim belong to this digest too: one claim per group
        // is live, so every other token is dead (a claim can be taken over before it marked
        // anything, leaving older marks behind). Marked only while the claim is still this
        // one's; a replica that took it over meanwhile marks them itself. A group claimed for
        // its resolved message (no members then) marks none, so a hook joining meanwhile
        // makes the flush see the group is not quiet, as it did when the claim held the row.
        if timing.pending > 0 {
            tx.execute(
                "UPDATE group_members SET flush_token = $3
                 WHERE route = $1 AND group_key = $2 AND flush_token IS DISTINCT FROM $3
                   AND EXISTS (SELECT 1 FROM groups g
                               WHERE g.route = $1 AND g.group_key = $2 AND g.claim_token = $3)",
                &[&route, &group_key, &token],
            )
            .await
            .map_err(map)?;
        }
        let agg = tx
            .query_one(
                "SELECT COUNT(*), MIN(received_at), MAX(received_at),
                        COUNT(*) FILTER (WHERE kind <> 'message_result')
                 FROM group_members WHERE route = $1 AND group_key = $2 AND flush_token = $3",
                &[&route, &group_key, &token],
            )
            .await
            .map_err(map)?;
        let tally = Tally {
            count: agg.get::<_, i64>(0) as usize,
            non_results: agg.get::<_, i64>(3) as usize,
            first_at: agg.get(1),
            last_at: agg.get(2),
            codes: breakdown(&tx, "result_code", &route, &group_key, token).await?,
            message_types: breakdown(&tx, "message_type", &route, &group_key, token).await?,
            senders: breakdown(&tx, "sender_key", &route, &group_key, token).await?,
        };
        let rows = tx
            .query(
                "SELECT h.id, h.received_at, h.raw, h.envelope, h.sent_to, h.failures
                 FROM group_members m JOIN hooks h ON h.id = m.hook_row
                 WHERE m.route = $1 AND m.group_key = $2 AND m.flush_token = $3
                 ORDER BY m.hook_row LIMIT $4",
                &[&route, &group_key, &token, &(settings.max_items as i64)],
            )
            .await
            .map_err(map)?;
        let samples = hooks_from(&rows)?;
        let silenced: i64 = tx
            .query_opt(
                "SELECT count FROM group_silenced WHERE route = $1 AND group_key = $2",
                &[&route, &group_key],
            )
            .await
            .map_err(map)?
            .map_or(0, |r| r.get(0));
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
        tx.commit().await.map_err(map)?;
    }
    Ok(out)
}

pub(super) async fn commit_flush(
    pool: &Pool,
    who: &Claimant,
    flush: &Flush,
    rules: &Rules,
) -> Result<bool, StoreError> {
    let mut client = pool.get().await.map_err(map)?;
    let tx = client.transaction().await.map_err(map)?;
    let held = tx
        .query_opt(
            &format!(
                "SELECT claim_owner, settings, {TIMING} FROM groups
                 WHERE route = $1 AND group_key = $2 AND claim_token = $3 FOR UPDATE"
            ),
            &[&flush.route, &flush.group_key, &flush.token],
        )
        .await
        .map_err(map)?;
    let Some(row) = held else {
        return Ok(false);
    };
    if row.get::<_, Option<String>>(0).as_deref() != Some(who.owner.as_str()) {
        return Ok(false);
    }
    let interval_ms = serde_json::from_str::<GroupSettings>(row.get::<_, &str>(1))
        .map(|s| s.interval_ms)
        .unwrap_or(0);
    let timing = timing_from(&row, 2);
    if flush.resolved && !resolve_still_due(&timing, flush.now) {
        // A hook joined after the claim: the group is not quiet any more.
        tx.execute(
            "UPDATE groups SET claim_owner = NULL, claim_token = NULL, claim_until = NULL
             WHERE route = $1 AND group_key = $2",
            &[&flush.route, &flush.group_key],
        )
        .await
        .map_err(map)?;
        tx.commit().await.map_err(map)?;
        return Ok(false);
    }
    let removed = tx
        .execute(
            "DELETE FROM group_members WHERE route = $1 AND group_key = $2 AND flush_token = $3",
            &[&flush.route, &flush.group_key, &flush.token],
        )
        .await
        .map_err(map)? as i64;
    if removed != flush.count {
        return Err(StoreError::Corrupt(format!(
            "group {}/{}: the digest counts {} members but {removed} were marked for it",
            flush.route, flush.group_key, flush.count
        )));
    }
    let digest_id: i64 = tx
        .query_one(
            "INSERT INTO digests (v, route, group_key, count, created_at, context)
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
            &[
                &FORMAT_VERSION,
                &flush.route,
                &flush.group_key,
                &removed,
                &flush.now,
                &flush.context,
            ],
        )
        .await
        .map_err(map)?
        .get(0);
    let deliveries: Vec<&NewDelivery> = flush.deliveries.iter().collect();
    super::outbox::insert_deliveries(&tx, &deliveries, Some(digest_id)).await?;
    let after = (rules.flushed)(
        timing,
        Flushed {
            members: removed,
            at: flush.now,
            interval_ms,
            resolved: flush.resolved,
        },
    );
    save_timing(&tx, &flush.route, &flush.group_key, &after, None).await?;
    if flush.silenced > 0 {
        tx.execute(
            "UPDATE group_silenced SET count = count - $3 WHERE route = $1 AND group_key = $2",
            &[&flush.route, &flush.group_key, &flush.silenced],
        )
        .await
        .map_err(map)?;
        tx.execute(
            "DELETE FROM group_silenced WHERE route = $1 AND group_key = $2 AND count <= 0",
            &[&flush.route, &flush.group_key],
        )
        .await
        .map_err(map)?;
    }
    tx.execute(
        "UPDATE groups SET claim_owner = NULL, claim_token = NULL, claim_until = NULL
         WHERE route = $1 AND group_key = $2",
        &[&flush.route, &flush.group_key],
    )
    .await
    .map_err(map)?;
    tx.commit().await.map_err(map)?;
    Ok(true)
}
