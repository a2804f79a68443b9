//! The documentation, tested: every fenced code block of README.md and docs/**/*.md is either
//! checked here or marked `unchecked`, and the inventory test prints what was not checked.
//! TOML blocks go through `bizrelay check` (fragments inside a documented wrapper); shell
//! blocks with an `id` are run, as written, by the tests named in [`RUN_BY_TESTS`], in a
//! sandbox laid out like a checkout. The conventions are in docs/testing.md.

mod blocks;
mod session;

use std::collections::BTreeSet;
use std::io::Write;
use std::process::Command;
use std::time::Duration;

use blocks::{Block, all_blocks, block, blocks_of, dummy_value, env_references, file_block};
use serde_json::Value;
use session::{Session, installed};

use crate::common::{FakeChat, Reply, binary};

/// Blocks the tests below run or read, by document and id, with the test that does.
const RUN_BY_TESTS: &[(&str, &str, &str)] = &[
    (
        "README.md",
        "run",
        "try_it_the_signed_curl_prints_the_rejection",
    ),
    (
        "README.md",
        "try-curl",
        "try_it_the_signed_curl_prints_the_rejection",
    ),
    (
        "README.md",
        "try-output",
        "try_it_the_signed_curl_prints_the_rejection",
    ),
    (
        "README.md",
        "try-route",
        "dry_runs_print_the_documented_output",
    ),
    (
        "docs/routing.md",
        "route-json",
        "dry_runs_print_the_documented_output",
    ),
    (
        "README.md",
        "first-route",
        "first_route_sends_order_rejections_to_their_channel",
    ),
    (
        "README.md",
        "first-route-check",
        "first_route_sends_order_rejections_to_their_channel",
    ),
    ("README.md", "run", "newcomer_path_reaches_slack"),
    ("README.md", "try-curl", "newcomer_path_reaches_slack"),
    ("README.md", "slack-setup", "newcomer_path_reaches_slack"),
    ("README.md", "slack-serve", "newcomer_path_reaches_slack"),
    ("README.md", "slack-curl", "newcomer_path_reaches_slack"),
    (
        "docs/operations.md",
        "dead-letters",
        "operations_commands_work_on_a_live_server",
    ),
    (
        "docs/operations.md",
        "reload",
        "operations_commands_work_on_a_live_server",
    ),
    (
        "docs/operations.md",
        "health",
        "operations_commands_work_on_a_live_server",
    ),
    (
        "docs/operations.md",
        "backup",
        "operations_commands_work_on_a_live_server",
    ),
    (
        "docs/testing.md",
        "fragment-wrapper",
        "the_documented_wrapper_is_the_one_used",
    ),
];

/// Tests that are `#[ignore]`d for now, and why: the blocks only they run are listed as
/// pending, not as checked.
const PENDING_TESTS: &[(&str, &str)] = &[(
    "newcomer_path_reaches_slack",
    "needs config.toml.example to run with only SLACK_WEBHOOK_URL and to accept `try-bizrelay` \
     (being done on branch harden-config); drop its #[ignore] when that lands",
)];

/// Documents that translate another one: their blocks with an id or file must be the same.
const TRANSLATIONS: &[(&str, &str)] = &[("docs/ko/README.md", "README.md")];

/// What a fragment (`toml fragment`) is checked inside: these destinations unless the fragment
/// declares them, and this route unless the fragment has routes. docs/testing.md shows it.
const FRAGMENT_WRAPPER: &str = r#"
[destinations.console]
type = "console"

[destinations.ops-slack]
type = "slack"
url = "https://hooks.slack.com/services/T0DOCS/B0DOCS/ops"

[destinations.alerts-slack]
type = "slack"
url = "https://hooks.slack.com/services/T0DOCS/B0DOCS/alerts"

[destinations.oncall-teams]
type = "teams"
url = "https://prod-00.example.invalid/workflows/docs"

[[routes]]
name = "docs-wrapper"
to = ["console"]
"#;

/// Writes a line past the test harness's capture, so the inventory shows in every run.
fn say(text: &str) {
    let _ = writeln!(std::io::stderr(), "{text}");
}

#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    Config,
    TemplateFile,
    Run,
    Pending(String),
    Translation,
    Prose,
    Unchecked,
}

/// How the suite treats a block, or why it cannot.
fn verdict(b: &Block, blocks: &[Block]) -> Result<Verdict, String> {
    let known_words = ["fragment", "unchecked"];
    if let Some(w) = b.words.iter().find(|w| !known_words.contains(&w.as_str())) {
        return Err(format!("unknown info-string word `{w}`"));
    }
    if b.has("unchecked") {
        return Ok(Verdict::Unchecked);
    }
    if let Some(&(_, original)) = TRANSLATIONS.iter().find(|(t, _)| *t == b.doc)
        && (b.id.is_some() || b.file.is_some())
    {
        let same = blocks.iter().any(|o| {
            o.doc == original
                && ((b.id.is_some() && o.id == b.id) || (b.file.is_some() && o.file == b.file))
        });
        return if same {
            Ok(Verdict::Translation)
        } else {
            Err(format!("translates {original}, which has no such block"))
        };
    }
    if let Some(id) = &b.id {
        let tests: Vec<&str> = RUN_BY_TESTS
            .iter()
            .filter(|(doc, i, _)| *doc == b.doc && i == id)
            .map(|(_, _, t)| *t)
            .collect();
        if tests.is_empty() {
            return Err(format!(
                "id={id} is run by no test (add it to RUN_BY_TESTS)"
            ));
        }
        if let Some((_, why)) = PENDING_TESTS
            .iter()
            .find(|(t, _)| tests.iter().all(|x| x == t))
        {
            return Ok(Verdict::Pending(why.to_string()));
        }
        if b.lang == "toml" {
            return Ok(Verdict::Config);
        }
        return Ok(Verdict::Run);
    }
    match (b.lang.as_str(), &b.file) {
        ("toml", _) => Ok(Verdict::Config),
        ("handlebars", Some(file)) => {
            let name = std::path::Path::new(file)
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            let used = blocks.iter().any(|o| {
                o.doc == b.doc
                    && o.lang == "toml"
                    && o.text.contains(&format!("template = \"{name}\""))
            });
            if used {
                Ok(Verdict::TemplateFile)
            } else {
                Err(format!("no TOML block of {} uses template `{name}`", b.doc))
            }
        }
        ("text", None) => Ok(Verdict::Prose),
        _ => Err("neither checked nor marked `unchecked` (see docs/testing.md)".into()),
    }
}

#[test]
fn every_code_block_is_checked_or_marked() {
    let blocks = all_blocks();
    let mut problems = Vec::new();
    let mut listed: Vec<(Verdict, String)> = Vec::new();
    for b in &blocks {
        match verdict(b, &blocks) {
            Ok(v) => listed.push((v, format!("{} ```{}", b.at(), b.info()))),
            Err(why) => problems.push(format!("{} ```{}: {why}", b.at(), b.info())),
        }
    }
    for (doc, id, test) in RUN_BY_TESTS {
        if !blocks
            .iter()
            .any(|b| b.doc == *doc && b.id.as_deref() == Some(*id))
        {
            problems.push(format!("{test} runs {doc} id={id}, which no longer exists"));
        }
    }
    let count = |f: &dyn Fn(&Verdict) -> bool| listed.iter().filter(|(v, _)| f(v)).count();
    say(&format!(
        "docs: {} code blocks in {} documents: {} TOML configs checked, {} templates checked with \
         them, {} run by tests, {} translations kept identical; not checked: {} prose, {} \
         pending, {} unchecked",
        blocks.len(),
        blocks::documents().len(),
        count(&|v| *v == Verdict::Config),
        count(&|v| *v == Verdict::TemplateFile),
        count(&|v| *v == Verdict::Run),
        count(&|v| *v == Verdict::Translation),
        count(&|v| *v == Verdict::Prose),
        count(&|v| matches!(v, Verdict::Pending(_))),
        count(&|v| *v == Verdict::Unchecked),
    ));
    for (v, at) in &listed {
        match v {
            Verdict::Pending(why) => say(&format!("docs: pending {at}: {why}")),
            Verdict::Unchecked => say(&format!("docs: unchecked {at}")),
            Verdict::Prose => say(&format!("docs: prose (not code) {at}")),
            _ => {}
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// Merges a fragment into [`FRAGMENT_WRAPPER`].
fn wrap(fragment: &str) -> Result<String, String> {
    let mut table: toml::Table = toml::from_str(fragment).map_err(|e| e.to_string())?;
    let wrapper: toml::Table = toml::from_str(FRAGMENT_WRAPPER).unwrap();
    let dests = table
        .entry("destinations")
        .or_insert_with(|| toml::Value::Table(toml::Table::new()))
        .as_table_mut()
        .ok_or("`destinations` is not a table")?;
    for (name, dest) in wrapper["destinations"].as_table().unwrap() {
        dests.entry(name).or_insert_with(|| dest.clone());
    }
    if !table.contains_key("routes") {
        table.insert("routes".into(), wrapper["routes"].clone());
    }
    toml::to_string(&table).map_err(|e| e.to_string())
}

/// Runs `bizrelay check` on a config in a fresh folder with the given template files and a
/// stand-in value for every `${VAR}` it names. Returns what check printed, or why it failed.
fn check(config: &str, templates: &[&Block]) -> Result<String, String> {
    let dir = tempfile::tempdir().unwrap();
    for t in templates {
        let path = dir.path().join(t.file.as_deref().unwrap());
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, &t.text).unwrap();
    }
    std::fs::write(dir.path().join("config.toml"), config).unwrap();
    let out = Command::new(binary())
        .args(["check", "--config", "config.toml"])
        .current_dir(dir.path())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env_references(config).iter().map(|n| (n, dummy_value(n))))
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() {
        Ok(said)
    } else {
        Err(said)
    }
}

#[test]
fn every_toml_block_passes_check() {
    let blocks = all_blocks();
    let mut failures = Vec::new();
    let mut checked = 0;
    for b in blocks
        .iter()
        .filter(|b| b.lang == "toml" && !b.has("unchecked"))
    {
        let templates: Vec<&Block> = blocks
            .iter()
            .filter(|t| t.doc == b.doc && t.lang == "handlebars" && t.file.is_some())
            .collect();
        let config = if b.has("fragment") {
            match wrap(&b.text) {
                Ok(c) => c,
                Err(e) => {
                    failures.push(format!("{}: not TOML: {e}", b.at()));
                    continue;
                }
            }
        } else {
            b.text.clone()
        };
        checked += 1;
        match check(&config, &templates) {
            Ok(said) => assert!(said.contains("ok: "), "{}: {said}", b.at()),
            Err(said) => failures.push(format!("{}:\n{}\n{said}", b.at(), b.text)),
        }
    }
    assert!(checked >= 10, "only {checked} TOML blocks found");
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn a_broken_block_fails_the_check() {
    // The check above can fail: a typo in a key and a missing template are both caught.
    assert!(check("[server]\nlisten_addr = \"127.0.0.1:1\"\n", &[]).is_err());
    let route = "[[routes]]\nname = \"r\"\nto = \"ops-slack\"\ntemplate = \"nowhere\"\n";
    let err = check(&wrap(route).unwrap(), &[]).unwrap_err();
    assert!(err.contains("no slack template named `nowhere`"), "{err}");
    // The wrapper keeps a fragment's own destination and adds only the others.
    let own = wrap("[destinations.ops-slack]\ntype = \"console\"\n").unwrap();
    assert!(own.contains("type = \"console\"") && own.contains("[destinations.alerts-slack]"));
}

#[test]
fn the_documented_wrapper_is_the_one_used() {
    let shown = block("docs/testing.md", "fragment-wrapper");
    assert_eq!(shown.text.trim(), FRAGMENT_WRAPPER.trim());
}

/// The JSON a block's last `# {...}` comment says it prints; `"..."` stands for any value.
fn documented_output(b: &Block) -> Value {
    let line = b
        .text
        .lines()
        .rev()
        .find_map(|l| l.trim().strip_prefix("# {").map(|rest| format!("{{{rest}")))
        .unwrap_or_else(|| panic!("{}: no `# {{...}}` output comment", b.at()));
    serde_json::from_str(&line).unwrap_or_else(|e| panic!("{}: {line}: {e}", b.at()))
}

fn assert_output(b: &Block, stdout: &str) {
    fn matches(want: &Value, got: &Value) -> bool {
        match (want, got) {
            (Value::String(s), _) if s == "..." => true,
            (Value::Object(w), Value::Object(g)) => {
                w.len() == g.len()
                    && w.iter()
                        .all(|(k, v)| g.get(k).is_some_and(|gv| matches(v, gv)))
            }
            _ => want == got,
        }
    }
    let want = documented_output(b);
    let got: Value = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("{}: printed no JSON ({e}): {stdout}", b.at()));
    assert!(
        matches(&want, &got),
        "{}: documented {want}, printed {got}",
        b.at()
    );
}

/// The README's "Try it" on the built-in default; returns the session with the server still
/// running, as the reader has it.
fn try_it() -> (Session, session::Server) {
    let mut s = Session::new();
    let server = s.serve(&block("README.md", "run"));
    let curl = block("README.md", "try-curl");
    let addr = server.addr();
    let out = s.run(&curl, &[("127.0.0.1:8080", &addr)]);
    assert_output(&curl, &out.stdout);
    let shown = block("README.md", "try-output");
    server.wait_stdout(shown.text.trim_end(), Duration::from_secs(20));
    (s, server)
}

#[test]
fn try_it_the_signed_curl_prints_the_rejection() {
    let (mut s, mut server) = try_it();
    // The two failures arrive as one digest per result code after the route's `wait`.
    for code in ["3016 ×1", "3019 ×1"] {
        server.wait_stdout(code, Duration::from_secs(60));
    }
    assert!(
        server
            .stdout()
            .contains("[message-failures → console] 1 message result"),
        "{}",
        server.stdout()
    );
    // "Posting the same file again answers "duplicates":3 and prints nothing."
    let before = server.stdout();
    let addr = server.addr();
    let again = s.run(
        &block("README.md", "try-curl"),
        &[("127.0.0.1:8080", &addr)],
    );
    let answer: Value = serde_json::from_str(again.stdout.trim()).unwrap();
    assert_eq!(
        answer,
        serde_json::json!({"accepted": 0, "duplicates": 3, "rejected": 1})
    );
    // Ctrl-C stops it cleanly.
    assert!(server.interrupt().success(), "{}", server.stderr());
    assert_eq!(
        server.stdout(),
        before,
        "nothing new printed for duplicates"
    );
}

/// The field names in the first column of the Markdown table headed `| field | value |`.
fn documented_fields(doc: &str) -> BTreeSet<String> {
    let text = std::fs::read_to_string(blocks::repo().join(doc)).unwrap();
    let table = text
        .split("| field | value |")
        .nth(1)
        .unwrap_or_else(|| panic!("{doc} has no `| field | value |` table"));
    table
        .lines()
        .skip(2)
        .take_while(|l| l.starts_with('|'))
        .filter_map(|l| l.split('`').nth(1).map(str::to_string))
        .collect()
}

#[test]
fn dry_runs_print_the_documented_output() {
    let mut s = Session::new();
    let out = s.run(&block("README.md", "try-route"), &[]).stdout;
    assert!(
        out.contains("hook #0 m-t1 (template) → route `template-events` → console (console):"),
        "{out}"
    );
    assert!(out.contains("hook #3: rejected"), "{out}");
    let json_start = out.find("\n[\n").expect("the JSON array") + 1;
    let items: Vec<Value> = serde_json::from_str(&out[json_start..]).unwrap();
    assert_eq!(items.len(), 3, "a rejection and two digests: {items:?}");

    let route_json = block("docs/routing.md", "route-json");
    let out = s.run(&route_json, &[]).stdout;
    let items: Vec<Value> = serde_json::from_str(&out).unwrap();
    let documented = documented_fields("docs/routing.md");
    let mut seen = BTreeSet::new();
    for item in &items {
        let keys: BTreeSet<String> = item.as_object().unwrap().keys().cloned().collect();
        assert!(keys.is_subset(&documented), "{keys:?} vs {documented:?}");
        if item["group"].is_object() {
            assert!(
                item["hook_id"].is_null() && item["hook_ids"].is_array(),
                "{item}"
            );
        } else {
            assert!(
                item["hook_id"].is_string() && item["payload"].is_string(),
                "{item}"
            );
        }
        seen.extend(keys);
    }
    assert_eq!(seen, documented, "every documented field appears");
    assert!(
        items
            .iter()
            .any(|i| i["group"] == serde_json::json!({"result_code": "3016"})
                && i["hook_ids"] == serde_json::json!(["m-r1"])),
        "{items:?}"
    );
}

/// config.toml as the README says to make it: the example, with the first route's block
/// pasted above its first `[[routes]]`.
fn with_first_route(example: &str, route: &str) -> String {
    let at = example
        .find("\n[[routes]]")
        .expect("the example has routes")
        + 1;
    format!("{}{route}\n{}", &example[..at], &example[at..])
}

#[test]
fn first_route_sends_order_rejections_to_their_channel() {
    let mut s = Session::new();
    let example = std::fs::read_to_string(s.path("config.toml.example")).unwrap();
    // The variables of the Slack step before it ("cp config.toml.example ...; export ...").
    for name in env_references(&example) {
        s.env.insert(name.clone(), dummy_value(&name));
    }
    let route = block("README.md", "first-route");
    s.write("config.toml", &with_first_route(&example, &route.text));
    let template = file_block("README.md", "templates/slack/order_rejected.hbs");
    s.write(template.file.as_deref().unwrap(), &template.text);

    let out = s.run(&block("README.md", "first-route-check"), &[]).stdout;
    assert!(out.contains("ok: config.toml"), "{out}");
    assert!(
        out.contains(
            "hook #0 h-7f3a (template) → route `order-rejections` → orders-slack (slack):"
        ),
        "{out}"
    );
    assert!(out.contains("주문 템플릿 *ORDER_SHIPPED_V2* 반려"), "{out}");
    assert!(
        out.contains("변수 #{주문번호} 의 예시가 누락되었습니다."),
        "{out}"
    );
    assert!(
        !out.contains("route `template-decisions`"),
        "the first match wins: {out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs config.toml.example of branch harden-config (only SLACK_WEBHOOK_URL, accepts try-bizrelay)"]
async fn newcomer_path_reaches_slack() {
    let slack = FakeChat::start().await;
    // clone → cargo run --release → signed curl → rejection in the terminal
    let (mut s, mut server) = try_it();
    assert!(server.interrupt().success());
    // cp config.toml.example config.toml + one variable → check
    let webhook = slack.url("/services/T0NEW/B0NEW/newcomer");
    let out = s.run(
        &block("README.md", "slack-setup"),
        &[("https://hooks.slack.com/services/...", &webhook)],
    );
    assert!(out.stdout.contains("ok: config.toml"), "{out:?}");
    // run it → the signed curl of a rejection not posted before → their Slack
    let server = s.serve(&block("README.md", "slack-serve"));
    let curl = block("README.md", "slack-curl");
    let addr = server.addr();
    let out = s.run(&curl, &[("127.0.0.1:8080", &addr)]);
    assert_output(&curl, &out.stdout);
    let got = slack.wait_accepted(1, Duration::from_secs(20)).await;
    assert!(got[0].body.contains("ORDER_SHIPPED_V2"), "{}", got[0].body);
}

#[test]
fn korean_quick_start_is_in_step_with_the_readme() {
    let readme = blocks_of("README.md");
    let korean = blocks_of("docs/ko/README.md");
    let key = |b: &Block| b.id.clone().or_else(|| b.file.clone());
    for b in readme.iter().filter(|b| key(b).is_some()) {
        let k = key(b).unwrap();
        let Some(ko) = korean.iter().find(|o| key(o).as_ref() == Some(&k)) else {
            panic!(
                "docs/ko/README.md lacks the README's block {k} ({})",
                b.at()
            );
        };
        assert_eq!(ko.text, b.text, "{} differs from {}", ko.at(), b.at());
        assert_eq!(ko.lang, b.lang, "{}", ko.at());
    }
    let head: String = std::fs::read_to_string(blocks::repo().join("README.md"))
        .unwrap()
        .lines()
        .take(5)
        .collect();
    assert!(head.contains("(docs/ko/README.md)"), "linked from the top");
    let ko = std::fs::read_to_string(blocks::repo().join("docs/ko/README.md")).unwrap();
    assert!(ko.contains("## Dooray!"), "the Dooray! section is there");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operations_commands_work_on_a_live_server() {
    let slack = FakeChat::start_with(Reply::status(404).body("no_service")).await;
    let mut s = Session::new();
    s.write(
        "config.toml",
        &format!(
            "[admin]\ntoken = \"${{BIZRELAY_ADMIN_TOKEN}}\"\n\
             [destinations.ops-slack]\ntype = \"slack\"\nurl = \"{}\"\n\
             [[routes]]\nname = \"template-decisions\"\nto = \"ops-slack\"\n[routes.match]\nkind = \"template\"\n",
            slack.url("/services/T0OPS/B0OPS/secret")
        ),
    );
    s.env
        .insert("BIZRELAY_ADMIN_TOKEN".into(), "docs-admin-token".into());
    let mut server = s.serve_command("bizrelay serve");
    let addr = server.addr();
    let here = [("127.0.0.1:8080", addr.as_str())];
    s.run(&block("README.md", "try-curl"), &here);
    slack.wait_for(1, Duration::from_secs(20)).await;

    // The 404 made a dead letter; wait until the store shows it.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let out = s.bizrelay(&["dead-letters", "list", "--format", "json"]);
        let letters: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        if letters.as_array().is_some_and(|a| !a.is_empty()) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no dead letter");
        std::thread::sleep(Duration::from_millis(50));
    }

    let health = s.run(&block("docs/operations.md", "health"), &here).stdout;
    let readyz: Value = serde_json::from_str(health.lines().next().unwrap()).unwrap();
    let unhealthy = &readyz["unhealthy_destinations"]["ops-slack"];
    assert_eq!(readyz["ready"], true, "{health}");
    assert_eq!(unhealthy["healthy"], false, "{health}");
    assert_eq!(unhealthy["last_status"], 404, "{health}");
    assert!(unhealthy["since"].is_i64(), "{health}");
    assert!(
        health.contains(r#"bizrelay_queue_depth{destination="ops-slack"} 0"#),
        "{health}"
    );

    if installed("sqlite3") {
        s.run(&block("docs/operations.md", "backup"), &[]);
        s.write("backup.toml", "[store]\npath = \"bizrelay-backup.db\"\n");
        let out = s.bizrelay(&["dead-letters", "list", "--config", "backup.toml"]);
        let said = String::from_utf8_lossy(&out.stdout);
        assert!(
            said.contains("ops-slack"),
            "the backup holds the dead letter: {said}"
        );
    } else {
        say("docs: skipped docs/operations.md id=backup: sqlite3 is not installed");
    }

    slack.set_default(Reply::status(200).body("ok"));
    let out = s
        .run(&block("docs/operations.md", "dead-letters"), &[])
        .stdout;
    assert!(out.contains("ops-slack"), "{out}");
    assert!(out.contains("requeued 1 dead letter(s)"), "{out}");
    assert!(out.contains("purged 0 dead letter(s)"), "{out}");
    let got = slack.wait_accepted(1, Duration::from_secs(20)).await;
    assert!(got[0].body.contains("COUPON_ISSUED"), "{}", got[0].body);

    let reload = block("docs/operations.md", "reload");
    let out = s.run(&reload, &here);
    assert_output(&reload, &out.stdout);
    assert!(server.interrupt().success(), "{}", server.stderr());
}
