//! The new destination types end to end: the app on port 0 posts to a fake receiver per type,
//! which records path, query, headers and body; each test asserts the exact headers and the
//! body's shape, with hostile reviewer text in the hook. The last test is issue 11's "done
//! when": one destination of each type in Korean passes `check` and gets a valid body.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Value, json};

use crate::common::*;

const WAIT: Duration = Duration::from_secs(15);

/// A reviewer comment written to set off every service's mentions, links and markup.
const HOSTILE: &str = "He said \"no\" @channel @everyone @here <users/all> <!channel> [@all](dooray://1/members/2) [safe](http://evil.invalid) **bold** 검수 의견";

fn hostile_template_hook() -> String {
    json!({
        "hooksId": format!("t-{}", rand_id()), "appKey": "Xk2abcDEF9tq", "event": "TEMPLATE_STATUS_UPDATE",
        "hooks": [{"hookId": format!("hostile-{}", rand_id()), "senderKey": "4f1c0a9e2b7d",
            "templateCode": "ORDER_SHIPPED_V2", "kakaoTemplateCode": "KA01TP2611280930", "status": "TSC04",
            "comments": [{"id": 1, "content": HOSTILE, "userName": "검수자 <@U1>", "createdAt": "2026-11-28 09:29:58", "status": "REJ"}],
            "updateDate": "2026-11-28 09:30:01"}]
    })
    .to_string()
}

const ROUTES: &str = r#"
[[routes]]
name = "templates"
to = ["d"]
[routes.match]
kind = "template"
"#;

/// Starts a fake and the app with one destination `d` of `kind`; posts the hostile template
/// hook; returns what the fake accepted.
async fn one_post(kind: &str, path: &str, settings: &str, reply: Reply) -> (Vec<Received>, String) {
    let fake = FakeChat::start_with(reply).await;
    let url = fake.url(path);
    let config = format!(
        "[destinations.d]\ntype = \"{kind}\"\nurl = \"{url}\"\nrate_per_second = 50\nburst = 10\n{settings}\n{ROUTES}"
    );
    let mut app = TestApp::spawn(&config).await;
    let (status, _) = app.post_json(hostile_template_hook()).await;
    assert_eq!(status, 200);
    let got = fake.wait_accepted(1, WAIT).await;
    app.stop().await;
    (got, url)
}

/// Every string of a JSON body, joined (what a reader could see).
fn strings(v: &Value) -> String {
    fn walk(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::String(s) => out.push(s.clone()),
            Value::Array(a) => a.iter().for_each(|i| walk(i, out)),
            Value::Object(m) => m.values().for_each(|i| walk(i, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(v, &mut out);
    out.join("\n")
}

/// What a reader sees: [`strings`] without Markdown backslash escapes and zero-width spaces.
fn seen(v: &Value) -> String {
    let text = strings(v).replace('\u{200B}', "");
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\' && chars.peek().is_some_and(|n| n.is_ascii_punctuation()) {
            continue;
        }
        out.push(c);
    }
    out
}

fn assert_json_post(r: &Received, content_type: &str) {
    assert_eq!(r.header("content-type"), Some(content_type));
    let id = r.header("x-bizrelay-delivery").expect("delivery id");
    assert!(id.parse::<i64>().is_ok(), "{id}");
}

#[tokio::test]
async fn dooray_gets_bot_name_text_and_attachments_with_defused_mentions() {
    let (got, _) = one_post(
        "dooray",
        "/services/1111/2222/TOKENdooray",
        "bot_name = \"알림봇\"\nbot_icon = \"https://example.invalid/icon.png\"\nlocale = \"ko\"",
        Reply::status(200)
            .body(r#"{"header":{"resultCode":0,"resultMessage":"","isSuccessful":true}}"#),
    )
    .await;
    let r = &got[0];
    assert_eq!(r.path, "/services/1111/2222/TOKENdooray");
    assert_json_post(r, "application/json; charset=utf-8");
    let v = r.json();
    assert_eq!(v["botName"], "알림봇");
    assert_eq!(v["botIconImage"], "https://example.invalid/icon.png");
    assert!(
        v["text"]
            .as_str()
            .unwrap()
            .starts_with("❌ 템플릿 반려: ORDER_SHIPPED_V2 — 검수 의견: He said \"no\""),
        "{v}"
    );
    let attachments = v["attachments"].as_array().unwrap();
    assert!(attachments.len() >= 2 && attachments.iter().all(|a| a["text"].is_string()));
    let text = strings(&v);
    assert!(
        text.contains("He said \"no\"") && text.contains("검수 의견"),
        "{text}"
    );
    for bad in ["[@all]", "dooray://", "[safe](http"] {
        assert!(!text.contains(bad), "{bad} in {text}");
    }
}

#[tokio::test]
async fn a_dooray_2xx_that_says_it_failed_is_dead_lettered() {
    let fake = FakeChat::start_with(
        Reply::status(200)
            .body(r#"{"header":{"resultCode":-1,"resultMessage":"bad","isSuccessful":false}}"#),
    )
    .await;
    let config = format!(
        "[destinations.d]\ntype = \"dooray\"\nurl = \"{}\"\n{ROUTES}",
        fake.url("/services/1/2/T")
    );
    let mut app = TestApp::spawn(&config).await;
    assert_eq!(app.post_json(hostile_template_hook()).await.0, 200);
    let dead = "bizrelay_deliveries_total{destination=\"d\",result=\"dead\"} 1";
    let deadline = std::time::Instant::now() + WAIT;
    while !app.metrics().await.contains(dead) {
        assert!(
            std::time::Instant::now() < deadline,
            "{}",
            app.metrics().await
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Refused by its body: never retried.
    assert_eq!(fake.count(), 1);
    app.stop().await;
}

#[tokio::test]
async fn jandi_gets_its_accept_header_and_connect_info() {
    let (got, _) = one_post(
        "jandi",
        "/connect-api/webhook/123/abcdefTOKEN",
        "",
        Reply::status(200),
    )
    .await;
    let r = &got[0];
    assert_json_post(r, "application/json");
    assert_eq!(
        r.header("accept"),
        Some("application/vnd.tosslab.jandi-v2+json")
    );
    let v = r.json();
    assert!(
        v["body"]
            .as_str()
            .unwrap()
            .starts_with("❌ Template ORDER_SHIPPED_V2: Rejected — He said"),
        "{v}"
    );
    assert_eq!(v["connectColor"], "#E01E5A");
    let info = v["connectInfo"].as_array().unwrap();
    assert!(info.iter().all(|i| i["title"].is_string()), "{v}");
    let text = strings(&v);
    for bad in ["[safe](http", "**bold**"] {
        assert!(!text.contains(bad), "{bad} in {text}");
    }
}

#[tokio::test]
async fn google_chat_threads_per_template_and_keeps_key_and_token() {
    let (got, _) = one_post(
        "google_chat",
        "/v1/spaces/AAAA/messages?key=KEYx&token=TOKENx",
        "",
        Reply::status(200).body("{}"),
    )
    .await;
    let r = &got[0];
    assert_eq!(r.path, "/v1/spaces/AAAA/messages");
    assert_eq!(
        r.query,
        [
            ("key".to_string(), "KEYx".to_string()),
            ("token".to_string(), "TOKENx".to_string()),
            (
                "messageReplyOption".to_string(),
                "REPLY_MESSAGE_FALLBACK_TO_NEW_THREAD".to_string()
            ),
        ]
    );
    assert_json_post(r, "application/json; charset=utf-8");
    let v = r.json();
    assert_eq!(
        v["thread"]["threadKey"],
        "bizrelay-template-ORDER_SHIPPED_V2"
    );
    assert!(v["text"].as_str().unwrap().contains("Rejected"));
    assert!(v["cardsV2"][0]["card"]["sections"].is_array(), "{v}");
    let text = strings(&v);
    for bad in ["<users/all>", "<http", "<@U1>", "<!channel>"] {
        assert!(!text.contains(bad), "{bad} in {text}");
    }
}

#[tokio::test]
async fn discord_never_lets_a_mention_fire() {
    let (got, _) = one_post(
        "discord",
        "/api/webhooks/123/TOKENdiscord",
        "locale = \"ko\"",
        Reply::status(204),
    )
    .await;
    let r = &got[0];
    assert_json_post(r, "application/json; charset=utf-8");
    let v = r.json();
    assert_eq!(v["allowed_mentions"], json!({"parse": []}));
    assert!(
        v["content"]
            .as_str()
            .unwrap()
            .starts_with("❌ 템플릿 반려: ORDER\\_SHIPPED\\_V2"),
        "{v}"
    );
    let embeds = v["embeds"].as_array().unwrap();
    assert!(!embeds.is_empty() && embeds.len() <= 10);
    let text = strings(&v);
    for bad in ["**bold**", "[safe](http", "<@U1>"] {
        assert!(!text.contains(bad), "{bad} in {text}");
    }
}

#[tokio::test]
async fn mattermost_breaks_channel_mentions() {
    let (got, _) = one_post(
        "mattermost",
        "/hooks/abcTOKEN",
        "",
        Reply::status(200).body("ok"),
    )
    .await;
    let r = &got[0];
    assert_json_post(r, "application/json; charset=utf-8");
    let v = r.json();
    assert!(v["text"].is_string() && v["attachments"].is_array(), "{v}");
    let text = strings(&v);
    for bad in ["@channel", "@everyone", "@here", "**bold**", "[safe](http"] {
        assert!(!text.contains(bad), "{bad} in {text}");
    }
    assert!(text.contains("@\u{200B}channel"), "{text}");
}

fn verify_standard_webhook(r: &Received, secret_b64: &str) {
    let id = r.header("webhook-id").expect("webhook-id");
    let ts = r.header("webhook-timestamp").expect("webhook-timestamp");
    let sig = r.header("webhook-signature").expect("webhook-signature");
    let key = STANDARD.decode(secret_b64).unwrap();
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{id}.{ts}.{}", r.body).as_bytes());
    let want = format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()));
    assert_eq!(sig, want);
    assert!(ts.parse::<i64>().unwrap() > 1_700_000_000);
}

#[tokio::test]
async fn webhook_documents_are_signed_the_same_id_on_retries() {
    // Standard Webhooks' own example secret.
    let secret = "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let fake = FakeChat::start().await;
    fake.script([Reply::status(503)]);
    let config = format!(
        "[destinations.d]\ntype = \"webhook\"\nurl = \"{}\"\nsigning_secret = \"whsec_{secret}\"\n\
         headers = {{ \"X-Api-Key\" = \"${{TEST_API_KEY}}\" }}\n{ROUTES}",
        fake.url("/in")
    );
    let env = [("TEST_API_KEY".to_string(), "key-123".to_string())].into();
    let mut app = TestApp::spawn_in(
        std::sync::Arc::new(tempfile::tempdir().unwrap()),
        &config,
        env,
    )
    .await;
    assert_eq!(app.post_json(hostile_template_hook()).await.0, 200);
    let got = fake.wait_accepted(1, WAIT).await;
    let all = fake.received();
    app.stop().await;
    assert_eq!(all.len(), 2, "one 503, one retry");
    for r in &all {
        assert_json_post(r, "application/json; charset=utf-8");
        assert_eq!(r.header("x-api-key"), Some("key-123"));
        verify_standard_webhook(r, secret);
        assert_eq!(r.header("webhook-id"), r.header("x-bizrelay-delivery"));
    }
    assert_eq!(
        all[0].header("webhook-id"),
        all[1].header("webhook-id"),
        "stable across retries"
    );
    let v = got[0].json();
    assert_eq!(v["schema_version"], 1);
    assert_eq!(v["kind"], "template_status");
    assert_eq!(v["route"], "templates");
    assert_eq!(v["data"]["templateCode"], "ORDER_SHIPPED_V2");
    assert_eq!(
        v["data"]["comments"][0]["content"], HOSTILE,
        "data is kept exactly"
    );
    assert!(v["summary"].as_str().unwrap().contains("Rejected"));
}

/// Fakes for one destination of each new type, and a Korean config routing every kind of
/// hook to all of them (message results as digests).
async fn six_types() -> (Vec<(&'static str, FakeChat)>, String) {
    let types = [
        ("dooray", "/services/1/2/TOKEN"),
        ("jandi", "/connect-api/webhook/1/TOKEN"),
        ("google_chat", "/v1/spaces/S/messages?key=K&token=T"),
        ("discord", "/api/webhooks/1/TOKEN"),
        ("mattermost", "/hooks/TOKEN"),
        ("webhook", "/in"),
    ];
    let mut fakes = Vec::new();
    let mut config = String::from("[templates]\nlocale = \"ko\"\n\n");
    for (kind, path) in types {
        let fake = FakeChat::start_with(Reply::status(200).body("ok")).await;
        config.push_str(&format!(
            "[destinations.{kind}]\ntype = \"{kind}\"\nurl = \"{}\"\nrate_per_second = 100\nburst = 20\n\n",
            fake.url(path)
        ));
        fakes.push((kind, fake));
    }
    config.push_str(
        "[destinations.webhook.headers]\n\"X-Api-Key\" = \"k\"\n\n\
         [[routes]]\nname = \"templates\"\nto = [\"dooray\", \"jandi\", \"google_chat\", \"discord\", \"mattermost\", \"webhook\"]\n\
         [routes.match]\nkind = \"template\"\n\n\
         [[routes]]\nname = \"failures\"\nto = [\"dooray\", \"jandi\", \"google_chat\", \"discord\", \"mattermost\", \"webhook\"]\n\
         [routes.match]\nkind = \"message_result\"\noutcome = [\"failure\", \"uncertain\"]\n\
         [routes.group]\nby = [\"result_code\"]\nwait = \"300ms\"\ninterval = \"1m\"\n\n\
         [[routes]]\nname = \"unknown\"\nto = [\"dooray\", \"jandi\", \"google_chat\", \"discord\", \"mattermost\", \"webhook\"]\n\
         [routes.match]\nkind = \"unknown\"\n",
    );
    (fakes, config)
}

/// Issue 11's "done when": one destination of each new type, Korean, passes `check`; posting
/// the sample fixtures delivers a valid body of the right shape to each receiver.
#[tokio::test]
async fn one_of_each_new_type_in_korean_passes_check_and_delivers() {
    let (fakes, config) = six_types().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    std::fs::write(&path, base_config(dir.path(), &config)).unwrap();
    let check = std::process::Command::new(binary())
        .args(["check", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&check.stdout);
    assert!(
        check.status.success(),
        "check failed: {out}{}",
        String::from_utf8_lossy(&check.stderr)
    );
    assert!(out.contains("ok: ") && !out.contains("error"), "{out}");
    assert!(!out.contains("TOKEN"), "check prints no URL: {out}");

    let mut app = TestApp::spawn(&config).await;
    for fixture_name in [
        "template_rejected.json",
        "message_results.json",
        "unknown_event.json",
        "mixed.json",
    ] {
        assert_eq!(app.post_json(fixture(fixture_name)).await.0, 200);
    }
    // Per type: two template rejections, one unknown event, and digests of the failures
    // (codes 3019 and 3016: two groups).
    for (kind, fake) in &fakes {
        let got = fake.wait_accepted(5, WAIT).await;
        let bodies: Vec<Value> = got.iter().map(Received::json).collect();
        let all = bodies.iter().map(seen).collect::<Vec<_>>().join("\n");
        assert!(
            all.contains("템플릿 반려: ORDER_SHIPPED_V2"),
            "{kind}: {all}"
        );
        assert!(all.contains("템플릿 반려: COUPON_ISSUED"), "{kind}: {all}");
        assert!(
            all.contains("알 수 없는 비즈메시지 이벤트"),
            "{kind}: {all}"
        );
        assert!(
            all.contains("failures: 실패") || all.contains("failures: 발송 결과"),
            "{kind}: {all}"
        );
        assert!(
            !all.contains("01098765432") && !all.contains("01055551234"),
            "{kind}: phone numbers are masked"
        );
        for b in &bodies {
            let ok = match *kind {
                "dooray" => b["text"].is_string() && b["botName"] == "bizrelay",
                "jandi" => b["body"].is_string(),
                "google_chat" => {
                    b["text"].is_string()
                        && b["cardsV2"].is_array()
                        && b["thread"]["threadKey"].is_string()
                }
                "discord" => {
                    b["content"].is_string() && b["allowed_mentions"] == json!({"parse": []})
                }
                "mattermost" => b["text"].is_string(),
                _ => b["schema_version"] == 1 && b["locale"] == "ko" && b["data"].is_object(),
            };
            assert!(ok, "{kind}: wrong shape: {b}");
        }
    }
    app.stop().await;
}

/// `send-test` and `route` work for every new type: the real binary posts a Korean sample to
/// each fake (the webhook one signed), and the dry run shows each type's body.
#[tokio::test]
async fn send_test_and_route_serve_every_new_type() {
    let (fakes, config) = six_types().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    let secret = "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let config = config.replace(
        "[destinations.webhook]\n",
        &format!("[destinations.webhook]\nsigning_secret = \"whsec_{secret}\"\n"),
    );
    std::fs::write(&path, base_config(dir.path(), &config)).unwrap();
    let cfg = path.to_str().unwrap().to_string();
    for (kind, fake) in &fakes {
        let (kind, cfg) = (kind.to_string(), cfg.clone());
        let out = tokio::task::spawn_blocking(move || {
            std::process::Command::new(binary())
                .args(["send-test", "--destination", &kind, "--config", &cfg])
                .output()
                .unwrap()
        })
        .await
        .unwrap();
        let said = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{said}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            said.contains("delivered") && !said.contains("TOKEN"),
            "{said}"
        );
        let got = fake.received();
        assert_eq!(got.len(), 1);
        assert!(
            seen(&got[0].json()).contains("알림톡 실패: 3019"),
            "{}",
            got[0].body
        );
    }
    let webhook = &fakes
        .iter()
        .find(|(k, _)| *k == "webhook")
        .unwrap()
        .1
        .received()[0];
    verify_standard_webhook(webhook, secret);
    assert!(
        webhook
            .header("webhook-id")
            .unwrap()
            .starts_with("send-test-")
    );

    let out = std::process::Command::new(binary())
        .args(["route", "--format", "json", "--config", &cfg])
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/template_rejected.json"
        ))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let planned: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(planned.len(), 6, "{planned:?}");
    for p in &planned {
        assert!(p["payload"].is_object(), "a JSON body, shown as JSON: {p}");
    }
    let discord = planned
        .iter()
        .find(|p| p["destination"] == "discord")
        .unwrap();
    assert_eq!(discord["payload"]["allowed_mentions"], json!({"parse": []}));
    let doc = planned
        .iter()
        .find(|p| p["destination"] == "webhook")
        .unwrap();
    assert_eq!(doc["payload"]["schema_version"], 1);
}
