//! On-call, part two: failure-rate alerts and digests' resolved messages, through the whole
//! app (ingest → store → dispatcher → fake Slack) with time moved by hand: a ratio crossing
//! the fire and resolve thresholds with hysteresis and a repeat interval, a restart in the
//! middle of a window, a silence over part of a storm, a quiet digest group; and the real
//! binary on a real clock.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bizrelay::state::{Clock, now_ms};
use serde_json::Value;

use crate::common::*;
use crate::oncall::{hooks, metric, silence_for_an_hour, wait_metric, wait_settled};

const W: i64 = 60_000;
const WAIT: Duration = Duration::from_secs(20);
const MATCHED: &str = "bizrelay_route_matches_total{route=\"alimtalk-rate\"}";

fn config(slack: &FakeChat, rate: &str) -> String {
    format!(
        "[destinations.oncall]\ntype = \"slack\"\nurl = \"{}\"\nrate_per_second = 200\nburst = 100\n\n\
         [[routes]]\nname = \"alimtalk-rate\"\nto = [\"oncall\"]\n[routes.match]\nkind = \"message_result\"\n\
         [routes.rate]\n{rate}",
        slack.url("/services/T/B/SECRET")
    )
}

const RULE: &str = "by = [\"message_type\"]\nwindow = \"1m\"\nmin_messages = 10\nfire_above = 0.2\nresolve_below = 0.05\nrepeat_interval = \"3m\"\n";

/// `failures` results failing with 3019 and the rest succeeding (1000).
fn results(prefix: &str, all: usize, failures: usize) -> Vec<Value> {
    let mut v = hooks(&format!("{prefix}f"), "3019", failures);
    v.extend(hooks(&format!("{prefix}s"), "1000", all - failures));
    v
}

/// A manual clock 1s into a window (windows are aligned to the epoch).
fn aligned_clock() -> (Clock, i64) {
    let start = bizrelay::rate::window_start(now_ms(), W) + 1_000;
    (Clock::manual(start), start - 1_000)
}

/// Wakes the dispatcher and waits until nothing is due any more at the clock's time (every
/// closed window judged, every due digest sent) and what it queued was sent.
async fn settle_judging(app: &TestApp) {
    let state = Arc::clone(app.state());
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        state.dispatch_wake.notify_one();
        let next = state.store.next_flush_at().await.unwrap();
        if next.is_none_or(|at| at > state.now()) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "a due window was never judged"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    wait_settled(app).await;
}

fn texts(slack: &FakeChat) -> Vec<String> {
    slack
        .accepted()
        .iter()
        .map(|r| r.json()["text"].as_str().unwrap_or("").to_string())
        .collect()
}

async fn post_routed(app: &TestApp, hooks: &[Value], matched_after: f64) {
    let (status, _) = app.post_json(envelope(hooks)).await;
    assert_eq!(status, 200);
    wait_metric(app, MATCHED, matched_after).await;
}

#[tokio::test]
async fn a_failure_rate_fires_once_repeats_after_its_interval_and_resolves_once() {
    let slack = FakeChat::start().await;
    let (clock, base) = aligned_clock();
    let mut app = TestApp::spawn_clocked(
        Arc::new(tempfile::tempdir().unwrap()),
        &config(&slack, RULE),
        HashMap::new(),
        clock.clone(),
    )
    .await;
    // Failures per window of 20 results: 10% (under 20%), 50% (fires), 25% and 10% (under
    // the fire threshold but not the resolve one: still firing, too soon to repeat), 20%
    // (3m after firing: repeated), 0% (resolved).
    let per_window = [2, 10, 5, 2, 4, 0];
    let mut matched = 0.0;
    let mut seen = Vec::new();
    for (k, failures) in per_window.iter().enumerate() {
        matched += 20.0;
        post_routed(&app, &results(&format!("w{k}"), 20, *failures), matched).await;
        // Move into the next window, past the grace: window k is judged.
        let next = base + (k as i64 + 1) * W + 1_500;
        clock.advance(next - clock.now());
        settle_judging(&app).await;
        seen.push(texts(&slack).len());
    }
    assert_eq!(seen, [0, 1, 1, 1, 2, 3], "messages after each window");
    let got = texts(&slack);
    assert_eq!(
        got[0],
        "🔥 Failure rate: alimtalk-rate (message_type=ALIMTALK_NORMAL): 50.0% failed over 1m (10 of 20)"
    );
    assert_eq!(
        got[1],
        "🔥 Still firing: alimtalk-rate (message_type=ALIMTALK_NORMAL): 20.0% failed over 1m (4 of 20)"
    );
    assert_eq!(
        got[2],
        "✅ Resolved: alimtalk-rate (message_type=ALIMTALK_NORMAL) failure rate 0.0% over 1m, after 5m firing; 21 of 100 failed in all"
    );
    let first = slack.accepted()[0].body.clone();
    assert!(
        first.contains("3019"),
        "the top result code is named: {first}"
    );
    let m = app.metrics().await;
    assert_eq!(
        metric(
            &m,
            "bizrelay_rate_alerts_total{route=\"alimtalk-rate\",state=\"firing\"}"
        ),
        1.0
    );
    assert_eq!(
        metric(
            &m,
            "bizrelay_rate_alerts_total{route=\"alimtalk-rate\",state=\"repeat\"}"
        ),
        1.0
    );
    assert_eq!(
        metric(
            &m,
            "bizrelay_rate_alerts_total{route=\"alimtalk-rate\",state=\"resolved\"}"
        ),
        1.0
    );
    // A rate route sends nothing per hook.
    assert_eq!(slack.accepted().len(), 3);
    app.stop().await;
}

#[tokio::test]
async fn a_restart_in_the_middle_of_a_window_neither_loses_nor_double_counts() {
    let slack = FakeChat::start().await;
    let (clock, base) = aligned_clock();
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let text = config(&slack, RULE);
    let mut app =
        TestApp::spawn_clocked(Arc::clone(&dir), &text, HashMap::new(), clock.clone()).await;
    post_routed(&app, &results("a", 10, 5), 10.0).await;
    app.stop().await;
    clock.advance(20_000);
    let mut app =
        TestApp::spawn_clocked(Arc::clone(&dir), &text, HashMap::new(), clock.clone()).await;
    post_routed(&app, &results("b", 12, 7), 12.0).await;
    clock.advance(base + W + 1_500 - clock.now());
    settle_judging(&app).await;
    assert_eq!(
        texts(&slack),
        [
            "🔥 Failure rate: alimtalk-rate (message_type=ALIMTALK_NORMAL): 54.5% failed over 1m (12 of 22)"
        ]
    );
    app.stop().await;
}

#[tokio::test]
async fn a_silence_over_part_of_a_storm_keeps_its_results_out_of_the_ratio_and_says_so() {
    let slack = FakeChat::start().await;
    let (clock, base) = aligned_clock();
    let mut app = TestApp::spawn_clocked(
        Arc::new(tempfile::tempdir().unwrap()),
        &config(&slack, RULE),
        HashMap::new(),
        clock.clone(),
    )
    .await;
    let state = Arc::clone(app.state());
    silence_for_an_hour(&state, "result_code=3019", clock.now()).await;
    // 10 successes, 10 silenced 3019 failures, 5 failures with 3016: 5 of 15 counted.
    let mut storm = results("s0", 20, 10);
    storm.extend(hooks("s0x", "3016", 5));
    post_routed(&app, &storm, 25.0).await;
    wait_metric(
        &app,
        "bizrelay_silenced_total{route=\"alimtalk-rate\"}",
        10.0,
    )
    .await;
    clock.advance(base + W + 1_500 - clock.now());
    settle_judging(&app).await;
    // Then only silenced failures: nothing counted fails, so the alert resolves.
    post_routed(&app, &results("s1", 20, 10), 45.0).await;
    clock.advance(base + 2 * W + 1_500 - clock.now());
    settle_judging(&app).await;
    assert_eq!(
        texts(&slack),
        [
            "🔥 Failure rate: alimtalk-rate (message_type=ALIMTALK_NORMAL): 33.3% failed over 1m (5 of 15) +10 silenced",
            "✅ Resolved: alimtalk-rate (message_type=ALIMTALK_NORMAL) failure rate 0.0% over 1m, after 2m firing; 5 of 25 failed in all +20 silenced",
        ]
    );
    app.stop().await;
}

#[tokio::test]
async fn a_digest_group_that_goes_quiet_sends_one_resolved_message() {
    let slack = FakeChat::start().await;
    let (clock, _) = aligned_clock();
    let config = format!(
        "[destinations.oncall]\ntype = \"slack\"\nurl = \"{}\"\nrate_per_second = 200\nburst = 100\n\n\
         [[routes]]\nname = \"storm\"\nto = [\"oncall\"]\n[routes.match]\noutcome = \"failure\"\n\
         [routes.group]\nby = [\"result_code\"]\nwait = \"10s\"\ninterval = \"1m\"\nresolve_after = \"2m\"\n",
        slack.url("/services/T/B/SECRET")
    );
    let mut app = TestApp::spawn_clocked(
        Arc::new(tempfile::tempdir().unwrap()),
        &config,
        HashMap::new(),
        clock.clone(),
    )
    .await;
    let start = clock.now();
    app.post_json(envelope(&hooks("q", "3019", 3))).await;
    wait_metric(&app, "bizrelay_route_matches_total{route=\"storm\"}", 3.0).await;
    clock.advance(10_000);
    settle_judging(&app).await;
    assert_eq!(texts(&slack).len(), 1, "the digest");
    clock.advance(start + 120_000 - 1 - clock.now());
    settle_judging(&app).await;
    assert_eq!(texts(&slack).len(), 1, "not resolved before resolve_after");
    clock.advance(1);
    settle_judging(&app).await;
    let since = bizrelay::locale::Locale::En.date(&bizrelay::context::format_ms(start));
    assert_eq!(
        texts(&slack)[1],
        format!(
            "✅ Resolved: nothing new on storm (result_code=3019) for 2m; 3 in all since {since}"
        )
    );
    // Once: a later pass sends nothing more; the group's next failure starts afresh.
    clock.advance(600_000);
    settle_judging(&app).await;
    assert_eq!(texts(&slack).len(), 2);
    app.post_json(envelope(&hooks("q2", "3019", 1))).await;
    wait_metric(&app, "bizrelay_route_matches_total{route=\"storm\"}", 4.0).await;
    clock.advance(10_000);
    settle_judging(&app).await;
    let last = slack.accepted().last().unwrap().json();
    assert!(
        last["text"]
            .as_str()
            .unwrap()
            .starts_with("🚨 1 message result on storm"),
        "{last}"
    );
    assert!(
        last.to_string().contains("*1* since the group started"),
        "{last}"
    );
    app.stop().await;
}

/// Each firing message (first or repeat) and the resolved one, in order of arrival.
fn alerts(slack: &FakeChat) -> Vec<(std::time::Instant, String)> {
    slack
        .accepted()
        .iter()
        .map(|r| (r.at, r.json()["text"].as_str().unwrap_or("").to_string()))
        .collect()
}

#[tokio::test]
async fn the_real_binary_fires_once_repeats_no_sooner_than_its_interval_and_resolves_once() {
    let slack = FakeChat::start().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    // 1s windows, a 3s repeat interval: a repeat sent too soon would come 1s after the last.
    let rule = "by = [\"message_type\"]\nwindow = \"1s\"\nmin_messages = 3\nfire_above = 0.5\nresolve_below = 0.2\nrepeat_interval = \"3s\"\n";
    std::fs::write(&path, base_config(dir.path(), &config(&slack, rule))).unwrap();
    let mut process = Process::start(&path, &[]);
    let http = http_client();
    let repeat = Duration::from_secs(3);
    let mut n = 0;
    let mut post = async |failures: usize| {
        n += 1;
        let body = envelope(&results(&format!("rb{n}-"), 3, failures));
        assert_eq!(process.post(&http, body).await.status(), 200);
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // Two of three fail (67%) until the alert has fired and had time to repeat twice.
    let deadline = std::time::Instant::now() + WAIT;
    let fired_at = loop {
        post(2).await;
        if let Some((at, _)) = alerts(&slack).first() {
            break *at;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the alert never fired"
        );
    };
    while fired_at.elapsed() < repeat * 2 + Duration::from_millis(1_500) {
        post(2).await;
    }
    // Then only successes, until it resolves, and a few seconds more.
    let deadline = std::time::Instant::now() + WAIT;
    let resolved_at = loop {
        post(0).await;
        if let Some((at, _)) = alerts(&slack).iter().find(|(_, t)| t.starts_with("✅")) {
            break *at;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the alert never resolved"
        );
    };
    while resolved_at.elapsed() < Duration::from_secs(3) {
        post(0).await;
    }
    let got = alerts(&slack);
    let texts: Vec<&str> = got.iter().map(|(_, t)| t.as_str()).collect();
    assert!(
        texts[0].starts_with("🔥 Failure rate: alimtalk-rate (message_type=ALIMTALK_NORMAL): "),
        "{texts:#?}"
    );
    let firing: Vec<_> = got
        .iter()
        .take_while(|(_, t)| t.starts_with("🔥"))
        .collect();
    assert!(firing.len() >= 2, "it repeated while firing: {texts:#?}");
    assert!(
        firing[1..]
            .iter()
            .all(|(_, t)| t.starts_with("🔥 Still firing: ")),
        "{texts:#?}"
    );
    for pair in firing.windows(2) {
        // Judged at window closes; delivery adds a little jitter either side.
        assert!(
            pair[1].0 - pair[0].0 >= repeat - Duration::from_millis(700),
            "a repeat came {:?} after the previous message: {texts:#?}",
            pair[1].0 - pair[0].0
        );
    }
    assert_eq!(
        texts.len(),
        firing.len() + 1,
        "one resolved message, then nothing: {texts:#?}"
    );
    assert!(
        texts
            .last()
            .unwrap()
            .starts_with("✅ Resolved: alimtalk-rate"),
        "{texts:#?}"
    );
    process.signal(nix::sys::signal::Signal::SIGTERM);
    process.wait(WAIT).await;
}

#[tokio::test]
async fn two_replicas_on_postgres_count_into_one_series_and_send_one_alert() {
    let slack = FakeChat::start().await;
    let url = postgres_database().await;
    let (clock, base) = aligned_clock();
    let text = format!(
        "[store]\nurl = \"{url}\"\npool_size = 4\n\n{}",
        config(&slack, RULE)
    );
    let mut a = TestApp::spawn_clocked(
        Arc::new(tempfile::tempdir().unwrap()),
        &text,
        HashMap::new(),
        clock.clone(),
    )
    .await;
    let mut b = TestApp::spawn_clocked(
        Arc::new(tempfile::tempdir().unwrap()),
        &text,
        HashMap::new(),
        clock.clone(),
    )
    .await;
    post_routed(&a, &results("ra", 20, 8), 20.0).await;
    post_routed(&b, &results("rb", 30, 9), 30.0).await;
    clock.advance(base + W + 1_500 - clock.now());
    b.state().dispatch_wake.notify_one();
    settle_judging(&a).await;
    settle_judging(&b).await;
    assert_eq!(
        texts(&slack),
        [
            "🔥 Failure rate: alimtalk-rate (message_type=ALIMTALK_NORMAL): 34.0% failed over 1m (17 of 50)"
        ]
    );
    a.stop().await;
    b.stop().await;
}
