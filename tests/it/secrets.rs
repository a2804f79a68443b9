//! A destination's URL is its credential: whatever encoding an answer echoes it in, its secret
//! parts (path tokens, query values such as Teams' `sig`) never reach a log line, a dead-letter
//! listing or `send-test` output.

use std::time::Duration;

use crate::common::*;
use nix::sys::signal::Signal;
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::Value;

const WORKFLOW: &str = "wf0a1b2c3d4e5f60718293";
const SIG: &str = "SIGabc123XYZsecret";

/// Error bodies that echo the request URL raw, URL-encoded and JSON-escaped.
fn echoes(url: &str) -> Vec<Reply> {
    let encoded = utf8_percent_encode(url, NON_ALPHANUMERIC).to_string();
    let json_escaped = url.replace('/', "\\/");
    vec![
        Reply::status(404).body(&format!("No workflow at {url}")),
        Reply::status(404).body(&format!(r#"{{"error":"gone","redirect":"{encoded}"}}"#)),
        Reply::status(404).body(&format!(
            r#"{{"error":{{"code":"NotFound","message":"The request to '{json_escaped}' failed"}}}}"#
        )),
    ]
}

fn assert_no_secret(what: &str, text: &str) {
    for secret in [WORKFLOW, SIG] {
        assert!(!text.contains(secret), "{what} holds {secret}:\n{text}");
    }
}

#[tokio::test]
async fn echoed_urls_are_redacted_in_every_encoding_everywhere() {
    let teams = FakeChat::start().await;
    let url = teams.url(&format!(
        "/workflows/{WORKFLOW}/triggers/manual/paths/invoke?api-version=2016-06-01&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&sig={SIG}"
    ));
    teams.script(echoes(&url));
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        base_config(
            dir.path(),
            &format!(
                "[destinations.teams]\ntype = \"teams\"\nurl = \"{url}\"\n\
                 [[routes]]\nname = \"all\"\nto = \"teams\"\n"
            ),
        ),
    )
    .unwrap();
    let mut process = Process::start(&config, &[]);
    let http = http_client();
    let hooks: Vec<Value> = (0..3)
        .map(|i| failure(&format!("echo-{i}"), "3019"))
        .collect();
    assert_eq!(process.post(&http, envelope(&hooks)).await.status(), 200);
    wait_for_log(
        &process,
        "delivery dead-lettered",
        3,
        Duration::from_secs(15),
    )
    .await;

    // The three answers were kept: the listing shows them, redacted.
    let (code, listing, _) = run_cli(&["dead-letters", "list"], &config).await;
    assert_eq!(code, Some(0));
    assert_eq!(listing.matches("HTTP 404").count(), 3, "{listing}");
    assert!(
        listing.contains("No workflow at http://127.0.0.1") && listing.contains("NotFound"),
        "what is not secret stays readable: {listing}"
    );
    assert_no_secret("dead-letters list", &listing);
    let (code, json, _) = run_cli(&["dead-letters", "list", "--format", "json"], &config).await;
    assert_eq!(code, Some(0));
    assert_no_secret("dead-letters list --format json", &json);

    // send-test prints the answer it got, in each encoding.
    teams.script(echoes(&url));
    for _ in 0..3 {
        let (code, out, err) = run_cli(&["send-test", "--destination", "teams"], &config).await;
        assert_eq!(code, Some(1), "{out}{err}");
        assert!(out.contains("HTTP 404"), "{out}");
        assert_no_secret("send-test", &format!("{out}{err}"));
    }
    assert_eq!(teams.count(), 6);

    process.signal(Signal::SIGTERM);
    assert_eq!(process.wait(Duration::from_secs(10)).await.code(), Some(0));
    let log = process.log_text();
    assert_eq!(log.matches("delivery dead-lettered").count(), 3, "{log}");
    assert_no_secret("the log", &log);
}

#[tokio::test]
async fn reasons_recorded_before_redaction_are_redacted_when_listed() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("https://hooks.example.invalid/workflows/{WORKFLOW}?sv=1.0&sig={SIG}");
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        base_config(
            dir.path(),
            &format!("[destinations.teams]\ntype = \"teams\"\nurl = \"{url}\"\n"),
        ),
    )
    .unwrap();
    {
        // As an older bizrelay left it: the raw answer in the reason.
        seed_dead_letter(
            &dir.path().join("bizrelay.db"),
            "teams",
            "old-1",
            &format!("HTTP 404: no workflow at {url}"),
        )
        .await;
    }
    for format in ["text", "json"] {
        let (code, out, err) =
            run_cli(&["dead-letters", "list", "--format", format], &config).await;
        assert_eq!(code, Some(0), "{err}");
        assert!(
            out.contains("old-1") && out.contains("hooks.example.invalid"),
            "{out}"
        );
        assert_no_secret("dead-letters list", &out);
    }
}
