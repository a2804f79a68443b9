//! The real binary: crash durability under `kill -9`, graceful SIGTERM, secrets in logs.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::*;
use nix::sys::signal::Signal;
use serde_json::Value;

fn write_config(dir: &std::path::Path, body: &str) -> std::path::PathBuf {
    let path = dir.join("config.toml");
    std::fs::write(&path, base_config(dir, body)).unwrap();
    path
}

fn two_destinations(slack: &FakeChat, teams: &FakeChat) -> String {
    format!(
        "[destinations.ops-slack]\ntype = \"slack\"\nurl = \"{}\"\nrate_per_second = 200\nburst = 50\n\
         [destinations.ops-teams]\ntype = \"teams\"\nurl = \"{}\"\nrate_per_second = 200\nburst = 50\n\
         [[routes]]\nname = \"failures\"\nto = [\"ops-slack\", \"ops-teams\"]\n[routes.match]\noutcome = \"failure\"\n",
        slack.url("/services/T/B/SLACKSECRET"),
        teams.url("/workflows/TEAMSSECRET"),
    )
}

/// Counts accepted deliveries per hook id (bodies mention the hook id in backticks for Slack,
/// or after "hook " for Teams).
fn delivered_per_hook(fake: &FakeChat) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for r in fake.accepted() {
        let body = r.body;
        let Some(start) = body.find("crash-") else {
            continue;
        };
        let id: String = body[start..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
            .collect();
        *counts.entry(id).or_default() += 1;
    }
    counts
}

#[tokio::test]
async fn kill_9_mid_burst_loses_no_acknowledged_hook() {
    let slack = FakeChat::start_with(Reply::status(503)).await;
    let teams = FakeChat::start_with(Reply::status(503)).await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &two_destinations(&slack, &teams));
    let process = Process::start(&config, &[]);
    let url = process.url("/hooks/bizmessage");

    // Eight clients post 3-hook batches as fast as they can; the process is killed mid-burst.
    let acked: Arc<Mutex<HashSet<String>>> = Arc::default();
    let ended: Arc<Mutex<Vec<String>>> = Arc::default();
    let mut clients = Vec::new();
    for c in 0..8 {
        let (acked, url, ended) = (Arc::clone(&acked), url.clone(), Arc::clone(&ended));
        clients.push(tokio::spawn(async move {
            let http = http_client();
            for n in 0.. {
                let ids: Vec<String> = (0..3).map(|k| format!("crash-{c}-{n}-{k}")).collect();
                let hooks: Vec<Value> = ids.iter().map(|id| failure(id, "3019")).collect();
                let sent = http
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(envelope(&hooks))
                    .send()
                    .await;
                match sent {
                    Ok(r) if r.status() == 200 => acked.lock().unwrap().extend(ids),
                    other => {
                        let why = match other {
                            Ok(r) => {
                                format!("{} {}", r.status(), r.text().await.unwrap_or_default())
                            }
                            Err(e) => e.to_string(),
                        };
                        ended.lock().unwrap().push(why);
                        break;
                    }
                }
            }
        }));
    }
    // Kill it once the burst is well under way (however loaded the machine is).
    let deadline = Instant::now() + Duration::from_secs(20);
    while acked.lock().unwrap().len() < 60 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut process = process;
    process.signal(Signal::SIGKILL);
    process.wait(Duration::from_secs(5)).await;
    for c in clients {
        c.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() > 30,
        "the burst was under way: {} acked; clients ended with {:?}; log: {}",
        acked.len(),
        ended.lock().unwrap(),
        process.log_text()
    );

    slack.set_default(Reply::status(200).body("ok"));
    teams.set_default(Reply::status(202));
    let restarted = Process::start(&config, &[]);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (s, t) = (delivered_per_hook(&slack), delivered_per_hook(&teams));
        if acked
            .iter()
            .all(|id| s.contains_key(id) && t.contains_key(id))
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "acknowledged hooks missing after restart: slack {} teams {} of {}",
            s.len(),
            t.len(),
            acked.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    for (name, fake) in [("slack", &slack), ("teams", &teams)] {
        let counts = delivered_per_hook(fake);
        for id in &acked {
            assert_eq!(
                counts.get(id),
                Some(&1),
                "{name}: {id} delivered {:?} times",
                counts.get(id)
            );
        }
        // Hooks stored but not yet acknowledged when the process died may be delivered too,
        // but nothing is delivered twice.
        assert!(
            counts.values().all(|n| *n == 1),
            "{name}: a hook was delivered twice"
        );
    }
    drop(restarted);
}

#[tokio::test]
async fn sigterm_finishes_the_post_in_flight_and_exits_0() {
    // Slack answers after 1.5 s; SIGTERM arrives while the first post is in flight.
    let slack = FakeChat::start_with(
        Reply::status(200)
            .body("ok")
            .delay(Duration::from_millis(1500)),
    )
    .await;
    let teams = FakeChat::start().await;
    let dir = tempfile::tempdir().unwrap();
    let body = two_destinations(&slack, &teams).replace(
        "to = [\"ops-slack\", \"ops-teams\"]",
        "to = [\"ops-slack\"]",
    );
    let config = write_config(
        dir.path(),
        &format!("[delivery]\nshutdown_grace = \"5s\"\n{body}"),
    );
    let mut process = Process::start(&config, &[]);
    let http = http_client();
    let hooks: Vec<Value> = (0..3)
        .map(|i| failure(&format!("crash-term-{i}"), "3019"))
        .collect();
    let resp = process.post(&http, envelope(&hooks)).await;
    assert_eq!(resp.status(), 200);
    slack.wait_for(1, Duration::from_secs(5)).await;
    let signalled = Instant::now();
    process.signal(Signal::SIGTERM);
    let status = process.wait(Duration::from_secs(10)).await;
    assert_eq!(status.code(), Some(0));
    assert!(
        signalled.elapsed() >= Duration::from_millis(1000),
        "waited for the post in flight"
    );
    assert_eq!(slack.count(), 1, "no new post started after SIGTERM");
    // New connections are refused once it is gone; the rest waits in the store.
    assert!(http.get(process.url("/healthz")).send().await.is_err());
    let log = process.log_text();
    assert!(
        log.contains("SIGTERM received") && log.contains("stopped"),
        "{log}"
    );

    slack.set_default(Reply::status(200).body("ok"));
    let _restarted = Process::start(&config, &[]);
    let got = slack.wait_accepted(3, Duration::from_secs(15)).await;
    let counts = delivered_per_hook(&slack);
    assert_eq!(counts.len(), 3, "{counts:?}");
    assert!(
        counts.values().all(|n| *n == 1),
        "the post finished during shutdown is not resent: {counts:?}\n{log}"
    );
    assert_eq!(got.len(), 3);
}

#[tokio::test]
async fn logs_of_a_full_run_hold_no_secrets_and_no_phone_numbers() {
    let slack = FakeChat::start().await;
    slack.script([Reply::status(500).body("rollup_error")]);
    let teams = FakeChat::start_with(Reply::status(404).body("gone")).await;
    let dir = tempfile::tempdir().unwrap();
    let body = "[ingest]\nsignatures = [\"${SIG}\"]\n[admin]\ntoken = \"${ADMIN}\"\n[log]\nlevel = \"debug\"\n\
         [destinations.ops-slack]\ntype = \"slack\"\nurl = \"${SLACK_URL}\"\nrate_per_second = 100\nburst = 10\n\
         [destinations.ops-teams]\ntype = \"teams\"\nurl = \"${TEAMS_URL}\"\n\
         [[routes]]\nname = \"all\"\nto = [\"ops-slack\", \"ops-teams\"]\n";
    let config = write_config(dir.path(), body);
    let slack_url = slack.url("/services/T0/B0/SLACKTOKENXYZ");
    let teams_url = teams.url("/workflows/TEAMSTOKENXYZ");
    let env = [
        ("SIG", "SIGNATUREVALUE123"),
        ("ADMIN", "ADMINTOKEN456"),
        ("SLACK_URL", slack_url.as_str()),
        ("TEAMS_URL", teams_url.as_str()),
    ];
    let mut process = Process::start(&config, &env);
    let http = http_client();
    let hook_url = process.url("/hooks/bizmessage");
    for (sig, body) in [
        ("SIGNATUREVALUE123", fixture("mixed.json")),
        ("SIGNATUREVALUE123", fixture("message_results.json")),
        ("SIGNATUREVALUE123", fixture("unknown_event.json")),
        ("SIGNATUREVALUE123", fixture("quirks.json")),
        ("SIGNATUREVALUE12X", fixture("template_rejected.json")),
    ] {
        http.post(&hook_url)
            .header("content-type", "application/json")
            .header("x-toast-webhook-signature", sig)
            .body(body)
            .send()
            .await
            .unwrap();
    }
    for token in ["ADMINTOKEN456", "wrong"] {
        http.post(process.url("/-/reload"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
    }
    process.signal(Signal::SIGHUP);
    slack.wait_accepted(5, Duration::from_secs(15)).await;
    teams.wait_for(5, Duration::from_secs(15)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    process.signal(Signal::SIGTERM);
    assert_eq!(process.wait(Duration::from_secs(10)).await.code(), Some(0));

    let log = process.log_text();
    assert!(
        log.contains("delivery dead-lettered") && log.contains("config reloaded"),
        "the run did what it should: {log}"
    );
    assert!(log.contains("will retry"), "{log}");
    for secret in [
        "SIGNATUREVALUE123",
        "SIGNATUREVALUE12X",
        "ADMINTOKEN456",
        "SLACKTOKENXYZ",
        "TEAMSTOKENXYZ",
        slack_url.as_str(),
        teams_url.as_str(),
        "01098765432",
        "01012345678",
        "01055551234",
        "01055559876",
        "01055550000",
        "01011112222",
        "01077778888",
        "01077779999",
    ] {
        assert!(!log.contains(secret), "the log contains {secret}:\n{log}");
    }
}
