//! Nothing lost: restarts, retries, rate limits, dead letters, dedup, pacing, store failures.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::*;
use serde_json::{Value, json};

fn routes_to_slack(rate: &str) -> String {
    format!(
        "[[routes]]\nname = \"failures\"\nto = [\"ops-slack\"]\n[routes.match]\noutcome = \"failure\"\n\n{rate}"
    )
}

fn slack_only(slack: &FakeChat, rate_per_second: f64, burst: u32, extra: &str) -> String {
    format!(
        "[destinations.ops-slack]\ntype = \"slack\"\nurl = \"{}\"\nrate_per_second = {rate_per_second}\nburst = {burst}\n\n{}",
        slack.url("/services/T/B/SECRET"),
        routes_to_slack(extra)
    )
}

/// How many accepted bodies mention each hook id.
fn per_hook(received: &[Received], ids: &[String]) -> HashMap<String, usize> {
    ids.iter()
        .map(|id| {
            (
                id.clone(),
                received
                    .iter()
                    .filter(|r| r.body.contains(&format!("`{id}`")))
                    .count(),
            )
        })
        .collect()
}

#[tokio::test]
async fn hooks_accepted_while_slack_is_down_arrive_once_after_a_restart() {
    let slack = FakeChat::start_with(Reply::status(503)).await;
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let config = slack_only(&slack, 100.0, 10, "");
    let mut app = TestApp::spawn_in(Arc::clone(&dir), &config, HashMap::new()).await;
    let ids: Vec<String> = (0..6).map(|i| format!("down-{i}")).collect();
    for chunk in ids.chunks(2) {
        let hooks: Vec<Value> = chunk.iter().map(|id| failure(id, "3019")).collect();
        assert_eq!(app.post_json(envelope(&hooks)).await.0, 200);
    }
    slack.wait_for(6, Duration::from_secs(10)).await;
    app.stop().await;
    assert!(slack.accepted().is_empty());

    slack.set_default(Reply::status(200).body("ok"));
    let mut app = TestApp::spawn_in(Arc::clone(&dir), &config, HashMap::new()).await;
    let got = slack.wait_accepted(6, Duration::from_secs(15)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(slack.accepted().len(), 6, "nothing delivered twice");
    assert!(
        per_hook(&got, &ids).values().all(|n| *n == 1),
        "{:?}",
        per_hook(&got, &ids)
    );
    // The same POST again after the restart is still a duplicate.
    let hooks: Vec<Value> = ids[..2].iter().map(|id| failure(id, "3019")).collect();
    assert_eq!(
        app.post_json(envelope(&hooks)).await.1,
        json!({"accepted": 0, "duplicates": 2, "rejected": 0})
    );
    app.stop().await;
}

#[tokio::test]
async fn five_hundred_twice_then_ok_is_delivered_once() {
    let slack = FakeChat::start().await;
    slack.script([
        Reply::status(500).body("rollup_error"),
        Reply::status(500).body("rollup_error"),
    ]);
    let mut app = TestApp::spawn(&slack_only(&slack, 100.0, 10, "")).await;
    app.post_json(envelope(&[failure("r-1", "3019")])).await;
    let got = slack.wait_accepted(1, Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let all = slack.received();
    assert_eq!(all.len(), 3, "two failures then one success");
    assert_eq!(got.len(), 1);
    assert!(
        all.iter().all(|r| r.body == all[0].body),
        "retries resend the stored body"
    );
    assert!(all.iter().all(|r| r.delivery_id == all[0].delivery_id));
    // Backoff (100 ms doubling, jittered into [d/2, d]) spaced the attempts.
    assert!(all[1].at - all[0].at >= Duration::from_millis(50));
    assert!(all[2].at - all[1].at >= Duration::from_millis(100));
    app.stop().await;
}

#[tokio::test]
async fn a_429_pauses_the_whole_destination_for_retry_after() {
    let slack = FakeChat::start().await;
    slack.script([Reply::status(429).header("Retry-After", "2")]);
    let mut app = TestApp::spawn(&slack_only(&slack, 100.0, 10, "")).await;
    let hooks = vec![
        failure("t-1", "3019"),
        failure("t-2", "3016"),
        failure("t-3", "3008"),
    ];
    app.post_json(envelope(&hooks)).await;
    let got = slack.wait_accepted(3, Duration::from_secs(15)).await;
    let all = slack.received();
    assert_eq!(all[0].status, 429);
    let gap = all[1].at - all[0].at;
    assert!(
        gap >= Duration::from_millis(1950),
        "next post {gap:?} after the 429"
    );
    assert_eq!(got.len(), 3);
    assert_eq!(
        all.len(),
        4,
        "the throttled one is resent once, nothing dropped"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_404_is_a_dead_letter_without_retries_and_replay_delivers_it() {
    // The error page echoes the request path, which holds the webhook's secret.
    let slack =
        FakeChat::start_with(Reply::status(404).body("no_service for /services/T/B/SECRET")).await;
    let mut app = TestApp::spawn(&slack_only(&slack, 100.0, 10, "")).await;
    app.post_json(envelope(&[failure("gone-1", "3019")])).await;
    slack.wait_for(1, Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(slack.count(), 1, "no retries after a 404");

    let ready: Value = app.readyz().await;
    assert_eq!(
        ready["ready"], true,
        "an unhealthy destination does not make the service unready"
    );
    assert_eq!(
        ready["unhealthy_destinations"]["ops-slack"]["last_status"],
        404
    );
    assert!(!ready.to_string().contains("SECRET"), "no URL in readyz");

    // The CLI works on the store while the server runs.
    let list = bizrelay(app.dir.path())
        .args(["dead-letters", "list", "--format", "json", "--config"])
        .arg(&app.config_path)
        .output()
        .unwrap();
    assert!(
        list.status.success(),
        "{}",
        String::from_utf8_lossy(&list.stderr)
    );
    let letters: Value = serde_json::from_slice(&list.stdout).unwrap();
    assert_eq!(letters.as_array().unwrap().len(), 1);
    assert_eq!(letters[0]["destination"], "ops-slack");
    assert_eq!(letters[0]["hook_id"], "gone-1");
    assert_eq!(letters[0]["attempts"], 1);
    assert!(
        letters[0]["reason"]
            .as_str()
            .unwrap()
            .contains("HTTP 404: no_service")
    );
    assert!(
        !letters.to_string().contains("SECRET"),
        "the URL path is redacted: {letters}"
    );
    let text = bizrelay(app.dir.path())
        .args(["dead-letters", "list", "--config"])
        .arg(&app.config_path)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&text.stdout).contains("gone-1"));

    slack.set_default(Reply::status(200).body("ok"));
    let replay = bizrelay(app.dir.path())
        .args(["dead-letters", "replay", "--all", "--config"])
        .arg(&app.config_path)
        .output()
        .unwrap();
    assert!(
        replay.status.success(),
        "{}",
        String::from_utf8_lossy(&replay.stderr)
    );
    assert!(String::from_utf8_lossy(&replay.stdout).contains("requeued 1"));
    let got = slack.wait_accepted(1, Duration::from_secs(10)).await;
    assert!(got[0].body.contains("gone-1"));
    let ready: Value = app.readyz().await;
    assert_eq!(
        ready["unhealthy_destinations"],
        json!({}),
        "healthy again after a 2xx"
    );
    app.stop().await;
}

#[tokio::test]
async fn retries_stop_at_max_attempts() {
    let slack = FakeChat::start_with(Reply::status(500)).await;
    let config = format!(
        "[delivery]\nmax_attempts = 3\nbackoff = {{ initial = \"50ms\", max = \"100ms\" }}\nshutdown_grace = \"1s\"\n{}",
        slack_only(&slack, 100.0, 10, "")
    );
    let mut app = TestApp::spawn(&config).await;
    app.post_json(envelope(&[failure("max-1", "3019")])).await;
    slack.wait_for(3, Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(slack.count(), 3);
    let dead = app.state().store.dead_letters(None).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert!(
        dead[0].reason.starts_with("gave up after 3 attempts"),
        "{}",
        dead[0].reason
    );
    app.stop().await;
}

#[tokio::test]
async fn a_duplicate_post_is_relayed_once() {
    let slack = FakeChat::start().await;
    let mut app = TestApp::spawn(&slack_only(&slack, 100.0, 10, "")).await;
    let body = envelope(&[failure("dup-1", "3019"), failure("dup-2", "3016")]);
    assert_eq!(
        app.post_json(body.clone()).await.1,
        json!({"accepted": 2, "duplicates": 0, "rejected": 0})
    );
    // NHN may retry with a new hooksId and the same hookIds.
    let again = body.replace("\"hooksId\":\"post-", "\"hooksId\":\"retry-");
    assert_eq!(
        app.post_json(again).await.1,
        json!({"accepted": 0, "duplicates": 2, "rejected": 0})
    );
    slack.wait_accepted(2, Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(slack.count(), 2);
    let metrics = app.metrics().await;
    assert!(
        metrics.contains(
            "bizrelay_hooks_received_total{kind=\"message_result\",outcome=\"duplicate\"} 2"
        ),
        "{metrics}"
    );
    app.stop().await;
}

#[tokio::test]
async fn twenty_deliveries_at_one_per_second_take_nineteen_seconds() {
    let slack = FakeChat::start().await;
    let mut app = TestApp::spawn(&slack_only(&slack, 1.0, 1, "")).await;
    let hooks: Vec<Value> = (0..20)
        .map(|i| failure(&format!("pace-{i:02}"), "3019"))
        .collect();
    app.post_json(envelope(&hooks)).await;
    let got = slack.wait_accepted(20, Duration::from_secs(40)).await;
    let span = got[19].at - got[0].at;
    // Sends are 1 s apart; arrival times can shift by transit jitter on a busy machine.
    assert!(
        span >= Duration::from_millis(18_500),
        "20 posts took {span:?}"
    );
    for w in got.windows(2) {
        assert!(
            w[1].at - w[0].at >= Duration::from_millis(500),
            "{:?}",
            w[1].at - w[0].at
        );
    }
    // Arrival order is kept.
    let order: Vec<usize> = (0..20)
        .map(|i| {
            got.iter()
                .position(|r| r.body.contains(&format!("pace-{i:02}")))
                .unwrap()
        })
        .collect();
    assert_eq!(order, (0..20).collect::<Vec<_>>());
    app.stop().await;
}

#[tokio::test]
async fn a_locked_store_answers_503_and_recovers() {
    let slack = FakeChat::start().await;
    let mut app = TestApp::spawn(&slack_only(&slack, 100.0, 10, "")).await;
    let lock = rusqlite::Connection::open(app.dir.path().join("bizrelay.db")).unwrap();
    lock.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let started = Instant::now();
    let resp = app.post(envelope(&[failure("locked-1", "3019")])).await;
    assert_eq!(resp.status(), 503);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "service unavailable");
    assert!(started.elapsed() < Duration::from_secs(8));
    let ready = app.http.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 503);
    lock.execute_batch("ROLLBACK").unwrap();
    drop(lock);
    // NHN retries the same hooks: within moments (the store's users see it work again) they
    // are taken, and the hook is relayed exactly once.
    let deadline = Instant::now() + Duration::from_secs(10);
    let body = loop {
        let (status, body) = app
            .post_json(envelope(&[failure("locked-1", "3019")]))
            .await;
        if status == 200 {
            break body;
        }
        assert_eq!(status, 503, "{body}");
        assert!(
            Instant::now() < deadline,
            "the store did not recover: {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        body["accepted"].as_u64().unwrap() + body["duplicates"].as_u64().unwrap(),
        1
    );
    slack.wait_accepted(1, Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(slack.count(), 1);
    app.stop().await;
}

#[tokio::test]
async fn an_unrecorded_outcome_holds_the_destination_instead_of_posting_again() {
    // Slack answers after 1 s; meanwhile the store is locked for longer than its busy timeout,
    // so the sender cannot record the 200. It must not post the same delivery again.
    let slack =
        FakeChat::start_with(Reply::status(200).body("ok").delay(Duration::from_secs(1))).await;
    let mut app = TestApp::spawn(&slack_only(&slack, 100.0, 10, "")).await;
    app.post_json(envelope(&[failure("rec-1", "3019")])).await;
    slack.wait_for(1, Duration::from_secs(10)).await;
    let lock = rusqlite::Connection::open(app.dir.path().join("bizrelay.db")).unwrap();
    lock.execute_batch("BEGIN IMMEDIATE").unwrap();
    tokio::time::sleep(Duration::from_millis(4_500)).await;
    lock.execute_batch("ROLLBACK").unwrap();
    drop(lock);
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    assert_eq!(
        slack.count(),
        1,
        "posted again while the outcome was unrecorded"
    );
    // Once the store takes writes again, the outcome is recorded: nothing is pending.
    let stats = app.state().store.queue_stats().await.unwrap();
    assert!(stats.iter().all(|s| s.pending == 0), "{stats:?}");
    app.stop().await;
}

#[tokio::test]
async fn a_second_server_on_the_same_store_refuses_to_start() {
    let slack = FakeChat::start().await;
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let config = slack_only(&slack, 100.0, 10, "");
    let mut first = TestApp::spawn_in(Arc::clone(&dir), &config, HashMap::new()).await;
    let text = base_config(dir.path(), &config);
    let loaded = bizrelay::config::load(
        &bizrelay::config::ConfigSource::File {
            path: dir.path().join("config.toml"),
            text,
        },
        &HashMap::new(),
    )
    .unwrap();
    let options =
        bizrelay::app::Options::new(bizrelay::reload::SourceSpec::Builtin, HashMap::new());
    let second = bizrelay::app::App::build(loaded, options).await;
    let err = second
        .err()
        .expect("the second server must not start")
        .to_string();
    assert!(
        err.contains("another bizrelay is already serving the store"),
        "{err}"
    );
    first.stop().await;
}
