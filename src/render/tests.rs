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

fn adversarial(id: &str) -> Sample {
    samples::adversarial()
        .into_iter()
        .find(|s| s.hook.hook_id.as_deref() == Some(id))
        .unwrap()
}

/// Every string in a JSON value, for looking at what a reader would see.
fn all_strings(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => out.push(s.clone()),
        Value::Array(items) => items.iter().for_each(|i| all_strings(i, out)),
        Value::Object(map) => map.values().for_each(|i| all_strings(i, out)),
        _ => {}
    }
}

#[test]
fn hostile_reviewer_text_takes_no_effect_in_the_new_types() {
    use crate::destination::{discord, dooray, google_chat, jandi, mattermost, webhook};
    let r = Renderer::builtin();
    let sample = adversarial("adv-quotes");
    // What must not appear in any string of the body, per type.
    let forbidden: [(DestinationKind, &[&str]); 5] = [
        (dooray::KIND, &["[@all]", "dooray://", "[safe](http"]),
        (jandi::KIND, &["[safe](http", "**bold**"]),
        (
            google_chat::KIND,
            &["<users/all>", "<http://evil", "<@U123>"],
        ),
        (discord::KIND, &["**bold**", "[safe](http", "<@U123>"]),
        (
            mattermost::KIND,
            &["@channel", "@everyone", "**bold**", "[safe](http"],
        ),
    ];
    for locale in Locale::ALL {
        for (kind, bad) in forbidden {
            let body = render_in(&r, kind, locale, &sample);
            let v: Value = serde_json::from_str(&body).unwrap();
            let mut strings = Vec::new();
            all_strings(&v, &mut strings);
            let text = strings.join("\n");
            for b in bad {
                assert!(!text.contains(b), "{kind:?} {locale:?} shows {b}: {text}");
            }
            // The text itself survives: quotes, Korean and emoji, whole.
            assert!(
                text.contains("no") && text.contains("한국어") && text.contains("👍🏽"),
                "{kind:?}"
            );
            assert!(!text.contains('\u{1b}') || kind.is_json(), "{kind:?}");
            assert!(kind.violations(&body).is_empty(), "{kind:?} {locale:?}");
        }
        let discord = render_in(&r, discord::KIND, locale, &sample);
        let v: Value = serde_json::from_str(&discord).unwrap();
        assert_eq!(v["allowed_mentions"], serde_json::json!({"parse": []}));
        // The webhook document carries the text exactly as NHN sent it (it is data).
        let doc: Value =
            serde_json::from_str(&render_in(&r, webhook::KIND, locale, &sample)).unwrap();
        assert_eq!(doc["schema_version"], 1);
        assert_eq!(doc["kind"], "template_status");
        assert!(
            doc["data"]["templateCode"]
                .as_str()
                .unwrap()
                .starts_with("He said \"no\" \\ back\\slash\nnew line")
        );
        assert_eq!(doc["locale"], locale.as_str());
    }
}

/// The text a reader sees: the body's strings without Markdown backslashes and zero-width
/// spaces (plain text as it is).
fn seen(kind: DestinationKind, body: &str) -> String {
    let Ok(v) = serde_json::from_str::<Value>(body) else {
        return body.to_string();
    };
    let mut strings = Vec::new();
    all_strings(&v, &mut strings);
    let text = strings.join("\n").replace('\u{200B}', "");
    if [destination::discord::KIND, destination::mattermost::KIND].contains(&kind) {
        let mut out = String::new();
        let mut chars = text.chars().peekable();
        while let Some(c) = chars.next() {
            if c == '\\' && chars.peek().is_some_and(|n| n.is_ascii_punctuation()) {
                continue;
            }
            out.push(c);
        }
        return out;
    }
    text
}

#[test]
fn korean_built_ins_speak_korean() {
    let r = Renderer::builtin();
    let rejected = samples::one_of(crate::bizmessage::HookKind::Template).unwrap();
    let failed = samples::one_of(crate::bizmessage::HookKind::MessageResult).unwrap();
    for &kind in destination::ALL {
        let body = seen(kind, &render_in(&r, kind, Locale::Ko, &rejected));
        // The webhook's `data` keeps NHN's dates as sent: it is for programs.
        let date = (kind != destination::webhook::KIND).then_some("2026년 11월 28일 09:29");
        for want in ["템플릿 반려: ORDER_SHIPPED_V2", "검수 의견"]
            .into_iter()
            .chain(date)
        {
            assert!(body.contains(want), "{kind:?} lacks {want}: {body}");
        }
        let body = seen(kind, &render_in(&r, kind, Locale::Ko, &failed));
        for want in ["알림톡 실패: 3019", "카카오톡 유저가 아님", "010****5432"] {
            assert!(body.contains(want), "{kind:?} lacks {want}: {body}");
        }
        if kind == console::KIND {
            continue; // a terminal has no notification line; its English output is unchanged
        }
        let english = seen(kind, &render_in(&r, kind, EN, &rejected));
        assert!(
            english.contains("Template ORDER_SHIPPED_V2: Rejected — 변수"),
            "{kind:?}: the English notification line carries the reason: {english}"
        );
    }
}

#[test]
fn a_locale_folder_overrides_that_locale_only_and_wins() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("slack/ko")).unwrap();
    std::fs::write(
        dir.path().join("slack/message_result.hbs"),
        r#"{"text": "all {{resultCode}}"}"#,
    )
    .unwrap();
    std::fs::write(
        dir.path().join("slack/ko/message_result.hbs"),
        r#"{"text": "한국어 {{resultCode}}"}"#,
    )
    .unwrap();
    std::fs::write(dir.path().join("slack/ko/only_ko.hbs"), r#"{"text": "k"}"#).unwrap();
    let r = Renderer::load(Some(dir.path())).unwrap();
    let sample = samples::one_of(crate::bizmessage::HookKind::MessageResult).unwrap();
    assert_eq!(
        render_in(&r, slack::KIND, EN, &sample),
        r#"{"text":"all 3019"}"#
    );
    assert_eq!(
        render_in(&r, slack::KIND, Locale::Ko, &sample),
        r#"{"text":"한국어 3019"}"#
    );
    assert!(r.has(slack::KIND, Locale::Ko, "only_ko"));
    assert!(!r.has(slack::KIND, EN, "only_ko"));
}

/// The alert and resolved-digest contexts of the built-ins' tests: the samples, a repeat, and
/// each with hostile hook text wherever a hook's values reach them (series, codes, group).
fn alert_contexts() -> Vec<(&'static str, String, Value)> {
    let nasty = ctx(&adversarial("adv-quotes"), console::KIND)["templateCode"]
        .as_str()
        .expect("a hostile template code")
        .to_string();
    let mut out = Vec::new();
    for (name, ctx) in crate::rate::sample_contexts() {
        let mut repeat = ctx.clone();
        repeat["repeat"] = serde_json::json!(true);
        let mut hostile = ctx.clone();
        hostile["route"] = serde_json::json!(nasty);
        hostile["series"] = serde_json::json!({"sender_key": nasty});
        hostile["series_label"] = serde_json::json!(format!("sender_key={nasty}"));
        for c in hostile["codes"].as_array_mut().unwrap() {
            c["code"] = serde_json::json!(nasty);
        }
        out.push((name, "sample".to_string(), ctx));
        out.push((name, "repeat".to_string(), repeat));
        out.push((name, "hostile".to_string(), hostile));
    }
    out.push((
        crate::digest::RESOLVED_TEMPLATE,
        "sample".to_string(),
        crate::digest::sample_resolved_context(),
    ));
    let mut hostile = crate::digest::sample_resolved_context();
    hostile["route"] = serde_json::json!(nasty);
    hostile["group"] = serde_json::json!({"result_code": nasty});
    hostile["group_label"] = serde_json::json!(format!("result_code={nasty}"));
    out.push((
        crate::digest::RESOLVED_TEMPLATE,
        "hostile".to_string(),
        hostile,
    ));
    out
}

#[test]
fn alerts_and_resolved_digests_render_within_limits_and_hostile_text_takes_no_effect() {
    use crate::destination::{discord, dooray, google_chat, jandi, mattermost};
    let r = Renderer::builtin();
    let forbidden: [(DestinationKind, &[&str]); 7] = [
        (slack::KIND, &["<!channel>", "<@U123>", "<http"]),
        (
            crate::destination::slack_bot::KIND,
            &["<!channel>", "<@U123>", "<http"],
        ),
        (dooray::KIND, &["[@all]", "dooray://", "[safe](http"]),
        (jandi::KIND, &["[safe](http", "**bold**"]),
        (
            google_chat::KIND,
            &["<users/all>", "<http://evil", "<@U123>"],
        ),
        (discord::KIND, &["**bold**", "[safe](http", "<@U123>"]),
        (
            mattermost::KIND,
            &["@channel", "@everyone", "**bold**", "[safe](http"],
        ),
    ];
    for &kind in destination::ALL {
        for locale in Locale::ALL {
            for (name, what, ctx) in alert_contexts() {
                let ctx = if name == crate::digest::RESOLVED_TEMPLATE {
                    crate::digest::for_destination(ctx, "d", kind, locale)
                } else {
                    crate::rate::for_destination(ctx, "d", kind, locale)
                };
                let body = r
                    .render(kind, locale, name, &ctx)
                    .unwrap_or_else(|e| panic!("{kind:?} {locale:?} {name} {what}: {e}"));
                let problems = kind.violations(&body);
                assert!(
                    problems.is_empty(),
                    "{kind:?} {locale:?} {name} {what}: {problems:?}\n{body}"
                );
                let text = seen(kind, &body);
                if what == "hostile" {
                    for (k, bad) in &forbidden {
                        if *k == kind {
                            let v: Value = serde_json::from_str(&body).unwrap();
                            let mut strings = Vec::new();
                            all_strings(&v, &mut strings);
                            let text = strings.join("\n");
                            for b in *bad {
                                assert!(
                                    !text.contains(b),
                                    "{kind:?} {locale:?} {name} shows {b}: {text}"
                                );
                            }
                        }
                    }
                    assert!(
                        text.contains("한국어"),
                        "{kind:?} {name}: the text survives"
                    );
                }
                // Korean destinations read Korean; English ones the English meanings.
                let want = match (name, locale) {
                    ("rate_firing", Locale::Ko) => "카카오톡 유저가 아님",
                    ("rate_firing", Locale::En) => "Cannot deliver: not a KakaoTalk user",
                    ("rate_resolved", Locale::Ko) => "6,400건 중 4,818건",
                    ("rate_resolved", Locale::En) => "4,818 of 6,400",
                    (_, Locale::Ko) => "10분 동안 새 건 없음",
                    (_, Locale::En) => "for 10m",
                };
                assert!(
                    text.contains(want),
                    "{kind:?} {locale:?} {name} {what} lacks {want}: {text}"
                );
                if name == "rate_firing" && what == "repeat" {
                    let still = locale.pick("Still firing", "계속 발생 중");
                    assert!(text.contains(still), "{kind:?} {locale:?}: {text}");
                }
            }
        }
    }
}
