//! Unit tests of the slack_bot service: settings checks, addressing, escaping, and the thread
//! templates rendered in every situation.

use super::*;

fn checks(v: Value) -> Checks {
    Checks::of(&serde_json::from_value::<DestinationConfig>(v).unwrap())
}

#[test]
fn check_names_each_setting_without_quoting_the_token() {
    let ok = checks(
        serde_json::json!({"type": "slack_bot", "token": "xoxb-1-2-SECRET",
        "channel": "C0123456789"}),
    );
    assert_eq!(ok, Checks::default());
    let bad = checks(
        serde_json::json!({"type": "slack_bot", "url": "https://hooks.slack.com/x",
        "token": "xoxp-USER SECRET", "channel": "#reviews", "api_url": "http://slack.example/api"}),
    );
    let keys: Vec<&str> = bad.errors.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, ["url", "token", "channel", "api_url"], "{bad:?}");
    assert!(!format!("{bad:?}").contains("SECRET"), "{bad:?}");
    let missing = checks(serde_json::json!({"type": "slack_bot"}));
    let keys: Vec<&str> = missing.errors.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, ["token", "channel"], "{missing:?}");
    assert!(missing.errors[0].1.contains("chat:write"), "{missing:?}");
    let user = checks(serde_json::json!({"type": "slack_bot", "token": "xoxp-1",
        "channel": "C0123456789", "api_url": "http://127.0.0.1:9/api"}));
    assert!(user.errors.is_empty(), "{user:?}");
    assert_eq!(user.warnings[0].0, "token");
}

#[test]
fn channel_ids_are_told_from_names() {
    for ok in ["C0123456789", "G01ABCDEFG", "D0ABCDEFGH"] {
        assert!(is_channel_id(ok), "{ok}");
    }
    for bad in ["#reviews", "reviews", "C12", "c0123456789", "C0123-45678"] {
        assert!(!is_channel_id(bad), "{bad}");
    }
}

#[test]
fn addressing_adds_the_target_and_drops_template_supplied_ones() {
    let body = r#"{"text":"t","blocks":[],"thread_ts":"9.9","channel":"CEVIL0000"}"#;
    let v: Value =
        serde_json::from_str(&addressed(body, "C0123456789", None, Some("1.2"), true)).unwrap();
    assert_eq!(v["channel"], "C0123456789");
    assert_eq!(v["thread_ts"], "1.2");
    assert_eq!(v["reply_broadcast"], true);
    let v: Value = serde_json::from_str(&addressed(
        r#"{"text":"t"}"#,
        "C0123456789",
        Some("1.2"),
        None,
        false,
    ))
    .unwrap();
    assert_eq!(v["ts"], "1.2");
    assert_eq!(v["blocks"], serde_json::json!([]));
    assert!(v.get("thread_ts").is_none() && v.get("reply_broadcast").is_none());
}

#[test]
fn escaping_defuses_mentions_and_formatting() {
    let e = escape("<!channel> <@U123> *bold* `code` ~x~ & \"q\"");
    assert!(!e.contains("<!channel>") && !e.contains("<@U123>"), "{e}");
    assert!(
        !e.contains("*bold*") && !e.contains("`code`") && !e.contains("~x~"),
        "{e}"
    );
    assert!(e.contains("&amp;") && e.contains("\"q\""), "{e}");
}

use crate::context::{Meta, hook_context};
use crate::locale::Locale;
use crate::render::Renderer;
use crate::samples;

/// Every thread template renders, fits and passes the Slack audit with every template
/// sample (the adversarial ones included) in every thread situation, and no hostile text
/// turns into a mention.
#[test]
fn thread_templates_render_every_sample_in_every_situation() {
    let r = Renderer::builtin();
    let all = samples::reference()
        .into_iter()
        .chain(samples::adversarial());
    let mut renders = 0;
    for s in all.filter(|s| s.hook.kind() == crate::bizmessage::HookKind::Template) {
        for locale in Locale::ALL {
            let meta = Meta {
                route: "r",
                destination: "reviews",
                destination_type: KIND,
                locale,
                received_at_ms: 1_795_830_000_000,
                mask_recipient: true,
            };
            let ctx = hook_context(&s.envelope, &s.hook, &meta);
            for (template, what, tctx) in thread::sample_contexts(&ctx) {
                let body = r
                    .render(KIND, locale, template, &tctx)
                    .unwrap_or_else(|e| panic!("{template} {what} {}: {e}", s.name));
                let problems = KIND.violations(&body);
                assert!(
                    problems.is_empty(),
                    "{template} {what} {}: {problems:?}",
                    s.name
                );
                for hostile in ["<!channel>", "<@U123>", "<http://evil|safe>", "**bold**"] {
                    assert!(!body.contains(hostile), "{template} {}: {hostile}", s.name);
                }
                renders += 1;
            }
        }
    }
    assert!(renders > 30, "{renders}");
}
