//! Rate alerts: per-window counters of each series (summed in the routing transaction), the
//! series' state under a claim, and the commit of a judged window that drops counters no
//! longer needed (so the tables hold at most two windows per series, never per-hook rows).

use rusqlite::{Connection, OptionalExtension, params};

use super::token;
use crate::store::*;

/// Adds routed hooks' counts to their windows and marks each series' earliest unjudged
/// window with counts as due ([`plan_series`]: a window already judged is never judged
/// again, and a count that comes after its window was judged goes into the next one).
pub(in crate::store::sqlite) fn count_rates<'a>(
    c: &Connection,
    counts: impl Iterator<Item = &'a NewRateCount>,
) -> Result<(), StoreError> {
    let counts: Vec<&NewRateCount> = counts.collect();
    if counts.is_empty() {
        return Ok(());
    }
    let mut plans = std::collections::BTreeMap::new();
    for ((route, key, w), (settings, earliest)) in series_of(&counts) {
        let existing: Option<SeriesRow> = c
            .prepare_cached(
                "SELECT eval_window, judged_through FROM rate_series
                 WHERE route = ?1 AND series_key = ?2 AND window_ms = ?3",
            )?
            .query_row(params![route, key, w], |r| {
                Ok(SeriesRow {
                    eval_window: r.get(0)?,
                    judged_through: r.get(1)?,
                })
            })
            .optional()?;
        let plan = plan_series(existing, w, earliest);
        let json =
            serde_json::to_string(settings).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        c.prepare_cached(
            "INSERT INTO rate_series (route, series_key, window_ms, settings, eval_window)
             VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (route, series_key, window_ms) DO UPDATE SET
               settings = excluded.settings, eval_window = excluded.eval_window",
        )?
        .execute(params![route, key, w, json, plan.eval_window])?;
        plans.insert((route, key, w), plan);
    }
    let mut add = c.prepare_cached(
        "INSERT INTO rate_counts (route, series_key, window_ms, window_start, outcome, result_code, counted, silenced)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
         ON CONFLICT (route, series_key, window_ms, window_start, outcome, result_code) DO UPDATE SET
           counted = counted + excluded.counted, silenced = silenced + excluded.silenced",
    )?;
    for ((route, key, w, start, outcome, code), (n, silenced)) in counters_of(&counts, &plans) {
        add.execute(params![route, key, w, start, outcome, code, n, silenced])?;
    }
    Ok(())
}

fn window(
    c: &Connection,
    route: &str,
    key: &str,
    window_ms: i64,
    start: i64,
) -> Result<WindowCounts, StoreError> {
    let mut stmt = c.prepare_cached(
        "SELECT outcome, result_code, counted, silenced FROM rate_counts
         WHERE route = ?1 AND series_key = ?2 AND window_ms = ?3 AND window_start = ?4",
    )?;
    let rows = stmt
        .query_map(params![route, key, window_ms, start], |r| {
            let code: String = r.get(1)?;
            Ok((
                r.get(0)?,
                (!code.is_empty()).then_some(code),
                r.get(2)?,
                r.get(3)?,
            ))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(WindowCounts::from_rows(start, rows))
}

pub(in crate::store::sqlite) fn claim_rate_series(
    c: &Connection,
    who: &Claimant,
    now: i64,
    limit: usize,
) -> Result<Vec<DueSeries>, StoreError> {
    type Head = (String, String, String, i64, i64, Option<String>);
    let heads: Vec<Head> = c
        .prepare_cached(
            "SELECT route, series_key, settings, window_ms, eval_window, state FROM rate_series
             WHERE eval_window IS NOT NULL AND eval_window + window_ms + ?3 <= ?1
               AND (claim_token IS NULL OR claim_until < ?1 OR claim_owner = ?2)
             ORDER BY eval_window LIMIT ?4",
        )?
        .query_map(params![now, who.owner, RATE_GRACE_MS, limit as i64], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
            ))
        })?
        .collect::<Result<_, _>>()?;
    let mut out = Vec::new();
    for (route, series_key, settings, window_ms, start, state) in heads {
        let settings: RateSettings = serde_json::from_str(&settings).map_err(|e| {
            StoreError::Corrupt(format!("settings of rate series {route}/{series_key}: {e}"))
        })?;
        let token = token();
        c.prepare_cached(
            // The window is closed to counting from here on: a count that commits while it
            // is being judged goes into the next window (see `plan_series`), not lost in this.
            "UPDATE rate_series SET claim_owner = ?3, claim_token = ?4, claim_until = ?5,
               judged_through = eval_window
             WHERE route = ?1 AND series_key = ?2 AND window_ms = ?6",
        )?
        .execute(params![
            route,
            series_key,
            who.owner,
            token,
            now + who.ttl_ms,
            window_ms
        ])?;
        out.push(DueSeries {
            window: window(c, &route, &series_key, window_ms, start)?,
            previous: window(c, &route, &series_key, window_ms, start - window_ms)?,
            route,
            series_key,
            settings,
            state,
            token,
        });
    }
    Ok(out)
}

pub(in crate::store::sqlite) fn commit_rate(
    c: &Connection,
    who: &Claimant,
    commit: &RateCommit,
) -> Result<bool, StoreError> {
    let window_ms = commit.window_ms;
    let held: Option<Option<String>> = c
        .prepare_cached(
            "SELECT claim_owner FROM rate_series
             WHERE route = ?1 AND series_key = ?2 AND window_ms = ?3 AND claim_token = ?4",
        )?
        .query_row(
            params![commit.route, commit.series_key, window_ms, commit.token],
            |r| r.get(0),
        )
        .optional()?;
    let Some(owner) = held else {
        return Ok(false);
    };
    if owner.as_deref() != Some(who.owner.as_str()) {
        return Ok(false);
    }
    if let Some(context) = &commit.context {
        // Kept with the digests, so a dead-lettered alert can be re-rendered like one.
        c.prepare_cached(
            "INSERT INTO digests (v, route, group_key, count, created_at, context) VALUES (?1, ?2, ?3, 0, ?4, ?5)",
        )?
        .execute(params![FORMAT_VERSION, commit.route, commit.series_key, commit.now, context])?;
        let id = c.last_insert_rowid();
        for d in &commit.deliveries {
            super::insert_delivery(c, d, d.hook_row, Some(id))?;
        }
    }
    let next: Option<i64> = if commit.firing {
        Some(commit.window_start + window_ms)
    } else {
        c.prepare_cached(
            "SELECT MIN(window_start) FROM rate_counts
             WHERE route = ?1 AND series_key = ?2 AND window_ms = ?3 AND window_start > ?4",
        )?
        .query_row(
            params![
                commit.route,
                commit.series_key,
                window_ms,
                commit.window_start
            ],
            |r| r.get(0),
        )?
    };
    c.prepare_cached(
        "UPDATE rate_series SET state = ?3, judged_through = ?4, eval_window = ?5,
           claim_owner = NULL, claim_token = NULL, claim_until = NULL
         WHERE route = ?1 AND series_key = ?2 AND window_ms = ?6",
    )?
    .execute(params![
        commit.route,
        commit.series_key,
        commit.state,
        commit.window_start,
        next,
        window_ms
    ])?;
    // The judged window stays for the next one's trend; older ones are done with.
    c.prepare_cached(
        "DELETE FROM rate_counts
         WHERE route = ?1 AND series_key = ?2 AND window_ms = ?3 AND window_start < ?4",
    )?
    .execute(params![
        commit.route,
        commit.series_key,
        window_ms,
        commit.window_start
    ])?;
    Ok(true)
}

/// When the next series' window falls due for judging.
pub(in crate::store::sqlite) fn next_rate_at(c: &Connection) -> Result<Option<i64>, StoreError> {
    Ok(c.prepare_cached(
        "SELECT MIN(eval_window + window_ms) FROM rate_series WHERE eval_window IS NOT NULL",
    )?
    .query_row([], |r| r.get::<_, Option<i64>>(0))?
    .map(|at| at.saturating_add(RATE_GRACE_MS)))
}
