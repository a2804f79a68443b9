//! Rate alerts in the dispatcher: claim the series whose window closed, judge each window
//! ([`crate::rate::judge`], pure) and commit the new state with its message, if any, in one
//! transaction under the series' claim.

use std::sync::Arc;

use super::plan::{Report, notice_deliveries};
use crate::config::Loaded;
use crate::rate::{self, Decision, SeriesState};
use crate::state::State;
use crate::store::{DueSeries, RateCommit, RateSettings, StoreError};

/// Series judged per store round trip.
const SERIES_PER_PASS: usize = 32;

/// Judges a due series' window (pure): the commit, and what it decided.
pub fn build_rate(loaded: &Loaded, due: &DueSeries, now: i64) -> (RateCommit, Decision, Report) {
    let mut report = Report::default();
    // The route as configured now decides thresholds and destinations; the settings stored
    // with the series serve when a reload removed the route (so it can still resolve).
    // The window length is the series' own (a reload to another length starts a new series).
    let settings = loaded
        .routes
        .iter()
        .find(|r| r.name == due.route)
        .and_then(rate::settings)
        .map(|now| RateSettings {
            window_ms: due.settings.window_ms,
            ..now
        })
        .unwrap_or_else(|| due.settings.clone());
    let before = SeriesState::parse(due.state.as_deref());
    let (decision, keep, shown) = rate::judge(&settings, &before, &due.window, now);
    let (context, deliveries) = match decision.template() {
        Some(template) => {
            let input = rate::AlertInput {
                route: &due.route,
                series_key: &due.series_key,
                settings: &settings,
                decision,
                state: &shown,
                window: &due.window,
                previous: &due.previous,
                now,
            };
            let ctx = if decision == Decision::Resolve {
                rate::resolved_context(&input)
            } else {
                rate::firing_context(&input)
            };
            let deliveries = notice_deliveries(
                loaded,
                &due.route,
                &settings.to,
                template,
                &ctx,
                due.window.start,
                now,
                &mut report,
            );
            (Some(ctx.to_string()), deliveries)
        }
        None => (None, Vec::new()),
    };
    let commit = RateCommit {
        route: due.route.clone(),
        series_key: due.series_key.clone(),
        window_ms: due.settings.window_ms,
        token: due.token,
        window_start: due.window.start,
        state: keep.to_json(),
        firing: keep.firing,
        context,
        deliveries,
        now,
    };
    (commit, decision, report)
}

/// Judges every series whose window is due.
pub async fn judge_due(state: &Arc<State>) -> Result<(), StoreError> {
    loop {
        let due = state
            .store
            .claim_rate_series(&state.claimant, state.now(), SERIES_PER_PASS)
            .await?;
        if due.is_empty() {
            return Ok(());
        }
        for series in due {
            let loaded = state.current();
            let now = state.now();
            let (commit, decision, report) = build_rate(&loaded, &series, now);
            let route = commit.route.clone();
            if state.store.commit_rate(&state.claimant, commit).await? {
                if decision.template().is_some() {
                    state
                        .metrics
                        .rate_alerts
                        .with_label_values(&[&route, decision.as_str()])
                        .inc();
                    tracing::info!(route = %route, series = %crate::logging::clip(&series.series_key),
                        failures = series.window.failures, results = series.window.results,
                        decision = decision.as_str(), "rate alert queued");
                }
                super::account(state, &report);
            } else {
                tracing::warn!(route = %route, "another replica took this rate series over; left to it");
            }
        }
    }
}
