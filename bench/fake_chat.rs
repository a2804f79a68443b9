//! Benchmark helper: a fake Slack incoming webhook. Answers every POST with 200 `ok`, counts the
//! requests and, for digest messages (top-level `text` starting with "🚨 <count> "), sums the
//! hook counts. `GET /stats` returns
//! `{"requests": N, "digest_hooks": M, "first_at_ms": .., "last_at_ms": ..}` (unix ms of the
//! first and last POST, 0 when none yet).
//!
//! Usage: `bench-fake-chat 127.0.0.1:18091`

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use warp::Filter;

#[derive(Default)]
struct Stats {
    requests: AtomicU64,
    digest_hooks: AtomicU64,
    first_at_ms: AtomicU64,
    last_at_ms: AtomicU64,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The hook count of a digest message: the number after "🚨 " in the top-level `text`.
fn digest_count(body: &[u8]) -> Option<u64> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    let text = value.get("text")?.as_str()?;
    let rest = text.strip_prefix("🚨 ")?;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

#[tokio::main]
async fn main() {
    let addr: SocketAddr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:18091".into())
        .parse()
        .expect("listen address such as 127.0.0.1:18091");
    let stats = Arc::new(Stats::default());

    let s = Arc::clone(&stats);
    let get_stats = warp::path!("stats").and(warp::get()).map(move || {
        warp::reply::json(&serde_json::json!({
            "requests": s.requests.load(Ordering::SeqCst),
            "digest_hooks": s.digest_hooks.load(Ordering::SeqCst),
            "first_at_ms": s.first_at_ms.load(Ordering::SeqCst),
            "last_at_ms": s.last_at_ms.load(Ordering::SeqCst),
        }))
    });

    let s = Arc::clone(&stats);
    let post = warp::post()
        .and(warp::body::bytes())
        .map(move |body: bytes::Bytes| {
            let now = now_ms();
            let _ = s
                .first_at_ms
                .compare_exchange(0, now, Ordering::SeqCst, Ordering::SeqCst);
            s.last_at_ms.fetch_max(now, Ordering::SeqCst);
            if let Some(n) = digest_count(&body) {
                s.digest_hooks.fetch_add(n, Ordering::SeqCst);
            }
            s.requests.fetch_add(1, Ordering::SeqCst);
            "ok"
        });

    eprintln!("bench-fake-chat listening on {addr}");
    warp::serve(get_stats.or(post)).run(addr).await;
}
