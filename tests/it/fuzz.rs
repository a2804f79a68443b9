//! Property tests (fuzzing) of the envelope and hook parser, and of routing + rendering of
//! whatever parses: nothing panics, every rendered body is valid JSON within the destination's
//! limits, and untrusted text never pings a Slack channel.
//!
//! Runs briefly in `cargo test`; run longer with e.g.
//! `PROPTEST_CASES=20000 cargo test --release --test it fuzz`.
//! Seeds: the reference payloads in `tests/fixtures/` (mutated byte by byte) and the quirks.

use std::collections::HashMap;

use bizrelay::bizmessage::{parse_hook, parse_post};
use bizrelay::config::{ConfigSource, Loaded, load};
use bizrelay::dispatch::{preview_flush, route_hooks};
use bizrelay::store::StoredHook;
use proptest::prelude::*;
use serde_json::{Map, Value, json};

const FIXTURES: [&str; 6] = [
    include_str!("../fixtures/template_rejected.json"),
    include_str!("../fixtures/template_approved.json"),
    include_str!("../fixtures/message_results.json"),
    include_str!("../fixtures/mixed.json"),
    include_str!("../fixtures/quirks.json"),
    include_str!("../fixtures/unknown_event.json"),
];

fn loaded() -> Loaded {
    let text = r#"
[destinations.s]
type = "slack"
url = "https://hooks.slack.invalid/x"
[destinations.t]
type = "teams"
url = "https://teams.invalid/x"
[destinations.c]
type = "console"
[[routes]]
name = "templates"
to = ["s", "t", "c"]
continue = true
[routes.match]
kind = "template"
[[routes]]
name = "digest"
to = ["s", "t", "c"]
continue = true
[routes.group]
by = ["result_code", "message_type"]
[[routes]]
name = "everything"
to = ["s", "t", "c"]
"#;
    load(
        &ConfigSource::File {
            path: "/fuzz/config.toml".into(),
            text: text.into(),
        },
        &HashMap::new(),
    )
    .unwrap()
}

/// Strings that break things: quotes, backslashes, controls, mentions, braces, Korean, emoji.
fn nasty_string() -> impl Strategy<Value = String> {
    prop_oneof![
        ".{0,40}",
        Just("<!channel> <@U1> <http://x|y> & }} {{x}} \" \\ \n \t \u{0} \u{2028}".to_string()),
        Just("반려 사유: 변수 #{주문번호}".to_string()),
        Just("👍🏽🇰🇷".repeat(50)),
        "[a-z0-9 ]{3000,3200}",
        Just(String::new()),
        "01[0-9]{8,9}",
    ]
}

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        nasty_string().prop_map(Value::String),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        any::<bool>().prop_map(Value::Bool),
        Just(Value::Null),
        prop::sample::select(vec![
            "TSC01",
            "TSC02",
            "TSC03",
            "TSC04",
            "TSC99",
            "1000",
            "3005",
            "3019",
            "9999",
            "ALIMTALK_NORMAL",
            "REJ",
            "INQ",
            "XYZ"
        ])
        .prop_map(|s| json!(s)),
    ]
}

fn value() -> impl Strategy<Value = Value> {
    scalar().prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec(("[a-zA-Z]{1,12}", inner), 0..6)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

const FIELDS: [&str; 24] = [
    "hookId",
    "senderKey",
    "templateCode",
    "kakaoTemplateCode",
    "status",
    "comments",
    "updateDate",
    "kakaoMessageType",
    "requestId",
    "recipientSeq",
    "requestDate",
    "createDate",
    "receiveDate",
    "recipientNo",
    "resultCode",
    "senderGroupingKey",
    "recipientGroupingKey",
    "_links",
    "isAddedChannel",
    "id",
    "content",
    "userName",
    "createAt",
    "attachment",
];

fn comment() -> impl Strategy<Value = Value> {
    (scalar(), nasty_string(), nasty_string(), scalar(), scalar(), prop::collection::vec(value(), 0..3)).prop_map(
        |(id, content, user, at, status, att)| json!({"id": id, "content": content, "userName": user, "createdAt": at, "status": status, "attachment": att}),
    )
}

/// Hook-shaped objects: vendor field names with values of any type, sometimes well typed.
fn hook() -> impl Strategy<Value = Value> {
    let fields = prop::collection::vec((prop::sample::select(FIELDS.to_vec()), value()), 0..12);
    let comments = prop::collection::vec(comment(), 0..30);
    (fields, prop::option::of(comments), any::<u8>()).prop_map(|(fields, comments, shape)| {
        let mut map: Map<String, Value> = fields
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        match shape % 4 {
            0 => {
                map.insert("templateCode".into(), json!("T"));
                map.insert("status".into(), json!("TSC04"));
                if let Some(c) = comments {
                    map.insert("comments".into(), Value::Array(c));
                }
            }
            1 => {
                map.insert("requestId".into(), json!("r"));
            }
            _ => {}
        }
        Value::Object(map)
    })
}

fn envelope() -> impl Strategy<Value = Value> {
    (prop::collection::vec(prop_oneof![9 => hook(), 1 => value()], 0..8), scalar(), scalar()).prop_map(|(hooks, event, app)| {
        json!({"hooksId": "fuzz", "event": event, "appKey": app, "hooks": hooks})
    })
}

/// Parses, routes and renders a body; checks every output.
fn relay(loaded: &Loaded, body: &[u8]) {
    let Ok(post) = parse_post(body) else { return };
    let stored: Vec<StoredHook> = post
        .hooks
        .iter()
        .enumerate()
        .filter(|(_, raw)| parse_hook(raw.get()).is_ok())
        .map(|(i, raw)| StoredHook {
            row: i as i64 + 1,
            received_at: 1_795_830_000_000,
            envelope: post.envelope.clone().into(),
            raw: raw.get().into(),
            sent_to: vec![],
            failures: 0,
            parsed: None,
        })
        .collect();
    let (batch, report) = route_hooks(loaded, &stored, 1_795_830_000_000);
    assert!(
        report.fallbacks.is_empty(),
        "built-in templates failed: {:?}",
        report.fallbacks
    );
    let mut bodies: Vec<(String, String)> = batch
        .deliveries
        .iter()
        .map(|d| (d.destination.clone(), d.payload.clone()))
        .collect();
    if !stored.is_empty() {
        let route = loaded.routes.iter().find(|r| r.name == "digest").unwrap();
        let (flush, report) = preview_flush(loaded, route, "{}", &stored, 0).unwrap();
        assert!(
            report.fell_back.is_empty(),
            "digest template failed: {:?}",
            report.fell_back
        );
        for d in flush.deliveries {
            bodies.push((d.destination, d.payload));
        }
    }
    for (dest, body) in bodies {
        let kind = loaded.config.destinations[&dest].kind;
        let problems = kind.violations(&body);
        assert!(problems.is_empty(), "{dest}: {problems:?}\n{body}");
        if dest == "s" {
            assert!(
                !body.contains("<!channel>") && !body.contains("<@U1>"),
                "{body}"
            );
        }
    }
}

/// 48 cases in `cargo test`; `PROPTEST_CASES=N` for longer runs.
fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(48)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), .. ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        if let Ok(post) = parse_post(&bytes) {
            for raw in post.hooks {
                let _ = parse_hook(raw.get());
            }
        }
    }

    #[test]
    fn mutated_reference_payloads_never_panic(which in 0..FIXTURES.len(), edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8), cut in any::<prop::sample::Index>()) {
        let mut bytes = FIXTURES[which].as_bytes().to_vec();
        for (at, b) in edits {
            let i = at.index(bytes.len());
            bytes[i] = b;
        }
        let keep = cut.index(bytes.len() + 1).max(bytes.len() / 2);
        bytes.truncate(keep);
        relay(&loaded(), &bytes);
    }

    #[test]
    fn whatever_parses_renders_within_limits(env in envelope()) {
        relay(&loaded(), env.to_string().as_bytes());
    }
}

#[test]
fn the_seed_corpus_relays_cleanly() {
    let loaded = loaded();
    for body in FIXTURES {
        relay(&loaded, body.as_bytes());
    }
}
