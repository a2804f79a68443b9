use super::*;
use crate::bizmessage::{ResultHook, TemplateHook};
use crate::destination::{self, slack};
use crate::render::Renderer;
use crate::route::MatchKey;
use std::time::Duration;

fn result(code: Option<&str>, kind: &str, sender: Option<&str>, seq: i64) -> Hook {
    Hook {
        hook_id: Some(format!("h-{seq}").into()),
        body: HookBody::MessageResult(ResultHook {
            kakao_message_type: Some(kind.into()),
            request_id: Some("req-1".into()),
            recipient_seq: Some(seq),
            recipient_no: Some("01012345678".into()),
            result_code: code.map(Into::into),
            sender_grouping_key: sender.map(Into::into),
            ..ResultHook::default()
        }),
        mismatches: Vec::new(),
    }
}

fn spec(by: &[MatchKey]) -> GroupSpec {
    GroupSpec {
        by: by.to_vec(),
        wait: Duration::from_secs(30),
        interval: Duration::from_secs(300),
        max_items: 3,
        resolve_after: None,
    }
}

#[test]
fn group_keys_follow_the_by_list() {
    let env = Envelope::default();
    let h = result(Some("3019"), "ALIMTALK_NORMAL", None, 1);
    assert_eq!(
        group_key(&spec(&[MatchKey::ResultCode]), &env, &h),
        r#"{"result_code":"3019"}"#
    );
    assert_eq!(
        group_key(
            &spec(&[MatchKey::ResultCode, MatchKey::MessageType]),
            &env,
            &h
        ),
        r#"{"result_code":"3019","message_type":"ALIMTALK_NORMAL"}"#
    );
    assert_eq!(group_key(&spec(&[]), &env, &h), "{}");
    assert_eq!(
        group_key(&spec(&[MatchKey::SenderGroupingKey]), &env, &h),
        r#"{"sender_grouping_key":null}"#,
        "a missing field is its own group"
    );
    let t = Hook {
        hook_id: None,
        body: HookBody::Template(TemplateHook {
            template_code: "T".into(),
            status: "TSC04".into(),
            ..TemplateHook::default()
        }),
        mismatches: Vec::new(),
    };
    assert_eq!(
        group_key(&spec(&[MatchKey::Kind, MatchKey::Status]), &env, &t),
        r#"{"kind":"template","status":"TSC04"}"#
    );
}

const WAIT: i64 = 30_000;
const INTERVAL: i64 = 300_000;

#[test]
fn window_timing_with_a_controlled_clock() {
    // First hook at t=0: digest due at wait.
    let t = on_join(None, 0, WAIT, INTERVAL);
    assert_eq!(
        (t.started_at, t.pending, t.next_flush_at),
        (0, 1, Some(WAIT))
    );
    // More hooks do not move the deadline.
    let t = on_join(Some(t), 10_000, WAIT, INTERVAL);
    let t = on_join(Some(t), 29_999, WAIT, INTERVAL);
    assert_eq!((t.pending, t.next_flush_at), (3, Some(WAIT)));
    // Flush at 30 s: nothing pending, nothing scheduled.
    let t = on_flush(t, 3, WAIT, INTERVAL);
    assert_eq!(
        (t.total, t.pending, t.last_flush_at, t.next_flush_at),
        (3, 0, Some(WAIT), None)
    );
    // A hook 1 minute later waits for interval after the previous digest, not `wait`.
    let t = on_join(Some(t), 90_000, WAIT, INTERVAL);
    assert_eq!(
        (t.pending, t.next_flush_at, t.started_at),
        (1, Some(WAIT + INTERVAL), 0)
    );
    // Members that arrive while the flush is being prepared stay for the next digest.
    let t = on_join(Some(t), 100_000, WAIT, INTERVAL);
    let t = on_flush(t, 1, WAIT + INTERVAL, INTERVAL);
    assert_eq!(
        (t.total, t.pending, t.next_flush_at),
        (4, 1, Some(WAIT + 2 * INTERVAL))
    );
    let t = on_flush(t, 1, WAIT + 2 * INTERVAL, INTERVAL);
    assert_eq!((t.total, t.pending, t.next_flush_at), (5, 0, None));
    // Idle for a whole interval after the last digest: a new group, waiting `wait` again.
    let later = WAIT + 3 * INTERVAL;
    let t = on_join(Some(t), later, WAIT, INTERVAL);
    assert_eq!(
        (t.started_at, t.total, t.pending, t.next_flush_at),
        (later, 0, 1, Some(later + WAIT))
    );
}

fn ctx_for(hooks: &[Hook], total_before: i64, max_items: usize) -> Value {
    let env = Envelope::default();
    let members: Vec<Member<'_>> = hooks
        .iter()
        .enumerate()
        .map(|(i, hook)| Member {
            envelope: &env,
            hook,
            received_at: 1_795_830_000_000 + 1_000 * i as i64,
        })
        .collect();
    let tally = tally(&members);
    digest_context(&DigestInput {
        route: "failures",
        group_key: r#"{"result_code":"3019"}"#,
        total_before,
        mask_recipient: true,
        tally: &tally,
        samples: &members[..members.len().min(max_items)],
    })
}

#[test]
fn digest_context_counts_and_breaks_down() {
    let hooks = vec![
        result(Some("3019"), "ALIMTALK_NORMAL", Some("orders"), 1),
        result(Some("3019"), "ALIMTALK_NORMAL", Some("orders"), 2),
        result(Some("3016"), "FRIENDTALK_NORMAL", None, 3),
        result(None, "ALIMTALK_NORMAL", Some("coupons"), 4),
        result(Some("3019"), "ALIMTALK_MASS", Some("orders"), 5),
    ];
    let ctx = ctx_for(&hooks, 20, 3);
    assert_eq!(ctx["count"], 5);
    assert_eq!(ctx["noun"], "message results");
    assert_eq!(ctx["total"], 25);
    assert_eq!(ctx["omitted"], 2);
    assert_eq!(ctx["samples"].as_array().unwrap().len(), 3);
    assert_eq!(ctx["samples"][0]["recipientNo"], "010****5678");
    assert_eq!(ctx["codes"][0]["code"], "3019");
    assert_eq!(ctx["codes"][0]["count"], 3);
    assert!(ctx["codes"][0]["meaning_ko"].as_str().unwrap().len() > 3);
    let codes: Vec<usize> = ctx["codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["count"].as_u64().unwrap() as usize)
        .collect();
    assert_eq!(codes.iter().sum::<usize>(), 5);
    assert_eq!(ctx["message_types"][0]["type"], "ALIMTALK_NORMAL");
    assert_eq!(ctx["message_types"][0]["count"], 3);
    assert_eq!(ctx["sender_grouping_keys"][0]["key"], "orders");
    assert_eq!(ctx["group"]["result_code"], "3019");
    assert_eq!(ctx["group_label"], "result_code=3019");
    assert_eq!(ctx["first_at"], "2026-11-28 10:40:00");
    assert_eq!(ctx["last_at"], "2026-11-28 10:40:04");
    assert_eq!(ctx["outcomes"]["failure"], 5);
    let ctx = for_destination(ctx, "ops", slack::KIND, Locale::Ko);
    assert_eq!(ctx["destination"], "ops");
    assert_eq!(ctx["samples"][2]["destination_type"], "slack");
    assert_eq!(ctx["locale"], "ko");
    assert_eq!(ctx["samples"][2]["locale"], "ko");
    assert_eq!(ctx["summary"], "🚨 failures: 실패 5건 (result_code=3019)");
    assert!(
        ctx["samples"][0]["summary"]
            .as_str()
            .unwrap()
            .starts_with("🚫 "),
        "{}",
        ctx["samples"][0]["summary"]
    );
}

#[test]
fn digest_contexts_carry_no_bidi_controls() {
    let hooks = [
        result(
            Some("3019\u{202E}"),
            "ALIMTALK\u{2066}",
            Some("\u{202E}orders"),
            1,
        ),
        result(Some("3016"), "FRIENDTALK_NORMAL", Some("\u{200F}x"), 2),
    ];
    let env = Envelope::default();
    let members: Vec<Member<'_>> = hooks
        .iter()
        .map(|hook| Member {
            envelope: &env,
            hook,
            received_at: 0,
        })
        .collect();
    let tally = tally(&members);
    let ctx = digest_context(&DigestInput {
        route: "failures",
        group_key: "{\"sender_grouping_key\":\"\u{202E}orders\"}",
        total_before: 0,
        mask_recipient: true,
        tally: &tally,
        samples: &members,
    });
    let text = serde_json::to_string(&ctx).unwrap();
    assert!(!text.chars().any(crate::text::is_bidi_control), "{text}");
    assert_eq!(ctx["group_label"], "sender_grouping_key=orders");
    assert_eq!(ctx["samples"][0]["senderGroupingKey"], "orders");
}

#[test]
fn digests_render_within_limits_even_with_hundreds_of_codes() {
    let r = Renderer::builtin();
    let hooks: Vec<Hook> = (0..600)
        .map(|i| {
            let code = format!("{}", 3000 + i % 300);
            result(
                Some(&code),
                &format!("TYPE_{}", i % 40),
                Some(&format!("sender-<!channel>-{}", i % 70)),
                i as i64,
            )
        })
        .collect();
    let ctx = ctx_for(&hooks, 0, 50);
    for &kind in destination::ALL {
        for locale in Locale::ALL {
            let body = r
                .render(
                    kind,
                    locale,
                    "message_digest",
                    &for_destination(ctx.clone(), "d", kind, locale),
                )
                .unwrap_or_else(|e| panic!("{kind:?} {locale:?}: {e}"));
            let problems = kind.violations(&body);
            assert!(problems.is_empty(), "{kind:?} {locale:?}: {problems:?}");
            assert!(body.contains("600"), "count shown in {kind:?} {locale:?}");
            assert!(!body.contains("01012345678"));
            if kind == slack::KIND {
                assert!(!body.contains("<!channel>"), "{kind:?} {locale:?}");
            }
        }
    }
}

#[test]
fn a_quiet_group_is_due_for_its_resolved_message_once_then_starts_afresh() {
    let join = |t: Option<GroupTiming>, at: i64| {
        (RULES.join)(
            t,
            Join {
                at,
                routed_at: at,
                wait_ms: 10_000,
                interval_ms: 60_000,
                resolve_after_ms: Some(120_000),
            },
        )
    };
    let t = join(None, 1_000);
    let t = join(Some(t), 5_000);
    assert_eq!(t.resolve_at, Some(125_000), "counted from the last hook");
    let t = (RULES.flushed)(
        t,
        Flushed {
            members: 2,
            at: 11_000,
            interval_ms: 60_000,
            resolved: false,
        },
    );
    assert_eq!((t.pending, t.total, t.resolve_at), (0, 2, Some(125_000)));
    let ctx = resolved_context(
        "storm",
        r#"{"result_code":"3019"}"#,
        &t,
        120_000,
        0,
        125_000,
    );
    let ctx = for_destination(ctx, "ops", slack::KIND, Locale::En);
    assert_eq!(ctx["total"], 2);
    assert_eq!(ctx["last_at"], crate::context::format_ms(5_000));
    assert_eq!(
        ctx["summary"],
        format!(
            "✅ Resolved: nothing new on storm (result_code=3019) for 2m; 2 in all since {}",
            Locale::En.date(&crate::context::format_ms(1_000))
        )
    );
    let after = (RULES.flushed)(
        t,
        Flushed {
            members: 0,
            at: 125_000,
            interval_ms: 60_000,
            resolved: true,
        },
    );
    assert_eq!((after.resolve_at, after.last_flush_at), (None, None));
    let next = join(Some(after), 200_000);
    assert_eq!(
        (next.started_at, next.total, next.next_flush_at),
        (200_000, 0, Some(210_000))
    );
    // A hook that joined while the notice was being built keeps the group going.
    let busy = join(Some(t), 124_000);
    let kept = on_resolved(busy);
    assert_eq!(kept, busy);
    // Idle for more than an interval with its resolved message still to come, the group
    // goes on: its total keeps counting the storm, its next digest comes after `wait`.
    let late = join(Some(t), 90_000);
    assert_eq!((late.started_at, late.total, late.pending), (1_000, 2, 1));
    assert_eq!(
        (late.next_flush_at, late.resolve_at),
        (Some(100_000), Some(210_000))
    );
    // A hook routed long after it arrived (a backlog after downtime) is quiet time from its
    // routing, not from its arrival.
    let backlog = (RULES.join)(
        None,
        Join {
            at: 1_000,
            routed_at: 500_000,
            wait_ms: 10_000,
            interval_ms: 60_000,
            resolve_after_ms: Some(120_000),
        },
    );
    assert_eq!(backlog.resolve_at, Some(620_000));
}
