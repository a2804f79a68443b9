//! The real binary's logs: bounded whatever a request holds, free of phone numbers at any
//! level, coloured only on a terminal, and never a reason to stop or hang.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;
use nix::sys::signal::Signal;
use serde_json::Value;

fn write_config(dir: &std::path::Path, body: &str) -> std::path::PathBuf {
    let path = dir.join("config.toml");
    std::fs::write(&path, base_config(dir, body)).unwrap();
    path
}

fn slack_route(slack: &FakeChat) -> String {
    format!(
        "[destinations.ops]\ntype = \"slack\"\nurl = \"{}\"\n\
         [[routes]]\nname = \"failures\"\nto = \"ops\"\n[routes.match]\noutcome = \"failure\"\n",
        slack.url("/services/T/B/SECRET")
    )
}

#[tokio::test]
async fn a_huge_hook_id_is_clipped_in_every_log_line() {
    const ID_LEN: usize = 200_000;
    let slack = FakeChat::start().await;
    slack.script([Reply::status(500), Reply::status(500)]);
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &format!("[log]\nlevel = \"debug\"\n{}", slack_route(&slack)),
    );
    let mut process = Process::start(&config, &[]);
    let http = http_client();
    let huge = format!("long-{}", "x".repeat(ID_LEN));
    // One hook that is delivered after two retries, one that matches no route.
    let hooks = vec![
        failure(&huge, "3019"),
        failure(&format!("ok-{huge}"), "1000"),
    ];
    assert_eq!(process.post(&http, envelope(&hooks)).await.status(), 200);
    wait_for_log(&process, "\"delivered\"", 1, Duration::from_secs(15)).await;
    process.signal(Signal::SIGTERM);
    assert_eq!(process.wait(Duration::from_secs(10)).await.code(), Some(0));

    let log = process.log.lock().unwrap().clone();
    let with_id: Vec<&String> = log.iter().filter(|l| l.contains("long-xxx")).collect();
    assert!(
        with_id.len() >= 3,
        "two retries and a delivery name the hook: {with_id:?}"
    );
    assert!(
        log.iter()
            .any(|l| l.contains("matched no route") && l.contains("ok-long-x")),
        "the unrouted hook is logged at debug level"
    );
    for line in &log {
        assert!(
            line.len() < 2_000,
            "a log line of {} bytes: {}",
            line.len(),
            &line[..300]
        );
    }
    let total: usize = log.iter().map(String::len).sum();
    assert!(
        total < 100_000,
        "{total} bytes of log for one POST of two hooks"
    );
}

/// The real binary with stdout and stderr on the given ends; `serve` with this config.
fn spawn_serve(
    config: &std::path::Path,
    format: &str,
    stdout: Stdio,
    stderr: Stdio,
) -> std::process::Child {
    let mut cmd = Command::new(binary());
    cmd.args(["serve", "--log-format", format, "--config"])
        .arg(config)
        .env_remove("RUST_LOG")
        .env_remove("NO_COLOR")
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr);
    let child = cmd.spawn().unwrap();
    // The command keeps its copies of the pipe ends until dropped.
    drop(cmd);
    child
}

fn listen_addr(line: &str) -> Option<SocketAddr> {
    let v: Value = serde_json::from_str(line).ok()?;
    if v["message"] != "bizrelay is listening" {
        return None;
    }
    v["listen"].as_str()?.parse().ok()
}

async fn wait_exit(child: &mut std::process::Child, timeout: Duration) -> Option<i32> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status.code();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("bizrelay did not exit within {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test]
async fn a_log_pipe_whose_reader_exits_stops_neither_serving_nor_sigterm() {
    let slack = FakeChat::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &slack_route(&slack));
    // `bizrelay serve 2>&1 | head`: both streams into one pipe, read until the server listens.
    let (reader, writer) = std::io::pipe().unwrap();
    let mut child = spawn_serve(
        &config,
        "json",
        Stdio::from(writer.try_clone().unwrap()),
        Stdio::from(writer),
    );
    let addr = {
        let mut lines = BufReader::new(reader).lines();
        let mut addr = None;
        for _ in 0..20 {
            let Some(Ok(line)) = lines.next() else { break };
            if let Some(a) = listen_addr(&line) {
                addr = Some(a);
                break;
            }
        }
        // `head` exits here: the pipe has no reader any more.
        addr.expect("bizrelay logged where it listens")
    };
    let http = http_client();
    let url = format!("http://{addr}");
    for i in 0..5 {
        let hooks = vec![failure(&format!("pipe-{i}"), "3019")];
        let resp = http
            .post(format!("{url}/hooks/bizmessage"))
            .header("content-type", "application/json")
            .body(envelope(&hooks))
            .send()
            .await;
        let resp = resp.unwrap_or_else(|e| panic!("POST {i} after the log pipe closed: {e}"));
        assert_eq!(resp.status(), 200);
    }
    slack.wait_accepted(5, Duration::from_secs(10)).await;
    // The lost lines are counted.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let m = http
            .get(format!("{url}/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if metric(
            &m,
            "bizrelay_log_lines_dropped_total{reason=\"write_failed\"}",
        ) >= 5.0
        {
            break;
        }
        assert!(Instant::now() < deadline, "no lost lines counted:\n{m}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        Signal::SIGTERM,
    )
    .unwrap();
    assert_eq!(
        wait_exit(&mut child, Duration::from_secs(10)).await,
        Some(0),
        "SIGTERM shuts down cleanly"
    );
}

#[tokio::test]
async fn a_log_pipe_closed_before_start_up_exits_2_with_a_message() {
    let slack = FakeChat::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &slack_route(&slack));
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let (out_reader, out_writer) = std::io::pipe().unwrap();
    let mut child = spawn_serve(
        &config,
        "json",
        Stdio::from(out_writer),
        Stdio::from(writer),
    );
    let said = tokio::task::spawn_blocking(move || {
        let mut said = String::new();
        let _ = std::io::Read::read_to_string(&mut { out_reader }, &mut said);
        said
    });
    assert_eq!(
        wait_exit(&mut child, Duration::from_secs(10)).await,
        Some(2)
    );
    let said = said.await.unwrap();
    assert!(
        said.contains("cannot write logs to stderr") && said.contains("does not serve"),
        "{said:?}"
    );
}

#[tokio::test]
async fn debug_logs_hold_no_phone_number_even_with_masking_off() {
    let slack = FakeChat::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &format!(
            "[log]\nlevel = \"debug\"\n[privacy]\nmask_recipient = false\n{}\
             [[routes]]\nname = \"templates\"\nto = \"ops\"\n[routes.match]\nkind = \"template\"\n",
            slack_route(&slack)
        ),
    );
    let mut process = Process::start(&config, &[]);
    let http = http_client();
    for body in [
        fixture("message_results.json"),
        fixture("mixed.json"),
        fixture("template_rejected.json"),
    ] {
        assert_eq!(process.post(&http, body).await.status(), 200);
    }
    let got = slack.wait_accepted(4, Duration::from_secs(15)).await;
    assert!(
        got.iter().any(|r| r.body.contains("01098765432")),
        "masking is off: the chat shows the number"
    );
    process.signal(Signal::SIGTERM);
    assert_eq!(process.wait(Duration::from_secs(10)).await.code(), Some(0));
    let log = process.log_text();
    assert!(log.contains("\"level\":\"DEBUG\""), "a debug-level run");
    for number in ["01098765432", "01055551234", "01055559876"] {
        assert!(!log.contains(number), "the log holds {number}:\n{log}");
    }
    assert!(
        !log.contains("Rendering helper"),
        "handlebars' debug lines are held back"
    );
}

/// The text log of one start of the real binary, read from `stderr`'s other end until the
/// server listens, then stopped.
async fn text_log_until_listening(
    config: &std::path::Path,
    stderr: Stdio,
    mut read: impl std::io::Read + Send + 'static,
) -> String {
    let mut child = spawn_serve(config, "text", Stdio::null(), stderr);
    let log = tokio::task::spawn_blocking(move || {
        let mut seen = Vec::new();
        let mut buf = [0u8; 4096];
        while !String::from_utf8_lossy(&seen).contains("bizrelay is listening") {
            match read.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => seen.extend_from_slice(&buf[..n]),
            }
        }
        String::from_utf8_lossy(&seen).into_owned()
    })
    .await
    .unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        Signal::SIGTERM,
    )
    .unwrap();
    wait_exit(&mut child, Duration::from_secs(10)).await;
    log
}

#[tokio::test]
async fn text_logs_are_coloured_only_on_a_terminal() {
    let slack = FakeChat::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &slack_route(&slack));

    let (reader, writer) = std::io::pipe().unwrap();
    let piped = text_log_until_listening(&config, Stdio::from(writer), reader).await;
    assert!(piped.contains("bizrelay is listening"), "{piped}");
    assert!(
        !piped.contains('\u{1b}'),
        "colour codes in a piped log: {piped:?}"
    );

    let pty = nix::pty::openpty(None, None).unwrap();
    let terminal = text_log_until_listening(
        &config,
        Stdio::from(pty.slave),
        std::fs::File::from(pty.master),
    )
    .await;
    assert!(terminal.contains("bizrelay is listening"), "{terminal}");
    assert!(
        terminal.contains("\u{1b}["),
        "no colour on a terminal: {terminal:?}"
    );
}

#[tokio::test]
async fn a_log_reader_that_stops_reading_blocks_nothing() {
    let slack = FakeChat::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &format!("[log]\nlevel = \"debug\"\n{}", slack_route(&slack)).replace(
            "type = \"slack\"\n",
            "type = \"slack\"\nrate_per_second = 500\nburst = 100\n",
        ),
    );
    let (reader, writer) = std::io::pipe().unwrap();
    let mut child = spawn_serve(&config, "json", Stdio::null(), Stdio::from(writer));
    // Read until the server listens, then keep the pipe open without reading: once the pipe's
    // buffer (64 KiB) is full, every write to it would wait.
    let mut lines = BufReader::new(reader).lines();
    let addr = loop {
        let line = lines.next().expect("a log line").unwrap();
        if let Some(a) = listen_addr(&line) {
            break a;
        }
    };
    let http = http_client();
    let url = format!("http://{addr}/hooks/bizmessage");
    const POSTS: usize = 300;
    for i in 0..POSTS {
        let hooks: Vec<Value> = (0..3)
            .map(|k| failure(&format!("stuck-{i}-{k}-{}", "x".repeat(100)), "3019"))
            .collect();
        let resp = http
            .post(&url)
            .header("content-type", "application/json")
            .body(envelope(&hooks))
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .unwrap_or_else(|e| panic!("POST {i} with a stuck log reader: {e}"));
        assert_eq!(resp.status(), 200);
    }
    slack
        .wait_accepted(3 * POSTS, Duration::from_secs(60))
        .await;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        Signal::SIGTERM,
    )
    .unwrap();
    assert_eq!(
        wait_exit(&mut child, Duration::from_secs(15)).await,
        Some(0)
    );
    drop(lines);
}
