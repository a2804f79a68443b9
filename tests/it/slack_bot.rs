//! `slack_bot` destinations against a fake Slack Web API on a real port: one thread per
//! template review (root, in-place updates, replies, broadcast decisions), a deleted root, a
//! 429, bad credentials, two templates, hostile reviewer text, plain posts for message
//! results, and the thread state surviving a restart.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use warp::Filter;

use crate::common::*;

const TOKEN: &str = "xoxb-1234-5678-SECRETTOKEN";
const CHANNEL: &str = "C0123456789";

/// One Web API call the fake got.
#[derive(Debug, Clone)]
struct Call {
    method: String,
    body: Value,
    at: Instant,
}

#[derive(Default)]
struct SlackState {
    calls: Vec<Call>,
    /// Messages that exist (ts); updates of others answer `message_not_found`.
    messages: BTreeSet<String>,
    next_ts: u64,
    /// Answers forced for the next calls, in order: (status, body, Retry-After).
    script: VecDeque<Option<(u16, Value, Option<String>)>>,
}

/// A fake Slack Web API: checks the bearer token, answers `ts` values, records every call.
#[derive(Clone)]
struct FakeSlack {
    addr: std::net::SocketAddr,
    state: Arc<Mutex<SlackState>>,
}

impl FakeSlack {
    async fn start() -> FakeSlack {
        let state = Arc::new(Mutex::new(SlackState::default()));
        let s = Arc::clone(&state);
        let route = warp::post()
            .and(warp::path("api"))
            .and(warp::path::param::<String>())
            .and(warp::header::optional::<String>("authorization"))
            .and(warp::header::optional::<String>("content-type"))
            .and(warp::body::bytes())
            .map(
                move |method: String,
                      auth: Option<String>,
                      ct: Option<String>,
                      body: bytes::Bytes| {
                    let mut st = s.lock().unwrap();
                    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                    st.calls.push(Call {
                        method: method.clone(),
                        body: body.clone(),
                        at: Instant::now(),
                    });
                    let reply = |status: u16, v: Value, retry: Option<String>| {
                        let mut r = warp::http::Response::builder()
                            .status(status)
                            .header("content-type", "application/json");
                        if let Some(ra) = retry {
                            r = r.header("retry-after", ra);
                        }
                        r.body(v.to_string()).unwrap()
                    };
                    if let Some(Some((status, v, retry))) = st.script.pop_front() {
                        return reply(status, v, retry);
                    }
                    if auth.as_deref() != Some(&format!("Bearer {TOKEN}")) {
                        return reply(200, json!({"ok": false, "error": "invalid_auth"}), None);
                    }
                    if ct.as_deref() != Some("application/json; charset=utf-8") {
                        return reply(
                            200,
                            json!({"ok": false, "error": "invalid_arguments"}),
                            None,
                        );
                    }
                    if body["channel"] != CHANNEL {
                        return reply(
                            200,
                            json!({"ok": false, "error": "channel_not_found"}),
                            None,
                        );
                    }
                    match method.as_str() {
                        "chat.postMessage" => {
                            if let Some(parent) = body["thread_ts"].as_str()
                                && !st.messages.contains(parent)
                            {
                                return reply(
                                    200,
                                    json!({"ok": false, "error": "thread_not_found"}),
                                    None,
                                );
                            }
                            st.next_ts += 1;
                            let ts = format!("1795830000.{:06}", st.next_ts);
                            st.messages.insert(ts.clone());
                            reply(200, json!({"ok": true, "channel": CHANNEL, "ts": ts}), None)
                        }
                        "chat.update" => {
                            let ts = body["ts"].as_str().unwrap_or("").to_string();
                            if !st.messages.contains(&ts) {
                                return reply(
                                    200,
                                    json!({"ok": false, "error": "message_not_found"}),
                                    None,
                                );
                            }
                            reply(200, json!({"ok": true, "channel": CHANNEL, "ts": ts}), None)
                        }
                        _ => reply(200, json!({"ok": false, "error": "unknown_method"}), None),
                    }
                },
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(warp::serve(route).incoming(listener).run());
        FakeSlack { addr, state }
    }

    fn api_url(&self) -> String {
        format!("http://{}/api", self.addr)
    }

    fn calls(&self) -> Vec<Call> {
        self.state.lock().unwrap().calls.clone()
    }

    fn script(&self, status: u16, body: Value, retry_after: Option<&str>) {
        self.state.lock().unwrap().script.push_back(Some((
            status,
            body,
            retry_after.map(str::to_string),
        )));
    }

    /// The next call is answered as usual.
    fn pass(&self) {
        self.state.lock().unwrap().script.push_back(None);
    }

    /// Deletes a message (as a user deleting the root would).
    fn delete(&self, ts: &str) {
        self.state.lock().unwrap().messages.remove(ts);
    }

    async fn wait_calls(&self, n: usize) -> Vec<Call> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let calls = self.calls();
            if calls.len() >= n {
                return calls;
            }
            assert!(
                Instant::now() < deadline,
                "expected {n} Web API calls, got {}: {calls:#?}",
                calls.len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn config(slack: &FakeSlack, token: &str) -> String {
    format!(
        "[destinations.reviews]\ntype = \"slack_bot\"\ntoken = \"{token}\"\nchannel = \"{CHANNEL}\"\n\
         api_url = \"{}\"\nrate_per_second = 50\nburst = 10\n\n\
         [[routes]]\nname = \"templates\"\nto = [\"reviews\"]\n[routes.match]\nkind = \"template\"\n\n\
         [[routes]]\nname = \"results\"\nto = [\"reviews\"]\n[routes.match]\nkind = \"message_result\"\n",
        slack.api_url()
    )
}

fn comment(id: u64, status: &str, at: &str, content: &str) -> Value {
    json!({"id": id, "content": content, "userName": "카카오 검수자", "createdAt": at, "status": status,
           "attachment": [{"originalFileName": format!("guide-{id}.png"), "filePath": format!("https://example.invalid/att/{id}.png")}]})
}

fn template_hook(code: &str, status: &str, at: &str, comments: Vec<Value>) -> Value {
    json!({"hookId": format!("tpl-{}", rand_id()), "senderKey": "a1b2c3d4e5f60718293a4b5c6d7e8f9012345678",
           "templateCode": code, "kakaoTemplateCode": format!("KK_{code}"), "status": status,
           "comments": comments, "updateDate": at})
}

async fn post_event(app: &TestApp, hook: Value) {
    let (status, body) = app.post_json(envelope(&[hook])).await;
    assert_eq!(status, 200, "{body}");
}

/// The text of every block of a body, joined.
fn shown(body: &Value) -> String {
    let mut out = body["text"].as_str().unwrap_or("").to_string();
    for block in body["blocks"].as_array().into_iter().flatten() {
        out.push('\n');
        out.push_str(&block.to_string());
    }
    out
}

async fn dead_letters(app: &TestApp, n: usize) -> Vec<bizrelay::store::DeadLetter> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let dead = app
            .state()
            .store
            .dead_letters(Some("reviews"))
            .await
            .unwrap();
        if dead.len() >= n {
            return dead;
        }
        assert!(Instant::now() < deadline, "expected {n} dead letters");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_review_keeps_one_thread_from_request_to_rejection_across_a_restart() {
    let slack = FakeSlack::start().await;
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let cfg = config(&slack, TOKEN);
    let mut app = TestApp::spawn_in(Arc::clone(&dir), &cfg, HashMap::new()).await;
    let code = "ORDER_SHIPPED_V2";
    let inquiry = comment(1, "INQ", "2026-11-28 10:00:00", "변수 예시를 알려 주세요");
    let answer = comment(2, "REP", "2026-11-28 11:00:00", "예시: 주문번호 12345");
    let hostile = "<!channel> <@U0123ABCD> *bold* `code` ~strike~ \"quoted\" <http://evil|safe>";
    let rej1 = comment(3, "REJ", "2026-11-28 12:00:00", hostile);
    let rej2 = comment(4, "REJ", "2026-11-28 12:00:01", "두 번째 반려 사유");

    // TSC01: the root.
    post_event(
        &app,
        template_hook(code, "TSC01", "2026-11-28 09:00:00", vec![]),
    )
    .await;
    let calls = slack.wait_calls(1).await;
    assert_eq!(calls[0].method, "chat.postMessage");
    assert_eq!(calls[0].body["channel"], CHANNEL);
    assert!(calls[0].body.get("thread_ts").is_none());
    let root = "1795830000.000001";

    // TSC02 with an inquiry: the root updated, a reply with the status and the inquiry.
    post_event(
        &app,
        template_hook(code, "TSC02", "2026-11-28 10:00:00", vec![inquiry.clone()]),
    )
    .await;
    let calls = slack.wait_calls(3).await;
    assert_eq!(calls[1].method, "chat.update");
    assert_eq!(calls[1].body["ts"], root);
    assert!(
        shown(&calls[1].body).contains("Under review"),
        "{}",
        calls[1].body
    );
    assert_eq!(calls[2].method, "chat.postMessage");
    assert_eq!(calls[2].body["thread_ts"], root);
    assert!(calls[2].body.get("reply_broadcast").is_none());
    assert!(shown(&calls[2].body).contains("변수 예시를 알려 주세요"));

    // A restart between events keeps the thread (it is in the store, not in memory).
    app.stop().await;
    let mut app = TestApp::spawn_in(Arc::clone(&dir), &cfg, HashMap::new()).await;

    // The answer: the root updated again, a reply with only the new comment.
    post_event(
        &app,
        template_hook(
            code,
            "TSC02",
            "2026-11-28 11:00:00",
            vec![inquiry.clone(), answer.clone()],
        ),
    )
    .await;
    let calls = slack.wait_calls(5).await;
    assert_eq!(
        (calls[3].method.as_str(), &calls[3].body["ts"]),
        ("chat.update", &json!(root))
    );
    assert_eq!(calls[4].body["thread_ts"], root);
    let reply = shown(&calls[4].body);
    assert!(
        reply.contains("주문번호 12345") && !reply.contains("변수 예시를"),
        "{reply}"
    );

    // TSC04 with two comments: the root shows the rejection, a broadcast reply carries both.
    post_event(
        &app,
        template_hook(
            code,
            "TSC04",
            "2026-11-28 12:00:01",
            vec![inquiry, answer, rej1, rej2],
        ),
    )
    .await;
    let calls = slack.wait_calls(7).await;
    assert_eq!(calls[5].method, "chat.update");
    assert!(shown(&calls[5].body).contains("Rejected"));
    assert_eq!(calls[6].method, "chat.postMessage");
    assert_eq!(calls[6].body["thread_ts"], root);
    assert_eq!(calls[6].body["reply_broadcast"], true);
    let decision = shown(&calls[6].body);
    assert!(decision.contains("두 번째 반려 사유"), "{decision}");
    assert!(
        !decision.contains("주문번호 12345"),
        "an earlier comment repeated: {decision}"
    );
    // Hostile reviewer text is inert: no mention, no link, no formatting pair survives.
    for raw in [
        "<!channel>",
        "<@U0123ABCD>",
        "<http://evil|safe>",
        "*bold*",
        "`code`",
        "~strike~",
    ] {
        assert!(
            !decision.contains(raw),
            "{raw} reached Slack as is: {decision}"
        );
    }
    assert!(decision.contains("&lt;!channel&gt;"), "{decision}");

    // One root in all: every other post is a reply to it.
    let roots: Vec<&Call> = calls
        .iter()
        .filter(|c| c.method == "chat.postMessage" && c.body.get("thread_ts").is_none())
        .collect();
    assert_eq!(roots.len(), 1);
    // Each comment was shown exactly once across the replies.
    let replies: String = calls
        .iter()
        .filter(|c| c.body.get("thread_ts").is_some())
        .map(|c| shown(&c.body))
        .collect();
    for id in 1..=4 {
        assert_eq!(
            replies.matches(&format!("guide-{id}.png")).count(),
            1,
            "comment {id}"
        );
    }
    // Nothing more is sent, and the store knows the thread with its status.
    let threads = app.state().store.threads(Some("reviews")).await.unwrap();
    assert_eq!(threads.len(), 1);
    assert_eq!(
        (threads[0].root_ts.as_str(), threads[0].status.as_str()),
        (root, "TSC04")
    );
    assert_eq!(slack.calls().len(), 7);
    for c in slack.calls() {
        assert!(!c.body.to_string().contains(TOKEN));
    }
    app.stop().await;
}

#[tokio::test]
async fn a_deleted_root_gets_a_new_root_that_says_so() {
    let slack = FakeSlack::start().await;
    let mut app = TestApp::spawn(&config(&slack, TOKEN)).await;
    post_event(
        &app,
        template_hook("DELETED_ROOT", "TSC01", "2026-11-28 09:00:00", vec![]),
    )
    .await;
    let first = slack.wait_calls(1).await;
    let old = "1795830000.000001";
    assert_eq!(first[0].method, "chat.postMessage");
    slack.delete(old);
    post_event(
        &app,
        template_hook("DELETED_ROOT", "TSC03", "2026-11-28 10:00:00", vec![]),
    )
    .await;
    let calls = slack.wait_calls(4).await;
    assert_eq!(calls[1].method, "chat.update");
    assert_eq!(calls[2].method, "chat.postMessage");
    assert!(
        calls[2].body.get("thread_ts").is_none(),
        "a new root: {}",
        calls[2].body
    );
    assert!(
        shown(&calls[2].body).contains("was deleted"),
        "{}",
        calls[2].body
    );
    let new_root = "1795830000.000002";
    assert_eq!(calls[3].body["thread_ts"], new_root);
    assert_eq!(calls[3].body["reply_broadcast"], true);
    let threads = app.state().store.threads(Some("reviews")).await.unwrap();
    assert_eq!(threads[0].root_ts, new_root);
    app.stop().await;
}

#[tokio::test]
async fn a_429_pauses_the_destination_for_its_retry_after() {
    let slack = FakeSlack::start().await;
    let mut app = TestApp::spawn(&config(&slack, TOKEN)).await;
    slack.script(429, json!({"ok": false, "error": "ratelimited"}), Some("1"));
    post_event(
        &app,
        template_hook("RATE", "TSC01", "2026-11-28 09:00:00", vec![]),
    )
    .await;
    let calls = slack.wait_calls(2).await;
    let gap = calls[1].at - calls[0].at;
    assert!(gap >= Duration::from_millis(950), "retried after {gap:?}");
    assert_eq!(calls[1].method, "chat.postMessage");
    let deadline = Instant::now() + Duration::from_secs(10);
    while app
        .state()
        .store
        .threads(Some("reviews"))
        .await
        .unwrap()
        .is_empty()
    {
        assert!(Instant::now() < deadline, "the thread was never saved");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(dead_letters_now(&app).await.is_empty());
    app.stop().await;
}

async fn dead_letters_now(app: &TestApp) -> Vec<bizrelay::store::DeadLetter> {
    app.state()
        .store
        .dead_letters(Some("reviews"))
        .await
        .unwrap()
}

#[tokio::test]
async fn a_bad_token_is_a_dead_letter_with_the_reason_and_an_unhealthy_destination() {
    let slack = FakeSlack::start().await;
    let mut app = TestApp::spawn(&config(&slack, "xoxb-wrong")).await;
    post_event(
        &app,
        template_hook("BAD_TOKEN", "TSC01", "2026-11-28 09:00:00", vec![]),
    )
    .await;
    let dead = dead_letters(&app, 1).await;
    assert!(
        dead[0].reason.contains("invalid_auth"),
        "{}",
        dead[0].reason
    );
    assert!(dead[0].reason.contains("token"), "{}", dead[0].reason);
    assert!(!dead[0].reason.contains("xoxb-wrong"), "{}", dead[0].reason);
    assert_eq!(slack.calls().len(), 1, "not retried");
    let metrics = app.metrics().await;
    assert!(
        metrics.contains("bizrelay_destination_healthy{destination=\"reviews\"} 0"),
        "{metrics}"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_bot_outside_the_channel_is_a_dead_letter_saying_to_invite_it() {
    let slack = FakeSlack::start().await;
    let mut app = TestApp::spawn(&config(&slack, TOKEN)).await;
    slack.script(200, json!({"ok": false, "error": "not_in_channel"}), None);
    post_event(
        &app,
        template_hook("NO_MEMBER", "TSC01", "2026-11-28 09:00:00", vec![]),
    )
    .await;
    let dead = dead_letters(&app, 1).await;
    assert!(
        dead[0].reason.contains("not_in_channel"),
        "{}",
        dead[0].reason
    );
    assert!(dead[0].reason.contains("invite"), "{}", dead[0].reason);
    assert!(app.state().store.threads(None).await.unwrap().is_empty());
    app.stop().await;
}

#[tokio::test]
async fn two_templates_get_two_threads_and_results_are_plain_posts() {
    let slack = FakeSlack::start().await;
    let mut app = TestApp::spawn(&config(&slack, TOKEN)).await;
    post_event(
        &app,
        template_hook("FIRST", "TSC01", "2026-11-28 09:00:00", vec![]),
    )
    .await;
    slack.wait_calls(1).await;
    post_event(
        &app,
        template_hook("SECOND", "TSC01", "2026-11-28 09:00:00", vec![]),
    )
    .await;
    slack.wait_calls(2).await;
    post_event(
        &app,
        template_hook("FIRST", "TSC03", "2026-11-28 10:00:00", vec![]),
    )
    .await;
    post_event(&app, failure("result-1", "3018")).await;
    let calls = slack.wait_calls(5).await;
    assert!(
        calls[..2]
            .iter()
            .all(|c| c.method == "chat.postMessage" && c.body.get("thread_ts").is_none())
    );
    assert_eq!(
        calls[2].body["ts"], "1795830000.000001",
        "FIRST's root is updated"
    );
    assert_eq!(calls[3].body["thread_ts"], "1795830000.000001");
    let result = &calls[4];
    assert_eq!(result.method, "chat.postMessage");
    assert_eq!(result.body["channel"], CHANNEL);
    assert!(result.body.get("thread_ts").is_none() && result.body.get("ts").is_none());
    let threads = app.state().store.threads(Some("reviews")).await.unwrap();
    let codes: Vec<&str> = threads
        .iter()
        .map(|t| t.key.template_code.as_str())
        .collect();
    assert_eq!(codes, ["FIRST", "SECOND"]);
    assert_ne!(threads[0].root_ts, threads[1].root_ts);
    app.stop().await;
}

#[tokio::test]
async fn threads_are_listed_and_forgotten_from_the_cli_and_send_test_posts_a_root_and_a_reply() {
    let slack = FakeSlack::start().await;
    let mut app = TestApp::spawn(&config(&slack, TOKEN)).await;
    post_event(
        &app,
        template_hook("CLI_CODE", "TSC01", "2026-11-28 09:00:00", vec![]),
    )
    .await;
    slack.wait_calls(1).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while app.state().store.threads(None).await.unwrap().is_empty() {
        assert!(Instant::now() < deadline, "the thread was never saved");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let key = "reviews/a1b2c3d4e5f60718293a4b5c6d7e8f9012345678/CLI_CODE";
    let (code, stdout, stderr) = run_cli(&["threads", "list"], &app.config_path).await;
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.contains("1 thread "), "{stdout}");
    assert!(
        stdout.contains(key) && stdout.contains("1795830000.000001") && stdout.contains("TSC01"),
        "{stdout}"
    );
    let (code, stdout, _) = run_cli(
        &[
            "threads",
            "list",
            "--destination",
            "reviews",
            "--format",
            "json",
        ],
        &app.config_path,
    )
    .await;
    assert_eq!(code, Some(0));
    let list: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(list[0]["key"], key);
    assert_eq!(list[0]["status"], "TSC01");
    let (code, _, stderr) = run_cli(&["threads", "forget", "nonsense"], &app.config_path).await;
    assert_eq!(code, Some(2));
    assert!(
        stderr.contains("destination/senderKey/templateCode"),
        "{stderr}"
    );
    let (code, stdout, stderr) = run_cli(&["threads", "forget", key], &app.config_path).await;
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.contains("new root"), "{stdout}");
    let (code, _, _) = run_cli(&["threads", "forget", key], &app.config_path).await;
    assert_eq!(code, Some(1), "already forgotten");
    // The next event of the forgotten key starts a new root.
    post_event(
        &app,
        template_hook("CLI_CODE", "TSC02", "2026-11-28 10:00:00", vec![]),
    )
    .await;
    let calls = slack.wait_calls(2).await;
    assert_eq!(calls[1].method, "chat.postMessage");
    assert!(
        calls[1].body.get("thread_ts").is_none(),
        "{}",
        calls[1].body
    );
    app.stop().await;

    // send-test: a root, then a reply in its thread.
    let (code, stdout, stderr) = run_cli(
        &[
            "send-test",
            "--destination",
            "reviews",
            "--kind",
            "template",
        ],
        &app.config_path,
    )
    .await;
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(
        stdout.contains("root: HTTP 200") && stdout.contains("reply: HTTP 200"),
        "{stdout}"
    );
    let calls = slack.calls();
    let (root, reply) = (&calls[calls.len() - 2], &calls[calls.len() - 1]);
    assert!(root.body.get("thread_ts").is_none());
    assert_eq!(reply.body["thread_ts"], "1795830000.000003");
    assert!(!stdout.contains(TOKEN) && !stderr.contains(TOKEN));
}

#[tokio::test]
async fn a_retry_after_a_partial_success_posts_no_second_root() {
    let slack = FakeSlack::start().await;
    let mut app = TestApp::spawn(&config(&slack, TOKEN)).await;
    // The root goes through; the reply in its thread fails once.
    slack.pass();
    slack.script(500, json!({"ok": false}), None);
    let inquiry = comment(1, "INQ", "2026-11-28 10:00:00", "예시를 알려 주세요");
    post_event(
        &app,
        template_hook("PARTIAL", "TSC02", "2026-11-28 10:00:00", vec![inquiry]),
    )
    .await;
    let calls = slack.wait_calls(4).await;
    let methods: Vec<(&str, bool)> = calls
        .iter()
        .map(|c| (c.method.as_str(), c.body.get("thread_ts").is_some()))
        .collect();
    assert_eq!(
        methods,
        [
            ("chat.postMessage", false),
            ("chat.postMessage", true),
            ("chat.update", false),
            ("chat.postMessage", true)
        ],
        "the retry edits the root it posted and replies once more, no second root"
    );
    assert_eq!(calls[3].body["thread_ts"], "1795830000.000001");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let t = app.state().store.threads(None).await.unwrap();
        if t.first().is_some_and(|t| t.applied.is_some()) {
            assert_eq!(t[0].shown, vec!["1".to_string()]);
            break;
        }
        assert!(Instant::now() < deadline, "the reply was never recorded");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(slack.calls().len(), 4);
    app.stop().await;
}

#[tokio::test]
async fn the_real_binary_keeps_one_thread_with_the_token_from_the_environment() {
    let slack = FakeSlack::start().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    let cfg = config(&slack, "${SLACK_BOT_TOKEN}");
    std::fs::write(&path, base_config(dir.path(), &cfg)).unwrap();
    let mut process = Process::start(&path, &[("SLACK_BOT_TOKEN", TOKEN)]);
    let http = http_client();
    let c1 = comment(1, "REJ", "2026-11-28 12:00:00", "예시 누락");
    for (status, at, comments) in [
        ("TSC01", "2026-11-28 09:00:00", vec![]),
        ("TSC02", "2026-11-28 10:00:00", vec![]),
        ("TSC04", "2026-11-28 12:00:00", vec![c1]),
    ] {
        let n = slack.calls().len();
        let resp = process
            .post(
                &http,
                envelope(&[template_hook("BINARY", status, at, comments)]),
            )
            .await;
        assert_eq!(resp.status(), 200);
        slack.wait_calls(if n == 0 { 1 } else { n + 2 }).await;
    }
    let calls = slack.calls();
    let shape: Vec<(&str, Option<&str>, bool)> = calls
        .iter()
        .map(|c| {
            (
                c.method.as_str(),
                c.body["thread_ts"].as_str().or(c.body["ts"].as_str()),
                c.body["reply_broadcast"] == true,
            )
        })
        .collect();
    let root = Some("1795830000.000001");
    assert_eq!(
        shape,
        [
            ("chat.postMessage", None, false),
            ("chat.update", root, false),
            ("chat.postMessage", root, false),
            ("chat.update", root, false),
            ("chat.postMessage", root, true),
        ]
    );
    process.signal(nix::sys::signal::Signal::SIGTERM);
    process.wait(Duration::from_secs(20)).await;
    let log = process.log_text();
    assert!(!log.contains(TOKEN), "the token reached the log");
}
