//! Several replicas on one PostgreSQL database (a real server, a fresh database per test):
//! the app relays on PostgreSQL as on SQLite, survives the database going away and coming
//! back, and two real `bizrelay serve` processes share the work: every acknowledged hook is
//! delivered after one of them is killed with SIGKILL, at most the in-flight one twice, a hook
//! posted to both is delivered once, the destination's pace holds across both, and a storm
//! split across both gives digests whose counts add up exactly.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::common::*;
use nix::sys::signal::Signal;
use serde_json::Value;

fn pg_store(url: &str, extra: &str) -> String {
    format!("[store]\nurl = \"{url}\"\nlease = \"2s\"\npool_size = 4\n{extra}\n")
}

fn slack_dest(name: &str, fake: &FakeChat, rate: f64, burst: u32) -> String {
    format!(
        "[destinations.{name}]\ntype = \"slack\"\nurl = \"{}\"\nrate_per_second = {rate}\nburst = {burst}\ntimeout = \"2s\"\n",
        fake.url(&format!("/services/T/B/{name}-SECRET"))
    )
}

async fn admin() -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(&postgres_admin_url(), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    client
}

fn db_name(url: &str) -> String {
    url::Url::parse(url)
        .unwrap()
        .path()
        .trim_start_matches('/')
        .to_string()
}

#[tokio::test]
async fn the_app_relays_on_postgres_and_rides_out_the_database_going_away() {
    let fake = FakeChat::start().await;
    let url = postgres_database().await;
    let config = format!(
        "{}{}[[routes]]\nname = \"failures\"\nto = [\"ops\"]\n[routes.match]\noutcome = \"failure\"\n",
        pg_store(&url, ""),
        slack_dest("ops", &fake, 100.0, 10)
    );
    let mut app = TestApp::spawn(&config).await;
    let (status, body) = app.post_json(envelope(&[failure("pg-1", "3019")])).await;
    assert_eq!((status, body["accepted"].as_u64()), (200, Some(1)));
    fake.wait_accepted(1, Duration::from_secs(10)).await;
    let ready = app.readyz().await;
    assert_eq!(ready["ready"], true, "{ready}");
    assert!(
        ready["store"]["name"]
            .as_str()
            .unwrap()
            .contains("PostgreSQL database"),
        "{ready}"
    );
    assert!(
        !ready.to_string().contains("postgres://"),
        "no URL in /readyz"
    );

    // The database goes away: no new connections, the existing ones cut.
    let admin = admin().await;
    let db = db_name(&url);
    admin
        .batch_execute(&format!(
            "ALTER DATABASE \"{db}\" ALLOW_CONNECTIONS false;
             SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{db}';"
        ))
        .await
        .unwrap();
    let resp = app.post(envelope(&[failure("pg-2", "3019")])).await;
    assert_eq!(resp.status(), 503, "never 200 for what was not committed");
    let ready = app.http.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 503);
    // It comes back; bizrelay recovers by itself.
    admin
        .batch_execute(&format!("ALTER DATABASE \"{db}\" ALLOW_CONNECTIONS true"))
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, _) = app.post_json(envelope(&[failure("pg-2", "3019")])).await;
        if status == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "did not recover");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    fake.wait_accepted(2, Duration::from_secs(10)).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while app
        .http
        .get(app.url("/readyz"))
        .send()
        .await
        .unwrap()
        .status()
        != 200
    {
        assert!(Instant::now() < deadline, "never ready again");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    app.stop().await;
}

/// The hook ids in a Slack body's blocks (the built-in templates quote them in backticks).
fn hook_ids(body: &str, prefix: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = body;
    while let Some(at) = rest.find(prefix) {
        let id: String = rest[at..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
            .collect();
        rest = &rest[at + id.len()..];
        out.push(id);
    }
    out.sort();
    out.dedup();
    out
}

#[tokio::test]
async fn two_replicas_share_one_database_and_a_kill_9_loses_nothing() {
    // Slack takes 100 ms per answer, so a post is in flight when a replica dies.
    let alerts = FakeChat::start_with(
        Reply::status(200)
            .body("ok")
            .delay(Duration::from_millis(100)),
    )
    .await;
    let digests = FakeChat::start().await;
    let url = postgres_database().await;
    let body = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n{}{}{}\
         [delivery]\nbackoff = {{ initial = \"100ms\", max = \"1s\" }}\nshutdown_grace = \"2s\"\n\
         [[routes]]\nname = \"storm\"\nto = [\"digests\"]\n[routes.match]\nresult_code = \"3018\"\n\
         [routes.group]\nby = []\nwait = \"1s\"\ninterval = \"1s\"\nmax_items = 3\n\
         [[routes]]\nname = \"alerts\"\nto = [\"alerts\"]\n[routes.match]\nresult_code = \"3019\"\n",
        pg_store(&url, ""),
        slack_dest("alerts", &alerts, 8.0, 1),
        slack_dest("digests", &digests, 50.0, 10),
    );
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(&config, &body).unwrap();
    let mut a = Process::start(&config, &[]);
    let b = Process::start(&config, &[]);
    let http = http_client();

    // A storm of 400 failures split across both replicas: digests count each exactly once.
    let mut posts = Vec::new();
    for n in 0..20 {
        let hooks: Vec<Value> = (0..20)
            .map(|k| failure(&format!("storm-{n}-{k}"), "3018"))
            .collect();
        let target = if n % 2 == 0 { a.url("") } else { b.url("") };
        let http = http.clone();
        posts.push(tokio::spawn(async move {
            http.post(format!("{target}/hooks/bizmessage"))
                .header("content-type", "application/json")
                .body(envelope(&hooks))
                .send()
                .await
                .unwrap()
                .status()
        }));
    }
    for p in posts {
        assert_eq!(p.await.unwrap(), 200);
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    let counted = loop {
        let n: u64 = digests
            .accepted()
            .iter()
            .map(|r| {
                let text = r.json()["text"].as_str().unwrap_or("").to_string();
                text.trim_start_matches("🚨 ")
                    .split(' ')
                    .next()
                    .and_then(|n| n.parse::<u64>().ok())
                    .unwrap_or(0)
            })
            .sum();
        if n >= 400 || Instant::now() > deadline {
            break n;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(counted, 400, "digests add up to exactly the storm");

    // The same hook posted to both replicas at once is stored (and delivered) once.
    let twin = envelope(&[failure("alert-twin", "3019")]);
    let (ra, rb) = tokio::join!(a.post(&http, twin.clone()), b.post(&http, twin));
    assert_eq!((ra.status().as_u16(), rb.status().as_u16()), (200, 200));
    let (ra, rb): (Value, Value) = (ra.json().await.unwrap(), rb.json().await.unwrap());
    let n = |k: &str| ra[k].as_u64().unwrap() + rb[k].as_u64().unwrap();
    assert_eq!((n("accepted"), n("duplicates")), (1, 1), "{ra} {rb}");
    // Wait until its delivery is recorded, so the kill below cannot catch it in flight.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let m = http
            .get(b.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if alerts.count() == 1 && m.contains("bizrelay_queue_depth{destination=\"alerts\"} 0") {
            break;
        }
        assert!(Instant::now() < deadline, "the twin was not delivered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // A stream of alerts posted alternately; replica A dies with SIGKILL in the middle.
    let mut acked = Vec::new();
    for n in 0..24 {
        let id = format!("alert-{n:02}");
        if n == 12 {
            a.signal(Signal::SIGKILL);
            a.wait(Duration::from_secs(5)).await;
        }
        let target = if n % 2 == 0 && n < 12 { &a } else { &b };
        let resp = target.post(&http, envelope(&[failure(&id, "3019")])).await;
        assert_eq!(resp.status(), 200);
        acked.push(id);
    }
    acked.push("alert-twin".into());
    let deadline = Instant::now() + Duration::from_secs(40);
    let per_hook = loop {
        let mut per: HashMap<String, usize> = HashMap::new();
        for r in alerts.accepted() {
            for id in hook_ids(&r.body, "alert-") {
                *per.entry(id).or_default() += 1;
            }
        }
        if acked.iter().all(|id| per.contains_key(id)) || Instant::now() > deadline {
            break per;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let missing: Vec<&String> = acked
        .iter()
        .filter(|id| !per_hook.contains_key(*id))
        .collect();
    assert!(
        missing.is_empty(),
        "acknowledged but never delivered: {missing:?}"
    );
    let twice: Vec<(&String, &usize)> = per_hook.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        twice.len() <= 1 && twice.iter().all(|(_, n)| **n == 2),
        "at most the one in flight at the kill is sent twice: {twice:?}"
    );
    assert_eq!(per_hook["alert-twin"], 1, "posted to both, delivered once");
    // The pace (8/s, burst 1) held across both replicas: sends are spaced by its interval,
    // less the answers' transit jitter.
    let times: Vec<Instant> = alerts.received().iter().map(|r| r.at).collect();
    let tightest = times
        .windows(2)
        .map(|w| w[1].duration_since(w[0]))
        .min()
        .unwrap();
    assert!(
        tightest >= Duration::from_millis(100),
        "two posts only {tightest:?} apart: the replicas did not share the pace"
    );
    let mut b = b;
    b.signal(Signal::SIGTERM);
    assert!(b.wait(Duration::from_secs(10)).await.success());
}
