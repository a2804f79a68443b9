//! Reading webhooks without HTTP or a store: a 100-hook POST of message results (as
//! bench/ingest.lua sends) parsed again and again, envelope and every hook, as the webhook
//! does. Prints nanoseconds per hook for each of five rounds; asserts nothing.
//!
//! Usage: `cargo run --release --example bench-parse -- [ROUNDS_OF_POSTS]` (default 2000).

use std::time::Instant;

use bizrelay::bizmessage::{parse_hook, parse_post};

fn body(hooks: usize) -> String {
    let hook = |i: usize| {
        format!(
            r#"{{"hookId":"p-1-1-{i}","kakaoMessageType":"ALIMTALK_NORMAL","requestId":"2026112810145500000016","recipientSeq":1,"requestDate":"2026-11-28 10:14:55","createDate":"2026-11-28 10:14:55","receiveDate":"2026-11-28 10:14:57","recipientNo":"01012345678","resultCode":"1000","senderGroupingKey":"order-service","recipientGroupingKey":"user-1","_links":{{"self":{{"href":"https://api-alimtalk.cloud.toast.com/alimtalk/v2.3/appkeys/Xk2abcDEF9tq/messages/2026112810145500000016/1"}}}}}}"#
        )
    };
    let hooks: Vec<String> = (0..hooks).map(hook).collect();
    format!(
        r#"{{"hooksId":"p-1-1","webhookConfigId":"wcf-91aa","productName":"KakaoTalk Bizmessage","appKey":"Xk2abcDEF9tq","event":"MESSAGE_RESULT_UPDATE","hooks":[{}]}}"#,
        hooks.join(",")
    )
}

fn main() {
    let posts: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(2000);
    let body = body(100);
    for round in 1..=5 {
        let started = Instant::now();
        let mut fields = 0usize;
        for _ in 0..posts {
            let post = parse_post(body.as_bytes()).expect("the bench body parses");
            for raw in &post.hooks {
                let hook = parse_hook(raw.get()).expect("the bench hook parses");
                fields += usize::from(hook.hook_id.is_some());
            }
        }
        let ns = started.elapsed().as_nanos() as f64 / (posts * 100) as f64;
        println!("bench-parse: round {round}: {ns:.0} ns per hook ({fields} hooks)");
    }
}
