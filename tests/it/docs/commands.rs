//! The documentation's commands, run as written: the README's newcomer path (the signed
//! curl on the built-in default, the dry runs, the first custom route, the Slack step) and the
//! operator's commands of docs/operations.md against a live server. Each test names the blocks
//! it runs by id; `RUN_BY_TESTS` in docs.rs lists them for the inventory.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::Value;

use super::blocks::{self, Block, block, dummy_value, env_references, file_block};
use super::say;
use super::session::{self, Session, installed};
use crate::common::{FakeChat, Reply};

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
    assert_eq!(
        items.len(),
        4,
        "a template rejection, two digests and the hook that could not be parsed: {items:?}"
    );
    assert!(
        items
            .iter()
            .any(|i| i["route"].is_null() && i["reason"] == "rejected: hook is not a JSON object"),
        "{items:?}"
    );

    let route_json = block("docs/routing.md", "route-json");
    let out = s.run(&route_json, &[]).stdout;
    let items: Vec<Value> = serde_json::from_str(&out).unwrap();
    let documented = documented_fields("docs/routing.md");
    let mut seen = BTreeSet::new();
    for item in &items {
        let keys: BTreeSet<String> = item.as_object().unwrap().keys().cloned().collect();
        assert!(keys.is_subset(&documented), "{keys:?} vs {documented:?}");
        if item["route"].is_null() {
            assert!(
                item["reason"].is_string()
                    && item["payload"].is_null()
                    && item["position"].is_number(),
                "{item}"
            );
        } else if item["group"].is_object() {
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
    assert!(
        unhealthy["since"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z')),
        "{health}"
    );
    assert!(unhealthy["since_ms"].is_i64(), "{health}");
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
    assert!(out.contains("requeued 1 dead letter"), "{out}");
    assert!(
        out.contains("no matching dead letters in the SQLite store data/bizrelay.db"),
        "{out}"
    );
    let got = slack.wait_accepted(1, Duration::from_secs(20)).await;
    assert!(got[0].body.contains("COUPON_ISSUED"), "{}", got[0].body);

    let reload = block("docs/operations.md", "reload");
    let out = s.run(&reload, &here);
    assert_output(&reload, &out.stdout);
    assert!(server.interrupt().success(), "{}", server.stderr());
}
