//! The outbox on PostgreSQL: deliveries, leases granted under the destination's pace row
//! (locked `FOR UPDATE`, which serialises every replica's senders of one destination),
//! attempts recorded only under the lease, dead letters and queue figures.

use deadpool_postgres::{Pool, Transaction};
use tokio_postgres::Row;

use super::inbox::hooks_from;
use super::{map, token};
use crate::store::*;

pub(super) async fn insert_deliveries(
    tx: &Transaction<'_>,
    deliveries: &[&NewDelivery],
    digest_id: Option<i64>,
) -> Result<(), StoreError> {
    if deliveries.is_empty() {
        return Ok(());
    }
    let stmt = tx
        .prepare_cached(
            "INSERT INTO deliveries (v, destination, route, template, hook_row, digest_id, hook_id,
                                     payload, state, attempts, created_at, received_at, next_attempt_at, reason)
             SELECT $1, d, r, t, hr, $2, hid, p, CASE WHEN dead IS NULL THEN 'pending' ELSE 'dead' END,
                    0, c, ra, c, dead
             FROM unnest($3::text[], $4::text[], $5::text[], $6::bigint[], $7::text[], $8::text[],
                         $9::bigint[], $10::bigint[], $11::text[])
                  AS u(d, r, t, hr, hid, p, c, ra, dead)
             ON CONFLICT DO NOTHING",
        )
        .await
        .map_err(map)?;
    let dest: Vec<&str> = deliveries.iter().map(|d| d.destination.as_str()).collect();
    let route: Vec<&str> = deliveries.iter().map(|d| d.route.as_str()).collect();
    let template: Vec<&str> = deliveries.iter().map(|d| d.template.as_str()).collect();
    let hook_row: Vec<Option<i64>> = deliveries.iter().map(|d| d.hook_row).collect();
    let hook_id: Vec<Option<&str>> = deliveries.iter().map(|d| d.hook_id.as_deref()).collect();
    let payload: Vec<&str> = deliveries.iter().map(|d| d.payload.as_str()).collect();
    let created: Vec<i64> = deliveries.iter().map(|d| d.created_at).collect();
    let received: Vec<i64> = deliveries.iter().map(|d| d.received_at).collect();
    let dead: Vec<Option<&str>> = deliveries.iter().map(|d| d.dead.as_deref()).collect();
    tx.execute(
        &stmt,
        &[
            &FORMAT_VERSION,
            &digest_id,
            &dest,
            &route,
            &template,
            &hook_row,
            &hook_id,
            &payload,
            &created,
            &received,
            &dead,
        ],
    )
    .await
    .map_err(map)?;
    Ok(())
}

const DELIVERY_COLUMNS: &str =
    "id, destination, route, hook_id, payload, attempts, created_at, received_at";

fn delivery_from(r: &Row) -> Delivery {
    Delivery {
        id: r.get(0),
        destination: r.get(1),
        route: r.get(2),
        hook_id: r.get(3),
        payload: r.get(4),
        attempts: r.get(5),
        created_at: r.get(6),
        received_at: r.get(7),
    }
}

/// The destination's pace row, locked until the transaction ends (created if missing).
async fn lock_pace(tx: &Transaction<'_>, destination: &str) -> Result<PaceState, StoreError> {
    tx.execute(
        "INSERT INTO destinations (name) VALUES ($1) ON CONFLICT DO NOTHING",
        &[&destination],
    )
    .await
    .map_err(map)?;
    let r = tx
        .query_one(
            "SELECT tat, blocked_until FROM destinations WHERE name = $1 FOR UPDATE",
            &[&destination],
        )
        .await
        .map_err(map)?;
    Ok(PaceState {
        tat: r.get(0),
        blocked_until: r.get(1),
    })
}

async fn save_pace(
    tx: &Transaction<'_>,
    destination: &str,
    p: &PaceState,
) -> Result<(), StoreError> {
    tx.execute(
        "UPDATE destinations SET tat = $2, blocked_until = $3 WHERE name = $1",
        &[&destination, &p.tat, &p.blocked_until],
    )
    .await
    .map_err(map)?;
    Ok(())
}

pub(super) async fn lease_delivery(
    pool: &Pool,
    destination: &str,
    who: &Claimant,
    now: i64,
    pacer: &Pacer,
) -> Result<LeaseOutcome, StoreError> {
    let mut client = pool.get().await.map_err(map)?;
    let tx = client.transaction().await.map_err(map)?;
    let pace = lock_pace(&tx, destination).await?;
    let live: Option<i64> = tx
        .query_one(
            "SELECT MAX(lease_until) FROM deliveries
             WHERE destination = $1 AND state = 'leased' AND lease_until >= $2",
            &[&destination, &now],
        )
        .await
        .map_err(map)?
        .get(0);
    if let Some(until) = live {
        return Ok(LeaseOutcome::Busy(until));
    }
    let next = tx
        .query_opt(
            &format!(
                "SELECT {DELIVERY_COLUMNS} FROM deliveries
                 WHERE destination = $1 AND state IN ('pending', 'leased') AND next_attempt_at <= $2
                 ORDER BY id LIMIT 1"
            ),
            &[&destination, &now],
        )
        .await
        .map_err(map)?;
    let Some(row) = next else {
        let due: Option<i64> = tx
            .query_one(
                "SELECT MIN(next_attempt_at) FROM deliveries
                 WHERE destination = $1 AND state IN ('pending', 'leased')",
                &[&destination],
            )
            .await
            .map_err(map)?
            .get(0);
        return Ok(LeaseOutcome::Idle(due));
    };
    let pace = match (pacer.admit)(pacer, pace, now) {
        Ok(p) => p,
        Err(at) => return Ok(LeaseOutcome::Paced(at)),
    };
    save_pace(&tx, destination, &pace).await?;
    let lease = Lease {
        delivery: delivery_from(&row),
        token: token(),
        until: now + who.ttl_ms,
    };
    tx.execute(
        "UPDATE deliveries SET state = 'leased', lease_owner = $2, lease_token = $3, lease_until = $4
         WHERE id = $1",
        &[&lease.delivery.id, &who.owner, &lease.token, &lease.until],
    )
    .await
    .map_err(map)?;
    tx.commit().await.map_err(map)?;
    Ok(LeaseOutcome::Leased(lease))
}

pub(super) async fn record_attempt(
    pool: &Pool,
    lease: &Lease,
    attempt: &Attempt,
    pause: Option<&Pause>,
) -> Result<bool, StoreError> {
    const SET: &str = "attempts = attempts + 1, first_attempt_at = COALESCE(first_attempt_at, $3),
                       last_attempt_at = $3, last_status = $4,
                       lease_owner = NULL, lease_token = NULL, lease_until = NULL";
    const HELD: &str = "id = $1 AND state = 'leased' AND lease_token = $2";
    let mut client = pool.get().await.map_err(map)?;
    let tx = client.transaction().await.map_err(map)?;
    let (id, token) = (lease.delivery.id, lease.token);
    let n = match attempt {
        Attempt::Delivered { status, at } => {
            tx.execute(
                &format!(
                    "UPDATE deliveries SET state = 'done', {SET}, done_at = $3, reason = NULL WHERE {HELD}"
                ),
                &[&id, &token, at, &i64::from(*status)],
            )
            .await
        }
        Attempt::Retry {
            status,
            error,
            at,
            next_at,
        } => {
            tx.execute(
                &format!(
                    "UPDATE deliveries SET state = 'pending', {SET}, reason = $5, next_attempt_at = $6
                     WHERE {HELD}"
                ),
                &[&id, &token, at, &status.map(i64::from), error, next_at],
            )
            .await
        }
        Attempt::Dead { status, reason, at } => {
            tx.execute(
                &format!("UPDATE deliveries SET state = 'dead', {SET}, reason = $5 WHERE {HELD}"),
                &[&id, &token, at, &status.map(i64::from), reason],
            )
            .await
        }
    }
    .map_err(map)?;
    if n == 0 {
        return Ok(false);
    }
    if let Some(p) = pause {
        let dest = &lease.delivery.destination;
        let current = lock_pace(&tx, dest).await?;
        save_pace(&tx, dest, &(p.pacer.pause)(&p.pacer, current, p.until)).await?;
    }
    tx.commit().await.map_err(map)?;
    Ok(true)
}

const DEAD_COLUMNS: &str = "id, destination, route, template, hook_id, attempts, created_at,
                            first_attempt_at, last_attempt_at, last_status, COALESCE(reason, ''), hook_row, digest_id";

fn dead_from(r: &Row) -> (DeadLetter, Option<i64>, Option<i64>) {
    (
        DeadLetter {
            id: r.get(0),
            destination: r.get(1),
            route: r.get(2),
            template: r.get(3),
            hook_id: r.get(4),
            attempts: r.get(5),
            created_at: r.get(6),
            first_attempt_at: r.get(7),
            last_attempt_at: r.get(8),
            last_status: r.get(9),
            reason: r.get(10),
        },
        r.get(11),
        r.get(12),
    )
}

pub(super) async fn dead_letters(
    pool: &Pool,
    destination: Option<&str>,
) -> Result<Vec<DeadLetter>, StoreError> {
    let client = pool.get().await.map_err(map)?;
    let rows = client
        .query(
            &format!(
                "SELECT {DEAD_COLUMNS} FROM deliveries
                 WHERE state = 'dead' AND ($1::text IS NULL OR destination = $1) ORDER BY id"
            ),
            &[&destination],
        )
        .await
        .map_err(map)?;
    Ok(rows.iter().map(|r| dead_from(r).0).collect())
}

/// A selection as SQL: the condition on `deliveries` and its parameters.
async fn select_dead(
    client: &deadpool_postgres::Client,
    head: &str,
    selection: &Selection,
) -> Result<Vec<Row>, StoreError> {
    let sql = |cond: &str| format!("{head} WHERE state = 'dead' AND {cond} ORDER BY id");
    match selection {
        Selection::All => client.query(&sql("TRUE"), &[]).await,
        Selection::Destination(d) => client.query(&sql("destination = $1"), &[d]).await,
        Selection::OlderThan(t) => {
            client
                .query(&sql("COALESCE(last_attempt_at, created_at) < $1"), &[t])
                .await
        }
        Selection::Ids(ids) => client.query(&sql("id = ANY($1)"), &[ids]).await,
    }
    .map_err(map)
}

pub(super) async fn dead_sources(
    pool: &Pool,
    selection: &Selection,
) -> Result<Vec<(DeadLetter, DeadSource)>, StoreError> {
    let client = pool.get().await.map_err(map)?;
    let rows = select_dead(
        &client,
        &format!("SELECT {DEAD_COLUMNS} FROM deliveries"),
        selection,
    )
    .await?;
    let mut out = Vec::new();
    for r in &rows {
        let (letter, hook_row, digest_id) = dead_from(r);
        let source = if let Some(row) = hook_row {
            let hooks = client
                .query(
                    "SELECT id, received_at, raw, envelope, sent_to, failures FROM hooks WHERE id = $1",
                    &[&row],
                )
                .await
                .map_err(map)?;
            match hooks_from(&hooks)?.pop() {
                Some(hook) => DeadSource::Hook {
                    hook: Box::new(hook),
                },
                None => DeadSource::Gone,
            }
        } else if let Some(id) = digest_id {
            client
                .query_opt("SELECT context FROM digests WHERE id = $1", &[&id])
                .await
                .map_err(map)?
                .map_or(DeadSource::Gone, |r| DeadSource::Digest {
                    context: r.get(0),
                })
        } else {
            DeadSource::Gone
        };
        out.push((letter, source));
    }
    Ok(out)
}

pub(super) async fn requeue(
    pool: &Pool,
    items: &[(i64, Option<String>)],
    now: i64,
) -> Result<usize, StoreError> {
    let client = pool.get().await.map_err(map)?;
    let stmt = client
        .prepare_cached(
            "UPDATE deliveries SET state = 'pending', attempts = 0, next_attempt_at = $2, created_at = $2,
                    reason = NULL, last_status = NULL, payload = COALESCE($3, payload)
             WHERE id = $1 AND state = 'dead'",
        )
        .await
        .map_err(map)?;
    let mut n = 0;
    for (id, payload) in items {
        n += client
            .execute(&stmt, &[id, &now, payload])
            .await
            .map_err(map)?;
    }
    Ok(n as usize)
}

pub(super) async fn purge(pool: &Pool, selection: &Selection) -> Result<usize, StoreError> {
    let client = pool.get().await.map_err(map)?;
    let n = match selection {
        Selection::All => {
            client
                .execute("DELETE FROM deliveries WHERE state = 'dead'", &[])
                .await
        }
        Selection::Destination(d) => {
            client
                .execute(
                    "DELETE FROM deliveries WHERE state = 'dead' AND destination = $1",
                    &[d],
                )
                .await
        }
        Selection::OlderThan(t) => {
            client
                .execute(
                    "DELETE FROM deliveries WHERE state = 'dead' AND COALESCE(last_attempt_at, created_at) < $1",
                    &[t],
                )
                .await
        }
        Selection::Ids(ids) => {
            client
                .execute(
                    "DELETE FROM deliveries WHERE state = 'dead' AND id = ANY($1)",
                    &[ids],
                )
                .await
        }
    }
    .map_err(map)?;
    Ok(n as usize)
}

pub(super) async fn queue_stats(pool: &Pool) -> Result<Vec<QueueStat>, StoreError> {
    let client = pool.get().await.map_err(map)?;
    let rows = client
        .query(
            "SELECT destination, COUNT(*) FILTER (WHERE state IN ('pending', 'leased')),
                    MIN(created_at) FILTER (WHERE state IN ('pending', 'leased')),
                    COUNT(*) FILTER (WHERE state = 'dead')
             FROM deliveries WHERE state IN ('pending', 'leased', 'dead')
             GROUP BY destination ORDER BY destination",
            &[],
        )
        .await
        .map_err(map)?;
    Ok(rows
        .iter()
        .map(|r| QueueStat {
            destination: r.get(0),
            pending: r.get(1),
            oldest_pending_at: r.get(2),
            dead: r.get(3),
        })
        .collect())
}

pub(super) async fn queued_destinations(pool: &Pool) -> Result<Vec<String>, StoreError> {
    let client = pool.get().await.map_err(map)?;
    Ok(client
        .query(
            "SELECT DISTINCT destination FROM deliveries WHERE state IN ('pending', 'leased') ORDER BY 1",
            &[],
        )
        .await
        .map_err(map)?
        .iter()
        .map(|r| r.get(0))
        .collect())
}

pub(super) async fn dead_letter_destinations(
    pool: &Pool,
    destinations: &[String],
    now: i64,
) -> Result<usize, StoreError> {
    let client = pool.get().await.map_err(map)?;
    let n = client
        .execute(
            "UPDATE deliveries SET state = 'dead', last_attempt_at = COALESCE(last_attempt_at, $2),
               lease_owner = NULL, lease_token = NULL, lease_until = NULL,
               reason = 'destination `' || destination || '` is no longer in the config (add it back, then replay)'
             WHERE state IN ('pending', 'leased') AND destination = ANY($1)",
            &[&destinations, &now],
        )
        .await
        .map_err(map)?;
    Ok(n as usize)
}
