//! The bridge end to end: the app on port 0, fake Slack and Teams receivers, real HTTP.

use std::time::{Duration, Instant};

use crate::common::*;
use serde_json::{Value, json};

const ROUTES: &str = r#"
[[routes]]
name = "template-decisions"
to = ["ops-slack"]
[routes.match]
kind = "template"

[[routes]]
name = "alimtalk-failures"
to = ["ops-slack", "ops-teams"]
[routes.match]
kind = "message_result"
outcome = ["failure", "uncertain"]

[[routes]]
name = "unknown"
to = ["ops-slack"]
[routes.match]
kind = "unknown"
"#;

#[tokio::test]
async fn one_template_two_results_and_a_malformed_hook() {
    let (slack, teams) = (
        FakeChat::start().await,
        FakeChat::start_with(Reply::status(202)).await,
    );
    let mut app = TestApp::spawn(&slack_teams(&slack, &teams, ROUTES)).await;

    let (status, body) = app.post_json(fixture("mixed.json")).await;
    assert_eq!(status, 200);
    assert_eq!(body, json!({"accepted": 3, "duplicates": 0, "rejected": 1}));

    // Slack: the template rejection and both failures; Teams: both failures (202 is success).
    let got = slack.wait_for(3, Duration::from_secs(10)).await;
    let teams_got = teams.wait_for(2, Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(slack.count(), 3, "nothing sent twice");
    assert_eq!(teams.count(), 2);
    assert!(
        got.iter()
            .all(|r| r.path == "/services/T000/B000/XXXXSECRET")
    );
    assert!(
        got.iter()
            .all(|r| r.content_type.as_deref() == Some("application/json; charset=utf-8"))
    );

    let bodies: Vec<Value> = got.iter().map(Received::json).collect();
    let rejection = bodies
        .iter()
        .find(|b| b["text"].as_str().unwrap().contains("COUPON_ISSUED"))
        .unwrap();
    let text = rejection.to_string();
    assert!(text.contains("reviewer") && text.contains("REJ"), "{text}");
    assert!(
        text.contains("&lt;유효기간&gt;") && text.contains("&amp;"),
        "reviewer text is mrkdwn-escaped: {text}"
    );
    for code in ["3016", "3019"] {
        let slack_body = bodies
            .iter()
            .find(|b| b["text"].as_str().unwrap().contains(code))
            .unwrap();
        assert!(slack_body["blocks"].as_array().unwrap().len() >= 3);
        let teams_body = teams_got
            .iter()
            .map(Received::json)
            .find(|b| b.to_string().contains(code))
            .unwrap();
        assert_eq!(teams_body["type"], "message");
        assert_eq!(teams_body["attachments"].as_array().unwrap().len(), 1);
        assert_eq!(teams_body["attachments"][0]["content"]["version"], "1.4");
    }
    let all = format!("{:?}{:?}", got, teams_got);
    assert!(
        !all.contains("01055551234") && !all.contains("01055559876"),
        "phone numbers are masked"
    );
    assert!(all.contains("010****1234"));
    app.stop().await;
}

#[tokio::test]
async fn unknown_hooks_are_relayed_in_a_generic_form() {
    let (slack, teams) = (FakeChat::start().await, FakeChat::start().await);
    let mut app = TestApp::spawn(&slack_teams(&slack, &teams, ROUTES)).await;
    let (status, body) = app.post_json(fixture("unknown_event.json")).await;
    assert_eq!((status, body["accepted"].as_u64()), (200, Some(1)));
    let got = slack.wait_for(1, Duration::from_secs(10)).await;
    let text = got[0].body.clone();
    assert!(
        text.contains("SENDER_PROFILE_UPDATE") && text.contains("profileStatus"),
        "{text}"
    );
    assert!(
        !text.contains("01011112222") && !text.contains("<!channel>"),
        "{text}"
    );
    app.stop().await;
}

#[tokio::test]
async fn success_results_match_no_route_and_empty_posts_are_fine() {
    let (slack, teams) = (FakeChat::start().await, FakeChat::start().await);
    let mut app = TestApp::spawn(&slack_teams(&slack, &teams, ROUTES)).await;
    let ok = json!({"hookId": "s-1", "kakaoMessageType": "ALIMTALK_NORMAL", "requestId": "r", "recipientSeq": 1, "resultCode": "1000"});
    assert_eq!(
        app.post_json(envelope(&[ok])).await,
        (200, json!({"accepted": 1, "duplicates": 0, "rejected": 0}))
    );
    assert_eq!(
        app.post_json(envelope(&[])).await,
        (200, json!({"accepted": 0, "duplicates": 0, "rejected": 0}))
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(slack.count() + teams.count(), 0);
    let metrics = app.metrics().await;
    assert!(
        metrics.contains("bizrelay_unrouted_hooks_total 1"),
        "{metrics}"
    );
    app.stop().await;
}

#[tokio::test]
async fn signature_app_key_size_and_body_errors() {
    let (slack, teams) = (FakeChat::start().await, FakeChat::start().await);
    let config = format!(
        "[ingest]\nsignatures = [\"new-sig\", \"old-sig\"]\napp_keys = [\"Xk2abcDEF9tq\"]\n\
         [server]\nlisten = \"127.0.0.1:0\"\nmax_body_bytes = 4096\n{}",
        slack_teams(&slack, &teams, ROUTES)
    );
    let mut app = TestApp::spawn(&config).await;
    let body = fixture("template_rejected.json");
    let sig = |s: &'static str| [("x-toast-webhook-signature", s)];

    let check = |resp: reqwest::Response, want: u16| async move {
        assert_eq!(resp.status().as_u16(), want);
        assert!(
            resp.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("application/json")
        );
        let v: Value = resp.json().await.unwrap();
        assert!(v["error"].is_string() && v["detail"].is_string(), "{v}");
        v
    };
    let v = check(app.post(body.clone()).await, 401).await;
    assert!(v["detail"].as_str().unwrap().contains("missing"));
    let v = check(app.post_with(body.clone(), &sig("new-siG")).await, 401).await;
    assert!(
        !v.to_string().contains("new-sig"),
        "the expected value is never echoed"
    );
    assert_eq!(
        app.post_with(body.clone(), &sig("new-sig")).await.status(),
        200
    );
    assert_eq!(
        app.post_with(body.clone(), &sig("old-sig")).await.status(),
        200,
        "rotation: both accepted"
    );

    let other_app = body.replace("Xk2abcDEF9tq", "SomeOtherKey");
    check(app.post_with(other_app, &sig("new-sig")).await, 403).await;
    check(app.post_with("x".repeat(5000), &sig("new-sig")).await, 413).await;
    for bad in [
        "[1,2]",
        "\"text\"",
        "{\"hooks\": 5}",
        "{\"nohooks\": []}",
        "{\"hooks\": [",
        "not json",
    ] {
        let v = check(app.post_with(bad, &sig("new-sig")).await, 400).await;
        assert!(
            !v.to_string().contains(bad) || bad.len() < 3,
            "request not echoed: {v}"
        );
    }
    // The GET of an unknown path is JSON too.
    let resp = app.http.get(app.url("/nope")).send().await.unwrap();
    assert_eq!(resp.status(), 404);
    assert!(resp.json::<Value>().await.unwrap()["error"].is_string());
    assert_eq!(
        app.http
            .get(app.url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    app.stop().await;
}

#[tokio::test]
async fn the_handler_never_waits_for_slack() {
    // Slack takes 3 s per answer; the webhook must still answer at once.
    let slow =
        FakeChat::start_with(Reply::status(200).body("ok").delay(Duration::from_secs(3))).await;
    let teams = FakeChat::start().await;
    let mut app = TestApp::spawn(&slack_teams(&slow, &teams, ROUTES)).await;
    let started = Instant::now();
    for i in 0..5 {
        let (status, _) = app
            .post_json(envelope(&[failure(&format!("slow-{i}"), "3019")]))
            .await;
        assert_eq!(status, 200);
    }
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(2),
        "5 POSTs took {took:?} while Slack was slow"
    );
    slow.wait_for(1, Duration::from_secs(10)).await;
    app.stop().await;
}

#[tokio::test]
async fn configured_path_is_used() {
    let (slack, teams) = (FakeChat::start().await, FakeChat::start().await);
    let config = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\npath = \"/nhn/in\"\n{}",
        slack_teams(&slack, &teams, ROUTES)
    );
    let mut app = TestApp::spawn(&config).await;
    let post = |path: &'static str| {
        app.http
            .post(app.url(path))
            .header("content-type", "application/json")
            .body(fixture("template_rejected.json"))
            .send()
    };
    assert_eq!(post("/nhn/in").await.unwrap().status(), 200);
    assert_eq!(post("/hooks/bizmessage").await.unwrap().status(), 404);
    app.stop().await;
}

#[tokio::test]
async fn bidi_controls_and_hidden_phone_numbers_reach_no_destination() {
    let (slack, teams) = (FakeChat::start().await, FakeChat::start().await);
    let routes = "[[routes]]\nname = \"all\"\nto = [\"ops-slack\", \"ops-teams\"]\n";
    let mut app = TestApp::spawn(&slack_teams(&slack, &teams, routes)).await;
    let hooks = vec![
        json!({"hookId": "bidi-t", "templateCode": "T\u{2066}1", "status": "TSC04",
               "comments": [{"content": "see invoice\u{202E}gnp.exe", "userName": "\u{200F}admin",
                             "attachment": [{"originalFileName": "\u{202D}guide.png"}], "status": "REJ"}]}),
        {
            let mut f = failure("bidi-r", "3019\u{202E}");
            f["requestId"] = json!("req\u{061C}1");
            f
        },
        json!({"hookId": "bidi-u", "memo": "\u{202E}txt.exe", "phone": 821077776666_u64,
               "owner": "ID01077776666", "note": "０１０－７７７７－６６６６"}),
    ];
    let (status, body) = app.post_json(envelope(&hooks)).await;
    assert_eq!((status, body["accepted"].as_u64()), (200, Some(3)));
    let mut bodies: Vec<String> = slack
        .wait_accepted(3, Duration::from_secs(10))
        .await
        .into_iter()
        .map(|r| r.body)
        .collect();
    bodies.extend(
        teams
            .wait_accepted(3, Duration::from_secs(10))
            .await
            .into_iter()
            .map(|r| r.body),
    );
    let all = bodies.join("\n");
    assert!(all.contains("gnp.exe") && all.contains("txt.exe"), "{all}");
    for body in &bodies {
        let lower = body.to_ascii_lowercase();
        assert!(
            !body.chars().any(|c| matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}' | '\u{061C}'))
                && !lower.contains("\\u202")
                && !lower.contains("\\u206")
                && !lower.contains("\\u200f")
                && !lower.contains("\\u061c"),
            "a bidi control was relayed: {body:?}"
        );
        for leaked in ["77776666", "７７７７"] {
            assert!(!body.contains(leaked), "{leaked} relayed: {body}");
        }
    }
    app.stop().await;
}

#[tokio::test]
async fn the_vendor_guides_example_hooks_are_accepted_and_relayed() {
    // The two examples share hookId "String", so each goes to a store of its own.
    for (fixture_name, shown) in [
        ("nhn_guide_message_result.json", "Integer"),
        ("nhn_guide_template.json", "String"),
    ] {
        let (slack, teams) = (FakeChat::start().await, FakeChat::start().await);
        let routes = "[[routes]]\nname = \"all\"\nto = [\"ops-slack\", \"ops-teams\"]\n";
        let mut app = TestApp::spawn(&slack_teams(&slack, &teams, routes)).await;
        let (status, body) = app.post_json(fixture(fixture_name)).await;
        assert_eq!(
            (status, body),
            (200, json!({"accepted": 1, "duplicates": 0, "rejected": 0})),
            "{fixture_name}"
        );
        let got = slack.wait_accepted(1, Duration::from_secs(10)).await;
        assert!(
            got[0].body.contains(shown),
            "{fixture_name}: {}",
            got[0].body
        );
        teams.wait_accepted(1, Duration::from_secs(10)).await;
        let m = app.metrics().await;
        if fixture_name.contains("result") {
            for field in ["recipientSeq", "isAddedChannel"] {
                let series = format!("bizrelay_hook_type_mismatches_total{{field=\"{field}\"}} 1");
                assert!(m.contains(&series), "missing {series} in\n{m}");
            }
        } else {
            assert!(!m.contains("bizrelay_hook_type_mismatches_total{"), "{m}");
        }
        app.stop().await;
    }
}

/// With no enrichment, hooks are routed before they are written: when the 200 comes, every
/// accepted hook is already routed and its deliveries queued (nothing waits for a dispatcher).
#[tokio::test]
async fn a_200_means_the_hooks_are_stored_and_already_routed() {
    let slow = Reply::status(200).delay(Duration::from_secs(5));
    let (slack, teams) = (
        FakeChat::start_with(slow.clone()).await,
        FakeChat::start_with(slow).await,
    );
    let mut app = TestApp::spawn(&slack_teams(&slack, &teams, ROUTES)).await;
    let (status, body) = app.post_json(fixture("mixed.json")).await;
    assert_eq!(status, 200);
    assert_eq!(body["accepted"], 3);
    let store = &app.state().store;
    let inbox = store.inbox_stats().await.unwrap();
    assert_eq!(inbox.waiting, 0, "{inbox:?}");
    let mut queued: Vec<(String, i64)> = store
        .queue_stats()
        .await
        .unwrap()
        .into_iter()
        .map(|q| (q.destination, q.pending))
        .collect();
    queued.sort();
    assert_eq!(
        queued,
        vec![("ops-slack".to_string(), 3), ("ops-teams".to_string(), 2)]
    );
    let metrics = app.metrics().await;
    assert!(
        metrics.contains(r#"bizrelay_route_matches_total{route="alimtalk-failures"} 2"#),
        "{metrics}"
    );
    app.stop().await;
}
