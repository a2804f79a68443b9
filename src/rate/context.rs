//! The template contexts of rate alerts (`rate_firing`, `rate_resolved`) and the one-line
//! summary each gets per locale. Built only from counts and series values, which come from
//! hooks and are neutralised like every hook text.

use serde_json::{Map, Value, json};

use super::{Decision, SeriesState, ratio};
use crate::context::{self, format_ms};
use crate::destination::DestinationKind;
use crate::locale::{self, Locale, group_digits};
use crate::store::{RateSettings, WindowCounts};

/// Result codes listed in an alert.
const TOP_CODES: usize = 5;

/// What an alert is about.
pub struct AlertInput<'a> {
    pub route: &'a str,
    pub series_key: &'a str,
    pub settings: &'a RateSettings,
    pub decision: Decision,
    /// The state the message describes (see [`super::judge`]).
    pub state: &'a SeriesState,
    pub window: &'a WindowCounts,
    pub previous: &'a WindowCounts,
    pub now: i64,
}

fn series(key: &str) -> (Map<String, Value>, String) {
    let map: Map<String, Value> = serde_json::from_str(key).unwrap_or_default();
    let label = if map.is_empty() {
        "all".to_string()
    } else {
        map.iter()
            .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("(none)")))
            .collect::<Vec<_>>()
            .join(", ")
    };
    (map, label)
}

fn window_value(w: &WindowCounts, window_ms: i64) -> Value {
    json!({
        "failures": w.failures,
        "results": w.results,
        "uncertain": w.uncertain,
        "silenced": w.silenced,
        "percent": locale::percent(ratio(w)),
        "ratio": ratio(w),
        "start": format_ms(w.start),
        "end": format_ms(w.start + window_ms),
    })
}

fn common(input: &AlertInput<'_>, kind: &str) -> Value {
    let (map, label) = series(input.series_key);
    let s = input.settings;
    let codes: Vec<Value> = input
        .window
        .codes
        .iter()
        .take(TOP_CODES)
        .map(|(code, n)| {
            let r = context::result_value(code.as_deref());
            json!({"code": code, "count": n, "outcome": r["outcome"], "meaning_en": r["meaning_en"], "meaning_ko": r["meaning_ko"]})
        })
        .collect();
    let prev = input.previous;
    let delta = ratio(input.window) - ratio(prev);
    let trend = if prev.results == 0 {
        "new"
    } else if delta > 0.005 {
        "up"
    } else if delta < -0.005 {
        "down"
    } else {
        "flat"
    };
    json!({
        "kind": kind,
        "route": input.route,
        "destination": "",
        "destination_type": "",
        "locale": Locale::En.as_str(),
        "summary": "",
        "series": map,
        "series_label": label,
        "window_ms": s.window_ms,
        "window": "",
        "fire_above": locale::percent(s.fire_above),
        "resolve_below": locale::percent(s.resolve_below),
        "min_messages": s.min_messages,
        "failures": input.window.failures,
        "results": input.window.results,
        "silenced": input.window.silenced,
        "percent": locale::percent(ratio(input.window)),
        "ratio": ratio(input.window),
        "window_start": format_ms(input.window.start),
        "window_end": format_ms(input.window.start + s.window_ms),
        "codes": codes,
        "more_codes": input.window.codes.len().saturating_sub(TOP_CODES),
        "previous": window_value(prev, s.window_ms),
        "trend": trend,
        "trend_points": format!("{:+.1}", delta * 100.0),
        "since": input.state.fired_at.map(format_ms),
        "firing_for_ms": input.state.fired_at.map(|at| input.now - at),
        "firing_for": "",
        "failures_since": input.state.failures_since,
        "results_since": input.state.results_since,
        "silenced_since": input.state.silenced_since,
        "percent_since": locale::percent(if input.state.results_since > 0 {
            input.state.failures_since as f64 / input.state.results_since as f64
        } else {
            0.0
        }),
        "at": format_ms(input.now),
    })
}

/// The context of a firing alert (first or repeat).
pub fn firing_context(input: &AlertInput<'_>) -> Value {
    let mut ctx = common(input, "rate_firing");
    ctx["repeat"] = json!(input.decision == Decision::Repeat);
    context::neutralise(&mut ctx);
    ctx
}

/// The context of a resolved alert.
pub fn resolved_context(input: &AlertInput<'_>) -> Value {
    let mut ctx = common(input, "rate_resolved");
    ctx["repeat"] = json!(false);
    context::neutralise(&mut ctx);
    ctx
}

/// Fills the destination fields of an alert context and the texts written in its locale.
pub fn for_destination(mut ctx: Value, name: &str, kind: DestinationKind, locale: Locale) -> Value {
    ctx["destination"] = json!(name);
    ctx["destination_type"] = json!(kind.as_str());
    ctx["locale"] = json!(locale.as_str());
    ctx["window"] = json!(locale::duration(
        ctx["window_ms"].as_i64().unwrap_or(0),
        locale
    ));
    ctx["firing_for"] = json!(locale::duration(
        ctx["firing_for_ms"].as_i64().unwrap_or(0),
        locale
    ));
    ctx["summary"] = json!(summary(&ctx, locale));
    ctx
}

fn silenced_tail(n: i64, locale: Locale) -> String {
    match (n, locale) {
        (0, _) => String::new(),
        (n, Locale::En) => format!(" +{} silenced", group_digits(n)),
        (n, Locale::Ko) => format!(" +사일런스 {}건", group_digits(n)),
    }
}

/// The one-line text of an alert (what a phone shows).
pub fn summary(ctx: &Value, locale: Locale) -> String {
    let text = |k: &str| ctx[k].as_str().unwrap_or("").to_string();
    let num = |k: &str| group_digits(ctx[k].as_i64().unwrap_or(0));
    let (route, label, percent, window) = (
        text("route"),
        text("series_label"),
        text("percent"),
        text("window"),
    );
    match (ctx["kind"].as_str(), locale) {
        (Some("rate_resolved"), Locale::En) => format!(
            "✅ Resolved: {route} ({label}) failure rate {percent} over {window}, after {} firing; {} of {} failed in all{}",
            text("firing_for"),
            num("failures_since"),
            num("results_since"),
            silenced_tail(ctx["silenced_since"].as_i64().unwrap_or(0), locale)
        ),
        (Some("rate_resolved"), Locale::Ko) => format!(
            "✅ 해소: {route} ({label}) 실패율 {percent} ({window}), {} 동안 발생; 총 {}건 중 {}건 실패{}",
            text("firing_for"),
            num("results_since"),
            num("failures_since"),
            silenced_tail(ctx["silenced_since"].as_i64().unwrap_or(0), locale)
        ),
        (_, Locale::En) => format!(
            "🔥 {}{route} ({label}): {percent} failed over {window} ({} of {}){}",
            if ctx["repeat"] == json!(true) {
                "Still firing: "
            } else {
                "Failure rate: "
            },
            num("failures"),
            num("results"),
            silenced_tail(ctx["silenced"].as_i64().unwrap_or(0), locale)
        ),
        (_, Locale::Ko) => format!(
            "🔥 {}{route} ({label}): 최근 {window} 실패율 {percent} ({}건 중 {}건){}",
            if ctx["repeat"] == json!(true) {
                "계속 발생 중: "
            } else {
                "실패율 경보: "
            },
            num("results"),
            num("failures"),
            silenced_tail(ctx["silenced"].as_i64().unwrap_or(0), locale)
        ),
    }
}

/// Contexts of both alert templates for previews, `check`'s rehearsal and golden renders:
/// a storm of 3019 failures on AlimTalk, firing for 25 minutes, then resolved.
pub fn sample_contexts() -> Vec<(&'static str, Value)> {
    let settings = RateSettings {
        to: vec![],
        window_ms: 300_000,
        min_messages: 200,
        fire_above: 0.10,
        resolve_below: 0.03,
        repeat_interval_ms: 4 * 3_600_000,
    };
    let start = 1_795_830_000_000;
    let window = WindowCounts {
        start,
        results: 1_300,
        failures: 1_204,
        uncertain: 6,
        silenced: 312,
        codes: vec![
            (Some("3019".into()), 1_150),
            (Some("3018".into()), 54),
            (Some("5000".into()), 6),
        ],
    };
    let previous = WindowCounts {
        start: start - 300_000,
        results: 1_250,
        failures: 220,
        uncertain: 0,
        silenced: 0,
        codes: vec![(Some("3019".into()), 220)],
    };
    let state = SeriesState {
        firing: true,
        fired_at: Some(start - 1_200_000),
        last_sent_at: Some(start),
        failures_since: 4_818,
        results_since: 6_400,
        silenced_since: 312,
    };
    let key = r#"{"message_type":"AT","sender_key":"a1b2c3d4e5"}"#;
    let input = |decision, window, previous| AlertInput {
        route: "alimtalk-failure-rate",
        series_key: key,
        settings: &settings,
        decision,
        state: &state,
        window,
        previous,
        now: start + 301_000,
    };
    let quiet = WindowCounts {
        start: start + 300_000,
        results: 1_280,
        failures: 12,
        uncertain: 0,
        silenced: 0,
        codes: vec![(Some("3019".into()), 12)],
    };
    vec![
        (
            super::FIRING_TEMPLATE,
            firing_context(&input(Decision::Fire, &window, &previous)),
        ),
        (
            super::RESOLVED_TEMPLATE,
            resolved_context(&input(Decision::Resolve, &quiet, &window)),
        ),
    ]
}
