//! Hostile input over real HTTP: malformed and oversized bodies, wrong types, deep nesting, bad
//! signatures and content types, hand-written chunked and slow-loris clients, and concurrent
//! overlapping posts. The app runs on port 0 with a fake Slack behind a failures route.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::*;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A marker put in hostile bodies: it must never come back in an answer.
const MARK: &str = "MARK-01055550000";

/// Config: one fast Slack destination and a route sending every failure to it, after `extra`
/// (which may hold `[server]` / `[ingest]` sections).
fn slack_config(slack: &FakeChat, extra: &str) -> String {
    format!(
        "{extra}\n[destinations.ops-slack]\ntype = \"slack\"\nurl = \"{}\"\nrate_per_second = 1000\nburst = 100\n\n\
         [[routes]]\nname = \"failures\"\nto = [\"ops-slack\"]\n[routes.match]\noutcome = \"failure\"\n",
        slack.url("/services/T/B/SECRET")
    )
}

/// A webhook body whose `hooks` array holds `hooks` verbatim (for JSON that `Value` cannot or
/// should not build, such as 10,000 levels of nesting).
fn raw_envelope(hooks: &str) -> String {
    format!(
        r#"{{"hooksId":"post-{}","webhookConfigId":"wcf-test","productName":"KakaoTalk Bizmessage","appKey":"Xk2abcDEF9tq","event":"MESSAGE_RESULT_UPDATE","hooks":[{hooks}]}}"#,
        rand_id()
    )
}

fn counts(accepted: u64, duplicates: u64, rejected: u64) -> Value {
    json!({"accepted": accepted, "duplicates": duplicates, "rejected": rejected})
}

/// How many bodies the fake accepted for each hook id (the Slack template shows `` `id` ``).
fn per_hook(received: &[Received], ids: &[String]) -> HashMap<String, usize> {
    ids.iter()
        .map(|id| {
            let needle = format!("`{id}`");
            let n = received.iter().filter(|r| r.body.contains(&needle)).count();
            (id.clone(), n)
        })
        .collect()
}

fn ids(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// Waits for `want` deliveries, lets stragglers arrive, then checks each id came exactly once
/// and nothing else came.
async fn assert_relayed_once(slack: &FakeChat, want: &[String]) {
    slack
        .wait_accepted(want.len(), Duration::from_secs(15))
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let got = slack.accepted();
    let per = per_hook(&got, want);
    assert!(per.values().all(|n| *n == 1), "each hook once: {per:?}");
    assert_eq!(got.len(), want.len(), "nothing else relayed");
}

/// A POST with full control of the Content-Type (None: no header) and extra headers.
async fn post_raw(
    app: &TestApp,
    body: impl Into<reqwest::Body>,
    content_type: Option<&str>,
    headers: &[(&str, &str)],
) -> (u16, String) {
    let mut req = app.http.post(app.url("/hooks/bizmessage")).body(body);
    if let Some(ct) = content_type {
        req = req.header("content-type", ct);
    }
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    // Generous: a hang, not speed, is what this catches (timings belong in bench/).
    let resp = tokio::time::timeout(Duration::from_secs(60), req.send())
        .await
        .expect("no answer within 60 s")
        .expect("request failed");
    let status = resp.status().as_u16();
    (status, resp.text().await.unwrap())
}

/// A POST as NHN sends it.
async fn post(app: &TestApp, body: String) -> (u16, String) {
    post_raw(app, body, Some("application/json;charset=UTF-8"), &[]).await
}

/// Checks an error answer: the exact status, JSON with exactly `error` and `detail` strings,
/// and none of `secrets` echoed back.
fn assert_error(got: &(u16, String), status: u16, secrets: &[&str]) -> Value {
    assert_eq!(got.0, status, "answer: {}", got.1);
    let v: Value = serde_json::from_str(&got.1)
        .unwrap_or_else(|e| panic!("error answer is not JSON ({e}): {}", got.1));
    let obj = v
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {v}"));
    assert_eq!(obj.len(), 2, "only error and detail: {v}");
    assert!(
        v["error"].is_string() && v["detail"].is_string(),
        "error and detail are strings: {v}"
    );
    for s in secrets {
        assert!(!got.1.contains(s), "answer echoes {s:?}: {}", got.1);
    }
    v
}

/// Checks a 200 answer with exact counts.
fn assert_counts(got: &(u16, String), want: Value) {
    assert_eq!(got.0, 200, "answer: {}", got.1);
    let v: Value = serde_json::from_str(&got.1).unwrap();
    assert_eq!(v, want);
}

async fn assert_healthy(app: &TestApp) {
    let resp = tokio::time::timeout(
        Duration::from_secs(5),
        app.http.get(app.url("/healthz")).send(),
    )
    .await
    .expect("healthz did not answer within 5 s")
    .expect("healthz failed");
    assert_eq!(resp.status(), 200);
}

// ---------------------------------------------------------------------------------------------
// Raw HTTP/1.1 over TcpStream, for what reqwest cannot do (chunked without the "stream"
// feature, slow clients, stalled bodies, idle keep-alive).

#[derive(Debug)]
struct RawResponse {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl RawResponse {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
    fn text(&self) -> (u16, String) {
        (
            self.status,
            String::from_utf8_lossy(&self.body).into_owned(),
        )
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Decodes a complete chunked body, or None if more bytes are needed.
fn dechunk(mut rest: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = find(rest, b"\r\n")?;
        let line = std::str::from_utf8(&rest[..line_end]).unwrap();
        let size = usize::from_str_radix(line.split(';').next().unwrap().trim(), 16).unwrap();
        rest = &rest[line_end + 2..];
        if size == 0 {
            // Trailers (none expected) end with an empty line.
            return find(rest, b"\r\n").map(|_| out);
        }
        if rest.len() < size + 2 {
            return None;
        }
        out.extend_from_slice(&rest[..size]);
        rest = &rest[size + 2..];
    }
}

/// Parses one response from `buf`; `eof` says the peer closed (a body without length ends there).
fn parse_response(buf: &[u8], eof: bool) -> Option<RawResponse> {
    let end = find(buf, b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let rest = &buf[end + 4..];
    let mut r = RawResponse {
        status,
        headers,
        body: Vec::new(),
    };
    if (100..200).contains(&status) || status == 204 || status == 304 {
        // No body.
    } else if let Some(len) = r.header("content-length") {
        let len: usize = len.parse().unwrap();
        if rest.len() < len {
            return None;
        }
        r.body = rest[..len].to_vec();
    } else if r
        .header("transfer-encoding")
        .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
    {
        r.body = dechunk(rest)?;
    } else if eof {
        r.body = rest.to_vec();
    } else {
        return None;
    }
    Some(r)
}

/// Reads one response (panics if none arrives within 10 s or the connection closes first).
/// Reads byte by byte (answers are small), so pipelined answers stay for the next call.
async fn read_response(stream: &mut TcpStream) -> RawResponse {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    loop {
        let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut byte))
            .await
            .expect("no response within 10 s")
            .unwrap_or_else(|e| {
                panic!(
                    "read failed ({e}) after {:?}",
                    String::from_utf8_lossy(&buf)
                )
            });
        if n == 0 {
            return parse_response(&buf, true).unwrap_or_else(|| {
                panic!(
                    "connection closed before a whole response: {:?}",
                    String::from_utf8_lossy(&buf)
                )
            });
        }
        buf.push(byte[0]);
        if let Some(r) = parse_response(&buf, false) {
            return r;
        }
    }
}

/// What the server did with a connection we stopped feeding: everything it sent until it
/// closed (Ok) or reset (Err); panics if it kept the connection open for `limit`.
async fn wait_for_close<R: AsyncReadExt + Unpin>(
    reader: &mut R,
    limit: Duration,
) -> Result<Vec<u8>, std::io::Error> {
    let mut got = Vec::new();
    let mut chunk = [0u8; 4096];
    tokio::time::timeout(limit, async {
        loop {
            match reader.read(&mut chunk).await {
                Ok(0) => return Ok(got),
                Ok(n) => got.extend_from_slice(&chunk[..n]),
                Err(e) => return Err(e),
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("the server kept a stalled connection open for {limit:?}"))
}

fn request_head(addr: SocketAddr, extra: &str) -> String {
    format!(
        "POST /hooks/bizmessage HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json;charset=UTF-8\r\n{extra}\r\n"
    )
}

/// Sends `body` chunked (in about `pieces` chunks) without a Content-Length.
async fn post_chunked(addr: SocketAddr, body: &[u8], pieces: usize) -> RawResponse {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let mut req =
        request_head(addr, "Transfer-Encoding: chunked\r\nConnection: close\r\n").into_bytes();
    let size = body.len().div_ceil(pieces.max(1)).max(1);
    for (i, piece) in body.chunks(size).enumerate() {
        // A chunk extension on every other chunk: legal, and must be ignored.
        let ext = if i % 2 == 1 { ";name=value" } else { "" };
        req.extend_from_slice(format!("{:x}{ext}\r\n", piece.len()).as_bytes());
        req.extend_from_slice(piece);
        req.extend_from_slice(b"\r\n");
    }
    req.extend_from_slice(b"0\r\n\r\n");
    stream.write_all(&req).await.unwrap();
    read_response(&mut stream).await
}

// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn malformed_bodies_are_400_and_never_echoed() {
    let slack = FakeChat::start().await;
    let mut app = TestApp::spawn(&slack_config(&slack, "")).await;
    let bad: Vec<(&str, String)> = vec![
        (
            "truncated",
            format!(r#"{{"hooksId":"{MARK}","hooks":[{{"hookId":"{MARK}","resultCode":"30"#),
        ),
        ("truncated in a string", format!(r#"{{"hooks":["{MARK}"#)),
        ("array", format!(r#"[{{"hooks":[{{"hookId":"{MARK}"}}]}}]"#)),
        ("string", format!(r#""{MARK}""#)),
        ("number", "1055550000".into()),
        ("null", "null".into()),
        (
            "hooks is an object",
            format!(r#"{{"hooks":{{"hookId":"{MARK}"}}}}"#),
        ),
        ("hooks is a string", format!(r#"{{"hooks":"{MARK}"}}"#)),
        ("hooks is a number", r#"{"hooks":1055550000}"#.into()),
        (
            "hooks is null",
            format!(r#"{{"hooksId":"{MARK}","hooks":null}}"#),
        ),
        ("hooks is true", r#"{"hooks":true}"#.into()),
        ("no hooks", format!(r#"{{"hooksId":"{MARK}"}}"#)),
        ("empty object", "{}".into()),
        ("empty body", String::new()),
        ("whitespace", " \r\n\t ".into()),
        ("trailing garbage", format!(r#"{{"hooks":[]}} {MARK}"#)),
        ("duplicate hooks", r#"{"hooks":[],"hooks":[]}"#.into()),
        ("byte order mark", "\u{feff}{\"hooks\":[]}".into()),
        ("garbage", format!("hooks={MARK}")),
        ("single quotes", format!("{{'hooks':['{MARK}']}}")),
    ];
    for (what, body) in bad {
        let got = post_raw(&app, body.clone(), Some("application/json"), &[]).await;
        let v = assert_error(&got, 400, &[MARK, "1055550000"]);
        assert_eq!(v["error"], "bad request", "{what}: {v}");
        if body.trim().len() > 3 {
            assert!(!got.1.contains(body.trim()), "{what}: body echoed: {v}");
        }
    }
    // Nothing was stored: the same marker ids are fresh afterwards.
    assert_counts(
        &post_raw(
            &app,
            envelope(&[failure(MARK, "3019")]),
            Some("application/json"),
            &[],
        )
        .await,
        counts(1, 0, 0),
    );
    assert_relayed_once(&slack, &ids(&[MARK])).await;
    assert_healthy(&app).await;
    app.stop().await;
}

#[tokio::test]
async fn invalid_utf8_is_400() {
    let slack = FakeChat::start().await;
    let mut app = TestApp::spawn(&slack_config(&slack, "")).await;
    let mut body = br#"{"hooks":[{"hookId":"utf-"#.to_vec();
    body.extend_from_slice(&[0xff, 0xfe, 0xc3]);
    body.extend_from_slice(br#"","kakaoMessageType":"ALIMTALK_NORMAL","resultCode":"3019"}]}"#);
    let got = post_raw(&app, body, Some("application/json"), &[]).await;
    let v = assert_error(&got, 400, &["utf-"]);
    assert!(v["detail"].as_str().unwrap().contains("UTF-8"), "{v}");
    // A lone surrogate escape is valid UTF-8 on the wire but no string: that hookId is kept
    // as the JSON text received, and the hook relayed.
    let hooks = format!(
        r#"{},{{"hookId":"utf-\ud800","kakaoMessageType":"ALIMTALK_NORMAL","resultCode":"3019"}}"#,
        failure("utf-ok", "3019")
    );
    assert_counts(
        &post_raw(&app, raw_envelope(&hooks), Some("application/json"), &[]).await,
        counts(2, 0, 0),
    );
    let got = slack.wait_accepted(2, Duration::from_secs(15)).await;
    assert_eq!(per_hook(&got, &ids(&["utf-ok"]))["utf-ok"], 1);
    assert!(got.iter().any(|r| r.body.contains("ud800")), "{got:?}");
    app.stop().await;
}

#[tokio::test]
async fn hooks_of_wrong_types_are_kept_with_their_values_as_text() {
    let slack = FakeChat::start().await;
    let mut app = TestApp::spawn(&slack_config(&slack, "")).await;
    let mut num_code = failure("wt-num-code", "x");
    num_code["resultCode"] = json!(3019);
    num_code["recipientSeq"] = json!("7");
    num_code["requestId"] = json!(20261128);
    let mut num_id = failure("x", "3019");
    num_id["hookId"] = json!(424242);
    let mut bad_links = failure("wt-links", "3019");
    bad_links["_links"] = json!("not an object");
    let mut bad_seq = failure("wt-bad-seq", "3019");
    bad_seq["recipientSeq"] = json!("abc");
    let mut float_seq = failure("wt-float-seq", "3019");
    float_seq["recipientSeq"] = json!(1.5);
    let mut bad_channel = failure("wt-bad-channel", "3019");
    bad_channel["isAddedChannel"] = json!("maybe");
    let mut obj_date = failure("wt-obj-date", "3019");
    obj_date["requestDate"] = json!({"y": 2026});
    let mut bool_code = failure("wt-bool-code", "3019");
    bool_code["resultCode"] = json!(true);
    let mut arr_id = failure("x", "3019");
    arr_id["hookId"] = json!(["wt-arr-id"]);
    let bad_comments = json!({
        "hookId": "wt-bad-comments", "senderKey": "k", "templateCode": "T1",
        "status": "TSC04", "comments": "x"
    });
    let hooks = vec![
        failure("wt-ok", "3019"),
        num_code,
        num_id,
        bad_links,
        bad_seq,
        float_seq,
        bad_channel,
        obj_date,
        bool_code,
        arr_id,
        bad_comments,
        json!("a string"),
        json!(42),
        json!([1, 2]),
        json!(null),
        json!(true),
    ];
    // Only the elements that are not objects are rejected; a field of an unexpected type is
    // kept as text (the template hook, not a failure, matches no route).
    assert_counts(&post(&app, envelope(&hooks)).await, counts(11, 0, 5));
    slack.wait_accepted(10, Duration::from_secs(15)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let got = slack.accepted();
    assert_eq!(got.len(), 10);
    let want = ids(&[
        "wt-ok",
        "wt-num-code",
        "424242",
        "wt-links",
        "wt-bad-seq",
        "wt-float-seq",
        "wt-bad-channel",
        "wt-obj-date",
        "wt-bool-code",
    ]);
    let per = per_hook(&got, &want);
    assert!(per.values().all(|n| *n == 1), "each hook once: {per:?}");
    assert!(
        got.iter().any(|r| r.body.contains("wt-arr-id")),
        "an array hookId is relayed as its JSON text"
    );
    let seq = got
        .iter()
        .find(|r| r.body.contains("`wt-bad-seq`"))
        .unwrap();
    assert!(
        seq.body.contains("abc"),
        "the received text is shown: {}",
        seq.body
    );
    let num = got
        .iter()
        .find(|r| r.body.contains("`wt-num-code`"))
        .unwrap();
    assert!(
        num.body.contains("3019"),
        "a numeric resultCode is read as a string: {}",
        num.body
    );

    // Hostile text in otherwise valid hooks: relayed, as valid JSON, without breaking out.
    let nasty = [
        "wt-\"quote\"",
        "wt-back\\slash",
        "wt-new\nline",
        "wt-<!channel>",
        "wt-nul\u{0}",
        "wt-한글-🚀",
        "wt-`tick`",
    ];
    let hooks: Vec<Value> = nasty.iter().map(|id| failure(id, "3019")).collect();
    assert_counts(&post(&app, envelope(&hooks)).await, counts(7, 0, 0));
    slack
        .wait_accepted(10 + nasty.len(), Duration::from_secs(15))
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let got = slack.accepted();
    assert_eq!(got.len(), 10 + nasty.len());
    for r in &got[10..] {
        let v = r.json();
        assert!(v["blocks"].is_array(), "{v}");
        assert!(
            !r.body.contains("<!channel>"),
            "mention not escaped: {}",
            r.body
        );
    }
    assert_healthy(&app).await;
    app.stop().await;
}

#[tokio::test]
async fn ten_thousand_levels_of_nesting_do_not_crash_the_server() {
    const DEPTH: usize = 10_000;
    let slack = FakeChat::start().await;
    let mut app = TestApp::spawn(&slack_config(&slack, "")).await;
    let arrays = format!("{}{}", "[".repeat(DEPTH), "]".repeat(DEPTH));
    let objects = format!("{}1{}", r#"{"a":"#.repeat(DEPTH), "}".repeat(DEPTH));
    let post = |body: String| post_raw(&app, body, Some("application/json"), &[]);

    // As the whole body.
    assert_error(&post(arrays.clone()).await, 400, &[]);
    assert_error(&post(objects.clone()).await, 400, &[]);
    assert_error(&post("[".repeat(DEPTH)).await, 400, &[]);
    assert_error(&post("{\"a\":".repeat(DEPTH)).await, 400, &[]);
    // `hooks` itself nested: one element, not an object.
    assert_counts(
        &post(format!(r#"{{"hooks":{arrays}}}"#)).await,
        counts(0, 0, 1),
    );
    // Deep envelope fields next to a valid hook: ignored.
    assert_counts(
        &post(format!(
            r#"{{"hooksId":{arrays},"extra":{objects},"hooks":[{}]}}"#,
            failure("deep-envelope", "3019")
        ))
        .await,
        counts(1, 0, 0),
    );

    // Inside hook fields.
    let in_ignored_field = format!(
        r#"{{"hookId":"deep-ignored","kakaoMessageType":"ALIMTALK_NORMAL","resultCode":"3019","extra":{arrays},"more":{objects}}}"#
    );
    let in_hook_id = format!(r#"{{"hookId":{arrays},"kakaoMessageType":"ALIMTALK_NORMAL"}}"#);
    let in_unknown = format!(r#"{{"hookId":"deep-unknown","payload":{objects}}}"#);
    let in_comments = format!(
        r#"{{"hookId":"deep-comments","templateCode":"T","status":"TSC04","comments":{arrays}}}"#
    );
    let in_links = format!(
        r#"{{"hookId":"deep-links","kakaoMessageType":"ALIMTALK_NORMAL","resultCode":"3019","_links":{arrays}}}"#
    );
    let in_seq = format!(
        r#"{{"hookId":"deep-seq","kakaoMessageType":"ALIMTALK_NORMAL","recipientSeq":{objects}}}"#
    );
    let hooks = [
        failure("deep-ok", "3019").to_string(),
        in_ignored_field,
        in_hook_id,
        in_unknown,
        in_comments,
        in_links,
        in_seq,
        arrays.clone(),
    ]
    .join(",");
    // Deep values in known fields are kept as (clipped) text; only the unknown-shape hook too
    // deep to keep whole and the bare array are rejected. The template hook matches no route.
    assert_counts(&post(raw_envelope(&hooks)).await, counts(6, 0, 2));
    slack.wait_accepted(6, Duration::from_secs(15)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let got = slack.accepted();
    assert_eq!(got.len(), 6);
    let per = per_hook(
        &got,
        &ids(&[
            "deep-envelope",
            "deep-ok",
            "deep-ignored",
            "deep-links",
            "deep-seq",
        ]),
    );
    assert!(per.values().all(|n| *n == 1), "each hook once: {per:?}");
    assert!(
        got.iter().any(|r| r.body.contains("[[[[")),
        "the deep hookId"
    );
    assert_healthy(&app).await;
    app.stop().await;
}

#[tokio::test]
async fn a_hundred_thousand_hooks_in_one_post() {
    const N: usize = 100_000;
    let slack = FakeChat::start().await;
    // A commit deadline the size of the work: this is about correctness, not speed.
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let store = format!(
        "[store]\npath = \"{}\"\nsync = \"normal\"\ncommit_timeout = \"60s\"\n",
        dir.path().join("bizrelay.db").display()
    );
    let mut app = TestApp::spawn_in(dir, &slack_config(&slack, &store), HashMap::new()).await;

    // Numbers, with a valid hook at each end.
    let mut hooks = failure("big-first", "3019").to_string();
    hooks.push_str(&",1".repeat(N - 2));
    hooks.push(',');
    hooks.push_str(&failure("big-last", "3019").to_string());
    let body = raw_envelope(&hooks);
    assert!(body.len() < 1024 * 1024, "{} bytes", body.len());
    let got = post_raw(&app, body, Some("application/json"), &[]).await;
    assert_counts(&got, counts(2, 0, N as u64 - 2));

    // Small objects: identical ones share a content key, so one is new and the rest are
    // duplicates; each `{"n":i}` is distinct.
    let mut hooks = vec!["{}"; N / 2].join(",");
    for i in 0..N / 2 {
        hooks.push_str(&format!(",{{\"n\":{i}}}"));
    }
    let body = raw_envelope(&hooks);
    assert!(body.len() < 1024 * 1024, "{} bytes", body.len());
    let got = post_raw(&app, body, Some("application/json"), &[]).await;
    assert_counts(&got, counts(1 + N as u64 / 2, N as u64 / 2 - 1, 0));

    assert_relayed_once(&slack, &ids(&["big-first", "big-last"])).await;
    assert_healthy(&app).await;
    app.stop().await;
}

/// `server.max_body_bytes` for the size-limit tests.
const MAX: usize = 8192;

/// The app with a failures route to a fake Slack and `max_body_bytes = MAX`.
async fn spawn_with_small_bodies() -> (FakeChat, TestApp) {
    let slack = FakeChat::start().await;
    let config = slack_config(
        &slack,
        &format!("[server]\nlisten = \"127.0.0.1:0\"\nmax_body_bytes = {MAX}\n"),
    );
    let app = TestApp::spawn(&config).await;
    (slack, app)
}

#[tokio::test]
async fn bodies_at_and_over_max_body_bytes() {
    let (slack, mut app) = spawn_with_small_bodies().await;
    // A valid body padded with an ignored envelope field to exactly `len` bytes.
    let padded = |id: &str, len: usize| {
        let base = format!(
            r#"{{"hooksId":"size","pad":"","hooks":[{}]}}"#,
            failure(id, "3019")
        );
        let body = base.replace(
            r#""pad":"""#,
            &format!(r#""pad":"{}""#, "x".repeat(len - base.len())),
        );
        assert_eq!(body.len(), len);
        body
    };
    let post = |body: String| post_raw(&app, body, Some("application/json"), &[]);
    assert_counts(&post(padded("size-at", MAX)).await, counts(1, 0, 0));
    let v = assert_error(&post(padded("size-over", MAX + 1)).await, 413, &["xxxx"]);
    assert_eq!(v["error"], "payload too large");
    assert_error(&post(padded("size-far-over", 10 * MAX)).await, 413, &[]);

    // The same without Content-Length: the limit holds while reading.
    let r = post_chunked(app.addr, padded("size-chunked-at", MAX).as_bytes(), 7).await;
    assert_counts(&r.text(), counts(1, 0, 0));
    let r = post_chunked(app.addr, padded("size-chunked-over", MAX + 1).as_bytes(), 7).await;
    assert_error(&r.text(), 413, &["xxxx"]);

    // `Expect: 100-continue` with a declared size over the limit: 413 before any body is sent;
    // within the limit: 100 Continue, then the answer.
    let mut stream = TcpStream::connect(app.addr).await.unwrap();
    let head = request_head(
        app.addr,
        &format!("Content-Length: {}\r\nExpect: 100-continue\r\n", 10 * MAX),
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    assert_error(&read_response(&mut stream).await.text(), 413, &[]);
    let body = padded("size-expect", MAX);
    let mut stream = TcpStream::connect(app.addr).await.unwrap();
    let head = request_head(
        app.addr,
        &format!("Content-Length: {}\r\nExpect: 100-continue\r\n", body.len()),
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    assert_eq!(read_response(&mut stream).await.status, 100);
    stream.write_all(body.as_bytes()).await.unwrap();
    assert_counts(&read_response(&mut stream).await.text(), counts(1, 0, 0));

    assert_relayed_once(&slack, &ids(&["size-at", "size-chunked-at", "size-expect"])).await;
    assert_healthy(&app).await;
    app.stop().await;
}

#[tokio::test]
async fn signatures_must_match_exactly() {
    const SIG: &str = "s3cr3t-Sig-2026";
    let slack = FakeChat::start().await;
    let config = slack_config(&slack, &format!("[ingest]\nsignatures = [\"{SIG}\"]\n"));
    let mut app = TestApp::spawn(&config).await;
    let body = |id: &str| envelope(&[failure(id, "3019")]);
    let post = |id: &'static str, sig: Option<&'static str>| {
        let headers: Vec<(&str, &str)> = sig
            .map(|s| vec![("x-toast-webhook-signature", s)])
            .unwrap_or_default();
        let body = body(id);
        let app = &app;
        async move { post_raw(app, body, Some("application/json"), &headers).await }
    };
    let almost = "s3cr3t-Sig-2027";
    assert_eq!(almost.len(), SIG.len());
    let refused = [
        ("sig-missing", None),
        ("sig-empty", Some("")),
        ("sig-wrong", Some("wrong")),
        ("sig-almost", Some(almost)),
        ("sig-prefix", Some("s3cr3t-Sig-202")),
        ("sig-longer", Some("s3cr3t-Sig-20266")),
        ("sig-case", Some("S3CR3T-SIG-2026")),
    ];
    for (id, sig) in refused {
        let got = post(id, sig).await;
        let v = assert_error(&got, 401, &[SIG, "s3cr3t", id]);
        assert_eq!(v["error"], "unauthorized");
    }
    // Non-UTF-8 bytes in the header (legal obs-text on the wire).
    let mut stream = TcpStream::connect(app.addr).await.unwrap();
    let b = body("sig-binary");
    let mut req = request_head(
        app.addr,
        &format!("Content-Length: {}\r\nConnection: close\r\n", b.len()),
    )
    .into_bytes();
    let at = req.len() - 2;
    req.splice(
        at..at,
        b"X-Toast-Webhook-Signature: s3cr3t-\xff\xfe-2026\r\n"
            .iter()
            .copied(),
    );
    req.extend_from_slice(b.as_bytes());
    stream.write_all(&req).await.unwrap();
    assert_error(&read_response(&mut stream).await.text(), 401, &[SIG]);

    assert_counts(&post("sig-right", Some(SIG)).await, counts(1, 0, 0));
    assert_relayed_once(&slack, &ids(&["sig-right"])).await;
    // The refused posts stored nothing: their hooks are new when signed.
    let again: Vec<Value> = refused.iter().map(|(id, _)| failure(id, "3019")).collect();
    assert_counts(
        &post_raw(
            &app,
            envelope(&again),
            Some("application/json"),
            &[("x-toast-webhook-signature", SIG)],
        )
        .await,
        counts(refused.len() as u64, 0, 0),
    );
    app.stop().await;
}

#[tokio::test]
async fn content_types_and_methods() {
    let slack = FakeChat::start().await;
    let mut app = TestApp::spawn(&slack_config(&slack, "")).await;
    let body = |id: &str| envelope(&[failure(id, "3019")]);
    for (i, ct) in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "text/json",
        "application/jsonx",
    ]
    .iter()
    .enumerate()
    {
        let got = post_raw(&app, body(&format!("ct-refused-{i}")), Some(ct), &[]).await;
        let v = assert_error(&got, 415, &["ct-refused"]);
        assert_eq!(v["error"], "unsupported media type", "{ct}");
    }
    assert_counts(
        &post_raw(&app, body("ct-missing"), None, &[]).await,
        counts(1, 0, 0),
    );
    assert_counts(
        &post_raw(
            &app,
            body("ct-nhn"),
            Some("application/json;charset=UTF-8"),
            &[],
        )
        .await,
        counts(1, 0, 0),
    );
    assert_counts(
        &post_raw(
            &app,
            body("ct-upper"),
            Some("APPLICATION/JSON; charset=utf-8"),
            &[],
        )
        .await,
        counts(1, 0, 0),
    );
    // Wrong methods on the webhook path are JSON 405s.
    for method in [
        reqwest::Method::GET,
        reqwest::Method::PUT,
        reqwest::Method::DELETE,
    ] {
        let resp = app
            .http
            .request(method.clone(), app.url("/hooks/bizmessage"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 405, "{method}");
        assert!(resp.json::<Value>().await.unwrap()["error"].is_string());
    }
    assert_relayed_once(&slack, &ids(&["ct-missing", "ct-nhn", "ct-upper"])).await;
    app.stop().await;
}

#[tokio::test]
async fn chunked_bodies_without_content_length() {
    let slack = FakeChat::start().await;
    let mut app = TestApp::spawn(&slack_config(&slack, "")).await;
    let body = envelope(&[failure("chunk-1", "3019"), failure("chunk-2", "3016")]);
    let r = post_chunked(app.addr, body.as_bytes(), 9).await;
    assert_counts(&r.text(), counts(2, 0, 0));
    // One byte per chunk.
    let body = envelope(&[failure("chunk-3", "3019")]);
    let r = post_chunked(app.addr, body.as_bytes(), body.len()).await;
    assert_counts(&r.text(), counts(1, 0, 0));
    // A whole body in one chunk, and an empty chunked body.
    let r = post_chunked(
        app.addr,
        envelope(&[failure("chunk-1", "3019")]).as_bytes(),
        1,
    )
    .await;
    assert_counts(&r.text(), counts(0, 1, 0));
    let r = post_chunked(app.addr, b"", 1).await;
    assert_error(&r.text(), 400, &[]);
    // Malformed chunk framing: the body cannot be read.
    let mut stream = TcpStream::connect(app.addr).await.unwrap();
    let mut req = request_head(
        app.addr,
        "Transfer-Encoding: chunked\r\nConnection: close\r\n",
    )
    .into_bytes();
    req.extend_from_slice(b"zz\r\n{\"hooks\":[]}\r\n0\r\n\r\n");
    stream.write_all(&req).await.unwrap();
    let mut got = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut got))
        .await
        .expect("no answer to bad chunk framing within 5 s");
    let r = parse_response(&got, true)
        .unwrap_or_else(|| panic!("no answer: {:?}", String::from_utf8_lossy(&got)));
    assert_error(&r.text(), 400, &["hooks"]);
    assert_relayed_once(&slack, &ids(&["chunk-1", "chunk-2", "chunk-3"])).await;
    assert_healthy(&app).await;
    app.stop().await;
}

const SLOW_SERVER: &str = "[server]\nlisten = \"127.0.0.1:0\"\nheader_read_timeout = \"1s\"\nbody_read_timeout = \"1s\"\n";

#[tokio::test]
async fn slow_headers_are_cut_off_at_the_header_timeout() {
    let slack = FakeChat::start().await;
    let mut app = TestApp::spawn(&slack_config(&slack, SLOW_SERVER)).await;
    let stream = TcpStream::connect(app.addr).await.unwrap();
    let started = Instant::now();
    let (mut rd, mut wr) = stream.into_split();
    let head = request_head(app.addr, "Content-Length: 13\r\n") + r#"{"hooks":[]}"#;
    // One byte every 100 ms: the whole head would take ~12 s.
    let writer = tokio::spawn(async move {
        for b in head.into_bytes() {
            if wr.write_all(&[b]).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let got = wait_for_close(&mut rd, Duration::from_secs(5)).await;
    let took = started.elapsed();
    writer.abort();
    if let Ok(bytes) = &got {
        assert!(
            bytes.is_empty() || bytes.starts_with(b"HTTP/1.1 408"),
            "{:?}",
            String::from_utf8_lossy(bytes)
        );
    }
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(3),
        "closed after {took:?}"
    );

    // A connection that sends nothing at all is closed too.
    let mut silent = TcpStream::connect(app.addr).await.unwrap();
    let started = Instant::now();
    let got = wait_for_close(&mut silent, Duration::from_secs(5)).await;
    let took = started.elapsed();
    assert!(got.is_err() || got.as_ref().unwrap().is_empty(), "{got:?}");
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(3),
        "closed after {took:?}"
    );
    assert_healthy(&app).await;
    app.stop().await;
}

#[tokio::test]
async fn stalled_bodies_are_answered_408() {
    let slack = FakeChat::start().await;
    let mut app = TestApp::spawn(&slack_config(&slack, SLOW_SERVER)).await;
    let body = envelope(&[failure("stall-1", "3019")]);

    // (1) Content-Length 1000, part of the body, then nothing.
    let mut stream = TcpStream::connect(app.addr).await.unwrap();
    let mut req = request_head(app.addr, "Content-Length: 1000\r\n").into_bytes();
    req.extend_from_slice(&body.as_bytes()[..100]);
    stream.write_all(&req).await.unwrap();
    let started = Instant::now();
    let r = read_response(&mut stream).await;
    let took = started.elapsed();
    assert_error(&r.text(), 408, &["stall-1"]);
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(3),
        "answered after {took:?}"
    );
    let rest = wait_for_close(&mut stream, Duration::from_secs(3)).await;
    assert!(
        rest.as_ref().map_or(true, |b| b.is_empty()),
        "closed after the 408: {rest:?}"
    );

    // (2) A body trickled one byte every 50 ms: the timeout is for the whole body.
    let stream = TcpStream::connect(app.addr).await.unwrap();
    let (mut rd, mut wr) = stream.into_split();
    let head = request_head(app.addr, &format!("Content-Length: {}\r\n", body.len()));
    wr.write_all(head.as_bytes()).await.unwrap();
    let trickle = body.clone().into_bytes();
    let started = Instant::now();
    let writer = tokio::spawn(async move {
        for b in trickle {
            if wr.write_all(&[b]).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    let got = wait_for_close(&mut rd, Duration::from_secs(5)).await;
    let took = started.elapsed();
    writer.abort();
    let bytes = got.unwrap_or_default();
    let r = parse_response(&bytes, true)
        .unwrap_or_else(|| panic!("no 408: {:?}", String::from_utf8_lossy(&bytes)));
    assert_error(&r.text(), 408, &[]);
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(3),
        "answered after {took:?}"
    );

    // (3) Chunked, one chunk then nothing.
    let mut stream = TcpStream::connect(app.addr).await.unwrap();
    let mut req = request_head(app.addr, "Transfer-Encoding: chunked\r\n").into_bytes();
    req.extend_from_slice(format!("a\r\n{}\r\n", &body[..10]).as_bytes());
    stream.write_all(&req).await.unwrap();
    let started = Instant::now();
    let r = read_response(&mut stream).await;
    let took = started.elapsed();
    assert_error(&r.text(), 408, &[]);
    assert!(took < Duration::from_secs(3), "answered after {took:?}");

    // None of it was stored: the hook is new now.
    assert_counts(&post(&app, body).await, counts(1, 0, 0));
    assert_relayed_once(&slack, &ids(&["stall-1"])).await;
    app.stop().await;
}

#[tokio::test]
async fn idle_keep_alive_connections_are_closed() {
    let slack = FakeChat::start().await;
    let mut app = TestApp::spawn(&slack_config(&slack, SLOW_SERVER)).await;
    let mut stream = TcpStream::connect(app.addr).await.unwrap();
    // Two requests on one connection work (keep-alive is on)...
    for id in ["idle-1", "idle-2"] {
        let body = envelope(&[failure(id, "3019")]);
        let mut req =
            request_head(app.addr, &format!("Content-Length: {}\r\n", body.len())).into_bytes();
        req.extend_from_slice(body.as_bytes());
        stream.write_all(&req).await.unwrap();
        let r = read_response(&mut stream).await;
        assert_counts(&r.text(), counts(1, 0, 0));
    }
    // ...then, silent, it is closed after the header timeout.
    let started = Instant::now();
    let got = wait_for_close(&mut stream, Duration::from_secs(5)).await;
    let took = started.elapsed();
    assert!(got.is_err() || got.as_ref().unwrap().is_empty(), "{got:?}");
    assert!(
        took >= Duration::from_millis(500) && took < Duration::from_secs(3),
        "closed after {took:?}"
    );
    assert_relayed_once(&slack, &ids(&["idle-1", "idle-2"])).await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_overlapping_posts_relay_each_hook_once() {
    const CLIENTS: usize = 64;
    const ROUNDS: usize = 3;
    const SHARED: usize = 20;
    const UNIQUE: usize = 2;
    let slack = FakeChat::start().await;
    let mut app = TestApp::spawn(&slack_config(&slack, "")).await;
    let shared: Vec<String> = (0..SHARED).map(|i| format!("con-shared-{i}")).collect();
    let url = app.url("/hooks/bizmessage");
    let barrier = Arc::new(tokio::sync::Barrier::new(CLIENTS));
    let mut tasks = Vec::new();
    for c in 0..CLIENTS {
        let (http, url, barrier, shared) = (
            app.http.clone(),
            url.clone(),
            Arc::clone(&barrier),
            shared.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut answers = Vec::new();
            for round in 0..ROUNDS {
                let mut ids = shared.clone();
                ids.rotate_left((c + round) % SHARED);
                if c % 2 == 1 {
                    ids.reverse();
                }
                for u in 0..UNIQUE {
                    ids.insert((c + u * 7) % ids.len(), format!("con-u-{round}-{c}-{u}"));
                }
                let hooks: Vec<Value> = ids.iter().map(|id| failure(id, "3019")).collect();
                let body = envelope(&hooks);
                barrier.wait().await;
                let resp = http
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await
                    .unwrap();
                let status = resp.status().as_u16();
                let text = resp.text().await.unwrap();
                assert_eq!(status, 200, "client {c} round {round}: {text}");
                answers.push(serde_json::from_str::<Value>(&text).unwrap());
            }
            answers
        }));
    }
    let mut answers = Vec::new();
    for t in tasks {
        answers.extend(t.await.unwrap());
    }
    let sum = |k: &str| answers.iter().map(|a| a[k].as_u64().unwrap()).sum::<u64>();
    let distinct = SHARED + ROUNDS * CLIENTS * UNIQUE;
    let sent = ROUNDS * CLIENTS * (SHARED + UNIQUE);
    assert_eq!(sum("rejected"), 0);
    assert_eq!(
        sum("accepted"),
        distinct as u64,
        "each distinct hook accepted once"
    );
    assert_eq!(sum("accepted") + sum("duplicates"), sent as u64);

    let mut all = shared.clone();
    for round in 0..ROUNDS {
        for c in 0..CLIENTS {
            for u in 0..UNIQUE {
                all.push(format!("con-u-{round}-{c}-{u}"));
            }
        }
    }
    assert_eq!(all.len(), distinct);
    slack.wait_accepted(distinct, Duration::from_secs(20)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let got = slack.accepted();
    let per = per_hook(&got, &all);
    let wrong: Vec<_> = per.iter().filter(|(_, n)| **n != 1).collect();
    assert!(wrong.is_empty(), "not relayed exactly once: {wrong:?}");
    assert_eq!(got.len(), distinct);
    assert_healthy(&app).await;
    app.stop().await;
}

#[tokio::test]
async fn an_over_limit_body_cannot_smuggle_a_second_request() {
    let (slack, mut app) = spawn_with_small_bodies().await;
    // The body (refused unread for its declared size) holds a complete second request.
    let inner_body = envelope(&[failure("smuggled", "3019")]);
    let mut inner = request_head(
        app.addr,
        &format!("Content-Length: {}\r\n", inner_body.len()),
    );
    inner.push_str(&inner_body);
    let mut body = inner.into_bytes();
    body.resize(MAX + 1, b' ');
    let mut stream = TcpStream::connect(app.addr).await.unwrap();
    let mut req =
        request_head(app.addr, &format!("Content-Length: {}\r\n", body.len())).into_bytes();
    req.extend_from_slice(&body);
    stream.write_all(&req).await.unwrap();
    let r = read_response(&mut stream).await;
    assert_error(&r.text(), 413, &["smuggled"]);
    // Nothing else comes back on this connection: the refused body is not parsed as a request.
    let mut more = [0u8; 1024];
    match tokio::time::timeout(Duration::from_millis(1500), stream.read(&mut more)).await {
        Err(_) | Ok(Ok(0)) | Ok(Err(_)) => {}
        Ok(Ok(n)) => panic!("a second answer: {:?}", String::from_utf8_lossy(&more[..n])),
    }
    // A client that gives up mid-body (half-close) gets a 400, and nothing is stored.
    let body = envelope(&[failure("half", "3019")]);
    let mut stream = TcpStream::connect(app.addr).await.unwrap();
    let mut req =
        request_head(app.addr, &format!("Content-Length: {}\r\n", body.len())).into_bytes();
    req.extend_from_slice(&body.as_bytes()[..body.len() / 2]);
    stream.write_all(&req).await.unwrap();
    stream.shutdown().await.unwrap();
    let r = read_response(&mut stream).await;
    assert_error(&r.text(), 400, &["half"]);

    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(slack.count(), 0, "nothing relayed");
    // Both hooks are still new.
    assert_counts(
        &post(
            &app,
            envelope(&[failure("smuggled", "3019"), failure("half", "3019")]),
        )
        .await,
        counts(2, 0, 0),
    );
    assert_relayed_once(&slack, &ids(&["smuggled", "half"])).await;
    app.stop().await;
}

#[tokio::test]
async fn pipelined_requests_are_answered_in_order() {
    let slack = FakeChat::start().await;
    let mut app = TestApp::spawn(&slack_config(&slack, "")).await;
    let mut req = Vec::new();
    let bodies = [
        envelope(&[failure("pipe-1", "3019")]),
        "{\"hooks\":".to_string(),
        envelope(&[failure("pipe-1", "3019"), failure("pipe-2", "3019")]),
    ];
    for b in &bodies {
        req.extend_from_slice(
            request_head(app.addr, &format!("Content-Length: {}\r\n", b.len())).as_bytes(),
        );
        req.extend_from_slice(b.as_bytes());
    }
    let mut stream = TcpStream::connect(app.addr).await.unwrap();
    stream.write_all(&req).await.unwrap();
    assert_counts(&read_response(&mut stream).await.text(), counts(1, 0, 0));
    assert_error(&read_response(&mut stream).await.text(), 400, &[]);
    assert_counts(&read_response(&mut stream).await.text(), counts(1, 1, 0));
    assert_relayed_once(&slack, &ids(&["pipe-1", "pipe-2"])).await;
    app.stop().await;
}

/// Sends raw bytes and returns the status of the answer, if any came before the close.
async fn raw_status(addr: SocketAddr, bytes: &[u8]) -> Option<u16> {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    // The server may answer and close before it has read everything: ignore write errors.
    let _ = stream.write_all(bytes).await;
    let mut got = Vec::new();
    let mut chunk = [0u8; 4096];
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        while let Ok(n) = stream.read(&mut chunk).await {
            if n == 0 {
                break;
            }
            got.extend_from_slice(&chunk[..n]);
        }
    })
    .await;
    parse_response(&got, true).map(|r| r.status)
}

#[tokio::test]
async fn protocol_garbage_is_refused_by_the_http_layer() {
    let slack = FakeChat::start().await;
    let mut app = TestApp::spawn(&slack_config(&slack, "")).await;
    let addr = app.addr;
    let body = envelope(&[failure("proto", "3019")]);
    let with = |extra: String| {
        let mut r = request_head(addr, &extra).into_bytes();
        r.extend_from_slice(body.as_bytes());
        r
    };
    let many_headers: String = (0..200).map(|i| format!("X-Filler-{i}: {i}\r\n")).collect();
    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        (
            "garbage request line",
            b"\x00\x01\x02 garbage\r\n\r\n".to_vec(),
            400,
        ),
        (
            "bad Content-Length",
            with("Content-Length: abc\r\n".into()),
            400,
        ),
        (
            "overflowing Content-Length",
            with("Content-Length: 99999999999999999999999\r\n".into()),
            400,
        ),
        (
            "two different Content-Lengths",
            with(format!(
                "Content-Length: {}\r\nContent-Length: 5\r\n",
                body.len()
            )),
            400,
        ),
        (
            "200 headers",
            with(format!("{many_headers}Content-Length: {}\r\n", body.len())),
            431,
        ),
        (
            "a 600 KB header",
            with(format!(
                "X-Big: {}\r\nContent-Length: {}\r\n",
                "a".repeat(600 * 1024),
                body.len()
            )),
            431,
        ),
    ];
    for (what, bytes, want) in cases {
        assert_eq!(raw_status(addr, &bytes).await, Some(want), "{what}");
        assert_healthy(&app).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(slack.count(), 0);
    app.stop().await;
}

/// Bytes the store takes on disk (database plus its WAL).
fn store_bytes(app: &TestApp) -> u64 {
    ["bizrelay.db", "bizrelay.db-wal"]
        .iter()
        .filter_map(|f| std::fs::metadata(app.dir.path().join(f)).ok())
        .map(|m| m.len())
        .sum()
}

#[tokio::test]
async fn a_long_hooks_id_is_not_copied_into_every_rejected_hook() {
    const JUNK: usize = 1000;
    let slack = FakeChat::start().await;
    let mut app = TestApp::spawn(&slack_config(&slack, "")).await;
    // A POST of one valid hook and a thousand junk elements, with a given hooksId; returns how
    // many bytes the store grew by.
    let grow = |id: &'static str, hooks_id: String| {
        let body = format!(
            r#"{{"hooksId":"{hooks_id}","hooks":[{}{}]}}"#,
            failure(id, "3019"),
            ",1".repeat(JUNK)
        );
        let app = &app;
        async move {
            tokio::time::sleep(Duration::from_millis(200)).await;
            let before = store_bytes(app);
            assert_counts(&post(app, body).await, counts(1, 0, JUNK as u64));
            tokio::time::sleep(Duration::from_millis(200)).await;
            store_bytes(app).saturating_sub(before)
        }
    };
    // Warm up (schema, first pages), then a control with a short hooksId.
    grow("amp-warm", "w".into()).await;
    let short = grow("amp-short", "short".into()).await;
    // 16 KB more on the wire must not cost more than 1 MiB more on disk (a clipped copy of
    // up to ~500 bytes per rejected hook would still pass).
    let long = grow("amp-long", "h".repeat(16 * 1024)).await;
    assert!(
        long < short + 1024 * 1024,
        "a hooksId 16 KB longer made the store grow by {long} bytes instead of {short}: \
         it is stored again with every rejected hook"
    );
    assert_relayed_once(&slack, &ids(&["amp-warm", "amp-short", "amp-long"])).await;
    app.stop().await;
}

/// Removes the logger's own ANSI colour sequences (`ESC [ ... m`).
fn strip_ansi(line: &str) -> String {
    let mut out = String::new();
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' && chars.peek() == Some(&'[') {
            for d in chars.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The real binary with text logs (the in-process app cannot show what reaches a log file).
struct TextLogProcess {
    child: std::process::Child,
    addr: SocketAddr,
    lines: Arc<std::sync::Mutex<Vec<String>>>,
}

impl TextLogProcess {
    fn start(config: &std::path::Path) -> TextLogProcess {
        use std::io::{BufRead, BufReader};
        let mut child = bizrelay(folder_of(config))
            .args(["serve", "--log-format", "text", "--config"])
            .arg(config)
            .env_remove("RUST_LOG")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let lines = Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = Arc::clone(&lines);
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            // Split on '\n' only, as a log shipper would.
            for line in BufReader::new(stderr).split(b'\n').map_while(Result::ok) {
                let line = String::from_utf8_lossy(&line).into_owned();
                let plain = strip_ansi(&line);
                if plain.contains("bizrelay is listening")
                    && let Some(addr) = plain
                        .split_whitespace()
                        .find_map(|w| w.strip_prefix("listen="))
                        .and_then(|a| a.parse::<SocketAddr>().ok())
                {
                    let _ = tx.send(addr);
                }
                sink.lock().unwrap().push(line);
            }
        });
        let addr = match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(a) => a,
            Err(_) => {
                let _ = child.kill();
                panic!("bizrelay did not start: {:?}", lines.lock().unwrap());
            }
        };
        TextLogProcess { child, addr, lines }
    }
}

impl Drop for TextLogProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn hostile_envelope_text_cannot_forge_log_lines() {
    let slack = FakeChat::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(&config, base_config(dir.path(), &slack_config(&slack, ""))).unwrap();
    let process = TextLogProcess::start(&config);
    let hooks_id =
        "log-1\n2026-11-28T00:00:00.000000Z ERROR FORGED-LINE \u{1b}[2J\u{1b}[31mINJECTED\r";
    let body = json!({
        "hooksId": hooks_id, "appKey": "k\nFORGED-APPKEY", "event": "E\u{1b}[31m",
        "hooks": [failure("log-ok", "3019"), 1],
    })
    .to_string();
    let resp = http_client()
        .post(format!("http://{}/hooks/bizmessage", process.addr))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.json::<Value>().await.unwrap(), counts(1, 0, 1));
    slack.wait_accepted(1, Duration::from_secs(10)).await;
    // Wait for the request's log line.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !process
        .lines
        .lock()
        .unwrap()
        .iter()
        .any(|l| l.contains("webhook received"))
    {
        assert!(Instant::now() < deadline, "no `webhook received` log line");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let lines = process.lines.lock().unwrap().clone();
    let forged: Vec<&String> = lines
        .iter()
        .filter(|l| strip_ansi(l).starts_with("2026-11-28T00:00:00") || l.starts_with("FORGED"))
        .collect();
    assert!(
        forged.is_empty(),
        "request text started its own log lines: {forged:#?}"
    );
    let raw_escapes: Vec<&String> = lines
        .iter()
        .filter(|l| l.contains("\u{1b}[31mINJECTED") || l.contains("\u{1b}[2J"))
        .collect();
    assert!(
        raw_escapes.is_empty(),
        "terminal escapes from the request reached the log: {raw_escapes:#?}"
    );
}

#[tokio::test]
async fn past_max_connections_new_ones_wait_in_the_backlog_until_one_closes() {
    let slack = FakeChat::start().await;
    let config = slack_config(
        &slack,
        "[server]\nlisten = \"127.0.0.1:0\"\nmax_connections = 2\nbacklog = 64\n",
    );
    let mut app = TestApp::spawn(&config).await;
    // Two connections hold both permits (they send nothing yet; the header timeout is 10 s).
    let held_1 = TcpStream::connect(app.addr).await.unwrap();
    let held_2 = TcpStream::connect(app.addr).await.unwrap();
    // A third connects (the kernel queues it) but is not served while both are held...
    let mut third = TcpStream::connect(app.addr).await.unwrap();
    third
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut first_byte = [0u8; 1];
    let early = tokio::time::timeout(Duration::from_millis(500), third.read(&mut first_byte)).await;
    assert!(early.is_err(), "served past the connection cap");
    // ...and is served as soon as one closes.
    drop(held_1);
    let answer = read_response(&mut third).await;
    assert_eq!(answer.status, 200);
    drop(held_2);
    app.stop().await;
}
