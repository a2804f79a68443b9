//! Rate alerts on PostgreSQL: counters summed in the routing transaction (rows upserted in
//! sorted order, so replicas counting into the same series never deadlock), due series
//! claimed under `FOR UPDATE SKIP LOCKED`, and the commit of a judged window under the
//! series row's lock.

use deadpool_postgres::{Pool, Transaction};

use super::{map, token};
use crate::store::*;

/// Adds routed hooks' counts to their windows under each series row's lock (taken first, in
/// sorted order, as `commit_rate` does); see [`plan_series`].
pub(super) async fn count_rates(
    tx: &Transaction<'_>,
    counts: &[&NewRateCount],
) -> Result<(), StoreError> {
    if counts.is_empty() {
        return Ok(());
    }
    let ensure = tx
        .prepare_cached(
            "INSERT INTO rate_series (route, series_key, settings, window_ms)
             VALUES ($1, $2, '{}', $3) ON CONFLICT DO NOTHING",
        )
        .await
        .map_err(map)?;
    let lock = tx
        .prepare_cached(
            "SELECT eval_window, judged_through FROM rate_series
             WHERE route = $1 AND series_key = $2 AND window_ms = $3 FOR UPDATE",
        )
        .await
        .map_err(map)?;
    let save = tx
        .prepare_cached(
            "UPDATE rate_series SET settings = $4, eval_window = $5
             WHERE route = $1 AND series_key = $2 AND window_ms = $3",
        )
        .await
        .map_err(map)?;
    let mut plans = std::collections::BTreeMap::new();
    for ((route, key, w), (settings, earliest)) in series_of(counts) {
        let created = tx
            .execute(&ensure, &[&route, &key, &w])
            .await
            .map_err(map)?
            == 1;
        let row = tx
            .query_one(&lock, &[&route, &key, &w])
            .await
            .map_err(map)?;
        let existing = (!created).then(|| SeriesRow {
            eval_window: row.get(0),
            judged_through: row.get(1),
        });
        let plan = plan_series(existing, w, earliest);
        let json =
            serde_json::to_string(settings).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        tx.execute(&save, &[&route, &key, &w, &json, &plan.eval_window])
            .await
            .map_err(map)?;
        plans.insert((route, key, w), plan);
    }
    let counters = counters_of(counts, &plans);
    let col = |i: usize| -> Vec<&str> {
        counters
            .iter()
            .map(|(k, _)| [k.0, k.1, k.4, k.5][i])
            .collect()
    };
    let lengths: Vec<i64> = counters.iter().map(|(k, _)| k.2).collect();
    let starts: Vec<i64> = counters.iter().map(|(k, _)| k.3).collect();
    let counted: Vec<i64> = counters.iter().map(|(_, n)| n.0).collect();
    let silenced: Vec<i64> = counters.iter().map(|(_, n)| n.1).collect();
    tx.execute(
        "INSERT INTO rate_counts (route, series_key, window_ms, window_start, outcome, result_code, counted, silenced)
         SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[], $5::text[], $6::text[], $7::bigint[], $8::bigint[])
         ON CONFLICT (route, series_key, window_ms, window_start, outcome, result_code) DO UPDATE SET
           counted = rate_counts.counted + excluded.counted,
           silenced = rate_counts.silenced + excluded.silenced",
        &[&col(0), &col(1), &lengths, &starts, &col(2), &col(3), &counted, &silenced],
    )
    .await
    .map_err(map)?;
    Ok(())
}

async fn window(
    tx: &Transaction<'_>,
    route: &str,
    key: &str,
    window_ms: i64,
    start: i64,
) -> Result<WindowCounts, StoreError> {
    let rows = tx
        .query(
            "SELECT outcome, result_code, counted, silenced FROM rate_counts
             WHERE route = $1 AND series_key = $2 AND window_ms = $3 AND window_start = $4",
            &[&route, &key, &window_ms, &start],
        )
        .await
        .map_err(map)?;
    Ok(WindowCounts::from_rows(
        start,
        rows.iter().map(|r| {
            let code: String = r.get(1);
            (
                r.get(0),
                (!code.is_empty()).then_some(code),
                r.get(2),
                r.get(3),
            )
        }),
    ))
}

pub(super) async fn claim_rate_series(
    pool: &Pool,
    who: &Claimant,
    now: i64,
    limit: usize,
) -> Result<Vec<DueSeries>, StoreError> {
    let mut client = pool.get().await.map_err(map)?;
    let tx = client.transaction().await.map_err(map)?;
    let heads = tx
        .query(
            "SELECT route, series_key, settings, window_ms, eval_window, state FROM rate_series
             WHERE eval_window IS NOT NULL AND eval_window + window_ms + $3 <= $1
               AND (claim_token IS NULL OR claim_until < $1 OR claim_owner = $2)
             ORDER BY eval_window LIMIT $4 FOR UPDATE SKIP LOCKED",
            &[&now, &who.owner, &RATE_GRACE_MS, &(limit as i64)],
        )
        .await
        .map_err(map)?;
    let mut out = Vec::new();
    for head in heads {
        let route: String = head.get(0);
        let series_key: String = head.get(1);
        let settings: RateSettings = serde_json::from_str(head.get::<_, &str>(2)).map_err(|e| {
            StoreError::Corrupt(format!("settings of rate series {route}/{series_key}: {e}"))
        })?;
        let window_ms: i64 = head.get(3);
        let start: i64 = head.get(4);
        let token = token();
        tx.execute(
            // The window is closed to counting from here on: a count that commits while it
            // is being judged goes into the next window (see `plan_series`), not lost in this.
            "UPDATE rate_series SET claim_owner = $3, claim_token = $4, claim_until = $5,
               judged_through = eval_window
             WHERE route = $1 AND series_key = $2 AND window_ms = $6",
            &[
                &route,
                &series_key,
                &who.owner,
                &token,
                &(now + who.ttl_ms),
                &window_ms,
            ],
        )
        .await
        .map_err(map)?;
        out.push(DueSeries {
            window: window(&tx, &route, &series_key, window_ms, start).await?,
            previous: window(&tx, &route, &series_key, window_ms, start - window_ms).await?,
            state: head.get(5),
            route,
            series_key,
            settings,
            token,
        });
    }
    tx.commit().await.map_err(map)?;
    Ok(out)
}

pub(super) async fn commit_rate(
    pool: &Pool,
    who: &Claimant,
    commit: &RateCommit,
) -> Result<bool, StoreError> {
    let mut client = pool.get().await.map_err(map)?;
    let tx = client.transaction().await.map_err(map)?;
    let held = tx
        .query_opt(
            "SELECT claim_owner FROM rate_series
             WHERE route = $1 AND series_key = $2 AND window_ms = $3 AND claim_token = $4 FOR UPDATE",
            &[&commit.route, &commit.series_key, &commit.window_ms, &commit.token],
        )
        .await
        .map_err(map)?;
    let Some(row) = held else {
        return Ok(false);
    };
    if row.get::<_, Option<String>>(0).as_deref() != Some(who.owner.as_str()) {
        return Ok(false);
    }
    let window_ms = commit.window_ms;
    if let Some(context) = &commit.context {
        // Kept with the digests, so a dead-lettered alert can be re-rendered like one.
        let id: i64 = tx
            .query_one(
                "INSERT INTO digests (v, route, group_key, count, created_at, context)
                 VALUES ($1, $2, $3, 0, $4, $5) RETURNING id",
                &[
                    &FORMAT_VERSION,
                    &commit.route,
                    &commit.series_key,
                    &commit.now,
                    context,
                ],
            )
            .await
            .map_err(map)?
            .get(0);
        let deliveries: Vec<&NewDelivery> = commit.deliveries.iter().collect();
        super::outbox::insert_deliveries(&tx, &deliveries, Some(id)).await?;
    }
    let next: Option<i64> = if commit.firing {
        Some(commit.window_start + window_ms)
    } else {
        tx.query_one(
            "SELECT MIN(window_start) FROM rate_counts
             WHERE route = $1 AND series_key = $2 AND window_ms = $3 AND window_start > $4",
            &[
                &commit.route,
                &commit.series_key,
                &window_ms,
                &commit.window_start,
            ],
        )
        .await
        .map_err(map)?
        .get(0)
    };
    tx.execute(
        "UPDATE rate_series SET state = $3, judged_through = $4, eval_window = $5,
           claim_owner = NULL, claim_token = NULL, claim_until = NULL
         WHERE route = $1 AND series_key = $2 AND window_ms = $6",
        &[
            &commit.route,
            &commit.series_key,
            &commit.state,
            &commit.window_start,
            &next,
            &window_ms,
        ],
    )
    .await
    .map_err(map)?;
    // The judged window stays for the next one's trend; older ones are done with.
    tx.execute(
        "DELETE FROM rate_counts
         WHERE route = $1 AND series_key = $2 AND window_ms = $3 AND window_start < $4",
        &[
            &commit.route,
            &commit.series_key,
            &window_ms,
            &commit.window_start,
        ],
    )
    .await
    .map_err(map)?;
    tx.commit().await.map_err(map)?;
    Ok(true)
}
