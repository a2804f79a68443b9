//! Failure-rate alerts, pure: which series a routed hook counts for, window arithmetic, and
//! the judgement of a closed window (fire, repeat, resolve) with its hysteresis. The store
//! keeps the counters and each series' [`SeriesState`]; the dispatcher claims due series and
//! commits what [`judge`] decides. No I/O and no clock: time comes in as arguments.
//!
//! Model (say it once, here): windows are **tumbling**, `window` long, aligned to the Unix
//! epoch (a 5m window runs 10:00–10:05, 10:05–10:10, ...), and a hook counts in the window of
//! the time it is routed. A window is judged once, [`RATE_GRACE_MS`] after it closes:
//! - quiet → firing when it holds at least `min_messages` results and failures / results
//!   exceeds `fire_above`;
//! - firing → resolved when its ratio is under `resolve_below` (however few its results), or
//!   when it holds no failure at all (traffic stopped, or only successes);
//! - firing otherwise: a repeat when the window holds at least `min_messages` results and
//!   `repeat_interval` has passed since the last message.
//!
//! Results a silence held back are counted apart (`silenced`) and never in the ratio.
//!
//! [`RATE_GRACE_MS`]: crate::store::RATE_GRACE_MS

mod context;

use serde::{Deserialize, Serialize};

use crate::bizmessage::{Envelope, Hook, HookBody};
use crate::route::{Route, key_of};
use crate::store::{NewRateCount, RateSettings, WindowCounts};

pub use context::{
    AlertInput, firing_context, for_destination, resolved_context, sample_contexts, summary,
};

/// The built-in templates of rate alerts.
pub const FIRING_TEMPLATE: &str = "rate_firing";
pub const RESOLVED_TEMPLATE: &str = "rate_resolved";
pub const TEMPLATES: [&str; 2] = [FIRING_TEMPLATE, RESOLVED_TEMPLATE];

/// The `sent_to` mark of a hook counted by a rate route: a hook routed again (`reroute`) is
/// not counted twice. Destination names cannot hold `:`, so it never names a destination.
pub fn counted_mark(route: &str) -> String {
    format!("rate:{route}")
}

/// Start of the window `at` falls in.
pub fn window_start(at: i64, window_ms: i64) -> i64 {
    let w = window_ms.max(1);
    at - at.rem_euclid(w)
}

/// The settings a rate route's series keep.
pub fn settings(r: &Route) -> Option<RateSettings> {
    let spec = r.rate.as_ref()?;
    let ms = |d: std::time::Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
    Some(RateSettings {
        to: r.to.clone(),
        window_ms: ms(spec.window).max(1),
        min_messages: i64::try_from(spec.min_messages).unwrap_or(i64::MAX),
        fire_above: spec.fire_above,
        resolve_below: spec.resolve_below,
        repeat_interval_ms: ms(spec.repeat_interval),
    })
}

/// What a hook routed at `now` counts for on a rate route (message results only).
pub fn count(
    r: &Route,
    envelope: &Envelope,
    hook: &Hook,
    row: i64,
    now: i64,
    silenced: bool,
) -> Option<NewRateCount> {
    let spec = r.rate.as_ref()?;
    let HookBody::MessageResult(result) = &hook.body else {
        return None;
    };
    let settings = settings(r)?;
    Some(NewRateCount {
        route: r.name.clone(),
        series_key: key_of(&spec.by, envelope, hook),
        hook_row: row,
        window_start: window_start(now, settings.window_ms),
        outcome: result.outcome().as_str().to_string(),
        result_code: result.result_code.as_deref().map(String::from),
        silenced,
        settings,
    })
}

/// What a series remembers between windows (stored as JSON by the store).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SeriesState {
    pub firing: bool,
    /// Start of the window that fired.
    pub fired_at: Option<i64>,
    /// When the last firing message (or repeat) went out.
    pub last_sent_at: Option<i64>,
    /// Over the windows judged since it fired, the resolving one included.
    pub failures_since: i64,
    pub results_since: i64,
    pub silenced_since: i64,
}

impl SeriesState {
    pub fn parse(json: Option<&str>) -> SeriesState {
        json.and_then(|s| serde_json::from_str(s).ok())
            .unwrap_or_default()
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| "{}".into())
    }
}

/// What judging a window decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Quiet,
    Fire,
    /// Still firing, and `repeat_interval` has passed.
    Repeat,
    /// Still firing; too soon to say it again.
    StillFiring,
    Resolve,
}

impl Decision {
    /// The template of the message it sends, if any.
    pub fn template(self) -> Option<&'static str> {
        match self {
            Decision::Fire | Decision::Repeat => Some(FIRING_TEMPLATE),
            Decision::Resolve => Some(RESOLVED_TEMPLATE),
            Decision::Quiet | Decision::StillFiring => None,
        }
    }

    /// For metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Quiet => "quiet",
            Decision::Fire => "firing",
            Decision::Repeat => "repeat",
            Decision::StillFiring => "still_firing",
            Decision::Resolve => "resolved",
        }
    }
}

/// The failure ratio of a window (0 without results).
pub fn ratio(w: &WindowCounts) -> f64 {
    if w.results > 0 {
        w.failures as f64 / w.results as f64
    } else {
        0.0
    }
}

/// Judges a closed window at `now`: the decision, the state to keep, and the state the
/// message describes (before a resolve resets it).
pub fn judge(
    settings: &RateSettings,
    before: &SeriesState,
    window: &WindowCounts,
    now: i64,
) -> (Decision, SeriesState, SeriesState) {
    let judged = window.results >= settings.min_messages;
    let r = ratio(window);
    if !before.firing {
        if judged && r > settings.fire_above {
            let after = SeriesState {
                firing: true,
                fired_at: Some(window.start),
                last_sent_at: Some(now),
                failures_since: window.failures,
                results_since: window.results,
                silenced_since: window.silenced,
            };
            return (Decision::Fire, after.clone(), after);
        }
        return (Decision::Quiet, before.clone(), before.clone());
    }
    let mut after = SeriesState {
        failures_since: before.failures_since + window.failures,
        results_since: before.results_since + window.results,
        silenced_since: before.silenced_since + window.silenced,
        ..before.clone()
    };
    // Resolving needs no minimum: a thin window under the lower threshold (or with no failure
    // at all, or no traffic) is no storm.
    if window.failures == 0 || r < settings.resolve_below {
        return (Decision::Resolve, SeriesState::default(), after);
    }
    // A repeat says the storm goes on, so only a window with enough results to judge says it.
    let due = judged
        && before
            .last_sent_at
            .is_none_or(|at| now.saturating_sub(at) >= settings.repeat_interval_ms);
    if due {
        after.last_sent_at = Some(now);
        (Decision::Repeat, after.clone(), after)
    } else {
        (Decision::StillFiring, after.clone(), after)
    }
}

#[cfg(test)]
mod tests;
