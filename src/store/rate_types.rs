//! The store's types for failure-rate alerts (issue #15): per-window counters of a route's
//! message results, and the state of each alert series under a claim. The store keeps
//! counts and state; what they mean (thresholds, when to fire) is `crate::rate`'s.

use serde::{Deserialize, Serialize};

/// One routed hook counted for a rate route's series. The store sums these into the
/// series' window counter in the routing transaction, leaving out hooks whose claim was lost.
#[derive(Debug, Clone, PartialEq)]
pub struct NewRateCount {
    pub route: String,
    pub series_key: String,
    pub hook_row: i64,
    /// Start of the tumbling window it falls in (Unix ms, a multiple of the window length).
    pub window_start: i64,
    /// `success`, `uncertain` or `failure`.
    pub outcome: String,
    pub result_code: Option<String>,
    /// Held back by a silence: counted apart, not in the ratio.
    pub silenced: bool,
    pub settings: RateSettings,
}

/// A rate route's settings, stored with its series so a series still resolves after the
/// route is edited away by a reload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RateSettings {
    pub to: Vec<String>,
    pub window_ms: i64,
    pub min_messages: i64,
    pub fire_above: f64,
    pub resolve_below: f64,
    pub repeat_interval_ms: i64,
}

/// A counter row: `(route, series_key, window_ms, window_start, outcome, code or "")`.
pub type CounterKey<'a> = (&'a str, &'a str, i64, i64, &'a str, &'a str);
/// A series: `(route, series_key, window_ms)`. The window length is part of a series'
/// identity: a reload to another length starts a new series beside the old one (which, fed
/// no more, resolves or goes quiet on its own windows), so replicas that briefly disagree
/// about the length never mix or drop each other's counts.
pub type SeriesKey<'a> = (&'a str, &'a str, i64);
/// One counter row to add, and how many `(counted, silenced)`.
pub type CounterAdd<'a> = (CounterKey<'a>, (i64, i64));

/// The series a batch's counts touch, sorted (replicas lock their rows in one order), each
/// with its settings and the earliest window counted.
pub fn series_of<'a>(counts: &[&'a NewRateCount]) -> Vec<(SeriesKey<'a>, (&'a RateSettings, i64))> {
    let mut series: std::collections::BTreeMap<SeriesKey<'a>, (&RateSettings, i64)> =
        Default::default();
    for n in counts {
        let s = series
            .entry((&n.route, &n.series_key, n.settings.window_ms))
            .or_insert((&n.settings, n.window_start));
        s.1 = s.1.min(n.window_start);
    }
    series.into_iter().collect()
}

/// A series row as the routing commit finds it (locked, on PostgreSQL).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeriesRow {
    pub eval_window: Option<i64>,
    pub judged_through: Option<i64>,
}

/// What the routing commit writes to a series row, and where its counts may go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeriesPlan {
    pub eval_window: i64,
    /// No count goes into a window at or before the last judged (or being judged) one: a
    /// count committed after its window was claimed for judging (a slow commit, a replica's
    /// clock a little behind) goes into the next window instead of being lost.
    pub floor: i64,
}

/// Decides a series row's update for counts whose earliest window is `earliest` (pure, so
/// both engines apply the same rule).
pub fn plan_series(existing: Option<SeriesRow>, window_ms: i64, earliest: i64) -> SeriesPlan {
    let floor = existing
        .and_then(|e| e.judged_through)
        .map_or(i64::MIN, |j| j.saturating_add(window_ms));
    let earliest = earliest.max(floor);
    let eval_window = existing
        .and_then(|e| e.eval_window)
        .map_or(earliest, |e| e.min(earliest));
    SeriesPlan { eval_window, floor }
}

/// Routed hooks' counts summed per counter row, each moved up to its series' floor; sorted.
pub fn counters_of<'a>(
    counts: &[&'a NewRateCount],
    plans: &std::collections::BTreeMap<SeriesKey<'a>, SeriesPlan>,
) -> Vec<CounterAdd<'a>> {
    let mut sums: std::collections::BTreeMap<CounterKey<'a>, (i64, i64)> = Default::default();
    for n in counts {
        let w = n.settings.window_ms;
        let floor = plans
            .get(&(n.route.as_str(), n.series_key.as_str(), w))
            .map_or(i64::MIN, |p| p.floor);
        let code = n.result_code.as_deref().unwrap_or("");
        let e = sums
            .entry((
                &n.route,
                &n.series_key,
                w,
                n.window_start.max(floor),
                &n.outcome,
                code,
            ))
            .or_default();
        if n.silenced {
            e.1 += 1;
        } else {
            e.0 += 1;
        }
    }
    sums.into_iter().collect()
}

/// What one window of a series counted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WindowCounts {
    pub start: i64,
    /// Results counted in the ratio (silenced ones are not).
    pub results: i64,
    pub failures: i64,
    pub uncertain: i64,
    pub silenced: i64,
    /// Codes of the failed and uncertain results, by count descending, ties by code.
    pub codes: Vec<(Option<String>, i64)>,
}

impl WindowCounts {
    /// Sums counter rows `(outcome, code, counted, silenced)` of one window.
    pub fn from_rows(
        start: i64,
        rows: impl IntoIterator<Item = (String, Option<String>, i64, i64)>,
    ) -> WindowCounts {
        let mut w = WindowCounts {
            start,
            ..WindowCounts::default()
        };
        let mut codes: std::collections::BTreeMap<Option<String>, i64> = Default::default();
        for (outcome, code, n, silenced) in rows {
            w.results += n;
            w.silenced += silenced;
            match outcome.as_str() {
                "success" => continue,
                "failure" => w.failures += n,
                _ => w.uncertain += n,
            }
            if n > 0 {
                *codes.entry(code).or_default() += n;
            }
        }
        w.codes = codes.into_iter().collect();
        w.codes.sort_by_key(|c| std::cmp::Reverse(c.1));
        w
    }
}

/// A series whose window is due for judging, claimed by one consumer.
#[derive(Debug, Clone, PartialEq)]
pub struct DueSeries {
    pub route: String,
    pub series_key: String,
    pub settings: RateSettings,
    /// The series' state as `crate::rate` last saved it (JSON; `None` for a new series).
    pub state: Option<String>,
    /// Identifies this claim; the commit must carry it.
    pub token: i64,
    /// The window to judge...
    pub window: WindowCounts,
    /// ...and the one before it (for the trend).
    pub previous: WindowCounts,
}

/// A judged window, ready to commit: the new state, any alert message, and the series'
/// counters older than the previous window are dropped.
#[derive(Debug, Clone)]
pub struct RateCommit {
    pub route: String,
    pub series_key: String,
    /// The series' window length (part of its identity).
    pub window_ms: i64,
    pub token: i64,
    /// The window judged.
    pub window_start: i64,
    pub state: String,
    /// Whether the series is firing after this window (a firing series judges every
    /// window, also empty ones; a quiet one waits for its next counted window).
    pub firing: bool,
    /// The alert's template context, kept so a dead letter can be re-rendered.
    pub context: Option<String>,
    pub deliveries: Vec<crate::store::NewDelivery>,
    pub now: i64,
}

/// How long after a window closes it is judged: hooks routed just before the close may still
/// be committing, and replicas' clocks differ a little.
pub const RATE_GRACE_MS: i64 = 1_000;

/// What pruning removes of on-call state older than the keep time of delivered work (`$1`),
/// the same SQL on both engines: groups with nothing pending and no resolved message due,
/// quiet alert series (a firing series always has a window to judge), counters no series will
/// judge. Ended silences go with `PRUNE_SILENCES`.
pub const PRUNE_ONCALL: [&str; 3] = [
    "DELETE FROM groups WHERE pending = 0 AND resolve_at IS NULL AND claim_token IS NULL
       AND COALESCE(last_flush_at, started_at) < $1",
    "DELETE FROM rate_series WHERE eval_window IS NULL AND claim_token IS NULL
       AND COALESCE(judged_through, 0) < $1",
    "DELETE FROM rate_counts WHERE window_start < $1 AND NOT EXISTS (SELECT 1 FROM rate_series s
       WHERE s.route = rate_counts.route AND s.series_key = rate_counts.series_key
         AND s.window_ms = rate_counts.window_ms
         AND s.eval_window IS NOT NULL AND s.eval_window <= rate_counts.window_start)",
];

/// Silences that ended before `$1` (the keep time of unrouted hooks: a week by default, so
/// `silence list --expired` can look back that far).
pub const PRUNE_SILENCES: &str = "DELETE FROM silences WHERE ends_at < $1";

#[cfg(test)]
mod tests {
    use super::*;

    const W: i64 = 60_000;

    fn count(window_start: i64, code: &str) -> NewRateCount {
        NewRateCount {
            route: "r".into(),
            series_key: "{}".into(),
            hook_row: 1,
            window_start,
            outcome: "failure".into(),
            result_code: Some(code.into()),
            silenced: false,
            settings: RateSettings {
                to: vec![],
                window_ms: W,
                min_messages: 1,
                fire_above: 0.1,
                resolve_below: 0.05,
                repeat_interval_ms: W,
            },
        }
    }

    #[test]
    fn a_late_count_goes_into_the_next_window_to_judge() {
        // New series: due at its first counted window.
        assert_eq!(plan_series(None, W, 5 * W).eval_window, 5 * W);
        // Window 5 judged (or being judged) and nothing counted since: counts for windows 5
        // and 6 both go into window 6, which becomes due.
        let judged = SeriesRow {
            eval_window: None,
            judged_through: Some(5 * W),
        };
        let p = plan_series(Some(judged), W, 5 * W);
        assert_eq!((p.eval_window, p.floor), (6 * W, 6 * W));
        let (late, on_time) = (count(5 * W, "3019"), count(6 * W, "3019"));
        let counts = [&late, &on_time];
        let plans = [(("r", "{}", W), p)].into_iter().collect();
        assert_eq!(
            counters_of(&counts, &plans),
            vec![(("r", "{}", W, 6 * W, "failure", "3019"), (2, 0))]
        );
        // A series due at window 7 stays due there when window 9 is counted.
        let due = SeriesRow {
            eval_window: Some(7 * W),
            ..judged
        };
        assert_eq!(plan_series(Some(due), W, 9 * W).eval_window, 7 * W);
    }
}
