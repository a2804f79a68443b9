//! The config as operators meet it: the example config with one variable, errors that never
//! show values from the environment, start-up failures, what a reload refuses (no
//! destinations or routes, templates `check` rejects, half-written files), and tests that
//! never read the user's checkout.

use std::collections::HashMap;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::*;
use crate::operations::{dest, route, text};
use bizrelay::app::{App, Options};
use bizrelay::config::{ConfigSource, load};
use bizrelay::reload::SourceSpec;
use serde_json::Value;

fn reload_request(
    app: &TestApp,
    token: &str,
) -> impl std::future::Future<Output = reqwest::Response> {
    let req = app.http.post(app.url("/-/reload")).bearer_auth(token);
    async move { req.send().await.unwrap() }
}

fn reload_count(m: &str, result: &str) -> u64 {
    m.lines()
        .find(|l| {
            l.starts_with(&format!(
                "bizrelay_config_reloads_total{{result=\"{result}\"}}"
            ))
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn a_reload_to_no_destinations_or_no_routes_is_refused_whole() {
    let a = FakeChat::start().await;
    let admin = "[admin]\ntoken = \"t\"\n";
    let mut app = TestApp::spawn(&format!("{admin}{}{}", dest("a", &a), route("r", "a"))).await;
    let hash = app.state().current().hash.clone();

    // `: > config.toml`: an empty file (which also moves listen and store: all of it said).
    std::fs::write(&app.config_path, "").unwrap();
    let resp = reload_request(&app, "t").await;
    assert_eq!(resp.status(), 422);
    let body: Value = resp.json().await.unwrap();
    let detail = body["detail"].to_string();
    assert!(detail.contains("destinations: none configured"), "{detail}");
    assert!(detail.contains("routes: none configured"), "{detail}");

    // Destinations but every route gone (a file cut off before its routes).
    std::fs::write(
        &app.config_path,
        base_config(app.dir.path(), &format!("{admin}{}", dest("a", &a))),
    )
    .unwrap();
    let resp = reload_request(&app, "t").await;
    assert_eq!(resp.status(), 422);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["detail"].as_array().unwrap().len(), 1, "{body}");
    assert!(
        body["detail"][0]
            .as_str()
            .unwrap()
            .contains("routes: none configured; every hook would be dropped as unrouted"),
        "{body}"
    );

    // The old config stays in force: hooks are still relayed, nothing is unrouted.
    assert_eq!(app.state().current().hash, hash);
    app.post_json(envelope(&[failure("kept", "3019")])).await;
    let got = a.wait_accepted(1, Duration::from_secs(5)).await;
    assert!(got[0].body.contains("kept"));
    let m = app.metrics().await;
    assert_eq!(reload_count(&m, "failure"), 2, "{m}");
    assert_eq!(reload_count(&m, "success"), 0, "{m}");
    assert!(m.contains("bizrelay_unrouted_hooks_total 0"), "{m}");
    app.stop().await;
}

#[tokio::test]
async fn a_reload_runs_the_same_template_rehearsal_as_check() {
    let a = FakeChat::start().await;
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let tpl = dir.path().join("templates/slack");
    std::fs::create_dir_all(&tpl).unwrap();
    std::fs::write(
        tpl.join("message_result.hbs"),
        r#"{"text": "code {{resultCode}}"}"#,
    )
    .unwrap();
    let config = format!(
        "[templates]\ndir = \"{}\"\n[admin]\ntoken = \"t\"\n{}{}",
        dir.path().join("templates").display(),
        dest("a", &a),
        route("r", "a")
    );
    let mut app = TestApp::spawn_in(Arc::clone(&dir), &config, HashMap::new()).await;

    // A misspelt variable: compiles, but strict rendering fails for every hook.
    std::fs::write(
        tpl.join("message_result.hbs"),
        r#"{"text": "code {{resultCod}}"}"#,
    )
    .unwrap();
    let resp = reload_request(&app, "t").await;
    assert_eq!(resp.status(), 422);
    let body: Value = resp.json().await.unwrap();
    let detail: Vec<&str> = body["detail"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(detail.len(), 1, "one error for the template: {detail:?}");
    assert!(
        detail[0].contains("template slack/message_result (")
            && detail[0].contains("route `r` → a): line 1, column 16: `resultCod` is not in the context (did you mean `resultCode`?)"),
        "{detail:?}"
    );

    // Hooks still go out with the template in force, not as the plain fallback.
    app.post_json(envelope(&[failure("still-good", "3019")]))
        .await;
    let got = a.wait_accepted(1, Duration::from_secs(5)).await;
    assert_eq!(got[0].body, "{\"text\":\"code 3019\"}");
    app.stop().await;
}

#[tokio::test]
async fn a_slow_rewrite_is_never_loaded_half_written() {
    use std::io::Write;
    let (a, b) = (FakeChat::start().await, FakeChat::start().await);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    let dests = format!("{}{}", dest("a", &a), dest("b", &b));
    let old = base_config(dir.path(), &format!("{dests}{}", route("r", "a")));
    std::fs::write(&path, &old).unwrap();
    let loaded = load(
        &ConfigSource::File {
            path: path.clone(),
            text: old,
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
    let old_hash = app.state().current().hash.clone();
    let reloads = |result: &str| reload_count(&app.state().metrics.render(), result);
    let http = http_client();
    let post = |id: &str| {
        http.post(format!("http://{}/hooks/bizmessage", app.addr()))
            .header("content-type", "application/json")
            .body(envelope(&[failure(id, "3019")]))
            .send()
    };

    // The new file moves failures to `b`. Its first part is a valid config on its own (the
    // cut falls between two routes), the worst case: loaded alone it would drop failures as
    // unrouted.
    let first = base_config(
        dir.path(),
        &format!(
            "{dests}[[routes]]\nname = \"tpl\"\nto = [\"b\"]\n[routes.match]\nkind = \"template\"\n"
        ),
    );
    let rest = route("r", "b");
    let mut file = std::fs::File::create(&path).unwrap();
    file.write_all(first.as_bytes()).unwrap();
    file.flush().unwrap();
    // The writer pauses well beyond the debounce (300 ms), file still open.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        app.state().current().hash,
        old_hash,
        "half a file was loaded"
    );
    assert_eq!((reloads("success"), reloads("failure")), (0, 0));
    post("mid-write").await.unwrap();
    let got = a.wait_accepted(1, Duration::from_secs(5)).await;
    assert!(
        got[0].body.contains("mid-write"),
        "the old config routed it"
    );

    file.write_all(rest.as_bytes()).unwrap();
    drop(file);
    let deadline = Instant::now() + Duration::from_secs(10);
    while reloads("success") == 0 {
        assert!(
            Instant::now() < deadline,
            "the finished file was not loaded"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        app.state().current().routes.len(),
        2,
        "the whole file is in force"
    );
    post("after").await.unwrap();
    let got = b.wait_accepted(1, Duration::from_secs(5)).await;
    assert!(got[0].body.contains("after"));
    assert_eq!((reloads("success"), reloads("failure")), (1, 0));
    app.stop().await;
}

#[tokio::test]
async fn values_from_the_environment_never_reach_errors_logs_or_the_reload_answer() {
    let a = FakeChat::start().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    let admin = "[admin]\ntoken = \"${ADMIN}\"\n";
    let body = format!("{admin}{}{}", dest("a", &a), route("r", "a"));
    std::fs::write(&path, base_config(dir.path(), &body)).unwrap();
    let secret = "SIGsecretXYZ123";
    let vars = [("ADMIN", "ADMINTOKEN456"), ("VALUE", secret)];
    let process = Process::start(&path, &vars);

    let broken = format!("[privacy]\nmask_recipient = \"${{VALUE}}\"\n{body}");
    std::fs::write(&path, base_config(dir.path(), &broken)).unwrap();
    let resp = http_client()
        .post(process.url("/-/reload"))
        .bearer_auth("ADMINTOKEN456")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 422);
    let answer = resp.text().await.unwrap();
    assert!(
        answer
            .contains("privacy.mask_recipient: expected true or false, got the value from $VALUE"),
        "{answer}"
    );
    assert!(!answer.contains(secret), "{answer}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !process.log_text().contains("the value from $VALUE") {
        assert!(Instant::now() < deadline, "{}", process.log_text());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        !process.log_text().contains(secret),
        "{}",
        process.log_text()
    );

    // The same from `check`, and for an override variable.
    let check = |extra: (&str, &str)| {
        bizrelay(dir.path())
            .args(["check", "--config"])
            .arg(&path)
            .envs(vars)
            .env(extra.0, extra.1)
            .output()
            .unwrap()
    };
    let out = check(("UNRELATED", "x"));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("got the value from $VALUE"),
        "{}",
        text(&out.stderr)
    );
    assert!(!text(&out.stderr).contains(secret) && !text(&out.stdout).contains(secret));
    std::fs::write(&path, base_config(dir.path(), &body)).unwrap();
    let out = check(("BIZRELAY__DELIVERY__MAX_ATTEMPTS", secret));
    let said = text(&out.stderr);
    assert!(
        said.contains("error: BIZRELAY__DELIVERY__MAX_ATTEMPTS: delivery.max_attempts: expected a whole number, got the value from $BIZRELAY__DELIVERY__MAX_ATTEMPTS"),
        "{said}"
    );
    assert!(!said.contains(secret), "{said}");
}

#[test]
fn a_start_up_failure_is_printed_once() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    let config = base_config(
        dir.path(),
        &format!("[server]\nlisten = \"{addr}\"\n[destinations.c]\ntype = \"console\"\n"),
    );
    std::fs::write(&path, config).unwrap();
    for format in ["text", "json"] {
        let out = bizrelay(dir.path())
            .args(["serve", "--log-format", format, "--config"])
            .arg(&path)
            .env_remove("RUST_LOG")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2));
        let said = text(&out.stderr);
        assert_eq!(
            said.matches(&format!("cannot listen on {addr}")).count(),
            1,
            "{format}: {said}"
        );
    }
}

/// config.toml.example, copied into a folder of its own as a newcomer would copy it.
fn example_in(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("config.toml");
    std::fs::copy(
        format!("{}/config.toml.example", env!("CARGO_MANIFEST_DIR")),
        &path,
    )
    .unwrap();
    path
}

#[test]
fn the_example_passes_check_with_one_variable() {
    // Exactly one variable set; the signature is said to be public.
    let example_dir = tempfile::tempdir().unwrap();
    let example = example_in(example_dir.path());
    let out = bizrelay(example_dir.path())
        .args(["check", "--config"])
        .arg(&example)
        .env(
            "SLACK_WEBHOOK_URL",
            "https://hooks.slack.com/services/T/B/X",
        )
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let said = text(&out.stdout);
    assert!(
        said.contains("warning: ingest.signatures: INSECURE: `try-bizrelay` is accepted"),
        "{said}"
    );
    assert!(!said.contains("two digests"), "{said}");
    assert!(said.contains(", 1 destination, "), "{said}");
}

/// The tests that run the binary: rerun from a folder holding a broken `config.toml`.
const TESTS_RUNNING_THE_BINARY: [&str; 5] = [
    "operations::check_reports_problems_one_per_line",
    "config::the_example_passes_check_with_one_variable",
    "operations::route_dry_run_prints_routes_and_exact_bodies",
    "operations::send_test_posts_through_the_delivery_path",
    "config::the_example_config_serves_with_one_variable",
];

#[test]
fn the_tests_ignore_a_config_toml_in_the_working_directory() {
    let checkout = tempfile::tempdir().unwrap();
    std::fs::write(checkout.path().join("config.toml"), "this is [not toml").unwrap();
    // Run from there, the binary does read it (so what follows proves something).
    let direct = Command::new(binary())
        .arg("check")
        .current_dir(checkout.path())
        .env_remove("BIZRELAY_CONFIG")
        .output()
        .unwrap();
    assert_eq!(direct.status.code(), Some(1));
    assert!(
        text(&direct.stderr).contains("error: config.toml: (syntax)"),
        "{}",
        text(&direct.stderr)
    );
    // This test binary, started from that folder as `cargo test` is from a checkout where
    // the user ran `cp config.toml.example config.toml` (and broke it).
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "--test-threads", "2"])
        .args(TESTS_RUNNING_THE_BINARY)
        .current_dir(checkout.path())
        .output()
        .unwrap();
    let said = text(&out.stdout);
    assert!(out.status.success(), "{said}{}", text(&out.stderr));
    assert!(
        said.contains(&format!("{} passed", TESTS_RUNNING_THE_BINARY.len())),
        "{said}"
    );
}

#[tokio::test]
async fn the_example_config_serves_with_one_variable() {
    let slack = FakeChat::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = example_in(dir.path());
    let url = slack.url("/services/T000/B000/EXAMPLESECRET");
    let process = Process::start(
        &config,
        &[
            ("SLACK_WEBHOOK_URL", url.as_str()),
            ("BIZRELAY__SERVER__LISTEN", "127.0.0.1:0"),
        ],
    );
    assert!(
        process
            .log_text()
            .contains("INSECURE: `try-bizrelay` is accepted"),
        "start-up warns about the public signature: {}",
        process.log_text()
    );
    let http = http_client();
    let post = |signature: Option<&'static str>| {
        let mut req = http
            .post(process.url("/hooks/bizmessage"))
            .header("content-type", "application/json")
            .body(fixture("template_rejected.json"));
        if let Some(s) = signature {
            req = req.header("X-Toast-Webhook-Signature", s);
        }
        req.send()
    };
    assert_eq!(post(None).await.unwrap().status(), 401);
    assert_eq!(post(Some("try-bizrelay")).await.unwrap().status(), 200);
    let got = slack.wait_accepted(1, Duration::from_secs(10)).await;
    assert_eq!(got[0].path, "/services/T000/B000/EXAMPLESECRET");
    assert!(got[0].json()["text"].is_string(), "{}", got[0].body);
    assert!(!process.log_text().contains("EXAMPLESECRET"));
}
