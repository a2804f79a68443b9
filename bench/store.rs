//! The SQLite writer alone, without HTTP: many tasks ingest routed-unrouted POSTs (the bulk
//! of real traffic: successes that match no route) concurrently, so the writer's group commit
//! sees what the webhook would give it. Prints hooks/s per round; asserts nothing.
//!
//! Usage: `cargo run --release --example bench-store -- [HOOKS_PER_POST] [POSTS] [TASKS]`
//! (defaults 100, 2000, 32). `BENCH_STORE_SQL` is run on each fresh store before the load
//! (e.g. an index to compare against), `BENCH_STORE_SYNC` is `full` (default) or `normal`,
//! `BENCH_STORE_IDS=sequential` gives hookIds that count up (as bench/ingest.lua's do) instead
//! of ids spread over the key space.

use std::sync::Arc;
use std::time::Instant;

use bizrelay::config::{StoreConfig, SyncMode};
use bizrelay::store::sqlite::SqliteStore;
use bizrelay::store::{DispatchBatch, HookOutcome, Mode, NewHook, NewPost, RoutedPost, Store};

const HOOK: &str = r#"{"hookId":"ID","kakaoMessageType":"ALIMTALK_NORMAL","requestId":"20261128101455000001","recipientSeq":1,"requestDate":"2026-11-28 10:14:55","createDate":"2026-11-28 10:14:55","receiveDate":"2026-11-28 10:14:57","recipientNo":"01012345678","resultCode":"1000","senderGroupingKey":"order-service","recipientGroupingKey":"user-1","_links":{"self":{"href":"https://api-alimtalk.cloud.toast.com/alimtalk/v2.3/appkeys/Xk2abcDEF9tq/messages/20261128101455000001/1"}}}"#;
const ENVELOPE: &str = r#"{"hooksId":"HID","webhookConfigId":"wcf-91aa","productName":"KakaoTalk Bizmessage","appKey":"Xk2abcDEF9tq","event":"MESSAGE_RESULT_UPDATE"}"#;

fn post(task: usize, n: usize, per_post: usize, sequential: bool) -> NewPost {
    let hooks: Vec<NewHook> = (0..per_post)
        .map(|i| {
            // Ids scattered over the key space, as independent senders' ids are (the wrk
            // script's ids count up, which keeps the dedup index's writes on a few pages).
            let id = if sequential {
                format!("{task}-{n:08}-{i:03}")
            } else {
                let spread = (task as u64 * 7919 + n as u64 * 104_729 + i as u64)
                    .wrapping_mul(0x9E37_79B9_7F4A_7C15);
                format!("{spread:016x}-{task}-{n}-{i}")
            };
            NewHook {
                dedup_key: format!("h:{id}"),
                raw: HOOK.replace("ID", &id).into(),
            }
        })
        .collect();
    let batch = DispatchBatch {
        hooks: (0..per_post)
            .map(|i| HookOutcome {
                row: i as i64,
                routed: false,
                sent_to: vec![],
            })
            .collect(),
        ..DispatchBatch::default()
    };
    NewPost {
        received_at: 1_800_000_000_000 + n as i64,
        hooks_id: Some(format!("{task}-{n}")),
        envelope_json: ENVELOPE.replace("HID", &format!("{task}-{n}")),
        hooks,
        rejected: vec![],
        claim: None,
        routed: Some(RoutedPost {
            batch,
            rules: bizrelay::digest::RULES,
        }),
    }
}

#[tokio::main]
async fn main() {
    let arg = |i: usize, default: usize| {
        std::env::args()
            .nth(i)
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let (per_post, posts, tasks) = (arg(1, 100), arg(2, 2000), arg(3, 32));
    let sync = match std::env::var("BENCH_STORE_SYNC").as_deref() {
        Ok("normal") => SyncMode::Normal,
        _ => SyncMode::Full,
    };
    let dir = tempfile::tempdir().expect("a temporary directory");
    let cfg = StoreConfig {
        path: dir.path().join("bench.db"),
        sync,
        ..StoreConfig::default()
    };
    let store = Arc::new(SqliteStore::open(&cfg, Mode::Serve).expect("the store opens"));
    if let Ok(sql) = std::env::var("BENCH_STORE_SQL") {
        let c = rusqlite::Connection::open(&cfg.path).expect("a second connection");
        c.execute_batch(&sql).expect("BENCH_STORE_SQL runs");
    }
    let sequential = std::env::var("BENCH_STORE_IDS").as_deref() == Ok("sequential");
    let started = Instant::now();
    let mut running = Vec::new();
    for task in 0..tasks {
        let store = Arc::clone(&store);
        running.push(tokio::spawn(async move {
            for n in (task..posts).step_by(tasks) {
                store
                    .ingest(post(task, n, per_post, sequential))
                    .await
                    .expect("ingest");
            }
        }));
    }
    for r in running {
        r.await.expect("a task");
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "bench-store: {} hooks in POSTs of {per_post}, {tasks} tasks, {} ids: {:.0} hooks/s ({:.2} s)",
        posts * per_post,
        if sequential { "sequential" } else { "spread" },
        (posts * per_post) as f64 / secs,
        secs
    );
    store.close().await;
}
