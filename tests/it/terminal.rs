//! What the CLI prints cannot act on the operator's terminal: an ESC, CR, BEL, C1 or bidi
//! control in a hookId, a reason, a name or a payload is shown as an escape, and no value
//! starts a table row of its own.

use std::path::Path;

use crate::common::*;
use serde_json::json;

/// A hookId that retitles the window, clears the screen, returns the cursor and forges a row.
const EVIL: &str = "evil\u{1b}]0;pwned\u{7}\u{1b}[2J\r\n  999  forged-row\u{9b}31m\u{202e}txt.exe";

fn assert_inert(what: &str, text: &str) {
    let acting: Vec<char> = text
        .chars()
        .filter(|c| {
            (c.is_control() && *c != '\n')
                || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}' | '\u{061C}')
        })
        .collect();
    assert!(acting.is_empty(), "{what} prints {acting:?} raw:\n{text}");
}

fn write_config(dir: &Path, name: &str, body: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, base_config(dir, body)).unwrap();
    path
}

#[tokio::test]
async fn dead_letters_list_escapes_what_it_shows() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        "config.toml",
        "[destinations.ops]\ntype = \"slack\"\nurl = \"https://hooks.example.invalid/x\"\n",
    );
    {
        seed_dead_letter(
            &dir.path().join("bizrelay.db"),
            "ops",
            EVIL,
            &format!("HTTP 400: {EVIL}"),
        )
        .await;
    }
    let (code, out, _) = run_cli(&["dead-letters", "list"], &config).await;
    assert_eq!(code, Some(0));
    assert_inert("dead-letters list", &out);
    assert_eq!(out.lines().count(), 2, "a header and one row:\n{out}");
    assert!(out.contains("\\u{1b}]0;pwned"), "shown as an escape: {out}");
    let (code, out, _) = run_cli(&["dead-letters", "list", "--format", "json"], &config).await;
    assert_eq!(code, Some(0));
    assert_inert("dead-letters list --format json", &out);
    let back: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        back[0]["hook_id"], EVIL,
        "the JSON still holds the exact value"
    );
}

#[tokio::test]
async fn route_check_and_send_test_escape_what_they_show() {
    let dir = tempfile::tempdir().unwrap();
    let body = "[destinations.screen]\ntype = \"console\"\n\
                [destinations.ops]\ntype = \"slack\"\nurl = \"https://hooks.example.invalid/x\"\n\
                [[routes]]\nname = \"all\"\nto = [\"screen\", \"ops\"]\n";
    // The file name is shown by `check`.
    let config = write_config(dir.path(), "cfg\u{1b}]0;pwned\u{7}.toml", body);
    let mut hook = failure(EVIL, "3019");
    hook["senderGroupingKey"] = json!("group\u{1b}[31m\r");
    let payload = dir.path().join("payload.json");
    std::fs::write(&payload, envelope(&[hook])).unwrap();

    let (code, out, err) = run_cli(&["route", payload.to_str().unwrap()], &config).await;
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("→ route `all` → screen"), "{out}");
    assert_inert("route", &out);
    let (code, out, _) = run_cli(
        &["route", "--format", "json", payload.to_str().unwrap()],
        &config,
    )
    .await;
    assert_eq!(code, Some(0));
    assert_inert("route --format json", &out);

    let (code, out, err) = run_cli(&["check"], &config).await;
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.lines().any(|l| l.starts_with("ok: ")), "{out}");
    assert_inert("check", &out);

    let (code, _, err) = run_cli(&["send-test", "--destination", "x\u{1b}[2J\r"], &config).await;
    assert_eq!(code, Some(2));
    assert!(err.contains("no destination"), "{err}");
    assert_inert("send-test", &err);
}
