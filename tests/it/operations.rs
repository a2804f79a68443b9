//! Operating bizrelay: hot reload (HTTP, SIGHUP, file changes), metrics, readiness, the admin
//! listener and the command-line tools. (What a reload refuses, config errors and the example
//! config are in `config`.)

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::*;
use bizrelay::app::{App, Options};
use bizrelay::config::{ConfigSource, load};
use bizrelay::reload::SourceSpec;
use nix::sys::signal::Signal;
use serde_json::Value;

pub fn dest(name: &str, fake: &FakeChat) -> String {
    format!(
        "[destinations.{name}]\ntype = \"slack\"\nurl = \"{}\"\nrate_per_second = 100\nburst = 10\n",
        fake.url(&format!("/services/{name}"))
    )
}

pub fn route(name: &str, to: &str) -> String {
    format!(
        "[[routes]]\nname = \"{name}\"\nto = [\"{to}\"]\n[routes.match]\noutcome = \"failure\"\n"
    )
}

/// Runs the binary in an empty folder of its own (so `check` without `--config` sees the
/// built-in default, whatever the checkout holds).
pub fn cli(args: &[&str]) -> std::process::Output {
    let cwd = tempfile::tempdir().unwrap();
    bizrelay(cwd.path()).args(args).output().unwrap()
}

pub fn text(out: &[u8]) -> String {
    String::from_utf8_lossy(out).into_owned()
}

#[tokio::test]
async fn reload_over_http_needs_the_token_and_applies_whole() {
    let (a, b) = (FakeChat::start().await, FakeChat::start().await);
    let admin = "[admin]\ntoken = \"t0ken\"\n";
    let first = format!(
        "{admin}{}{}{}",
        dest("a", &a),
        dest("b", &b),
        route("r", "a")
    );
    let mut app = TestApp::spawn(&first).await;
    let reload = |token: Option<&'static str>| {
        let mut req = app.http.post(app.url("/-/reload"));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send()
    };
    assert_eq!(reload(None).await.unwrap().status(), 401);
    assert_eq!(reload(Some("t0kem")).await.unwrap().status(), 401);

    app.post_json(envelope(&[failure("before", "3019")])).await;
    a.wait_accepted(1, Duration::from_secs(5)).await;

    // Same file, route now to `b`.
    std::fs::write(
        &app.config_path,
        base_config(
            app.dir.path(),
            &format!(
                "{admin}{}{}{}",
                dest("a", &a),
                dest("b", &b),
                route("r", "b")
            ),
        ),
    )
    .unwrap();
    let resp = reload(Some("t0ken")).await.unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["reloaded"], true);
    let hash = body["config_hash"].as_str().unwrap().to_string();
    app.post_json(envelope(&[failure("after", "3019")])).await;
    let got = b.wait_accepted(1, Duration::from_secs(5)).await;
    assert!(got[0].body.contains("after"));
    assert_eq!(a.count(), 1);

    // An invalid config is refused whole; the previous one stays in force.
    std::fs::write(
        &app.config_path,
        base_config(
            app.dir.path(),
            &format!("{admin}{}{}", dest("b", &b), route("r", "ghost")),
        ),
    )
    .unwrap();
    let resp = reload(Some("t0ken")).await.unwrap();
    assert_eq!(resp.status(), 422);
    let body: Value = resp.json().await.unwrap();
    assert!(
        body["detail"][0]
            .as_str()
            .unwrap()
            .contains("routes[0] (r).to: unknown destination `ghost`"),
        "{body}"
    );
    // Changing the listen address needs a restart: refused, said so.
    let moved = format!(
        "[server]\nlisten = \"127.0.0.1:1\"\n{admin}{}{}{}",
        dest("a", &a),
        dest("b", &b),
        route("r", "a")
    );
    std::fs::write(&app.config_path, base_config(app.dir.path(), &moved)).unwrap();
    let body: Value = reload(Some("t0ken")).await.unwrap().json().await.unwrap();
    assert!(
        body["detail"][0]
            .as_str()
            .unwrap()
            .contains("server.listen changed; these settings need a restart"),
        "{body}"
    );

    app.post_json(envelope(&[failure("still-b", "3019")])).await;
    b.wait_accepted(2, Duration::from_secs(5)).await;
    let m = app.metrics().await;
    assert!(
        m.contains("bizrelay_config_reloads_total{result=\"success\"} 1"),
        "{m}"
    );
    assert!(
        m.contains("bizrelay_config_reloads_total{result=\"failure\"} 2"),
        "{m}"
    );
    assert!(m.contains(&format!("bizrelay_config_info{{hash=\"{hash}\"}} 1")));
    app.stop().await;
}

#[tokio::test]
async fn reload_over_http_is_off_without_a_token() {
    let a = FakeChat::start().await;
    let mut app = TestApp::spawn(&format!("{}{}", dest("a", &a), route("r", "a"))).await;
    let resp = app
        .http
        .post(app.url("/-/reload"))
        .bearer_auth("anything")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    app.stop().await;
}

#[tokio::test]
async fn queued_deliveries_keep_their_bodies_across_a_template_reload() {
    let slow = FakeChat::start_with(
        Reply::status(200)
            .body("ok")
            .delay(Duration::from_millis(300)),
    )
    .await;
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let tpl = dir.path().join("templates/slack");
    std::fs::create_dir_all(&tpl).unwrap();
    std::fs::write(
        tpl.join("message_result.hbs"),
        r#"{"text": "old {{hookId}}"}"#,
    )
    .unwrap();
    let config = format!(
        "[templates]\ndir = \"{}\"\n[admin]\ntoken = \"t\"\n{}{}",
        dir.path().join("templates").display(),
        dest("a", &slow).replace("rate_per_second = 100", "rate_per_second = 5"),
        route("r", "a")
    );
    let mut app = TestApp::spawn_in(Arc::clone(&dir), &config, HashMap::new()).await;
    let hooks: Vec<Value> = (0..6).map(|i| failure(&format!("q-{i}"), "3019")).collect();
    app.post_json(envelope(&hooks)).await;
    slow.wait_for(1, Duration::from_secs(5)).await;
    std::fs::write(
        tpl.join("message_result.hbs"),
        r#"{"text": "new {{hookId}}"}"#,
    )
    .unwrap();
    assert_eq!(
        app.http
            .post(app.url("/-/reload"))
            .bearer_auth("t")
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    app.post_json(envelope(&[failure("q-late", "3019")])).await;
    let got = slow.wait_accepted(7, Duration::from_secs(15)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        slow.count(),
        7,
        "nothing dropped or duplicated by the reload"
    );
    for r in &got[..6] {
        assert!(
            r.body.starts_with("{\"text\":\"old q-"),
            "queued before the reload: {}",
            r.body
        );
    }
    assert_eq!(got[6].body, "{\"text\":\"new q-late\"}");
    app.stop().await;
}

#[tokio::test]
async fn editing_a_template_file_reloads_by_itself() {
    let a = FakeChat::start().await;
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let tpl = dir.path().join("templates/slack");
    std::fs::create_dir_all(&tpl).unwrap();
    std::fs::write(
        tpl.join("message_result.hbs"),
        r#"{"text": "v1 {{hookId}}"}"#,
    )
    .unwrap();
    let text = base_config(
        dir.path(),
        &format!(
            "[templates]\ndir = \"templates\"\n{}{}",
            dest("a", &a),
            route("r", "a")
        ),
    );
    let path = dir.path().join("config.toml");
    std::fs::write(&path, &text).unwrap();
    let loaded = load(
        &ConfigSource::File {
            path: path.clone(),
            text,
        },
        &HashMap::new(),
    )
    .unwrap();
    let app = App::build(
        loaded,
        Options {
            watch_files: true,
            ..Options::new(SourceSpec::File(path.clone()), HashMap::new())
        },
    )
    .await
    .unwrap();
    let http = http_client();
    let post = |id: &str| {
        http.post(format!("http://{}/hooks/bizmessage", app.addr()))
            .header("content-type", "application/json")
            .body(envelope(&[failure(id, "3019")]))
            .send()
    };
    post("w-1").await.unwrap();
    a.wait_accepted(1, Duration::from_secs(5)).await;
    let old_hash = app.state().current().hash.clone();

    // A burst of writes (editors write, rename, touch) becomes one reload.
    for v in ["v2a", "v2b", "v2"] {
        std::fs::write(
            tpl.join("message_result.hbs"),
            format!(r#"{{"text": "{v} {{{{hookId}}}}"}}"#),
        )
        .unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while app.state().current().hash == old_hash {
        assert!(
            Instant::now() < deadline,
            "template change was not picked up"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(800)).await;
    post("w-2").await.unwrap();
    let got = a.wait_accepted(2, Duration::from_secs(5)).await;
    assert_eq!(got[1].body, "{\"text\":\"v2 w-2\"}");
    let reloads = || -> u64 {
        app.state()
            .metrics
            .render()
            .lines()
            .find(|l| l.starts_with("bizrelay_config_reloads_total{result=\"success\"}"))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    let after_edit = reloads();
    assert!(
        (1..=2).contains(&after_edit),
        "debounced into one or two reloads, got {after_edit}"
    );
    // Reloading reads the templates; reads must not trigger further reloads.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(reloads(), after_edit, "reloads keep coming without changes");

    // A broken config file keeps the previous config in force.
    let before = app.state().current().hash.clone();
    std::fs::write(&path, "this is [not toml").unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(app.state().current().hash, before);
    assert!(
        app.state()
            .metrics
            .render()
            .contains("bizrelay_config_reloads_total{result=\"failure\"}")
    );
    app.stop().await;
}

#[tokio::test]
async fn sighup_reloads_the_real_process() {
    let (a, b) = (FakeChat::start().await, FakeChat::start().await);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    let write = |to: &str| {
        std::fs::write(
            &path,
            base_config(
                dir.path(),
                &format!("{}{}{}", dest("a", &a), dest("b", &b), route("r", to)),
            ),
        )
        .unwrap()
    };
    write("a");
    let process = Process::start(&path, &[]);
    let http = http_client();
    let post = |id: &str| {
        http.post(process.url("/hooks/bizmessage"))
            .header("content-type", "application/json")
            .body(envelope(&[failure(id, "3019")]))
            .send()
    };
    post("h-1").await.unwrap();
    a.wait_accepted(1, Duration::from_secs(5)).await;
    write("b");
    // The file watcher may reload first; SIGHUP must work either way.
    process.signal(Signal::SIGHUP);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !process.log_text().contains("config reloaded") {
        assert!(
            Instant::now() < deadline,
            "no reload: {}",
            process.log_text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    post("h-2").await.unwrap();
    let got = b.wait_accepted(1, Duration::from_secs(5)).await;
    assert!(got[0].body.contains("h-2"));
    assert!(
        process.log_text().contains("\"trigger\":\"SIGHUP\"")
            || process.log_text().contains("file change")
    );
}

#[tokio::test]
async fn metrics_cover_every_documented_family() {
    let a = FakeChat::start().await;
    let mut app = TestApp::spawn(&format!("{}{}", dest("a", &a), route("r", "a"))).await;
    app.post_json(fixture("mixed.json")).await;
    a.wait_accepted(2, Duration::from_secs(5)).await;
    app.post_with("{}", &[]).await;
    let m = app.metrics().await;
    for family in [
        "bizrelay_hooks_received_total{kind=\"message_result\",outcome=\"accepted\"} 2",
        "bizrelay_hooks_received_total{kind=\"template\",outcome=\"accepted\"} 1",
        "bizrelay_hooks_received_total{kind=\"invalid\",outcome=\"rejected\"} 1",
        "bizrelay_requests_rejected_total{reason=\"body\"} 1",
        "bizrelay_route_matches_total{route=\"r\"} 2",
        "bizrelay_unrouted_hooks_total 1",
        "bizrelay_deliveries_total{destination=\"a\",result=\"ok\"} 2",
        "bizrelay_delivery_latency_seconds_count{destination=\"a\"} 2",
        "bizrelay_queue_depth{destination=\"a\"} 0",
        "bizrelay_queue_oldest_age_seconds{destination=\"a\"} 0",
        "bizrelay_dead_letters{destination=\"a\"} 0",
        "bizrelay_destination_healthy{destination=\"a\"} 1",
        "bizrelay_config_info{hash=",
        "bizrelay_store_writable 1",
        "bizrelay_render_fallbacks_total{destination_type=\"slack\",template=\"message_result\"} 0",
        "bizrelay_config_reloads_total{result=\"success\"} 0",
        "bizrelay_deliveries_total{destination=\"a\",result=\"dead\"} 0",
    ] {
        assert!(m.contains(family), "missing {family} in\n{m}");
    }
    assert!(!m.contains("services/a"), "no URL in metrics");
    app.stop().await;
}

#[tokio::test]
async fn a_separate_admin_listener_serves_the_operator_endpoints() {
    let a = FakeChat::start().await;
    let config = format!(
        "[admin]\nlisten = \"127.0.0.1:0\"\ntoken = \"t\"\n{}{}",
        dest("a", &a),
        route("r", "a")
    );
    let mut app = TestApp::spawn(&config).await;
    let admin = app.app.as_ref().unwrap().admin_addr().unwrap();
    assert_ne!(admin, app.addr);
    let get = |addr: std::net::SocketAddr, path: &'static str| {
        app.http.get(format!("http://{addr}{path}")).send()
    };
    assert_eq!(get(admin, "/metrics").await.unwrap().status(), 200);
    assert_eq!(get(admin, "/readyz").await.unwrap().status(), 200);
    assert_eq!(get(admin, "/healthz").await.unwrap().status(), 200);
    assert_eq!(
        get(app.addr, "/metrics").await.unwrap().status(),
        404,
        "not exposed where NHN posts"
    );
    assert_eq!(get(app.addr, "/readyz").await.unwrap().status(), 404);
    assert_eq!(get(app.addr, "/healthz").await.unwrap().status(), 200);
    let reload = app
        .http
        .post(format!("http://{admin}/-/reload"))
        .bearer_auth("t")
        .send()
        .await
        .unwrap();
    assert_eq!(reload.status(), 200);
    let hook = app
        .http
        .post(format!("http://{admin}/hooks/bizmessage"))
        .body(fixture("mixed.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        hook.status(),
        404,
        "the webhook is only on the main listener"
    );
    app.stop().await;
}

#[tokio::test]
async fn send_test_posts_through_the_delivery_path() {
    let ok = FakeChat::start().await;
    let gone = FakeChat::start_with(Reply::status(404).body("no_service")).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    let teams = format!(
        "[destinations.t]\ntype = \"teams\"\nurl = \"{}\"\n",
        ok.url("/wf")
    );
    std::fs::write(
        &path,
        base_config(
            dir.path(),
            &format!(
                "{}{}{teams}{}",
                dest("ok", &ok),
                dest("gone", &gone),
                route("r", "ok")
            ),
        ),
    )
    .unwrap();
    let config = path.to_str().unwrap();
    let run = |args: Vec<&'static str>| {
        let config = config.to_string();
        tokio::task::spawn_blocking(move || {
            let mut all: Vec<&str> = args;
            all.extend(["--config", &config]);
            cli(&all)
        })
    };
    let out = run(vec!["send-test", "--destination", "ok"]).await.unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("HTTP 200"),
        "{}",
        text(&out.stdout)
    );
    assert!(text(&out.stdout).contains("delivered"));
    assert!(
        ok.received()[0].json()["text"]
            .as_str()
            .unwrap()
            .contains("3019")
    );

    for kind in ["template", "digest"] {
        let out = run(vec!["send-test", "--destination", "t", "--kind", kind])
            .await
            .unwrap();
        assert!(out.status.success(), "{kind}: {}", text(&out.stdout));
    }
    assert!(
        ok.received()
            .iter()
            .any(|r| r.body.contains("AdaptiveCard") && r.body.contains("ORDER_SHIPPED_V2"))
    );

    let out = run(vec!["send-test", "--destination", "gone"])
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let said = text(&out.stdout);
    assert!(
        said.contains("HTTP 404") && said.contains("no_service") && said.contains("dead-letter"),
        "{said}"
    );
    assert!(!said.contains("/services/gone"), "no URL printed: {said}");

    let out = run(vec!["send-test", "--destination", "nope"])
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("no destination `nope`"));
}

#[test]
fn check_reports_problems_one_per_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    let cfg = path.to_str().unwrap();
    let out = cli(&["check"]);
    assert!(
        out.status.success(),
        "built-in default: {}",
        text(&out.stdout)
    );
    assert!(text(&out.stdout).contains("ok: built-in default"));

    std::fs::write(&path, "[destinations.c]\ntype = \"console\"\n[[routes]]\nname = \"r\"\nto = \"c\"\n[routes.match]\nstatus = \"[x\"\nkind = \"tempalte\"\n").unwrap();
    let out = cli(&["check", "--config", cfg]);
    assert_eq!(out.status.code(), Some(1));
    let lines: Vec<String> = text(&out.stderr).lines().map(str::to_string).collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(
        lines
            .iter()
            .all(|l| l.starts_with(&format!("error: {cfg}: routes[0] (r).match."))),
        "{lines:?}"
    );

    // A template that renders invalid JSON for adversarial samples.
    std::fs::create_dir_all(dir.path().join("templates/slack")).unwrap();
    std::fs::write(
        dir.path().join("templates/slack/raw.hbs"),
        r#"{"text": "{{{templateCode}}}"}"#,
    )
    .unwrap();
    std::fs::write(&path, "[destinations.s]\ntype = \"slack\"\nurl = \"https://hooks.slack.invalid/x\"\n[[routes]]\nname = \"r\"\nto = \"s\"\ntemplate = \"raw\"\n[routes.match]\nkind = \"template\"\n").unwrap();
    // --config after the subcommand's arguments works as well as before.
    let out = cli(&["--config", cfg, "check"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stdout).contains("not valid JSON"),
        "{}",
        text(&out.stdout)
    );

    let out = cli(&["check", "--config", "/nonexistent/bizrelay.toml"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("/nonexistent/bizrelay.toml: (file): cannot read"));
    let out = cli(&["serve", "--config", "/nonexistent/bizrelay.toml"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "a missing --config is an error, not the default"
    );
}

#[test]
fn route_dry_run_prints_routes_and_exact_bodies() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    std::fs::write(
        &path,
        "[destinations.s]\ntype = \"slack\"\nurl = \"https://hooks.slack.invalid/x\"\n[destinations.c]\ntype = \"console\"\n\
         [[routes]]\nname = \"tpl\"\nto = [\"s\", \"c\"]\n[routes.match]\nkind = \"template\"\n\
         [[routes]]\nname = \"fail\"\nto = \"s\"\n[routes.match]\noutcome = \"failure\"\n[routes.group]\nby = [\"result_code\"]\n",
    )
    .unwrap();
    let cfg = path.to_str().unwrap();
    let mixed = format!("{}/tests/fixtures/mixed.json", env!("CARGO_MANIFEST_DIR"));
    let out = cli(&["route", "--format", "json", &mixed, "--config", cfg]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let items: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    let bodies = items.iter().filter(|i| !i["route"].is_null()).count();
    assert_eq!(
        bodies, 4,
        "template to s and c, two digests to s: {items:#?}"
    );
    assert_eq!(items[0]["hook_id"], "m-t1");
    assert_eq!(items[0]["route"], "tpl");
    assert_eq!(items[0]["destination"], "s");
    assert!(
        items[0]["payload"]["blocks"].is_array(),
        "payload is the JSON body itself"
    );
    assert!(
        items[1]["payload"]
            .as_str()
            .unwrap()
            .contains("COUPON_ISSUED"),
        "console body is text"
    );
    let digests: Vec<&Value> = items.iter().filter(|i| i["route"] == "fail").collect();
    assert_eq!(digests.len(), 2);
    assert!(
        digests
            .iter()
            .any(|d| d["group"]["result_code"] == "3016" && d["hook_ids"][0] == "m-r1")
    );

    let out = cli(&["route", &mixed, "--config", cfg]);
    let said = text(&out.stdout);
    assert!(
        said.contains("hook #0 m-t1 (template) → route `tpl` → s (slack):"),
        "{said}"
    );
    assert!(
        said.contains("hook #3: rejected: hook is not a JSON object"),
        "{said}"
    );
    assert!(
        said.contains("grouped into {\"result_code\":\"3019\"}"),
        "{said}"
    );
    assert!(said.contains("digest of route `fail` group {\"result_code\":\"3016\"} (1 hook, if the window closed now)"), "{said}");
}

#[tokio::test]
async fn removing_a_destination_dead_letters_its_queue_and_redirects_open_digests() {
    let keep = FakeChat::start().await;
    let gone = FakeChat::start_with(Reply::status(503)).await;
    let grouped = |to: &str| {
        format!(
            "[[routes]]\nname = \"digest\"\nto = [\"{to}\"]\ncontinue = true\n[routes.match]\noutcome = \"failure\"\n\
             [routes.group]\nby = [\"result_code\"]\nwait = \"2s\"\ninterval = \"5s\"\n"
        )
    };
    let admin = "[admin]\ntoken = \"t\"\n";
    let before = format!(
        "{admin}{}{}{}{}",
        dest("keep", &keep),
        dest("gone", &gone),
        grouped("gone"),
        route("now", "gone")
    );
    let mut app = TestApp::spawn(&before).await;
    app.post_json(envelope(&[failure("orphan-1", "3019")]))
        .await;
    gone.wait_for(1, Duration::from_secs(5)).await; // the immediate delivery is now retrying
    let after = format!(
        "{admin}{}{}{}",
        dest("keep", &keep),
        grouped("keep"),
        route("now", "keep")
    );
    std::fs::write(&app.config_path, base_config(app.dir.path(), &after)).unwrap();
    let resp = app
        .http
        .post(app.url("/-/reload"))
        .bearer_auth("t")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    // The open digest follows the route to `keep` when its window closes.
    let got = keep.wait_accepted(1, Duration::from_secs(10)).await;
    assert!(got[0].body.contains("1 message result"), "{}", got[0].body);
    // The retrying delivery to `gone` is now a dead letter an operator can see.
    let dead = app.state().store.dead_letters(Some("gone")).await.unwrap();
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert!(
        dead[0].reason.contains("no longer in the config"),
        "{}",
        dead[0].reason
    );
    let ready: Value = app.readyz().await;
    assert!(ready["unhealthy_destinations"].get("gone").is_none());
    app.stop().await;
}
