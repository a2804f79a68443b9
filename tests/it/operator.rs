//! The operator's commands from the real binary: `route` (the dry run runs the dispatcher's own
//! planning), `rejected`, `send-test`, `templates`, and what a command says when it finds
//! nothing.

use serde_json::Value;

use crate::common::*;
use crate::operations::{cli, text};

fn write_config(dir: &std::path::Path, body: &str) -> std::path::PathBuf {
    let path = dir.join("config.toml");
    std::fs::write(&path, base_config(dir, body)).unwrap();
    path
}

fn mixed() -> String {
    format!("{}/tests/fixtures/mixed.json", env!("CARGO_MANIFEST_DIR"))
}

const TWO_CONTINUE_ROUTES: &str = "[destinations.s]\ntype = \"slack\"\nurl = \"https://hooks.slack.invalid/x\"\n\
     [[routes]]\nname = \"first\"\nto = \"s\"\ncontinue = true\n[routes.match]\nkind = \"template\"\n\
     [[routes]]\nname = \"second\"\nto = \"s\"\n[routes.match]\nkind = \"template\"\n";

#[test]
fn route_dry_run_sends_one_body_per_hook_and_destination_like_the_dispatcher() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(dir.path(), TWO_CONTINUE_ROUTES);
    let cfg = path.to_str().unwrap();
    let out = cli(&["route", "--format", "json", &mixed(), "--config", cfg]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let items: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    let bodies: Vec<&Value> = items
        .iter()
        .filter(|i| i["hook_id"] == "m-t1" && i["destination"] == "s")
        .collect();
    assert_eq!(
        bodies.len(),
        1,
        "one delivery per (hook, destination): {items:#?}"
    );
    assert_eq!(
        bodies[0]["route"], "first",
        "the first matching route renders it"
    );

    let out = cli(&["route", &mixed(), "--config", cfg]);
    let said = text(&out.stdout);
    assert_eq!(said.matches("→ s (slack)").count(), 1, "{said}");
    assert!(
        said.contains("route `second` → s: already given by route `first` (one delivery per hook and destination)"),
        "{said}"
    );
}

#[test]
fn route_json_lists_unrouted_and_rejected_hooks_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(dir.path(), TWO_CONTINUE_ROUTES);
    let cfg = path.to_str().unwrap();
    let out = cli(&["route", "--format", "json", &mixed(), "--config", cfg]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let items: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    let unrouted: Vec<&Value> = items.iter().filter(|i| i["route"].is_null()).collect();
    assert_eq!(
        unrouted.len(),
        3,
        "two results unrouted, one hook rejected: {items:#?}"
    );
    let r1 = unrouted.iter().find(|i| i["hook_id"] == "m-r1").unwrap();
    assert_eq!(r1["position"], 1);
    assert!(
        r1["destination"].is_null() && r1["payload"].is_null(),
        "{r1}"
    );
    assert_eq!(r1["reason"], "no route matches");
    let bad = unrouted.iter().find(|i| i["position"] == 3).unwrap();
    assert!(bad["hook_id"].is_null(), "{bad}");
    assert_eq!(bad["reason"], "rejected: hook is not a JSON object");
    // Hooks that were routed carry their position too, and no reason.
    let t1 = items.iter().find(|i| i["hook_id"] == "m-t1").unwrap();
    assert_eq!(t1["position"], 0);
    assert!(t1.get("reason").is_none(), "{t1}");
}

const CONSOLE: &str =
    "[destinations.c]\ntype = \"console\"\n[[routes]]\nname = \"all\"\nto = \"c\"\n";

#[tokio::test]
async fn rejected_hooks_are_stored_masked_and_listed_shown_and_purged() {
    let mut app = TestApp::spawn(CONSOLE).await;
    let (status, _) = app.post_json(fixture("mixed.json")).await;
    assert_eq!(status, 200);
    // Masked in storage, not only when shown.
    let stored = app
        .state()
        .store
        .rejected(&bizrelay::store::Selection::All)
        .await
        .unwrap();
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert!(!stored[0].raw.contains("01055550000"), "{}", stored[0].raw);
    assert!(stored[0].raw.contains("010****0000"), "{}", stored[0].raw);
    let id = stored[0].id.to_string();
    let config = app.config_path.clone();

    let (code, said, err) = run_cli(&["rejected", "list"], &config).await;
    assert_eq!(code, Some(0), "{err}");
    let row = said
        .lines()
        .find(|l| l.trim_start().starts_with(&id))
        .unwrap_or_else(|| panic!("{said}"));
    assert!(
        row.contains("20261128120000000mixed001") && row.contains("hook is not a JSON object"),
        "{row}"
    );
    assert!(
        row.contains(r#"["m-bad","not a hook object","010****0000"]"#),
        "{row}"
    );
    assert!(said.contains("1 rejected hook in "), "{said}");

    let (code, said, _) = run_cli(&["rejected", "show", &id], &config).await;
    assert_eq!(code, Some(0));
    assert!(
        said.contains("hook #3 of POST 20261128120000000mixed001"),
        "{said}"
    );
    assert!(said.contains("reason: hook is not a JSON object"), "{said}");
    assert!(
        said.contains("010****0000") && !said.contains("01055550000"),
        "{said}"
    );

    let (code, said, _) = run_cli(&["rejected", "show", "--format", "json", &id], &config).await;
    assert_eq!(code, Some(0));
    let v: Value = serde_json::from_str(&said).unwrap();
    assert_eq!(v["position"], 3);
    assert_eq!(v["reason"], "hook is not a JSON object");

    let (code, _, err) = run_cli(&["rejected", "show", "999999"], &config).await;
    assert_eq!(code, Some(1));
    assert!(err.contains("no rejected hook 999999 in "), "{err}");

    let (code, said, _) = run_cli(&["rejected", "purge", "--all"], &config).await;
    assert_eq!(code, Some(0));
    assert_eq!(said.trim(), "purged 1 rejected hook");
    let (code, said, _) = run_cli(&["rejected", "list"], &config).await;
    assert_eq!(code, Some(0));
    let db = app.dir.path().join("bizrelay.db");
    assert!(
        said.contains(&format!(
            "no rejected hooks in the SQLite store {}",
            db.display()
        )),
        "names the store it read: {said}"
    );
    app.stop().await;
}

#[tokio::test]
async fn rejected_hooks_keep_their_numbers_when_masking_is_off() {
    let mut app = TestApp::spawn(&format!("[privacy]\nmask_recipient = false\n{CONSOLE}")).await;
    let (status, _) = app.post_json(fixture("mixed.json")).await;
    assert_eq!(status, 200);
    let (code, said, err) =
        run_cli(&["rejected", "list", "--format", "json"], &app.config_path).await;
    assert_eq!(code, Some(0), "{err}");
    let items: Vec<Value> = serde_json::from_str(&said).unwrap();
    assert_eq!(items.len(), 1);
    assert!(items[0]["raw"].as_str().unwrap().contains("01055550000"));
    app.stop().await;
}

#[tokio::test]
async fn commands_that_find_nothing_name_the_store_they_read() {
    // From the wrong folder (no store there) the command says so instead of "nothing".
    let elsewhere = tempfile::tempdir().unwrap();
    let wrong = write_config(elsewhere.path(), CONSOLE);
    let (code, _, err) = run_cli(&["dead-letters", "list"], &wrong).await;
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("there is no store at "), "{err}");

    let mut app = TestApp::spawn(CONSOLE).await;
    let path = app.config_path.clone();
    let db = app.dir.path().join("bizrelay.db");
    let store = format!("the SQLite store {}", db.display());
    for (args, said) in [
        (vec!["dead-letters", "list"], "no dead letters in "),
        (
            vec!["dead-letters", "replay", "--all"],
            "no matching dead letters in ",
        ),
        (
            vec!["dead-letters", "purge", "--all"],
            "no matching dead letters in ",
        ),
        (vec!["quarantine", "list"], "no quarantined hooks in "),
        (vec!["rejected", "list"], "no rejected hooks in "),
        (
            vec!["rejected", "purge", "--all"],
            "no matching rejected hooks in ",
        ),
        (
            vec!["reroute", "--all-unrouted"],
            "no stored hooks that matched no route in ",
        ),
    ] {
        let (code, out, err) = run_cli(&args, &path).await;
        assert_eq!(code, Some(0), "{args:?}: {err}");
        assert_eq!(out.trim(), format!("{said}{store}"), "{args:?}");
    }
    app.stop().await;
}

#[tokio::test]
async fn send_test_is_marked_harmless_and_renders_with_the_routes_template() {
    let chat = FakeChat::start().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("templates/slack")).unwrap();
    std::fs::write(
        dir.path().join("templates/slack/mine.hbs"),
        r#"{"text": "{{summary}}", "blocks": [{"type": "header", "text": {"type": "plain_text", "text": "my own header {{resultCode}}"}}]}"#,
    )
    .unwrap();
    let body = format!(
        "{}{}[[routes]]\nname = \"mine\"\nto = \"s\"\ntemplate = \"mine\"\n[routes.match]\noutcome = \"failure\"\n\
         [[routes]]\nname = \"grouped\"\nto = \"s\"\n[routes.match]\nkind = \"message_result\"\n[routes.group]\nby = [\"result_code\"]\n\
         [[routes]]\nname = \"rate\"\nto = \"s\"\n[routes.match]\nkind = \"message_result\"\n[routes.rate]\nfire_above = 0.1\n",
        crate::operations::dest("s", &chat),
        format_args!(
            "[destinations.t]\ntype = \"teams\"\nurl = \"{}\"\n",
            chat.url("/teams")
        ),
    );
    let path = write_config(dir.path(), &body);

    let (code, said, err) = run_cli(&["send-test", "--destination", "s"], &path).await;
    assert_eq!(code, Some(0), "{said}{err}");
    let got = chat.received();
    let v = got.last().unwrap().json();
    assert!(v["text"].as_str().unwrap().starts_with("🧪 TEST"), "{v}");
    assert!(
        v["blocks"][0]["text"]["text"]
            .as_str()
            .unwrap()
            .starts_with("🧪 TEST"),
        "header marked: {v}"
    );

    let (code, said, err) = run_cli(&["send-test", "--destination", "t"], &path).await;
    assert_eq!(code, Some(0), "{said}{err}");
    let v = chat.received().last().unwrap().json();
    assert!(v["summary"].as_str().unwrap().starts_with("🧪 TEST"), "{v}");
    let header = &v["attachments"][0]["content"]["body"][0]["text"];
    assert!(header.as_str().unwrap().starts_with("🧪 TEST"), "{v}");

    let (code, said, err) = run_cli(
        &["send-test", "--destination", "s", "--kind", "digest"],
        &path,
    )
    .await;
    assert_eq!(code, Some(0), "{said}{err}");
    let digest = chat.received().last().unwrap().body.clone();
    assert!(digest.contains("🧪 TEST"), "{digest}");
    assert!(
        !digest.contains("here>") && !digest.contains("<!"),
        "harmless: {digest}"
    );
    assert!(
        digest.contains("3019") && digest.contains("not a KakaoTalk user"),
        "real codes with their meanings: {digest}"
    );
    // The on-call messages, on both a Slack and a Teams destination.
    for (kind, says) in [
        ("rate_firing", "Failure rate"),
        ("rate_resolved", "Resolved"),
        ("digest_resolved", "nothing new"),
    ] {
        for dest in ["s", "t"] {
            let (code, said, err) =
                run_cli(&["send-test", "--destination", dest, "--kind", kind], &path).await;
            assert_eq!(code, Some(0), "{kind} to {dest}: {said}{err}");
            let v = chat.received().last().unwrap().json();
            let text = v["text"].as_str().or(v["summary"].as_str()).unwrap_or("");
            assert!(
                text.starts_with("🧪 TEST") && text.contains(says),
                "{kind} to {dest}: {v}"
            );
        }
    }

    // --route: the route's own template, to each of its destinations.
    let before = chat.count();
    let (code, said, err) = run_cli(&["send-test", "--route", "mine"], &path).await;
    assert_eq!(code, Some(0), "{said}{err}");
    assert!(
        said.contains("s (slack) with route `mine`'s template: HTTP 200"),
        "{said}"
    );
    assert_eq!(chat.count(), before + 1);
    let v = chat.received().last().unwrap().json();
    assert_eq!(
        v["blocks"][0]["text"]["text"],
        "🧪 TEST (bizrelay send-test) · my own header 3019"
    );

    let (code, said, err) = run_cli(&["send-test", "--route", "grouped"], &path).await;
    assert_eq!(code, Some(2), "{said}");
    assert!(
        err.contains("groups its hooks into digests: test it with --kind digest"),
        "{err}"
    );
    let (code, _, err) = run_cli(
        &["send-test", "--route", "grouped", "--kind", "digest"],
        &path,
    )
    .await;
    assert_eq!(code, Some(0), "{err}");

    // A rate route sends alerts, not hooks; a route without them says so.
    let (code, _, err) = run_cli(&["send-test", "--route", "rate"], &path).await;
    assert_eq!(code, Some(2));
    assert!(err.contains("route `rate` sends nothing per hook (it counts them for rate alerts): test it with --kind rate_firing"), "{err}");
    let before = chat.count();
    let (code, _, err) = run_cli(
        &["send-test", "--route", "rate", "--kind", "rate_firing"],
        &path,
    )
    .await;
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(chat.count(), before + 1);
    let text = chat.received().last().unwrap().json()["text"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        text.starts_with("🧪 TEST") && text.contains("Failure rate: rate ("),
        "{text}"
    );
    let (code, _, err) = run_cli(
        &["send-test", "--route", "grouped", "--kind", "rate_firing"],
        &path,
    )
    .await;
    assert_eq!(code, Some(2));
    assert!(
        err.contains("route `grouped` has no [routes.rate]"),
        "{err}"
    );
    let (code, _, err) = run_cli(
        &[
            "send-test",
            "--route",
            "grouped",
            "--kind",
            "digest_resolved",
        ],
        &path,
    )
    .await;
    assert_eq!(code, Some(2));
    assert!(err.contains("no resolve_after"), "{err}");

    let (code, _, err) = run_cli(&["send-test", "--route", "nope"], &path).await;
    assert_eq!(code, Some(2));
    assert!(
        err.contains("no route `nope` (configured: mine, grouped, rate)"),
        "{err}"
    );
}

#[test]
fn templates_export_writes_the_builtins_and_list_shows_what_files_override() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("exported");
    let target = out_dir.to_str().unwrap();
    let out = cli(&["templates", "export", target]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let types = std::fs::read_dir(&out_dir).unwrap().count();
    assert!(types >= 9, "one folder per destination type: {types}");
    assert!(
        text(&out.stdout).contains(&format!(
            "wrote {} templates to {target}",
            types * 2 * bizrelay::destination::BUILTIN_NAMES.len()
        )),
        "{}",
        text(&out.stdout)
    );
    let ours = format!(
        "{}/templates/slack/ko/message_result.hbs",
        env!("CARGO_MANIFEST_DIR")
    );
    assert_eq!(
        std::fs::read_to_string(out_dir.join("slack/ko/message_result.hbs")).unwrap(),
        std::fs::read_to_string(ours).unwrap()
    );

    // A second run keeps the operator's edits.
    let edited = out_dir.join("slack/en/message_result.hbs");
    std::fs::write(&edited, r#"{"text": "edited {{summary}}"}"#).unwrap();
    let out = cli(&[
        "templates",
        "export",
        target,
        "--type",
        "slack",
        "--locale",
        "en",
    ]);
    assert!(out.status.success());
    let said = text(&out.stdout);
    assert!(said.contains("wrote 0 templates"), "{said}");
    assert_eq!(
        said.matches("(exists; not overwritten)").count(),
        bizrelay::destination::BUILTIN_NAMES.len(),
        "{said}"
    );
    assert!(
        std::fs::read_to_string(&edited)
            .unwrap()
            .starts_with("{\"text\": \"edited")
    );

    let out = cli(&["templates", "export", target, "--type", "slak"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("no destination type `slak` (types: slack, teams"),
        "{}",
        text(&out.stderr)
    );
    let out = cli(&["templates", "export", target, "--locale", "fr"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("no locale `fr` (locales: en, ko)"));

    // Keep only the edited one, point the config at the folder.
    std::fs::remove_dir_all(&out_dir).unwrap();
    std::fs::create_dir_all(out_dir.join("slack/en")).unwrap();
    std::fs::write(&edited, r#"{"text": "edited {{summary}}"}"#).unwrap();
    std::fs::write(
        out_dir.join("slack/en/mine.hbs"),
        r#"{"text": "{{summary}}"}"#,
    )
    .unwrap();
    let path = write_config(
        dir.path(),
        &format!(
            "[templates]\ndir = \"{target}\"\n[destinations.s]\ntype = \"slack\"\nurl = \"https://hooks.slack.invalid/x\"\n"
        ),
    );
    let cfg = path.to_str().unwrap();
    let out = cli(&["templates", "list", "--type", "slack", "--config", cfg]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let said = text(&out.stdout);
    let row = said
        .lines()
        .find(|l| l.starts_with("slack        en     message_result"))
        .unwrap_or_else(|| panic!("{said}"));
    assert!(
        row.contains("overridden") && row.contains(edited.to_str().unwrap()),
        "{row}"
    );
    assert!(
        said.lines()
            .any(|l| l.starts_with("slack        ko     message_result       built-in")),
        "{said}"
    );
    assert!(
        said.contains("1 built-in overridden and 1 template added by files in "),
        "{said}"
    );
    assert!(!said.contains("teams"), "--type filters: {said}");
}
