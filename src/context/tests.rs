use super::*;
use crate::bizmessage::{parse_hook, parse_post};

fn contexts(fixture: &str, mask: bool) -> Vec<Value> {
    let path = format!("{}/tests/fixtures/{fixture}", env!("CARGO_MANIFEST_DIR"));
    let body = std::fs::read(path).unwrap();
    let post = parse_post(&body).unwrap();
    let meta = Meta {
        route: "r",
        destination: "d",
        destination_type: crate::destination::slack::KIND,
        locale: Locale::En,
        received_at_ms: 1_764_290_998_000,
        mask_recipient: mask,
    };
    post.hooks
        .iter()
        .filter_map(|h| parse_hook(h.get()).ok())
        .map(|h| hook_context(&post.envelope, &h, &meta))
        .collect()
}

#[test]
fn template_context_has_labels_and_comments() {
    let ctx = &contexts("template_rejected.json", true)[0];
    assert_eq!(ctx["kind"], "template");
    assert_eq!(ctx["templateCode"], "ORDER_SHIPPED_V2");
    assert_eq!(ctx["status_label"]["en"], "Rejected");
    assert_eq!(ctx["status_label"]["ko"], "반려");
    assert_eq!(ctx["comments"][0]["status_label"]["en"], "Rejected");
    assert_eq!(ctx["comments"][0]["id"], "48213");
    assert_eq!(ctx["latest_comment"]["userName"], "카카오 검수자");
    assert_eq!(ctx["recent_comments"].as_array().unwrap().len(), 1);
    assert_eq!(ctx["omitted_comments"], 0);
    assert_eq!(ctx["hooksId"], "20261128093015123abcdEFGH");
    assert_eq!(ctx["received_at"], "2025-11-28 09:49:58");
    assert_eq!(ctx["route"], "r");
    assert_eq!(ctx["destination_type"], "slack");
    assert_eq!(ctx["locale"], "en");
    assert_eq!(
        ctx["rejection_reason"],
        "변수 #{주문번호} 의 예시가 누락되었습니다."
    );
    assert_eq!(
        ctx["summary"],
        "❌ Template ORDER_SHIPPED_V2: Rejected — 변수 #{주문번호} 의 예시가 누락되었습니다."
    );
    let ko = summary::hook(ctx, Locale::Ko);
    assert_eq!(
        ko,
        "❌ 템플릿 반려: ORDER_SHIPPED_V2 — 검수 의견: 변수 #{주문번호} 의 예시가 누락되었습니다."
    );
    let approved = &contexts("template_approved.json", true)[0];
    assert_eq!(approved["rejection_reason"], Value::Null);
    assert_eq!(
        summary::hook(approved, Locale::Ko),
        "✅ 템플릿 승인: ORDER_SHIPPED_V3"
    );
}

#[test]
fn result_context_masks_the_recipient() {
    let ctxs = contexts("message_results.json", true);
    let failed = &ctxs[1];
    assert_eq!(failed["recipientNo"], "010****5432");
    assert_eq!(failed["recipient_masked"], "010****5432");
    assert_eq!(failed["result"]["outcome"], "failure");
    assert!(
        failed["result"]["meaning_en"]
            .as_str()
            .unwrap()
            .contains("KakaoTalk")
    );
    assert_eq!(failed["receiveDate"], Value::Null);
    assert_eq!(failed["_links"], Value::Null);
    assert_eq!(failed["message_type_label"], "AlimTalk");
    assert_eq!(failed["message_type_label_ko"], "알림톡");
    assert_eq!(
        failed["summary"],
        "🚫 AlimTalk failure: 3019 Cannot deliver: not a KakaoTalk user"
    );
    assert_eq!(
        summary::hook(failed, Locale::Ko),
        "🚫 알림톡 실패: 3019 카카오톡 유저가 아님"
    );
    assert!(!failed.to_string().contains("01098765432"));
    assert_eq!(ctxs[0]["_links"]["self"]["href"], ctxs[0]["link"]);

    let unmasked = contexts("message_results.json", false);
    assert_eq!(unmasked[1]["recipientNo"], "01098765432");
    assert_eq!(unmasked[1]["recipient_masked"], "010****5432");
}

#[test]
fn unknown_codes_and_types_pass_through() {
    let ctxs = contexts("quirks.json", true);
    assert_eq!(ctxs[0]["status_label"]["en"], "TSC09");
    assert_eq!(ctxs[0]["status_label"]["known"], false);
    assert_eq!(ctxs[0]["comments"][2]["status_label"]["en"], "XYZ");
    assert_eq!(ctxs[2]["message_type_label"], "FRIENDTALK_UPGRADE_WIDE");
    assert_eq!(ctxs[2]["result"]["code"], Value::Null);
    assert_eq!(ctxs[2]["result"]["known"], false);
    assert_eq!(ctxs[3]["result"]["outcome"], "uncertain");
    assert_eq!(
        result_value(Some("9090"))["meaning_en"],
        "Unknown result code"
    );
}

#[test]
fn unknown_hooks_are_masked_everywhere() {
    let ctx = &contexts("unknown_event.json", true)[0];
    let text = ctx.to_string();
    assert!(!text.contains("01011112222"), "{text}");
    assert_eq!(ctx["fields"]["contact"]["recipientNo"], "010****2222");
    assert!(ctx["raw_json"].as_str().unwrap().contains("profileStatus"));
}

#[test]
fn unknown_hooks_mask_numbers_glued_ids_full_width_digits_and_keys() {
    let raw = r#"{"hookId":"u-2","profile":{"phone":821077776666,"owner":"ID01077776666",
        "memo":"연락처 ０１０－７７７７－６６６６","01055554444":"by key","count":3,
        "recipientNo":1077776666}}"#;
    let hook = parse_hook(raw).unwrap();
    let meta = Meta {
        route: "r",
        destination: "d",
        destination_type: crate::destination::slack::KIND,
        locale: Locale::En,
        received_at_ms: 0,
        mask_recipient: true,
    };
    let ctx = hook_context(&Envelope::default(), &hook, &meta);
    let text = ctx.to_string();
    for leaked in ["77776666", "７７７７", "55554444"] {
        assert!(!text.contains(leaked), "{leaked} in {text}");
    }
    let profile = &ctx["fields"]["profile"];
    assert_eq!(profile["phone"], "821*****6666");
    assert_eq!(profile["owner"], "ID010****6666");
    assert_eq!(profile["count"], 3, "other numbers stay numbers");
    assert_eq!(profile["010****4444"], "by key");
    assert_eq!(profile["recipientNo"], "107***6666");
}

#[test]
fn bidi_controls_from_hooks_never_reach_the_context() {
    let meta = Meta {
        route: "r",
        destination: "d",
        destination_type: crate::destination::teams::KIND,
        locale: Locale::En,
        received_at_ms: 0,
        mask_recipient: true,
    };
    let raws = [
        r#"{"hookId":"b\u202e1","templateCode":"T\u2066X","status":"TSC04",
            "comments":[{"content":"see invoice\u202egnp.exe","userName":"\u200fadmin",
            "attachment":[{"originalFileName":"\u202dguide.png"}]}]}"#,
        r#"{"hookId":"b2","requestId":"r\u061c","resultCode":"3019\u202e",
            "senderGroupingKey":"\u202agroup"}"#,
        r#"{"hookId":"b3","memo":"\u2067x\u2069","\u202ekey":{"deep":["\u200e"]}}"#,
    ];
    for raw in raws {
        let hook = parse_hook(raw).unwrap();
        let envelope = Envelope {
            event: Some("E\u{202E}".into()),
            ..Envelope::default()
        };
        let ctx = hook_context(&envelope, &hook, &meta);
        let text = serde_json::to_string(&ctx).unwrap();
        assert!(!text.chars().any(crate::text::is_bidi_control), "{text}");
        assert!(!text.contains("\\u202"), "{text}");
    }
    let hook = parse_hook(raws[0]).unwrap();
    let ctx = hook_context(&Envelope::default(), &hook, &meta);
    assert_eq!(ctx["latest_comment"]["content"], "see invoicegnp.exe");
    assert_eq!(ctx["templateCode"], "TX");
}

#[test]
fn fields_of_unexpected_types_show_as_received_and_are_listed() {
    let meta = Meta {
        route: "r",
        destination: "d",
        destination_type: crate::destination::slack::KIND,
        locale: Locale::En,
        received_at_ms: 0,
        mask_recipient: true,
    };
    let raw = r#"{"hookId":"tm-1","requestId":"r","recipientSeq":"Integer","resultCode":"String",
        "isAddedChannel":"Boolean","recipientNo":["01099998888"],"senderGroupingKey":{"k":"01012345678"}}"#;
    let ctx = hook_context(&Envelope::default(), &parse_hook(raw).unwrap(), &meta);
    assert_eq!(ctx["recipientSeq"], "Integer");
    assert_eq!(ctx["isAddedChannel"], "Boolean");
    assert_eq!(
        ctx["resultCode"], "String",
        "a string is a string: no mismatch"
    );
    let list = ctx["type_mismatches"].as_array().unwrap();
    let fields: Vec<&str> = list.iter().map(|m| m["field"].as_str().unwrap()).collect();
    assert_eq!(
        fields,
        [
            "recipientSeq",
            "recipientNo",
            "senderGroupingKey",
            "isAddedChannel"
        ]
    );
    assert_eq!(list[0]["expected"], "an integer");
    assert_eq!(list[0]["received"], "Integer");
    let text = ctx.to_string();
    assert!(
        !text.contains("99998888") && !text.contains("12345678"),
        "{text}"
    );

    let clean = hook_context(
        &Envelope::default(),
        &parse_hook(r#"{"hookId":"tm-2","requestId":"r","recipientSeq":3}"#).unwrap(),
        &meta,
    );
    assert_eq!(clean["type_mismatches"], json!([]));
    assert_eq!(clean["recipientSeq"], 3);
}

#[test]
fn recent_comments_keep_the_newest_ten_in_order() {
    let t = TemplateHook {
        template_code: "T".into(),
        status: "TSC04".into(),
        comments: (0..25)
            .map(|i| Comment {
                created_at: Some(format!("2026-11-28 10:{i:02}:00")),
                content: Some(format!("c{i}")),
                ..Comment::default()
            })
            .collect(),
        ..TemplateHook::default()
    };
    let mut ctx = Map::new();
    template_fields(&mut ctx, &t);
    let recent = ctx["recent_comments"].as_array().unwrap();
    assert_eq!(recent.len(), RECENT_COMMENTS);
    assert_eq!(recent[0]["content"], "c15");
    assert_eq!(recent[9]["content"], "c24");
    assert_eq!(ctx["omitted_comments"], 15);
    assert_eq!(ctx["comment_count"], 25);
}
