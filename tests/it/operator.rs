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
