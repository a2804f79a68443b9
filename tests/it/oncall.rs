//! On-call: silences. A silence over part of a storm holds back exactly its matches (stored,
//! counted, sent by `reroute` later), ends with its time (the injected clock), is managed over
//! the admin HTTP API behind the token, and from the real binary's CLI while it serves.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bizrelay::state::{Clock, now_ms};
use bizrelay::store::{NewSilence, Reroute, SilenceMatcher};
use serde_json::{Value, json};

use crate::common::*;

const TOKEN: &str = "admin-token-for-tests";
const WAIT: Duration = Duration::from_secs(20);

fn config(slack: &FakeChat, token: bool) -> String {
    let admin = if token {
        format!("[admin]\ntoken = \"{TOKEN}\"\n\n")
    } else {
        String::new()
    };
    format!(
        "{admin}[destinations.ops-slack]\ntype = \"slack\"\nurl = \"{}\"\nrate_per_second = 200\nburst = 100\n\n\
         [[routes]]\nname = \"failures\"\nto = [\"ops-slack\"]\n[routes.match]\noutcome = \"failure\"\n",
        slack.url("/services/T/B/SECRET")
    )
}

/// The value of one series in a /metrics text (0 when absent).
pub fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(series))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

const SILENCED: &str = "bizrelay_silenced_total{route=\"failures\"}";
const MATCHED: &str = "bizrelay_route_matches_total{route=\"failures\"}";

/// Hook ids (Slack bodies name them in backticks) of what the fake accepted, in order.
fn delivered(slack: &FakeChat, prefix: &str) -> Vec<String> {
    slack
        .accepted()
        .iter()
        .filter_map(|r| {
            let start = r.body.find(prefix)?;
            Some(
                r.body[start..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
                    .collect(),
            )
        })
        .collect()
}

pub fn hooks(prefix: &str, code: &str, n: usize) -> Vec<Value> {
    (0..n)
        .map(|i| failure(&format!("{prefix}-{code}-{i}"), code))
        .collect()
}

pub async fn wait_metric(app: &TestApp, series: &str, want: f64) {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let got = metric(&app.metrics().await, series);
        if got == want {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{series} is {got}, not {want}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Adds a silence of one matcher for an hour from `at`, as `bizrelay silence add` would, and
/// makes the app see it at once.
pub async fn silence_for_an_hour(state: &bizrelay::state::State, matcher: &str, at: i64) {
    let silence = bizrelay::silence::new_silence(
        vec![bizrelay::silence::parse_matcher(matcher).unwrap()],
        3_600_000,
        "NHN incident #123",
        None,
        at,
    )
    .unwrap();
    state.store.add_silence(silence).await.unwrap();
    state.silences.invalidate();
}

/// Waits until nothing waits to be routed or sent, so what the fake has is all there is.
pub async fn wait_settled(app: &TestApp) {
    let state = Arc::clone(app.state());
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let inbox = state.store.inbox_stats().await.unwrap();
        let queued: i64 = state
            .store
            .queue_stats()
            .await
            .unwrap()
            .iter()
            .map(|q| q.pending)
            .sum();
        if inbox.waiting == 0 && queued == 0 {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "work never settled");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_silence_over_part_of_a_storm_holds_back_its_matches_counts_them_and_ends_on_time() {
    let slack = FakeChat::start().await;
    let clock = Clock::manual(now_ms());
    let mut app = TestApp::spawn_clocked(
        Arc::new(tempfile::tempdir().unwrap()),
        &config(&slack, false),
        HashMap::new(),
        clock.clone(),
    )
    .await;
    let state = Arc::clone(app.state());
    let start = clock.now();
    state
        .store
        .add_silence(NewSilence {
            matchers: vec![SilenceMatcher {
                key: "result_code".into(),
                pattern: "30*9".into(),
            }],
            starts_at: start,
            ends_at: start + 600_000,
            comment: "NHN incident #123".into(),
            author: None,
            created_at: start,
        })
        .await
        .unwrap();
    state.silences.invalidate();

    // The storm: 6 failures the silence catches, 4 it does not.
    let mut storm = hooks("ocs", "3019", 6);
    storm.extend(hooks("ocs", "3016", 4));
    let (status, _) = app.post_json(envelope(&storm)).await;
    assert_eq!(status, 200);
    wait_metric(&app, MATCHED, 10.0).await;
    wait_metric(&app, SILENCED, 6.0).await;
    wait_settled(&app).await;
    let got = delivered(&slack, "ocs-");
    assert_eq!(got.len(), 4, "{got:?}");
    assert!(got.iter().all(|id| id.contains("3016")), "{got:?}");

    // Ten minutes later the silence has ended by itself.
    clock.advance(600_000);
    let (status, _) = app.post_json(envelope(&hooks("oclate", "3019", 2))).await;
    assert_eq!(status, 200);
    slack.wait_accepted(6, WAIT).await;
    wait_settled(&app).await;
    assert_eq!(delivered(&slack, "oclate-").len(), 2);
    assert_eq!(metric(&app.metrics().await, SILENCED), 6.0);

    // What it held back was kept: routing again sends exactly those, once.
    let n = state
        .store
        .reroute(Reroute::Since(0), clock.now())
        .await
        .unwrap();
    assert_eq!(n, 12);
    state.dispatch_wake.notify_one();
    slack.wait_accepted(12, WAIT).await;
    wait_metric(&app, MATCHED, 24.0).await;
    wait_settled(&app).await;
    let mut all = delivered(&slack, "ocs-");
    all.sort();
    let mut want: Vec<String> = storm
        .iter()
        .map(|h| h["hookId"].as_str().unwrap().to_string())
        .collect();
    want.sort();
    assert_eq!(
        all, want,
        "every storm hook once, the silenced ones after the silence"
    );
    app.stop().await;
}

#[tokio::test]
async fn the_silence_api_needs_the_admin_token_and_checks_what_it_is_given() {
    let slack = FakeChat::start().await;
    let mut app = TestApp::spawn(&config(&slack, true)).await;
    let http = http_client();
    let api = app.url("/api/silences");
    let good = json!({"matchers": ["result_code=3019"], "duration": "2h", "comment": "NHN incident #123", "author": "kim"});

    let resp = http.post(&api).json(&good).send().await.unwrap();
    assert_eq!(resp.status(), 401, "no token");
    let resp = http.get(&api).bearer_auth("wrong").send().await.unwrap();
    assert_eq!(resp.status(), 401, "wrong token");
    for (body, words) in [
        (
            json!({"matchers": ["resultcode=3019"], "duration": "2h", "comment": "x"}),
            "unknown key `resultcode`",
        ),
        (
            json!({"matchers": [], "duration": "2h", "comment": "x"}),
            "at least one matcher",
        ),
        (
            json!({"matchers": ["result_code=3019"], "duration": "soon", "comment": "x"}),
            "30m or 2h",
        ),
        (
            json!({"matchers": ["result_code=3019"], "duration": "2h", "comment": " "}),
            "comment",
        ),
        (json!({"matcher": "result_code=3019"}), "must be JSON like"),
    ] {
        let resp = http
            .post(&api)
            .bearer_auth(TOKEN)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 400, "{body}");
        let answer: Value = resp.json().await.unwrap();
        let detail = answer["detail"].as_str().unwrap();
        assert!(detail.contains(words), "{detail}");
    }

    let resp = http
        .post(&api)
        .bearer_auth(TOKEN)
        .json(&good)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let created: Value = resp.json().await.unwrap();
    let id = created["id"].as_i64().unwrap();
    assert_eq!(created["status"], "active");
    assert_eq!(created["author"], "kim");
    let listed: Value = http
        .get(&api)
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed["silences"][0]["id"], id);
    assert_eq!(
        listed["silences"][0]["matchers"][0],
        json!({"key": "result_code", "pattern": "3019"})
    );

    // Applied at once by this replica: the 3019 is held back, the 3016 goes out.
    let mut two = hooks("ocapi", "3019", 1);
    two.extend(hooks("ocapi", "3016", 1));
    app.post_json(envelope(&two)).await;
    wait_metric(&app, SILENCED, 1.0).await;
    slack.wait_accepted(1, WAIT).await;
    wait_settled(&app).await;
    assert_eq!(
        delivered(&slack, "ocapi-"),
        vec!["ocapi-3016-0".to_string()]
    );

    let one = format!("{api}/{id}");
    let resp = http.delete(&one).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.json::<Value>().await.unwrap()["expired"], true);
    let resp = http.delete(&one).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.json::<Value>().await.unwrap()["expired"], false);
    let resp = http
        .delete(format!("{api}/{}", id + 100))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    let resp = http
        .delete(format!("{api}/abc"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);

    app.post_json(envelope(&hooks("ocafter", "3019", 1))).await;
    slack.wait_accepted(2, WAIT).await;
    assert_eq!(
        delivered(&slack, "ocafter-"),
        vec!["ocafter-3019-0".to_string()]
    );
    app.stop().await;

    // Without a token the API is off.
    let mut off = TestApp::spawn(&config(&slack, false)).await;
    let resp = http.get(off.url("/api/silences")).send().await.unwrap();
    assert_eq!(resp.status(), 404);
    let answer: Value = resp.json().await.unwrap();
    assert!(
        answer["detail"]
            .as_str()
            .unwrap()
            .contains("set admin.token")
    );
    off.stop().await;
}

#[tokio::test]
async fn silence_add_from_the_cli_while_serving_stops_only_its_matches() {
    let slack = FakeChat::start().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    std::fs::write(&path, base_config(dir.path(), &config(&slack, false))).unwrap();
    let mut process = Process::start(&path, &[]);
    let http = http_client();

    let mut before = hooks("ocbefore", "3019", 1);
    before.extend(hooks("ocbefore", "3016", 1));
    assert_eq!(process.post(&http, envelope(&before)).await.status(), 200);
    slack.wait_accepted(2, WAIT).await;

    let (code, stdout, stderr) = run_cli(
        &[
            "silence",
            "add",
            "result_code=3019",
            "--for",
            "1h",
            "--comment",
            "NHN incident #123",
            "--author",
            "kim",
        ],
        &path,
    )
    .await;
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(
        stdout.contains("silence 1 added: result_code=3019"),
        "{stdout}"
    );
    let (code, stdout, _) = run_cli(
        &[
            "silence",
            "add",
            "resultcode=1",
            "--for",
            "1h",
            "--comment",
            "x",
        ],
        &path,
    )
    .await;
    assert_eq!(code, Some(2));
    assert!(stdout.is_empty());
    wait_for_log(&process, "silences changed", 1, WAIT).await;

    let mut during = hooks("ocduring", "3019", 2);
    during.extend(hooks("ocduring", "3016", 2));
    assert_eq!(process.post(&http, envelope(&during)).await.status(), 200);
    let metrics_url = process.url("/metrics");
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let text = http
            .get(&metrics_url)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if metric(&text, SILENCED) == 2.0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never silenced: {text}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    slack.wait_accepted(4, WAIT).await;
    let mut got = delivered(&slack, "ocduring-");
    got.sort();
    assert_eq!(
        got,
        vec!["ocduring-3016-0".to_string(), "ocduring-3016-1".to_string()]
    );

    let (code, stdout, _) = run_cli(&["silence", "list"], &path).await;
    assert_eq!(code, Some(0));
    assert!(stdout.contains("active"), "{stdout}");
    assert!(
        stdout.contains("result_code=3019 — NHN incident #123"),
        "{stdout}"
    );
    let (_, stdout, _) = run_cli(&["silence", "list", "--format", "json"], &path).await;
    let listed: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(listed[0]["author"], "kim");

    let (code, stdout, _) = run_cli(&["check"], &path).await;
    assert_eq!(code, Some(0), "{stdout}");
    assert!(
        stdout.contains("silence 1 is active until") && stdout.contains("result_code=3019"),
        "{stdout}"
    );

    // The dry run says which silence would catch a hook.
    let payload = dir.path().join("payload.json");
    std::fs::write(&payload, envelope(&hooks("ocdry", "3019", 1))).unwrap();
    let (code, stdout, _) = run_cli(&["route", payload.to_str().unwrap()], &path).await;
    assert_eq!(code, Some(0));
    assert!(
        stdout.contains("silenced by silence 1 (result_code=3019"),
        "{stdout}"
    );

    let (code, stdout, _) = run_cli(&["silence", "expire", "1"], &path).await;
    assert_eq!(code, Some(0));
    assert!(stdout.contains("silence 1 expired"), "{stdout}");
    let (code, _, stderr) = run_cli(&["silence", "expire", "7"], &path).await;
    assert_eq!(code, Some(1));
    assert!(stderr.contains("there is no silence 7"), "{stderr}");
    wait_for_log(&process, "silences changed", 2, WAIT).await;
    assert_eq!(
        process
            .post(&http, envelope(&hooks("ocafter", "3019", 1)))
            .await
            .status(),
        200
    );
    slack.wait_accepted(5, WAIT).await;
    assert_eq!(
        delivered(&slack, "ocafter-"),
        vec!["ocafter-3019-0".to_string()]
    );
    process.signal(nix::sys::signal::Signal::SIGTERM);
    process.wait(WAIT).await;
}

#[tokio::test]
async fn a_digest_counts_the_silenced_hooks_of_its_group_separately() {
    let slack = FakeChat::start().await;
    let clock = Clock::manual(now_ms());
    let config = format!(
        "[destinations.ops-slack]\ntype = \"slack\"\nurl = \"{}\"\nrate_per_second = 200\nburst = 100\n\n\
         [[routes]]\nname = \"storm\"\nto = [\"ops-slack\"]\n[routes.match]\noutcome = \"failure\"\n\
         [routes.group]\nwait = \"10s\"\ninterval = \"1m\"\n",
        slack.url("/services/T/B/SECRET")
    );
    let mut app = TestApp::spawn_clocked(
        Arc::new(tempfile::tempdir().unwrap()),
        &config,
        HashMap::new(),
        clock.clone(),
    )
    .await;
    let state = Arc::clone(app.state());
    let start = clock.now();
    silence_for_an_hour(&state, "result_code=3019", start).await;
    let mut storm = hooks("ocdig", "3019", 5);
    storm.extend(hooks("ocdig", "3016", 3));
    app.post_json(envelope(&storm)).await;
    wait_metric(&app, "bizrelay_silenced_total{route=\"storm\"}", 5.0).await;
    wait_metric(&app, "bizrelay_route_matches_total{route=\"storm\"}", 8.0).await;
    assert_eq!(slack.count(), 0, "nothing before the window closes");
    clock.advance(10_000);
    state.dispatch_wake.notify_one();
    let got = slack.wait_accepted(1, WAIT).await;
    let text = got[0].json()["text"].as_str().unwrap().to_string();
    assert!(text.starts_with("🚨 3 "), "{text}");
    assert!(text.ends_with("+5 silenced"), "{text}");
    wait_settled(&app).await;
    assert_eq!(slack.accepted().len(), 1);
    app.stop().await;
}
