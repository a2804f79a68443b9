//! Enrichment (issue #16) against a fake NHN message query API on port 0: it checks
//! `X-Secret-Key`, answers the documented shapes (`message`, `body` for mass recipients,
//! `message: null`, error headers) and can be slow. The real app routes and digests by the
//! template code it learns; storms cost few lookups; a slow or refusing API never stops an
//! alert; foreign hrefs are not followed; the secret never reaches a log; the cache survives
//! a restart; both store engines.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use warp::Filter;

use crate::common::*;

const SECRET: &str = "nhn-secret-Zq81xK";
const APP_KEY: &str = "Xk2abcDEF9tq";

#[derive(Default)]
struct NhnState {
    /// requestId → templateCode.
    templates: HashMap<String, String>,
    /// Every request: (path, X-Secret-Key).
    seen: Vec<(String, Option<String>)>,
    delay: Duration,
}

/// The fake NHN API.
#[derive(Clone)]
struct FakeNhn {
    addr: std::net::SocketAddr,
    state: Arc<Mutex<NhnState>>,
}

impl FakeNhn {
    async fn start() -> FakeNhn {
        let state = Arc::new(Mutex::new(NhnState::default()));
        let s = Arc::clone(&state);
        let route = warp::get()
            .and(warp::path::full())
            .and(warp::header::optional::<String>("x-secret-key"))
            .then(move |path: warp::path::FullPath, key: Option<String>| {
                let s = Arc::clone(&s);
                async move {
                    let path = path.as_str().to_string();
                    let (delay, template) = {
                        let mut st = s.lock().unwrap();
                        st.seen.push((path.clone(), key.clone()));
                        let parts: Vec<&str> = path.split('/').collect();
                        // .../messages/{requestId}/{seq} or .../mass-messages/{requestId}/recipients/{seq}
                        let request_id = parts
                            .iter()
                            .position(|p| *p == "messages" || *p == "mass-messages")
                            .and_then(|i| parts.get(i + 1))
                            .map(|r| r.to_string())
                            .unwrap_or_default();
                        (st.delay, st.templates.get(&request_id).cloned())
                    };
                    if !delay.is_zero() {
                        tokio::time::sleep(delay).await;
                    }
                    let body = if key.as_deref() != Some(SECRET) {
                        json!({"header": {"resultCode": -1001, "resultMessage": "Invalid secretKey", "isSuccessful": false}})
                    } else {
                        match template {
                            None => json!({"header": {"resultCode": 0, "resultMessage": "success", "isSuccessful": true}, "message": null}),
                            Some(t) => {
                                let m = json!({"templateCode": t, "senderKey": "SK1", "plusFriendId": "@shop",
                                    "messageStatus": "FAILED", "resultCodeName": "blocked",
                                    "resendStatus": "RSC04", "resendResultCode": "1000",
                                    "content": "call 010-1234-5678"});
                                let wrapper = if path.contains("/mass-messages/") { "body" } else { "message" };
                                json!({"header": {"resultCode": 0, "resultMessage": "success", "isSuccessful": true}, wrapper: m})
                            }
                        }
                    };
                    warp::reply::json(&body)
                }
            });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(warp::serve(route).incoming(listener).run());
        FakeNhn { addr, state }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn template(&self, request_id: &str, code: &str) {
        self.state
            .lock()
            .unwrap()
            .templates
            .insert(request_id.into(), code.into());
    }

    fn slow(&self, d: Duration) {
        self.state.lock().unwrap().delay = d;
    }

    fn seen(&self) -> Vec<(String, Option<String>)> {
        self.state.lock().unwrap().seen.clone()
    }
}

fn enrich_section(nhn: &FakeNhn, secret: &str, wait: &str) -> String {
    format!(
        "[enrich]\nenabled = true\nbase_url = \"{}\"\nwait = \"{wait}\"\nshow_content = true\n\n\
         [enrich.app_keys.{APP_KEY}]\nsecret_key = \"{secret}\"\n\n",
        nhn.url()
    )
}

fn result_hook(id: &str, kind: &str, request_id: &str, seq: i64) -> Value {
    json!({
        "hookId": id, "kakaoMessageType": kind, "requestId": request_id, "recipientSeq": seq,
        "requestDate": "2026-11-28 10:14:55", "recipientNo": "01098765432", "resultCode": "3019",
    })
}

fn slack(name: &str, chat: &FakeChat) -> String {
    format!(
        "[destinations.{name}]\ntype = \"slack\"\nurl = \"{}\"\nrate_per_second = 50\nburst = 50\n\n",
        chat.url(&format!("/services/{name}"))
    )
}

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

async fn route_by_template_code(store: &str) {
    let nhn = FakeNhn::start().await;
    nhn.template("ORD-1", "ORDER_PAID");
    nhn.template("PROMO-1", "PROMO_WINTER");
    let (orders, ops) = (FakeChat::start().await, FakeChat::start().await);
    let config = format!(
        "{store}{}{}{}\
         [[routes]]\nname = \"orders\"\nto = \"orders\"\nmatch = {{ kind = \"message_result\", outcome = \"failure\", template_code = \"ORDER_*\" }}\n\n\
         [[routes]]\nname = \"rest\"\nto = \"ops\"\n",
        enrich_section(&nhn, SECRET, "10s"),
        slack("orders", &orders),
        slack("ops", &ops),
    );
    let mut app = TestApp::spawn(&config).await;
    let body = envelope(&[
        result_hook("h-ord", "ALIMTALK_NORMAL", "ORD-1", 1),
        result_hook("h-promo", "ALIMTALK_NORMAL", "PROMO-1", 1),
    ]);
    assert_eq!(app.post_json(body).await.0, 200);
    let got = orders.wait_accepted(1, Duration::from_secs(10)).await;
    let text = got[0].body.clone();
    assert!(text.contains("ORDER_PAID"), "{text}");
    assert!(text.contains("SMS fallback succeeded"), "{text}");
    assert!(
        !text.contains("1234-5678"),
        "content masked (and not in the built-in anyway)"
    );
    let rest = ops.wait_accepted(1, Duration::from_secs(10)).await;
    assert!(rest[0].body.contains("PROMO_WINTER"), "{}", rest[0].body);
    assert_eq!(
        orders.count(),
        1,
        "the promo failure is not the orders team's"
    );
    // The secret key was sent, to the documented endpoint.
    let seen = nhn.seen();
    assert!(seen.iter().all(|(_, k)| k.as_deref() == Some(SECRET)));
    assert!(
        seen.iter()
            .any(|(p, _)| p == &format!("/alimtalk/v2.3/appkeys/{APP_KEY}/messages/ORD-1/1")),
        "{seen:?}"
    );
    app.stop().await;
}

#[tokio::test]
async fn failures_route_by_template_code_on_sqlite() {
    route_by_template_code("").await;
}

#[tokio::test]
async fn failures_route_by_template_code_on_postgres() {
    let url = postgres_database().await;
    route_by_template_code(&format!("[store]\nurl = \"{url}\"\n\n")).await;
}

#[tokio::test]
async fn a_mass_storm_costs_one_lookup_per_request_and_digests_group_by_template() {
    let nhn = FakeNhn::start().await;
    nhn.template("MASS-1", "ORDER_SHIPPED_V2");
    nhn.template("MASS-2", "COUPON_EXPIRING");
    let chat = FakeChat::start().await;
    let config = format!(
        "{}{}\
         [[routes]]\nname = \"digest\"\nto = \"ops\"\nmatch = {{ kind = \"message_result\" }}\n\
         group = {{ by = [\"template_code\", \"result_code\"], wait = \"1s\", interval = \"1m\" }}\n",
        enrich_section(&nhn, SECRET, "10s"),
        slack("ops", &chat),
    );
    let mut app = TestApp::spawn(&config).await;
    // 300 failures of one mass send and 100 of another, in several POSTs.
    for chunk in 0..8 {
        let hooks: Vec<Value> = (0..50)
            .map(|i| {
                let n = chunk * 50 + i;
                let req = if n < 300 { "MASS-1" } else { "MASS-2" };
                result_hook(&format!("storm-{n}"), "ALIMTALK_MASS", req, n + 1)
            })
            .collect();
        assert_eq!(app.post_json(envelope(&hooks)).await.0, 200);
    }
    let got = chat.wait_accepted(2, Duration::from_secs(20)).await;
    let bodies: Vec<&str> = got.iter().map(|r| r.body.as_str()).collect();
    let of = |t: &str| {
        bodies
            .iter()
            .find(|b| b.contains(&format!("template_code={t}")))
            .copied()
    };
    let shipped = of("ORDER_SHIPPED_V2").unwrap_or_else(|| panic!("{bodies:?}"));
    assert!(shipped.contains("*300*"), "{shipped}");
    let coupon = of("COUPON_EXPIRING").unwrap_or_else(|| panic!("{bodies:?}"));
    assert!(coupon.contains("*100*"), "{coupon}");
    let seen = nhn.seen();
    assert_eq!(seen.len(), 2, "one lookup per requestId: {seen:?}");
    assert!(
        seen.iter()
            .all(|(p, _)| p.contains("/mass-messages/") && p.contains("/recipients/"))
    );
    let m = app.metrics().await;
    assert_eq!(
        metric(&m, "bizrelay_enrich_lookups_total{outcome=\"found\"}"),
        2.0,
        "{m}"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_slow_api_never_holds_an_alert_past_wait_and_nothing_is_lost() {
    let nhn = FakeNhn::start().await;
    nhn.template("SLOW-1", "ORDER_PAID");
    nhn.slow(Duration::from_secs(8));
    let chat = FakeChat::start().await;
    let config = format!(
        "{}{}[[routes]]\nname = \"all\"\nto = \"ops\"\n",
        enrich_section(&nhn, SECRET, "500ms"),
        slack("ops", &chat),
    );
    let mut app = TestApp::spawn(&config).await;
    let started = std::time::Instant::now();
    let hooks: Vec<Value> = (1..=3)
        .map(|i| result_hook(&format!("slow-{i}"), "ALIMTALK_NORMAL", "SLOW-1", i))
        .collect();
    assert_eq!(app.post_json(envelope(&hooks)).await.0, 200);
    let got = chat.wait_accepted(3, Duration::from_secs(6)).await;
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "routed by the wait, not the answer"
    );
    for r in &got {
        assert!(
            !r.body.contains("ORDER_PAID"),
            "routed without enrichment: {}",
            r.body
        );
        assert!(r.body.contains("3019"), "the alert itself is whole");
    }
    let m = app.metrics().await;
    assert_eq!(
        metric(&m, "bizrelay_enrich_routed_without_total{reason=\"wait\"}"),
        3.0,
        "{m}"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_refused_secret_is_reported_once_and_alerts_still_go_out() {
    let nhn = FakeNhn::start().await;
    nhn.template("R-1", "ORDER_PAID");
    let chat = FakeChat::start().await;
    let config = format!(
        "{}{}[[routes]]\nname = \"all\"\nto = \"ops\"\n",
        enrich_section(&nhn, "wrong-secret", "5s"),
        slack("ops", &chat),
    );
    let mut app = TestApp::spawn(&config).await;
    assert_eq!(
        app.post_json(envelope(&[result_hook(
            "bad-1",
            "ALIMTALK_NORMAL",
            "R-1",
            1
        )]))
        .await
        .0,
        200
    );
    let first = chat.wait_accepted(1, Duration::from_secs(8)).await;
    assert!(!first[0].body.contains("ORDER_PAID"));
    // Later hooks of other requests of that app key go out at once, with no lookup each.
    let hooks: Vec<Value> = (2..=20)
        .map(|i| result_hook(&format!("bad-{i}"), "ALIMTALK_NORMAL", &format!("R-{i}"), 1))
        .collect();
    assert_eq!(app.post_json(envelope(&hooks)).await.0, 200);
    chat.wait_accepted(20, Duration::from_secs(8)).await;
    assert_eq!(nhn.seen().len(), 1, "refused once, not asked per hook");
    let ready = app.readyz().await;
    assert_eq!(ready["ready"], true, "alerts flow: not unready");
    let refused = &ready["enrichment"]["refused_app_keys"];
    assert_eq!(refused[0]["app_key"], APP_KEY, "{ready}");
    assert!(refused[0]["reason"].as_str().unwrap().contains("-1001"));
    assert!(!ready.to_string().contains("wrong-secret"));
    let m = app.metrics().await;
    assert_eq!(metric(&m, "bizrelay_enrich_bad_credentials{"), 1.0, "{m}");
    app.stop().await;
}

#[tokio::test]
async fn an_href_on_another_host_is_not_followed() {
    let nhn = FakeNhn::start().await;
    nhn.template("H-1", "ORDER_PAID");
    let elsewhere = FakeChat::start().await;
    let chat = FakeChat::start().await;
    let config = format!(
        "{}{}[[routes]]\nname = \"all\"\nto = \"ops\"\n",
        enrich_section(&nhn, SECRET, "5s"),
        slack("ops", &chat),
    );
    let mut app = TestApp::spawn(&config).await;
    let mut hook = result_hook("href-1", "ALIMTALK_NORMAL", "H-1", 2);
    hook["_links"] =
        json!({"self": {"href": elsewhere.url("/alimtalk/v2.3/appkeys/x/messages/H-1/2")}});
    assert_eq!(app.post_json(envelope(&[hook])).await.0, 200);
    let got = chat.wait_accepted(1, Duration::from_secs(8)).await;
    assert!(
        got[0].body.contains("ORDER_PAID"),
        "looked up at base_url instead"
    );
    assert_eq!(elsewhere.count(), 0, "the secret key went nowhere else");
    assert_eq!(
        nhn.seen()[0].0,
        format!("/alimtalk/v2.3/appkeys/{APP_KEY}/messages/H-1/2")
    );
    app.stop().await;
}

/// From the real binary: enriched alerts, the secret never in its logs, the cache kept
/// across a restart (the second hook of the request needs no lookup).
#[tokio::test]
async fn the_binary_enriches_keeps_the_cache_across_restarts_and_never_logs_the_secret() {
    let nhn = FakeNhn::start().await;
    nhn.template("BIN-1", "ORDER_SHIPPED_V2");
    let chat = FakeChat::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    let text = base_config(
        dir.path(),
        &format!(
            "[log]\nlevel = \"debug\"\n\n{}{}[[routes]]\nname = \"all\"\nto = \"ops\"\n",
            enrich_section(&nhn, "${NHN_SECRET_KEY}", "5s"),
            slack("ops", &chat)
        ),
    );
    std::fs::write(&config, text).unwrap();
    let http = http_client();
    let env = [("NHN_SECRET_KEY", SECRET)];
    let mut first = Process::start(&config, &env);
    let resp = first
        .post(
            &http,
            envelope(&[result_hook("bin-1", "ALIMTALK_NORMAL", "BIN-1", 1)]),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let got = chat.wait_accepted(1, Duration::from_secs(10)).await;
    assert!(got[0].body.contains("ORDER_SHIPPED_V2"), "{}", got[0].body);
    first.signal(nix::sys::signal::Signal::SIGTERM);
    first.wait(Duration::from_secs(10)).await;
    let mut logs = first.log_text();
    let second = Process::start(&config, &env);
    let resp = second
        .post(
            &http,
            envelope(&[result_hook("bin-2", "ALIMTALK_NORMAL", "BIN-1", 2)]),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let got = chat.wait_accepted(2, Duration::from_secs(10)).await;
    assert!(got[1].body.contains("ORDER_SHIPPED_V2"), "{}", got[1].body);
    assert_eq!(
        nhn.seen().len(),
        1,
        "the restarted process used the stored cache"
    );
    logs.push_str(&second.log_text());
    assert!(!logs.contains(SECRET), "the secret key is never logged");
    drop(second);
    // `route` tells from the cache, without calling NHN, what a hook would be enriched with.
    let payload = dir.path().join("payload.json");
    let hooks = [
        result_hook("bin-3", "ALIMTALK_NORMAL", "BIN-1", 7),
        result_hook("bin-4", "ALIMTALK_NORMAL", "NOT-CACHED", 1),
    ];
    std::fs::write(&payload, envelope(&hooks)).unwrap();
    let run = |args: &[&str]| {
        bizrelay(dir.path())
            .args(args)
            .arg("--config")
            .arg(&config)
            .env("NHN_SECRET_KEY", SECRET)
            .env_remove("RUST_LOG")
            .output()
            .unwrap()
    };
    let out = run(&["route", payload.to_str().unwrap()]);
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("enriched from the cache: template ORDER_SHIPPED_V2"),
        "{text}"
    );
    assert!(
        text.contains("NOT-CACHED is not in the enrichment cache"),
        "{text}"
    );
    assert_eq!(nhn.seen().len(), 1, "the dry run called no NHN");
    let check = run(&["check"]);
    let text = String::from_utf8_lossy(&check.stdout).into_owned()
        + &String::from_utf8_lossy(&check.stderr);
    assert!(check.status.success(), "{text}");
    assert!(!text.contains(SECRET), "{text}");
}
