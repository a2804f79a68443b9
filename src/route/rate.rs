//! `[routes.rate]`: a route's failure-rate rule as written in the file, and compiled. The
//! alerting itself (windows, thresholds, messages) is `crate::rate`'s.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{MatchKey, RouteError, known_keys};

/// `[routes.rate]` as written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateConfig {
    #[serde(default)]
    pub by: Vec<String>,
    #[serde(default = "default_window", with = "humantime_serde")]
    pub window: Duration,
    #[serde(default = "default_min_messages")]
    pub min_messages: u64,
    pub fire_above: f64,
    /// Defaults to half of `fire_above`.
    #[serde(default)]
    pub resolve_below: Option<f64>,
    #[serde(default = "default_repeat", with = "humantime_serde")]
    pub repeat_interval: Duration,
}

fn default_window() -> Duration {
    Duration::from_secs(300)
}
fn default_min_messages() -> u64 {
    100
}
fn default_repeat() -> Duration {
    Duration::from_secs(4 * 3600)
}

/// A compiled rate rule: one alert series per value set of `by`, judged over tumbling
/// windows of `window` aligned to the clock.
#[derive(Debug, Clone, PartialEq)]
pub struct RateSpec {
    pub by: Vec<MatchKey>,
    pub window: Duration,
    pub min_messages: u64,
    pub fire_above: f64,
    pub resolve_below: f64,
    pub repeat_interval: Duration,
}

/// Shortest window accepted (operators test with a few seconds).
const MIN_WINDOW: Duration = Duration::from_secs(1);
/// Longest window and repeat interval accepted (a failure rate over more than a week, or a
/// reminder rarer than monthly, is a report, not an alert).
const MAX_WINDOW: Duration = Duration::from_secs(7 * 86_400);
const MAX_REPEAT: Duration = Duration::from_secs(30 * 86_400);

impl RateConfig {
    pub(super) fn compile(
        &self,
        err: &dyn Fn(String, String) -> RouteError,
    ) -> Result<RateSpec, Vec<RouteError>> {
        let mut errors = Vec::new();
        let mut by = Vec::new();
        for name in &self.by {
            match MatchKey::parse(name) {
                Some(k) => by.push(k),
                None => errors.push(err(
                    "rate.by".into(),
                    format!("unknown key `{name}` (known: {})", known_keys()),
                )),
            }
        }
        if self.window < MIN_WINDOW {
            errors.push(err("rate.window".into(), "must be at least 1s".into()));
        } else if self.window > MAX_WINDOW {
            errors.push(err("rate.window".into(), "must be at most 7d".into()));
        }
        if self.min_messages == 0 {
            errors.push(err("rate.min_messages".into(), "must be at least 1".into()));
        }
        let ratio_ok = |r: f64| r.is_finite() && (0.0..=1.0).contains(&r);
        if !ratio_ok(self.fire_above) || self.fire_above >= 1.0 {
            errors.push(err(
                "rate.fire_above".into(),
                "must be a failure ratio from 0 up to (not including) 1, such as 0.10 for 10%"
                    .into(),
            ));
        }
        let resolve_below = self.resolve_below.unwrap_or(self.fire_above / 2.0);
        if !ratio_ok(resolve_below) {
            errors.push(err(
                "rate.resolve_below".into(),
                "must be a failure ratio from 0 to 1, such as 0.03 for 3%".into(),
            ));
        } else if resolve_below > self.fire_above {
            errors.push(err(
                "rate.resolve_below".into(),
                format!(
                    "{resolve_below} is above fire_above ({}): an alert would resolve while still over its threshold",
                    self.fire_above
                ),
            ));
        }
        if self.repeat_interval.is_zero() {
            errors.push(err(
                "rate.repeat_interval".into(),
                "must be longer than 0s".into(),
            ));
        } else if self.repeat_interval > MAX_REPEAT {
            errors.push(err(
                "rate.repeat_interval".into(),
                "must be at most 30d".into(),
            ));
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(RateSpec {
            by,
            window: self.window,
            min_messages: self.min_messages,
            fire_above: self.fire_above,
            resolve_below,
            repeat_interval: self.repeat_interval,
        })
    }
}
