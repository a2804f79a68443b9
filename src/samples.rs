//! Built-in sample hooks: the reference payloads (the same files as `tests/fixtures/`) and
//! adversarial ones, used by `bizrelay check` to prove every template renders, and by
//! `send-test` to post something realistic.

use serde_json::{Value, json};

use crate::bizmessage::{Envelope, Hook, HookKind, parse_hook, parse_post};

/// A hook with its envelope, named for reports.
#[derive(Debug, Clone)]
pub struct Sample {
    pub name: String,
    pub envelope: Envelope,
    pub hook: Hook,
}

const FIXTURES: [(&str, &str); 6] = [
    (
        "template_rejected",
        include_str!("../tests/fixtures/template_rejected.json"),
    ),
    (
        "template_approved",
        include_str!("../tests/fixtures/template_approved.json"),
    ),
    (
        "message_results",
        include_str!("../tests/fixtures/message_results.json"),
    ),
    ("mixed", include_str!("../tests/fixtures/mixed.json")),
    ("quirks", include_str!("../tests/fixtures/quirks.json")),
    (
        "unknown_event",
        include_str!("../tests/fixtures/unknown_event.json"),
    ),
];

fn from_body(name: &str, body: &str) -> Vec<Sample> {
    let Ok(post) = parse_post(body.as_bytes()) else {
        return Vec::new();
    };
    post.hooks
        .iter()
        .enumerate()
        .filter_map(|(i, raw)| {
            parse_hook(raw.get()).ok().map(|hook| Sample {
                name: format!("{name}#{i}"),
                envelope: post.envelope.clone(),
                hook,
            })
        })
        .collect()
}

/// Every valid hook of the reference payloads.
pub fn reference() -> Vec<Sample> {
    FIXTURES
        .iter()
        .flat_map(|(name, body)| from_body(name, body))
        .collect()
}

/// Hooks built to break templates: quotes, backslashes, newlines, mentions and links of every
/// service (`<!channel>`, `@everyone`, `<users/all>`, `[@all](dooray://…)`, `[x](url)`), `}}`,
/// 3,000-character comments, 200 comments, emoji and Korean.
pub fn adversarial() -> Vec<Sample> {
    let nasty = "He said \"no\" \\ back\\slash\nnew line\ttab <!channel> <@U123> <http://evil|safe> & }} {{x}} 한국어 검수 👍🏽 \u{1b}[31m @channel @everyone <users/all> [@all](dooray://1/members/2) [safe](http://evil) **bold**";
    let long = format!("{}{}", "반려 사유 ".repeat(250), "end"); // ~3,000 characters
    let comment = |i: usize, content: &str| {
        json!({"id": i, "content": content, "userName": nasty, "createdAt": format!("2026-11-28 10:{:02}:{:02}", i / 60 % 60, i % 60),
               "status": "REJ", "attachment": [{"originalFileName": nasty, "filePath": "https://example.invalid/a\"b<c>"}]})
    };
    let many: Vec<Value> = (0..200)
        .map(|i| comment(i, &format!("comment {i}: {nasty}")))
        .collect();
    let body = json!({
        "hooksId": nasty, "appKey": nasty, "event": nasty,
        "hooks": [
            {"hookId": "adv-quotes", "senderKey": nasty, "templateCode": nasty, "kakaoTemplateCode": nasty,
             "status": "TSC04", "comments": [comment(1, nasty)], "updateDate": nasty},
            {"hookId": "adv-long", "senderKey": "sk", "templateCode": "LONG", "status": "TSC04",
             "comments": [comment(1, &long), comment(2, &long), comment(3, &long)]},
            {"hookId": "adv-200", "senderKey": "sk", "templateCode": "MANY", "status": "TSC02", "comments": many},
            {"hookId": "adv-approved", "senderKey": nasty, "templateCode": nasty, "status": "TSC03"},
            {"hookId": "adv-result", "kakaoMessageType": nasty, "requestId": nasty, "recipientSeq": "7",
             "requestDate": nasty, "createDate": null, "receiveDate": nasty, "recipientNo": "010-1234-5678",
             "resultCode": nasty, "senderGroupingKey": nasty, "recipientGroupingKey": long},
            {"hookId": "adv-unknown", "note": nasty, "long": long, "phone": "01012345678"}
        ]
    });
    from_body("adversarial", &body.to_string())
}

/// A failure storm: `n` result hooks spread over `codes` distinct result codes, message types
/// and sender grouping keys (for digest checks).
pub fn storm(n: usize, codes: usize) -> Vec<Sample> {
    let envelope = Envelope {
        event: Some("MESSAGE_RESULT_UPDATE".into()),
        ..Envelope::default()
    };
    (0..n)
        .filter_map(|i| {
            let raw = json!({
                "hookId": format!("storm-{i}"),
                "kakaoMessageType": format!("ALIMTALK_TYPE_{}", i % 40),
                "requestId": format!("2026112812{i:08}"),
                "recipientSeq": i,
                "recipientNo": format!("010{:08}", i),
                "resultCode": format!("{}", 3000 + i % codes.max(1)),
                "senderGroupingKey": format!("sender-<!here>-{}", i % 70),
            });
            parse_hook(&raw.to_string()).ok().map(|hook| Sample {
                name: format!("storm#{i}"),
                envelope: envelope.clone(),
                hook,
            })
        })
        .collect()
}

/// Real result codes with a meaning, for messages people read (`send-test`).
const EVERYDAY_CODES: [&str; 5] = ["3019", "3016", "3018", "3005", "1021"];

/// A failure storm made to be read by people (`send-test --kind digest`): real result codes
/// and message types, plain service names as sender keys, made-up recipient numbers. Nothing
/// in it is a mention or a link (unlike [`storm`], which is built to break templates).
pub fn everyday_storm(n: usize) -> Vec<Sample> {
    let envelope = Envelope {
        event: Some("MESSAGE_RESULT_UPDATE".into()),
        ..Envelope::default()
    };
    let types = ["ALIMTALK_NORMAL", "FRIENDTALK_NORMAL"];
    let senders = ["order-service", "coupon-service", "delivery-service"];
    (0..n)
        .filter_map(|i| {
            let raw = json!({
                "hookId": format!("send-test-{i}"),
                "kakaoMessageType": types[i % types.len()],
                "requestId": format!("20261128120000sEnDtEsT{i:04}"),
                "recipientSeq": i + 1,
                "recipientNo": format!("0100000{:04}", i),
                "resultCode": EVERYDAY_CODES[i % EVERYDAY_CODES.len()],
                "senderGroupingKey": senders[i % senders.len()],
            });
            parse_hook(&raw.to_string()).ok().map(|hook| Sample {
                name: format!("everyday#{i}"),
                envelope: envelope.clone(),
                hook,
            })
        })
        .collect()
}

/// One representative sample of a kind (for `send-test`).
pub fn one_of(kind: HookKind) -> Option<Sample> {
    let name = match kind {
        HookKind::Template => "template_rejected#0",
        HookKind::MessageResult => "message_results#1",
        HookKind::Unknown => "unknown_event#0",
    };
    reference().into_iter().find(|s| s.name == name)
}

/// A sample of what enrichment learns (for golden renders and `send-test --enriched`).
pub fn enrichment() -> crate::bizmessage::Enrichment {
    crate::bizmessage::Enrichment {
        template_code: Some("ORDER_SHIPPED_V2".into()),
        sender_key: Some("sample-sender-key".into()),
        plus_friend_id: Some("@bizrelay-shop".into()),
        message_status: Some("FAILED".into()),
        result_code_name: Some("Message blocked".into()),
        resend_status: Some("RSC04".into()),
        resend_result_code: Some("1000".into()),
        content: None,
    }
}

/// A sample hook with [`enrichment`] attached (message results only).
pub fn enriched(mut sample: Sample) -> Sample {
    if let crate::bizmessage::HookBody::MessageResult(r) = &mut sample.hook.body {
        r.enrichment = Some(Box::new(enrichment()));
    }
    sample
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_cover_every_kind() {
        let reference = reference();
        for kind in [
            HookKind::Template,
            HookKind::MessageResult,
            HookKind::Unknown,
        ] {
            assert!(reference.iter().any(|s| s.hook.kind() == kind), "{kind:?}");
            assert_eq!(one_of(kind).unwrap().hook.kind(), kind);
        }
        // mixed.json has one malformed hook, which is not a sample.
        assert_eq!(
            reference
                .iter()
                .filter(|s| s.name.starts_with("mixed"))
                .count(),
            3
        );
        assert_eq!(adversarial().len(), 6);
        let storm = storm(50, 7);
        assert_eq!(storm.len(), 50);
        assert!(
            storm
                .iter()
                .all(|s| s.hook.kind() == HookKind::MessageResult)
        );
    }

    #[test]
    fn the_everyday_storm_is_harmless_and_uses_real_codes() {
        let storm = everyday_storm(40);
        assert_eq!(storm.len(), 40);
        for s in &storm {
            let text = format!("{:?}", s.hook);
            assert!(!text.contains('<') && !text.contains('@'), "{text}");
            let crate::bizmessage::HookBody::MessageResult(r) = &s.hook.body else {
                panic!("{text}");
            };
            let meaning = crate::context::result_value(r.result_code.as_deref());
            assert_eq!(meaning["known"], true, "{:?} has a meaning", r.result_code);
        }
    }
}
