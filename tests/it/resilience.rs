//! What the store's operators and careless days do: hooks no route wanted are kept and
//! rerouted, a hook that cannot be routed is quarantined without blocking the rest, a deleted
//! or stalled store answers 503 instead of 200, and `/readyz` tells the dispatcher, the
//! senders and the routing lag.

use std::time::{Duration, Instant};

use crate::common::*;
use serde_json::Value;

fn slack(slack: &FakeChat) -> String {
    format!(
        "[destinations.ops-slack]\ntype = \"slack\"\nurl = \"{}\"\nrate_per_second = 100\nburst = 10\n\n",
        slack.url("/services/T/B/SECRET")
    )
}

const TEMPLATES_ONLY: &str =
    "[[routes]]\nname = \"templates\"\nto = [\"ops-slack\"]\n[routes.match]\nkind = \"template\"\n";
const FAILURES_TOO: &str = "[[routes]]\nname = \"failures\"\nto = [\"ops-slack\"]\n[routes.match]\noutcome = \"failure\"\n";

fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(series))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {series} in /metrics"))
}

async fn reload(app: &TestApp, extra: &str) {
    std::fs::write(&app.config_path, base_config(app.dir.path(), extra)).unwrap();
    app.app
        .as_ref()
        .unwrap()
        .reloader()
        .reload("test")
        .await
        .unwrap();
}

#[tokio::test]
async fn unrouted_hooks_are_kept_and_reroute_sends_each_once() {
    let fake = FakeChat::start().await;
    let mut app = TestApp::spawn(&format!("{}{TEMPLATES_ONLY}", slack(&fake))).await;
    let (status, _) = app
        .post_json(envelope(&[
            failure("unrouted-1", "3019"),
            failure("unrouted-2", "3018"),
        ]))
        .await;
    assert_eq!(status, 200);
    wait_until_metric(&app, "bizrelay_hooks_kept{state=\"unrouted\"}", 2.0).await;
    assert_eq!(fake.count(), 0);
    // The operator notices, adds the route and reroutes while the server runs.
    reload(
        &app,
        &format!("{}{TEMPLATES_ONLY}{FAILURES_TOO}", slack(&fake)),
    )
    .await;
    let out = bizrelay_cmd(&app.config_path, &["reroute", "--all-unrouted"]);
    assert!(out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("2 stored hooks"),
        "{out:?}"
    );
    let got = fake.wait_accepted(2, Duration::from_secs(10)).await;
    assert!(got.iter().any(|r| r.body.contains("unrouted-1")));
    // Rerouting everything again sends nothing twice.
    let out = bizrelay_cmd(&app.config_path, &["reroute", "--since", "1h"]);
    assert!(out.status.success(), "{out:?}");
    wait_until_metric(&app, "bizrelay_inbox_waiting", 0.0).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(fake.count(), 2, "a hook never reaches a destination twice");
    app.stop().await;
}

async fn wait_until_metric(app: &TestApp, series: &str, want: f64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = app.metrics().await;
        if metric(&text, series) == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{series} never became {want}:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_hook_that_cannot_be_routed_is_quarantined_and_its_neighbours_delivered() {
    let fake = FakeChat::start().await;
    let mut app = TestApp::spawn(&format!("{}{TEMPLATES_ONLY}", slack(&fake))).await;
    app.post_json(envelope(&[
        failure("q-good-1", "3019"),
        failure("q-bad", "3019"),
        failure("q-good-2", "3019"),
    ]))
    .await;
    wait_until_metric(&app, "bizrelay_hooks_kept{state=\"unrouted\"}", 3.0).await;
    // The stored text of one hook becomes something no routing can read.
    let db = app.dir.path().join("bizrelay.db");
    let c = rusqlite::Connection::open(&db).unwrap();
    let n = c
        .execute(
            "UPDATE hooks SET raw = '[\"not a hook\"]' WHERE raw LIKE '%q-bad%'",
            [],
        )
        .unwrap();
    assert_eq!(n, 1);
    drop(c);
    reload(
        &app,
        &format!("{}{TEMPLATES_ONLY}{FAILURES_TOO}", slack(&fake)),
    )
    .await;
    let out = bizrelay_cmd(&app.config_path, &["reroute", "--all-unrouted"]);
    assert!(out.status.success(), "{out:?}");
    let got = fake.wait_accepted(2, Duration::from_secs(10)).await;
    assert!(got.iter().all(|r| !r.body.contains("q-bad")));
    wait_until_metric(&app, "bizrelay_hooks_quarantined_total", 1.0).await;
    let ready = app.readyz().await;
    assert_eq!(ready["routing"]["quarantined"], 1, "{ready}");
    assert_eq!(
        ready["ready"], true,
        "a quarantined hook does not stop the service: {ready}"
    );
    let out = bizrelay_cmd(&app.config_path, &["quarantine", "list"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("no longer parses") || text.contains("hook is not a JSON object"),
        "{text}"
    );
    assert!(text.contains("reroute --quarantined"), "{text}");
    app.stop().await;
}

#[tokio::test]
async fn deleting_the_store_while_serving_answers_503_and_unready() {
    let fake = FakeChat::start().await;
    let mut app = TestApp::spawn(&format!("{}{FAILURES_TOO}", slack(&fake))).await;
    let (status, _) = app.post_json(envelope(&[failure("before", "3019")])).await;
    assert_eq!(status, 200);
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!(
            "{}{suffix}",
            app.dir.path().join("bizrelay.db").display()
        ));
    }
    let resp = app.post(envelope(&[failure("after", "3019")])).await;
    assert_eq!(resp.status(), 503, "never 200 into a deleted store");
    let ready = app.http.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 503);
    let body: Value = ready.json().await.unwrap();
    assert!(body["reasons"].to_string().contains("deleted"), "{body}");
    app.stop().await;
}

#[tokio::test]
async fn a_stalled_store_answers_503_at_its_deadline_and_loses_nothing() {
    let fake = FakeChat::start().await;
    let config = format!(
        "[store]\npath = \"{}\"\nsync = \"normal\"\ncommit_timeout = \"1s\"\n{}{FAILURES_TOO}",
        "STORE",
        slack(&fake)
    );
    let dir = std::sync::Arc::new(tempfile::tempdir().unwrap());
    let config = config.replace(
        "STORE",
        &dir.path().join("bizrelay.db").display().to_string(),
    );
    let mut app = TestApp::spawn_in(dir, &config, Default::default()).await;
    // Another process holds the database: commits cannot finish (as on a frozen disk).
    let lock = rusqlite::Connection::open(app.dir.path().join("bizrelay.db")).unwrap();
    lock.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let started = Instant::now();
    let resp = app.post(envelope(&[failure("stalled-1", "3019")])).await;
    assert_eq!(resp.status(), 503);
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "answered at the 1 s deadline, not when the store comes back: {:?}",
        started.elapsed()
    );
    let ready = app.http.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 503);
    lock.execute_batch("ROLLBACK").unwrap();
    drop(lock);
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (status, body) = app
            .post_json(envelope(&[failure("stalled-1", "3019")]))
            .await;
        if status == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the store did not come back: {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    fake.wait_accepted(1, Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(fake.count(), 1, "relayed exactly once");
    app.stop().await;
}

#[tokio::test]
async fn readyz_reports_the_dispatcher_the_senders_and_routing() {
    let fake = FakeChat::start().await;
    let mut app = TestApp::spawn(&format!("{}{FAILURES_TOO}", slack(&fake))).await;
    app.post_json(envelope(&[failure("r-1", "3019")])).await;
    fake.wait_accepted(1, Duration::from_secs(10)).await;
    let ready = app.readyz().await;
    assert_eq!(ready["ready"], true, "{ready}");
    assert_eq!(ready["dispatcher"]["running"], true);
    assert_eq!(ready["dispatcher"]["restarts"], 0);
    assert!(
        ready["dispatcher"]["last_progress"]
            .as_str()
            .unwrap()
            .ends_with('Z')
    );
    assert_eq!(ready["senders"]["ops-slack"]["running"], true);
    assert_eq!(ready["routing"]["waiting"], 0);
    assert!(
        ready["store"]["name"]
            .as_str()
            .unwrap()
            .contains("bizrelay.db")
    );
    assert!(ready["replica"].as_str().is_some());
    app.stop().await;
}
