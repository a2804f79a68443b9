//! Test support: the real app on 127.0.0.1:0 with a temporary store, fake chat receivers
//! (Slack, Teams, Dooray!, ... any webhook) that record what they get (path, query, headers,
//! body) and answer as told, and helpers to run the real binary.
#![allow(dead_code)]

use std::collections::{HashMap, VecDeque};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bizrelay::app::{App, Options};
use bizrelay::config::{ConfigSource, load};
use bizrelay::reload::SourceSpec;
use warp::Filter;

pub fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!(
        "{}/tests/fixtures/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

/// What a fake receiver answers.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
    pub delay: Duration,
}

impl Reply {
    pub fn status(status: u16) -> Reply {
        Reply {
            status,
            headers: vec![],
            body: String::new(),
            delay: Duration::ZERO,
        }
    }
    pub fn body(mut self, body: &str) -> Reply {
        self.body = body.to_string();
        self
    }
    pub fn header(mut self, k: &str, v: &str) -> Reply {
        self.headers.push((k.to_string(), v.to_string()));
        self
    }
    pub fn delay(mut self, d: Duration) -> Reply {
        self.delay = d;
        self
    }
}

/// One request a fake receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    /// The query string's pairs, decoded, in order.
    pub query: Vec<(String, String)>,
    /// Every header, names in lower case, in order.
    pub headers: Vec<(String, String)>,
    pub body: String,
    pub delivery_id: Option<String>,
    pub content_type: Option<String>,
    pub at: Instant,
    /// The status the fake answered with.
    pub status: u16,
}

impl Received {
    /// A header's value (names compared without case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

#[derive(Default)]
struct FakeState {
    received: Vec<Received>,
    script: VecDeque<Reply>,
    default: Option<Reply>,
}

/// A fake chat service (Slack or Teams webhook) on a real port.
#[derive(Clone)]
pub struct FakeChat {
    pub addr: SocketAddr,
    state: Arc<Mutex<FakeState>>,
}

impl FakeChat {
    /// Answers 200 `ok` (Slack style) unless told otherwise.
    pub async fn start() -> FakeChat {
        FakeChat::start_with(Reply::status(200).body("ok")).await
    }

    pub async fn start_with(default: Reply) -> FakeChat {
        let state = Arc::new(Mutex::new(FakeState {
            default: Some(default),
            ..FakeState::default()
        }));
        let s = Arc::clone(&state);
        let route = warp::any()
            .and(warp::path::full())
            .and(
                warp::query::<Vec<(String, String)>>()
                    .or(warp::any().map(Vec::new))
                    .unify(),
            )
            .and(warp::header::headers_cloned())
            .and(warp::body::bytes())
            .then(
                move |path: warp::path::FullPath,
                      query: Vec<(String, String)>,
                      headers: warp::http::HeaderMap,
                      body: bytes::Bytes| {
                    let headers: Vec<(String, String)> = headers
                        .iter()
                        .map(|(k, v)| {
                            (
                                k.as_str().to_string(),
                                String::from_utf8_lossy(v.as_bytes()).into_owned(),
                            )
                        })
                        .collect();
                    let find = |name: &str| {
                        headers
                            .iter()
                            .find(|(k, _)| k == name)
                            .map(|(_, v)| v.clone())
                    };
                    let (id, ct) = (find("x-bizrelay-delivery"), find("content-type"));
                    let s = Arc::clone(&s);
                    async move {
                        let reply = {
                            let mut st = s.lock().unwrap();
                            let reply = st
                                .script
                                .pop_front()
                                .or_else(|| st.default.clone())
                                .unwrap();
                            st.received.push(Received {
                                path: path.as_str().to_string(),
                                query,
                                headers,
                                body: String::from_utf8_lossy(&body).into_owned(),
                                delivery_id: id,
                                content_type: ct,
                                at: Instant::now(),
                                status: reply.status,
                            });
                            reply
                        };
                        if !reply.delay.is_zero() {
                            tokio::time::sleep(reply.delay).await;
                        }
                        let mut resp = warp::http::Response::builder().status(reply.status);
                        for (k, v) in &reply.headers {
                            resp = resp.header(k, v);
                        }
                        resp.body(reply.body.clone()).unwrap()
                    }
                },
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(warp::serve(route).incoming(listener).run());
        FakeChat { addr, state }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Answers these (in order) before going back to the default.
    pub fn script(&self, replies: impl IntoIterator<Item = Reply>) {
        self.state.lock().unwrap().script.extend(replies);
    }

    pub fn set_default(&self, reply: Reply) {
        self.state.lock().unwrap().default = Some(reply);
    }

    pub fn received(&self) -> Vec<Received> {
        self.state.lock().unwrap().received.clone()
    }

    /// All requests so far.
    pub fn count(&self) -> usize {
        self.state.lock().unwrap().received.len()
    }

    /// Requests the fake answered with a 2xx (what a real Slack would have accepted).
    pub fn accepted(&self) -> Vec<Received> {
        self.received()
            .into_iter()
            .filter(|r| (200..300).contains(&r.status))
            .collect()
    }

    /// Waits until at least `n` requests were accepted (panics after `timeout`).
    pub async fn wait_accepted(&self, n: usize, timeout: Duration) -> Vec<Received> {
        let deadline = Instant::now() + timeout;
        loop {
            let got = self.accepted();
            if got.len() >= n {
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "expected {n} accepted requests, got {} after {timeout:?}",
                got.len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until at least `n` requests arrived (panics after `timeout`).
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Received> {
        let deadline = Instant::now() + timeout;
        loop {
            let got = self.received();
            if got.len() >= n {
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "expected {n} requests, got {} after {timeout:?}",
                got.len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// An HTTP client for tests (rustls needs its crypto provider installed once per process).
pub fn http_client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

/// The app, started in this process on a random port with a temporary store.
pub struct TestApp {
    pub app: Option<App>,
    pub addr: SocketAddr,
    pub dir: Arc<tempfile::TempDir>,
    pub config_path: PathBuf,
    pub http: reqwest::Client,
}

/// The config the tests add unless they set these sections themselves.
pub fn base_config(dir: &Path, extra: &str) -> String {
    let mut text = String::new();
    if !extra.contains("[server]") {
        text.push_str("[server]\nlisten = \"127.0.0.1:0\"\n");
    }
    if !extra.contains("[store]") {
        text.push_str(&format!(
            "[store]\npath = \"{}\"\nsync = \"normal\"\n",
            dir.join("bizrelay.db").display()
        ));
    }
    if !extra.contains("[delivery]") {
        text.push_str("[delivery]\nbackoff = { initial = \"100ms\", max = \"1s\" }\nshutdown_grace = \"2s\"\n");
    }
    text.push_str(extra);
    text
}

impl TestApp {
    pub async fn spawn(extra: &str) -> TestApp {
        TestApp::spawn_in(
            Arc::new(tempfile::tempdir().unwrap()),
            extra,
            HashMap::new(),
        )
        .await
    }

    /// Starts on an existing folder (to restart on the same store).
    pub async fn spawn_in(
        dir: Arc<tempfile::TempDir>,
        extra: &str,
        env: HashMap<String, String>,
    ) -> TestApp {
        TestApp::spawn_clocked(dir, extra, env, bizrelay::state::Clock::System).await
    }

    /// Like [`TestApp::spawn_in`], with time from `clock` (a manual one moves by hand).
    pub async fn spawn_clocked(
        dir: Arc<tempfile::TempDir>,
        extra: &str,
        env: HashMap<String, String>,
        clock: bizrelay::state::Clock,
    ) -> TestApp {
        let text = base_config(dir.path(), extra);
        let config_path = dir.path().join("config.toml");
        std::fs::write(&config_path, &text).unwrap();
        let loaded = load(
            &ConfigSource::File {
                path: config_path.clone(),
                text,
            },
            &env,
        )
        .unwrap_or_else(|e| panic!("{e:?}"));
        let app = App::build(
            loaded,
            Options {
                clock,
                ..Options::new(SourceSpec::File(config_path.clone()), env)
            },
        )
        .await
        .unwrap();
        TestApp {
            addr: app.addr(),
            app: Some(app),
            dir,
            config_path,
            http: http_client(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub async fn post(&self, body: impl Into<String>) -> reqwest::Response {
        self.post_with(body, &[]).await
    }

    pub async fn post_with(
        &self,
        body: impl Into<String>,
        headers: &[(&str, &str)],
    ) -> reqwest::Response {
        let mut req = self
            .http
            .post(self.url("/hooks/bizmessage"))
            .header("content-type", "application/json;charset=UTF-8")
            .body(body.into());
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        req.send().await.unwrap()
    }

    /// Posts and returns (status, JSON body).
    pub async fn post_json(&self, body: impl Into<String>) -> (u16, serde_json::Value) {
        let resp = self.post(body).await;
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap())
    }

    /// The `/readyz` answer.
    pub async fn readyz(&self) -> serde_json::Value {
        let resp = self.http.get(self.url("/readyz")).send().await.unwrap();
        resp.json().await.unwrap()
    }

    /// The `/metrics` text.
    pub async fn metrics(&self) -> String {
        let resp = self.http.get(self.url("/metrics")).send().await.unwrap();
        resp.text().await.unwrap()
    }

    pub async fn stop(&mut self) {
        if let Some(app) = self.app.take() {
            app.stop().await;
        }
    }

    pub fn state(&self) -> &Arc<bizrelay::state::State> {
        self.app.as_ref().unwrap().state()
    }
}

/// A config body for one Slack and one Teams destination pointing at fakes.
pub fn slack_teams(slack: &FakeChat, teams: &FakeChat, routes: &str) -> String {
    format!(
        "[destinations.ops-slack]\ntype = \"slack\"\nurl = \"{}\"\nrate_per_second = 50\nburst = 10\n\n\
         [destinations.ops-teams]\ntype = \"teams\"\nurl = \"{}\"\nrate_per_second = 50\nburst = 10\n\n{routes}",
        slack.url("/services/T000/B000/XXXXSECRET"),
        teams.url("/workflows/teams-secret"),
    )
}

/// A webhook body with the given hooks.
pub fn envelope(hooks: &[serde_json::Value]) -> String {
    serde_json::json!({
        "hooksId": format!("post-{}", rand_id()), "webhookConfigId": "wcf-test",
        "productName": "KakaoTalk Bizmessage", "appKey": "Xk2abcDEF9tq", "event": "MESSAGE_RESULT_UPDATE",
        "hooks": hooks,
    })
    .to_string()
}

pub fn rand_id() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed) + std::process::id() as u64 * 1_000_000
}

/// A failed message-result hook.
pub fn failure(id: &str, code: &str) -> serde_json::Value {
    serde_json::json!({
        "hookId": id, "kakaoMessageType": "ALIMTALK_NORMAL", "requestId": "20261128101455aBcD1234",
        "recipientSeq": 1, "requestDate": "2026-11-28 10:14:55", "createDate": "2026-11-28 10:14:55",
        "receiveDate": null, "recipientNo": "01098765432", "resultCode": code,
        "senderGroupingKey": "order-service", "recipientGroupingKey": "user-1002"
    })
}

/// The real binary, started with a config file; its stderr (JSON logs) is collected.
pub struct Process {
    pub child: Child,
    pub addr: SocketAddr,
    pub log: Arc<Mutex<Vec<String>>>,
}

pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_bizrelay")
}

/// The real binary as every test runs it: in `cwd`, a test's own temporary folder (never the
/// checkout: a `config.toml` the user left there must not be read), and without the BIZRELAY*
/// variables of the shell that started the tests.
pub fn bizrelay(cwd: &Path) -> Command {
    let mut cmd = Command::new(binary());
    cmd.current_dir(cwd);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("BIZRELAY") {
            cmd.env_remove(&name);
        }
    }
    cmd
}

/// The folder a config file is in (where tests run the binary that reads it).
pub fn folder_of(config: &Path) -> &Path {
    config.parent().unwrap_or(Path::new("/"))
}

impl Process {
    pub fn start(config: &Path, env: &[(&str, &str)]) -> Process {
        let mut cmd = bizrelay(folder_of(config));
        cmd.args(["serve", "--log-format", "json", "--config"])
            .arg(config)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap();
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let sink = Arc::clone(&log);
        std::thread::spawn(move || {
            let mut sent = false;
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if !sent && line.contains("bizrelay is listening") {
                    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
                    let _ = tx.send(v["listen"].as_str().unwrap().parse::<SocketAddr>().unwrap());
                    sent = true;
                }
                sink.lock().unwrap().push(line);
            }
        });
        let addr = match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(a) => a,
            Err(_) => {
                let _ = child.kill();
                panic!("bizrelay did not start: {:?}", log.lock().unwrap());
            }
        };
        Process { child, addr, log }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Posts a webhook body; returns the answer.
    pub async fn post(&self, http: &reqwest::Client, body: String) -> reqwest::Response {
        http.post(self.url("/hooks/bizmessage"))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap()
    }

    pub fn signal(&self, sig: nix::sys::signal::Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.child.id() as i32), sig).unwrap();
    }

    pub fn log_text(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    /// Waits for the process to exit; returns its status.
    /// (Async, so fake receivers on the test's runtime keep answering meanwhile.)
    pub async fn wait(&mut self, timeout: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "process did not exit within {timeout:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The PostgreSQL server the tests use, from `BIZRELAY_TEST_POSTGRES` (default
/// `postgres://postgres@127.0.0.1:5432/postgres`: the machine's own cluster, trust auth).
pub fn postgres_admin_url() -> String {
    std::env::var("BIZRELAY_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// A fresh, empty database for one test; returns its URL. Databases left by earlier test
/// runs (whose process is gone) are dropped on the way. Fails loudly, saying how to provide a
/// server, when PostgreSQL cannot be reached: a PostgreSQL test never skips.
pub async fn postgres_database() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    static SWEPT: std::sync::Once = std::sync::Once::new();
    let admin = postgres_admin_url();
    let (client, conn) = match tokio_postgres::connect(&admin, tokio_postgres::NoTls).await {
        Ok(c) => c,
        Err(e) => panic!(
            "this test needs PostgreSQL, which is not reachable at {admin}: {e}. Start the \
             machine's cluster (`pg_ctlcluster 15 main start`, or run .ci/run, which starts \
             one), or set BIZRELAY_TEST_POSTGRES to a server where this user may create databases"
        ),
    };
    tokio::spawn(conn);
    let mut sweep = false;
    SWEPT.call_once(|| sweep = true);
    if sweep {
        let rows = client
            .query(
                "SELECT datname FROM pg_database WHERE datname LIKE 'bizrelay_t_%'",
                &[],
            )
            .await
            .unwrap();
        for r in rows {
            let name: String = r.get(0);
            let pid = name.split('_').nth(2).and_then(|p| p.parse::<u32>().ok());
            let alive = pid.is_some_and(|p| std::path::Path::new(&format!("/proc/{p}")).exists());
            if !alive {
                let _ = client
                    .execute(
                        &format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"),
                        &[],
                    )
                    .await;
            }
        }
    }
    let name = format!(
        "bizrelay_t_{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    );
    client
        .execute(&format!("CREATE DATABASE \"{name}\""), &[])
        .await
        .unwrap_or_else(|e| panic!("cannot create the test database {name} at {admin}: {e}"));
    let mut url = url::Url::parse(&admin).unwrap();
    url.set_path(&format!("/{name}"));
    url.to_string()
}

/// Runs a `bizrelay` command with `--config FILE`, in the config's folder (so nothing the
/// user put in the checkout is read); returns its output.
pub fn bizrelay_cmd(config: &Path, args: &[&str]) -> std::process::Output {
    Command::new(binary())
        .args(args)
        .arg("--config")
        .arg(config)
        .current_dir(config.parent().unwrap_or(Path::new(".")))
        .env_remove("RUST_LOG")
        .env_remove("BIZRELAY_CONFIG")
        .output()
        .unwrap()
}

/// Polls `check` every 20 ms until it holds (panics with `what` after `timeout`).
pub async fn wait_until<F: FnMut() -> bool>(what: &str, timeout: Duration, mut check: F) {
    let deadline = Instant::now() + timeout;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Runs the real binary with these arguments (plus `--config`), off the async runtime so fake
/// receivers keep answering; returns (exit code, stdout, stderr).
pub async fn run_cli(args: &[&str], config: &Path) -> (Option<i32>, String, String) {
    let mut all: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    all.push("--config".into());
    all.push(config.display().to_string());
    let out = tokio::task::spawn_blocking(move || {
        Command::new(binary())
            .args(&all)
            .env_remove("BIZRELAY_CONFIG")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Waits until the process's log has `n` lines containing `needle` (panics after `timeout`).
pub async fn wait_for_log(process: &Process, needle: &str, n: usize, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        let count = process
            .log
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains(needle))
            .count();
        if count >= n {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{count} of {n} log lines with `{needle}` after {timeout:?}:\n{}",
            process.log_text()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Leaves a dead letter in the SQLite store at `db`, as an earlier run would have: a hook with
/// this id, routed to `destination`, its delivery dead with `reason`.
pub async fn seed_dead_letter(db: &Path, destination: &str, hook_id: &str, reason: &str) {
    use bizrelay::store::*;
    let cfg = bizrelay::config::StoreConfig {
        path: db.to_path_buf(),
        sync: bizrelay::config::SyncMode::Normal,
        ..Default::default()
    };
    let store = open(&cfg, Mode::Serve).await.unwrap();
    let raw = serde_json::json!({"hookId": hook_id, "requestId": "r", "resultCode": "3019"});
    store
        .ingest(NewPost {
            received_at: 1,
            hooks_id: None,
            envelope_json: "{}".into(),
            hooks: vec![NewHook {
                dedup_key: format!("h:{hook_id}"),
                raw: raw.to_string().into(),
            }],
            rejected: vec![],
            claim: None,
            routed: None,
        })
        .await
        .unwrap();
    let who = Claimant {
        owner: "seed".into(),
        ttl_ms: 60_000,
    };
    let hooks = store.claim_hooks(&who, 1, 10).await.unwrap();
    let row = hooks[0].row;
    let batch = DispatchBatch {
        hooks: vec![HookOutcome {
            row,
            routed: true,
            sent_to: vec![destination.into()],
        }],
        deliveries: vec![NewDelivery {
            destination: destination.into(),
            route: "r".into(),
            template: "message_result".into(),
            hook_row: Some(row),
            hook_id: Some(hook_id.into()),
            payload: "{}".into(),
            created_at: 1,
            received_at: 1,
            dead: Some(reason.into()),
        }],
        members: vec![],
        silenced: vec![],
        rates: vec![],
    };
    store
        .commit_dispatch(&who, batch, &bizrelay::digest::RULES)
        .await
        .unwrap();
    store.close().await;
}
