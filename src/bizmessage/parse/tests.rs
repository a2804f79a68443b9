use super::*;
use crate::bizmessage::HookKind;

fn hooks_of(body: &str) -> Vec<Result<Hook, HookError>> {
    let post = parse_post(body.as_bytes()).expect("envelope parses");
    post.hooks.iter().map(|h| parse_hook(h.get())).collect()
}

fn fixture(name: &str) -> String {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn envelope_fields_are_read() {
    let body = fixture("template_rejected.json");
    let post = parse_post(body.as_bytes()).unwrap();
    assert_eq!(
        post.envelope.hooks_id.as_deref(),
        Some("20261128093015123abcdEFGH")
    );
    assert_eq!(post.envelope.app_key.as_deref(), Some("Xk2abcDEF9tq"));
    assert_eq!(
        post.envelope.event.as_deref(),
        Some("TEMPLATE_STATUS_UPDATE")
    );
    assert_eq!(post.envelope.webhook_config_id.as_deref(), Some("wcf-8d2k"));
    assert_eq!(post.hooks.len(), 1);
}

#[test]
fn template_hook_with_comment_and_attachment() {
    let hooks = hooks_of(&fixture("template_rejected.json"));
    let hook = hooks[0].as_ref().unwrap();
    assert_eq!(hook.kind(), HookKind::Template);
    assert_eq!(hook.hook_id.as_deref(), Some("h-7f3a"));
    let HookBody::Template(t) = &hook.body else {
        panic!("not a template hook")
    };
    assert_eq!(t.template_code, "ORDER_SHIPPED_V2");
    assert_eq!(t.status, "TSC04");
    assert_eq!(t.comments.len(), 1);
    let c = &t.comments[0];
    assert_eq!(
        c.id.as_deref(),
        Some("48213"),
        "integer id becomes a string"
    );
    assert!(c.content.as_deref().unwrap().contains('\n'));
    assert_eq!(
        c.attachments[0].original_file_name.as_deref(),
        Some("guide.png")
    );
    assert_eq!(c.status.as_deref(), Some("REJ"));
}

#[test]
fn result_hooks_with_null_dates_and_links() {
    let hooks = hooks_of(&fixture("message_results.json"));
    let HookBody::MessageResult(ok) = &hooks[0].as_ref().unwrap().body else {
        panic!()
    };
    assert_eq!(ok.recipient_seq, Some(1));
    assert!(ok.links_self.as_deref().unwrap().ends_with("/1"));
    assert_eq!(ok.outcome(), crate::bizmessage::Outcome::Success);
    let HookBody::MessageResult(fail) = &hooks[1].as_ref().unwrap().body else {
        panic!()
    };
    assert_eq!(fail.receive_date, None);
    assert_eq!(fail.result_code.as_deref(), Some("3019"));
    assert_eq!(fail.links_self, None);
}

#[test]
fn every_documented_quirk_is_accepted() {
    let hooks = hooks_of(&fixture("quirks.json"));
    assert!(hooks.iter().all(Result::is_ok), "{hooks:?}");
    let hooks: Vec<Hook> = hooks.into_iter().map(Result::unwrap).collect();

    let HookBody::Template(t) = &hooks[0].body else {
        panic!()
    };
    assert_eq!(t.status, "TSC09", "unknown status passes through raw");
    assert_eq!(t.kakao_template_code, None);
    assert_eq!(t.update_date, None);
    assert_eq!(t.comments[0].id.as_deref(), Some("c-1"));
    assert_eq!(
        t.comments[0].created_at.as_deref(),
        Some("2026-11-28 12:59:00"),
        "createAt is read as createdAt"
    );
    assert_eq!(t.comments[1].created_at, None);
    assert!(t.comments[1].attachments.is_empty(), "null attachment list");
    assert_eq!(t.comments[2].status.as_deref(), Some("XYZ"));

    let HookBody::Template(t2) = &hooks[1].body else {
        panic!()
    };
    assert!(t2.comments.is_empty(), "absent comments");

    let HookBody::MessageResult(r) = &hooks[2].body else {
        panic!()
    };
    assert_eq!(r.recipient_seq, Some(12), "numeric string seq");
    assert_eq!(
        r.kakao_message_type.as_deref(),
        Some("FRIENDTALK_UPGRADE_WIDE")
    );
    assert_eq!(r.result_code, None, "null result code");
    assert_eq!(r.is_added_channel, Some(true));

    let HookBody::MessageResult(r) = &hooks[3].body else {
        panic!()
    };
    assert_eq!(
        r.request_id.as_deref(),
        Some("20261128130000"),
        "number for string"
    );
    assert_eq!(r.result_code.as_deref(), Some("3005"));
}

#[test]
fn shape_decides_kind_not_event_name() {
    // A template-shaped hook inside a MESSAGE_RESULT_UPDATE envelope is still a template hook.
    let body = r#"{"event":"MESSAGE_RESULT_UPDATE","hooks":[
        {"hookId":"a","templateCode":"T","status":"TSC03"},
        {"hookId":"b","requestId":"r"},
        {"hookId":"c","recipientSeq":1},
        {"hookId":"d","templateCode":"T"},
        {"hookId":"e","templateCode":"T","status":null}]}"#;
    let kinds: Vec<_> = hooks_of(body)
        .into_iter()
        .map(|h| h.unwrap().kind())
        .collect();
    assert_eq!(
        kinds,
        vec![
            HookKind::Template,
            HookKind::MessageResult,
            HookKind::MessageResult,
            HookKind::Unknown,
            HookKind::Unknown,
        ]
    );
}

#[test]
fn unknown_hooks_keep_every_field() {
    let hooks = hooks_of(&fixture("unknown_event.json"));
    let HookBody::Unknown(map) = &hooks[0].as_ref().unwrap().body else {
        panic!()
    };
    assert_eq!(map["profileStatus"], "BLOCKED");
    assert!(map.contains_key("contact"));
}

#[test]
fn only_elements_of_unknown_shape_are_rejected() {
    let hooks = hooks_of(&fixture("mixed.json"));
    assert_eq!(hooks.iter().filter(|h| h.is_ok()).count(), 3);
    assert_eq!(hooks[3], Err(HookError::NotAnObject));
    let body = r#"{"hooks":[1,"x",[],null,true,{"requestId":"r"}]}"#;
    let got = hooks_of(body);
    for h in &got[..5] {
        assert_eq!(
            h.as_ref().unwrap_err().to_string(),
            "hook is not a JSON object"
        );
    }
    assert!(got[5].is_ok());
}

/// The mismatches of one hook: (field, expected, received).
fn mismatches(raw: &str) -> (Hook, Vec<(String, &'static str, String)>) {
    let hook = parse_hook(raw).unwrap_or_else(|e| panic!("{raw}: {e}"));
    let list = hook
        .mismatches
        .iter()
        .map(|m| (m.field.clone(), m.expected, m.received.clone()))
        .collect();
    (hook, list)
}

#[test]
fn fields_of_unexpected_types_are_kept_as_text_and_flagged() {
    let (hook, found) = mismatches(
        r#"{"hookId":{"x":1},"requestId":"r","recipientSeq":"third","isAddedChannel":"maybe",
            "resultCode":false,"requestDate":{"y":2026},"recipientNo":["01099998888"]}"#,
    );
    let HookBody::MessageResult(r) = &hook.body else {
        panic!("{hook:?}")
    };
    assert_eq!(hook.hook_id.as_deref(), Some(r#"{"x":1}"#));
    assert_eq!(r.recipient_seq, None);
    assert_eq!(r.is_added_channel, None);
    assert_eq!(r.result_code.as_deref(), Some("false"));
    assert_eq!(r.request_date.as_deref(), Some(r#"{"y":2026}"#));
    assert_eq!(r.recipient_no.as_deref(), Some(r#"["01099998888"]"#));
    let fields: Vec<&str> = found.iter().map(|f| f.0.as_str()).collect();
    assert_eq!(
        fields,
        [
            "hookId",
            "recipientSeq",
            "requestDate",
            "recipientNo",
            "resultCode",
            "isAddedChannel"
        ]
    );
    assert_eq!(
        found[1],
        ("recipientSeq".into(), "an integer", "third".into())
    );
    assert_eq!(
        found[5],
        ("isAddedChannel".into(), "a boolean", "maybe".into())
    );

    let (hook, found) = mismatches(
        r#"{"templateCode":"T","status":{"a":1},"comments":[7,{"id":true,"content":["x"],
            "attachment":{"a":1}},{"id":1,"createdAt":null,"createAt":"2026-11-28 12:00:00",
            "attachment":["f",{"originalFileName":3,"filePath":[]}]}]}"#,
    );
    let HookBody::Template(t) = &hook.body else {
        panic!("{hook:?}")
    };
    assert_eq!(t.status, r#"{"a":1}"#);
    assert_eq!(t.comments.len(), 2, "the non-object comment is left out");
    assert_eq!(t.comments[0].id.as_deref(), Some("true"));
    assert_eq!(
        t.comments[1].created_at.as_deref(),
        Some("2026-11-28 12:00:00")
    );
    assert_eq!(
        t.comments[1].attachments[0].original_file_name.as_deref(),
        Some("3")
    );
    let fields: Vec<&str> = found.iter().map(|f| f.0.as_str()).collect();
    assert_eq!(
        fields,
        [
            "status",
            "comments[0]",
            "comments[1].id",
            "comments[1].content",
            "comments[1].attachment",
            "comments[2].attachment[0]",
            "comments[2].attachment[1].filePath",
        ]
    );
    let labels: Vec<&str> = hook.mismatches.iter().map(|m| m.label).collect();
    assert!(labels.iter().all(|l| !l.contains('[')), "{labels:?}");

    let (hook, found) = mismatches(r#"{"templateCode":"T","status":"TSC01","comments":"none"}"#);
    assert_eq!(hook.kind(), HookKind::Template);
    assert_eq!(found[0].0, "comments");

    // Long values are clipped in the list, kept whole in the field.
    let long = "9".repeat(1000);
    let (hook, found) = mismatches(&format!(r#"{{"requestId":"r","resultCode":[{long}]}}"#));
    let HookBody::MessageResult(r) = &hook.body else {
        panic!()
    };
    assert_eq!(r.result_code.as_deref().map(str::len), Some(1002));
    assert!(found[0].2.chars().count() <= 256);
}

#[test]
fn the_vendor_guides_own_examples_are_accepted() {
    let hooks = hooks_of(&fixture("nhn_guide_message_result.json"));
    let hook = hooks[0].as_ref().unwrap();
    assert_eq!(hook.kind(), HookKind::MessageResult);
    let fields: Vec<&str> = hook.mismatches.iter().map(|m| m.field.as_str()).collect();
    assert_eq!(fields, ["recipientSeq", "isAddedChannel"]);
    let HookBody::MessageResult(r) = &hook.body else {
        panic!()
    };
    assert_eq!(r.result_code.as_deref(), Some("String"));
    assert_eq!(r.links_self.as_deref(), Some("String"));

    let hooks = hooks_of(&fixture("nhn_guide_template.json"));
    let hook = hooks[0].as_ref().unwrap();
    assert_eq!(hook.kind(), HookKind::Template);
    assert!(hook.mismatches.is_empty(), "{:?}", hook.mismatches);
    let HookBody::Template(t) = &hook.body else {
        panic!()
    };
    assert_eq!(t.comments[0].id.as_deref(), Some("Integer"));
    assert_eq!(t.comments[0].attachments.len(), 1);
}

#[test]
fn errors_never_quote_payload_values() {
    let body = r#"{"hooks":[["010-9999-8888"], "01099998888"]}"#;
    for h in hooks_of(body) {
        let msg = h.unwrap_err().to_string();
        assert!(!msg.contains("9999"), "{msg}");
    }
}

#[test]
fn envelope_errors() {
    assert_eq!(parse_post(b"").unwrap_err(), ParseError::Empty);
    assert_eq!(parse_post(b"   ").unwrap_err(), ParseError::Empty);
    assert_eq!(parse_post(b"[1,2]").unwrap_err(), ParseError::NotAnObject);
    assert_eq!(
        parse_post(b"\"hooks\"").unwrap_err(),
        ParseError::NotAnObject
    );
    assert_eq!(parse_post(b"{}").unwrap_err(), ParseError::MissingHooks);
    assert_eq!(
        parse_post(br#"{"hooks":null}"#).unwrap_err(),
        ParseError::MissingHooks
    );
    assert_eq!(
        parse_post(br#"{"hooks":{}}"#).unwrap_err(),
        ParseError::HooksNotArray
    );
    assert_eq!(
        parse_post(br#"{"hooks":"[]"}"#).unwrap_err(),
        ParseError::HooksNotArray
    );
    assert_eq!(parse_post(b"\xff\xfe{}").unwrap_err(), ParseError::NotUtf8);
    assert!(matches!(
        parse_post(br#"{"hooks":[{"a":1}"#).unwrap_err(),
        ParseError::Syntax(_)
    ));
    assert!(matches!(
        parse_post(b"nonsense").unwrap_err(),
        ParseError::Syntax(_)
    ));
    let empty = parse_post(br#"{"hooks":[]}"#).unwrap();
    assert!(empty.hooks.is_empty());
    assert_eq!(empty.envelope, Envelope::default());
}

#[test]
fn huge_envelope_values_are_clipped_and_empty_hook_ids_ignored() {
    let body = format!(
        r#"{{"hooksId":"{}","hooks":[{{"hookId":"","requestId":"r"}}]}}"#,
        "x".repeat(20_000)
    );
    let post = parse_post(body.as_bytes()).unwrap();
    assert_eq!(post.envelope.hooks_id.unwrap().len(), 256);
    assert_eq!(parse_hook(post.hooks[0].get()).unwrap().hook_id, None);
}

#[test]
fn envelope_metadata_of_odd_types_is_tolerated() {
    let post = parse_post(br#"{"appKey":123,"event":{"x":1},"hooksId":null,"hooks":[]}"#).unwrap();
    assert_eq!(post.envelope.app_key.as_deref(), Some("123"));
    assert_eq!(post.envelope.event, None);
    assert_eq!(post.envelope.hooks_id, None);
}

#[test]
fn deep_nesting_neither_crashes_nor_hides_the_hook() {
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    // Nested 10,000 levels deep in a field nobody reads: skipped without recursion, the hook
    // itself is fine.
    let body = format!(r#"{{"hooks":[{{"requestId":"r","extra":{deep}}}]}}"#);
    let post = parse_post(body.as_bytes()).unwrap();
    assert_eq!(
        parse_hook(post.hooks[0].get()).unwrap().kind(),
        HookKind::MessageResult
    );
    // An unknown hook is kept whole, so its depth is bounded by serde_json's recursion limit.
    let unknown = format!(r#"{{"other":{deep}}}"#);
    assert!(matches!(parse_hook(&unknown), Err(HookError::Syntax(_))));
    // As the whole body, it is a syntax error (recursion limit), not a stack overflow.
    assert!(matches!(
        parse_post(deep.as_bytes()),
        Err(ParseError::NotAnObject | ParseError::Syntax(_))
    ));
}

#[test]
fn strings_read_the_same_with_and_without_escapes() {
    // Plain strings are read straight from the body; escaped ones through serde_json.
    let body = r#"{"hooksId":"h-\u0031","hooks":[{"hookId":"a\"b","requestId":"20261128","resultCode":"30\u00319",
        "senderGroupingKey":"주문 서비스","recipientGroupingKey":"line\nnext\\end","kakaoMessageType":"","recipientNo":5}]}"#;
    let post = parse_post(body.as_bytes()).unwrap();
    assert_eq!(post.envelope.hooks_id.as_deref(), Some("h-1"));
    let hook = parse_hook(post.hooks[0].get()).unwrap();
    assert_eq!(hook.hook_id.as_deref(), Some("a\"b"));
    let HookBody::MessageResult(r) = &hook.body else {
        panic!("{:?}", hook.body)
    };
    assert_eq!(r.request_id.as_deref(), Some("20261128"));
    assert_eq!(r.result_code.as_deref(), Some("3019"));
    assert_eq!(r.sender_grouping_key.as_deref(), Some("주문 서비스"));
    assert_eq!(r.recipient_grouping_key.as_deref(), Some("line\nnext\\end"));
    assert_eq!(r.kakao_message_type.as_deref(), Some(""));
    assert_eq!(
        r.recipient_no.as_deref(),
        Some("5"),
        "a number is kept as text"
    );
}
