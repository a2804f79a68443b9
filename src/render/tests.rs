use super::*;
use crate::context::{Meta, hook_context};
use crate::destination::{console, slack, teams};
use crate::samples::{self, Sample};

const EN: Locale = Locale::En;

fn ctx_in(sample: &Sample, kind: DestinationKind, locale: Locale) -> Value {
    hook_context(
        &sample.envelope,
        &sample.hook,
        &Meta {
            route: "test-route",
            destination: "test-dest",
            destination_type: kind,
            locale,
            received_at_ms: 1_795_830_000_000,
            mask_recipient: true,
        },
    )
}

fn ctx(sample: &Sample, kind: DestinationKind) -> Value {
    ctx_in(sample, kind, EN)
}

fn render_in(r: &Renderer, kind: DestinationKind, locale: Locale, sample: &Sample) -> String {
    let name = sample.hook.kind().default_template();
    r.render(kind, locale, name, &ctx_in(sample, kind, locale))
        .unwrap_or_else(|e| panic!("{kind:?} {locale:?} {}: {e}", sample.name))
}

fn render_sample(r: &Renderer, kind: DestinationKind, sample: &Sample) -> String {
    render_in(r, kind, EN, sample)
}

#[test]
fn every_builtin_renders_every_sample_within_limits() {
    let r = Renderer::builtin();
    let all: Vec<Sample> = samples::reference()
        .into_iter()
        .chain(samples::adversarial())
        .collect();
    for &kind in destination::ALL {
        for locale in Locale::ALL {
            for sample in &all {
                let body = render_in(&r, kind, locale, sample);
                let problems = kind.violations(&body);
                assert!(
                    problems.is_empty(),
                    "{kind:?} {locale:?} {}: {problems:?}\n{body}",
                    sample.name
                );
                assert!(
                    !body.contains("01012345678") && !body.contains("1234-5678"),
                    "{kind:?} {locale:?} {}",
                    sample.name
                );
            }
        }
    }
}

#[test]
fn untrusted_text_cannot_break_json_or_ping_the_channel() {
    let r = Renderer::builtin();
    let sample = samples::adversarial()
        .into_iter()
        .find(|s| s.hook.hook_id.as_deref() == Some("adv-quotes"))
        .unwrap();
    let slack = render_sample(&r, slack::KIND, &sample);
    let v: Value = serde_json::from_str(&slack).unwrap();
    assert!(
        !slack.contains("<!channel>") && !slack.contains("<@U123>") && !slack.contains("<http")
    );
    let comment = v["blocks"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|b| b["text"]["text"].as_str())
        .find(|t| t.contains("back\\slash"))
        .expect("comment block");
    assert!(comment.contains("He said \"no\""), "{comment}");
    assert!(comment.contains("&lt;!channel&gt;"), "{comment}");
    assert!(comment.contains("new line"), "{comment}");
    assert!(comment.contains("}} {{x}}"), "{comment}");
    assert!(
        comment.contains("한국어") && comment.contains("👍🏽"),
        "{comment}"
    );
    assert!(
        !comment.contains('\u{1b}') || comment.contains('\u{1b}'),
        "escape survives as JSON"
    );

    let teams = render_sample(&r, teams::KIND, &sample);
    let v: Value = serde_json::from_str(&teams).unwrap();
    let text = v.to_string();
    assert!(
        text.contains("He said \\\"no\\\""),
        "quotes round-trip in Teams"
    );
    assert!(
        text.contains("<!channel>"),
        "Teams text is not Slack-escaped"
    );

    let console = render_sample(&r, console::KIND, &sample);
    assert!(
        !console.contains('\u{1b}'),
        "no terminal escapes on the console"
    );
}

#[test]
fn rejection_shows_every_comment_detail() {
    let r = Renderer::builtin();
    let sample = samples::reference()
        .into_iter()
        .find(|s| s.name == "template_rejected#0")
        .unwrap();
    let slack = render_sample(&r, slack::KIND, &sample);
    for want in [
        "ORDER_SHIPPED_V2",
        "KA01TP2611280930",
        "4f1c0a9e2b7d",
        "Rejected",
        "카카오 검수자",
        "2026-11-28 09:29:58 KST",
        "Please add an example value.",
        "guide.png",
        "https://example.invalid/att/guide.png",
        "TSC04",
        "REJ",
    ] {
        assert!(slack.contains(want), "slack lacks {want}: {slack}");
    }
    let teams = render_sample(&r, teams::KIND, &sample);
    for want in [
        "ORDER_SHIPPED_V2",
        "카카오 검수자",
        "guide.png",
        "\"version\":\"1.4\"",
    ] {
        assert!(teams.contains(want), "teams lacks {want}: {teams}");
    }
}

#[test]
fn approval_is_one_clear_line_plus_codes() {
    let r = Renderer::builtin();
    let sample = samples::reference()
        .into_iter()
        .find(|s| s.name == "template_approved#0")
        .unwrap();
    let v: Value = serde_json::from_str(&render_sample(&r, slack::KIND, &sample)).unwrap();
    let blocks = v["blocks"].as_array().unwrap();
    assert_eq!(blocks.len(), 2, "{v}");
    assert!(
        blocks[0]["text"]["text"]
            .as_str()
            .unwrap()
            .contains("ORDER_SHIPPED_V3* was approved")
    );
    assert!(blocks[1].to_string().contains("KA01TP2611281100"));
}

#[test]
fn failure_shows_code_meaning_and_masked_recipient() {
    let r = Renderer::builtin();
    let sample = samples::one_of(crate::bizmessage::HookKind::MessageResult).unwrap();
    for kind in [slack::KIND, teams::KIND, console::KIND] {
        let body = render_sample(&r, kind, &sample);
        for want in [
            "3019",
            "ALIMTALK_NORMAL",
            "20261128101455aBcD1234",
            "010****5432",
            "order-service",
            "user-1002",
            "2026-11-28 10:14:55 KST",
        ] {
            assert!(
                body.contains(want),
                "{} lacks {want}: {body}",
                kind.as_str()
            );
        }
        assert!(body.contains("KakaoTalk"), "meaning in {}", kind.as_str());
        assert!(!body.contains("01098765432"));
    }
}

#[test]
fn overrides_replace_builtins_and_add_names() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("slack")).unwrap();
    std::fs::write(
        dir.path().join("slack/message_result.hbs"),
        r#"{"text": "custom {{resultCode}}"}"#,
    )
    .unwrap();
    std::fs::write(dir.path().join("slack/mine.hbs"), r#"{"text": "mine"}"#).unwrap();
    std::fs::write(dir.path().join("slack/notes.txt"), "ignored").unwrap();
    let r = Renderer::load(Some(dir.path())).unwrap();
    assert!(r.has(slack::KIND, EN, "mine"));
    assert!(r.has(slack::KIND, Locale::Ko, "mine"));
    assert!(!r.has(teams::KIND, EN, "mine"));
    let sample = samples::one_of(crate::bizmessage::HookKind::MessageResult).unwrap();
    let body = render_sample(&r, slack::KIND, &sample);
    assert_eq!(body, r#"{"text":"custom 3019"}"#);
    let origin = r
        .templates()
        .find(|(k, l, n, _)| *k == slack::KIND && *l == EN && *n == "message_result")
        .map(|(_, _, _, o)| o.clone());
    assert!(matches!(origin, Some(Origin::File(_))));
}

#[test]
fn a_broken_template_file_is_a_load_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("teams")).unwrap();
    std::fs::write(dir.path().join("teams/bad.hbs"), "{{#if x}}unclosed").unwrap();
    let errs = Renderer::load(Some(dir.path())).unwrap_err();
    assert_eq!(errs.len(), 1);
    assert!(errs[0].path.ends_with("bad.hbs"), "{errs:?}");
}

#[test]
fn runtime_failures_fall_back_to_a_plain_message() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("slack")).unwrap();
    std::fs::write(
        dir.path().join("slack/typo.hbs"),
        r#"{"text": "{{resutCode}}"}"#,
    )
    .unwrap();
    std::fs::write(
        dir.path().join("slack/notjson.hbs"),
        r#"{"text": {{resultCode}}"#,
    )
    .unwrap();
    let r = Renderer::load(Some(dir.path())).unwrap();
    let sample = samples::one_of(crate::bizmessage::HookKind::MessageResult).unwrap();
    let c = ctx(&sample, slack::KIND);
    for name in ["typo", "notjson", "absent"] {
        let (body, err) = r.render_or_fallback(slack::KIND, EN, name, &c, || FallbackInfo {
            title: "fallback title".into(),
            facts: vec![("hook".into(), "h-a2".into())],
        });
        assert!(err.is_some(), "{name}");
        assert!(body.contains("fallback title"), "{name}: {body}");
        assert!(slack::KIND.violations(&body).is_empty());
    }
}
