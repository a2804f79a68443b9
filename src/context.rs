//! The template context of one hook: its fields under their NHN names, the envelope fields,
//! and derived values (labels, result-code meaning, masked recipient, route and destination,
//! the locale and the one-line summary in it). docs/templates.md documents every key; change
//! both together.
//!
//! Invariants:
//! - Every documented key of the hook's kind is present (null when the hook lacks it), so
//!   strict-mode templates can test optional fields with `{{#if}}`.
//! - With `mask_recipient` on (the default), no phone number from the hook is in the context:
//!   `recipientNo` is masked, and hooks of unknown shape have phone-like text masked too.
//! - A field that came with an unexpected type shows as the text received, and is listed in
//!   `type_mismatches` (`[]` when there is none) with what was expected; masked like the rest.
//! - No string of the context holds a bidirectional control (U+202E and kin): every
//!   destination gets text that reads in the order it was sent ([`neutralise`]).

use chrono::{DateTime, FixedOffset};
use serde_json::{Map, Value, json};

use crate::bizmessage::{self, Comment, Envelope, Hook, HookBody, ResultHook, TemplateHook, codes};
use crate::destination::DestinationKind;
use crate::locale::Locale;
use crate::mask::{mask_phone, mask_phone_like};

pub mod summary;

/// Comments listed in `recent_comments` (the whole thread stays in `comments`).
pub const RECENT_COMMENTS: usize = 10;

/// Where a hook is going, for the context's derived keys.
#[derive(Debug, Clone, Copy)]
pub struct Meta<'a> {
    pub route: &'a str,
    pub destination: &'a str,
    pub destination_type: DestinationKind,
    /// The language of the destination's templates.
    pub locale: Locale,
    /// When bizrelay received the hook, in Unix milliseconds.
    pub received_at_ms: i64,
    pub mask_recipient: bool,
}

/// Korea Standard Time: NHN's dates carry no zone and are KST.
pub fn kst() -> FixedOffset {
    FixedOffset::east_opt(9 * 3600)
        .unwrap_or_else(|| FixedOffset::east_opt(0).expect("zero offset"))
}

/// Unix milliseconds as `yyyy-MM-dd HH:mm:ss` in KST, the format NHN uses.
pub fn format_ms(ms: i64) -> String {
    DateTime::from_timestamp_millis(ms)
        .map(|t| {
            t.with_timezone(&kst())
                .format("%Y-%m-%d %H:%M:%S")
                .to_string()
        })
        .unwrap_or_default()
}

/// Builds the context for one hook.
pub fn hook_context(envelope: &Envelope, hook: &Hook, meta: &Meta<'_>) -> Value {
    let mut ctx = Map::new();
    ctx.insert("kind".into(), json!(hook.kind().as_str()));
    ctx.insert("route".into(), json!(meta.route));
    ctx.insert("destination".into(), json!(meta.destination));
    ctx.insert(
        "destination_type".into(),
        json!(meta.destination_type.as_str()),
    );
    ctx.insert("locale".into(), json!(meta.locale.as_str()));
    ctx.insert("received_at".into(), json!(format_ms(meta.received_at_ms)));
    ctx.insert("hooksId".into(), json!(envelope.hooks_id));
    ctx.insert("webhookConfigId".into(), json!(envelope.webhook_config_id));
    ctx.insert("productName".into(), json!(envelope.product_name));
    ctx.insert("appKey".into(), json!(envelope.app_key));
    ctx.insert("event".into(), json!(envelope.event));
    ctx.insert("hookId".into(), json!(hook.hook_id));
    match &hook.body {
        HookBody::Template(t) => template_fields(&mut ctx, t),
        HookBody::MessageResult(r) => result_fields(&mut ctx, r, meta.mask_recipient),
        HookBody::Unknown(map) => unknown_fields(&mut ctx, map, meta.mask_recipient),
    }
    mismatch_fields(&mut ctx, hook, meta.mask_recipient);
    let mut ctx = Value::Object(ctx);
    neutralise(&mut ctx);
    ctx["summary"] = json!(summary::hook(&ctx, meta.locale));
    ctx
}

/// `type_mismatches`, and the received text in place of each top-level field that had one (a
/// number or boolean field is otherwise null).
fn mismatch_fields(ctx: &mut Map<String, Value>, hook: &Hook, mask: bool) {
    let shown = |m: &bizmessage::TypeMismatch| match (mask, m.field.as_str()) {
        (true, "recipientNo") => mask_phone(&m.received),
        (true, _) => mask_phone_like(&m.received),
        (false, _) => m.received.clone(),
    };
    let mut list = Vec::with_capacity(hook.mismatches.len());
    for m in &hook.mismatches {
        let text = shown(m);
        if let Some(slot) = ctx.get_mut(&m.field) {
            *slot = json!(text);
        }
        list.push(json!({"field": m.field, "expected": m.expected, "received": text}));
    }
    ctx.insert("type_mismatches".into(), Value::Array(list));
}

/// Drops bidirectional controls from every string and key of a context: a right-to-left
/// override in a hook (`\u{202E}gnp.exe` shows as `exe.png`) would disguise text in Slack and
/// Teams alike, so it is removed here, once for every destination, not per escape function.
pub fn neutralise(v: &mut Value) {
    match v {
        Value::String(s) => {
            if let std::borrow::Cow::Owned(clean) = crate::text::strip_bidi(s) {
                *s = clean;
            }
        }
        Value::Array(items) => items.iter_mut().for_each(neutralise),
        Value::Object(map) => {
            if map
                .keys()
                .any(|k| k.chars().any(crate::text::is_bidi_control))
            {
                let fields = std::mem::take(map);
                for (k, child) in fields {
                    map.insert(crate::text::strip_bidi(&k).into_owned(), child);
                }
            }
            map.values_mut().for_each(neutralise);
        }
        _ => {}
    }
}

/// `{en, ko, known}`: the label of a status code, or the raw code when it is not documented.
fn label(status: Option<&str>) -> Value {
    match status {
        None => json!({"en": null, "ko": null, "known": false}),
        Some(s) => match bizmessage::status_label(s) {
            Some((en, ko)) => json!({"en": en, "ko": ko, "known": true}),
            None => json!({"en": s, "ko": s, "known": false}),
        },
    }
}

fn comment_value(c: &Comment) -> Value {
    let attachments: Vec<Value> = c
        .attachments
        .iter()
        .map(|a| json!({"originalFileName": a.original_file_name, "filePath": a.file_path}))
        .collect();
    json!({
        "id": c.id,
        "content": c.content,
        "userName": c.user_name,
        "createdAt": c.created_at,
        "status": c.status,
        "status_label": label(c.status.as_deref()),
        "attachment": attachments,
    })
}

fn template_fields(ctx: &mut Map<String, Value>, t: &TemplateHook) {
    ctx.insert("senderKey".into(), json!(t.sender_key));
    ctx.insert("templateCode".into(), json!(t.template_code));
    ctx.insert("kakaoTemplateCode".into(), json!(t.kakao_template_code));
    ctx.insert("status".into(), json!(t.status));
    ctx.insert("status_label".into(), label(Some(&t.status)));
    ctx.insert("updateDate".into(), json!(t.update_date));
    ctx.insert(
        "comments".into(),
        Value::Array(t.comments.iter().map(comment_value).collect()),
    );
    ctx.insert("comment_count".into(), json!(t.comments.len()));
    // Chronological (stable for equal or missing dates), newest RECENT_COMMENTS kept.
    let mut ordered: Vec<&Comment> = t.comments.iter().collect();
    ordered.sort_by(|a, b| {
        a.created_at
            .as_deref()
            .unwrap_or("")
            .cmp(b.created_at.as_deref().unwrap_or(""))
    });
    let skip = ordered.len().saturating_sub(RECENT_COMMENTS);
    ctx.insert(
        "recent_comments".into(),
        Value::Array(ordered[skip..].iter().map(|c| comment_value(c)).collect()),
    );
    ctx.insert("omitted_comments".into(), json!(skip));
    ctx.insert(
        "latest_comment".into(),
        t.newest_comment().map_or(Value::Null, comment_value),
    );
    let reason = if t.status == "TSC04" {
        ctx["comments"]
            .as_array()
            .and_then(|c| summary::rejection_reason(c))
    } else {
        None
    };
    ctx.insert("rejection_reason".into(), json!(reason));
}

/// `result` of the context: the code with its meaning and outcome.
pub fn result_value(code: Option<&str>) -> Value {
    let known = code.and_then(codes::lookup);
    let outcome = code.map_or(bizmessage::Outcome::Failure, codes::outcome_of);
    json!({
        "code": code,
        "outcome": outcome.as_str(),
        "known": known.is_some(),
        "final": known.is_none_or(|c| c.is_final),
        "meaning_en": known.map_or("Unknown result code", |c| c.meaning_en),
        "meaning_ko": known.map_or("알 수 없는 결과 코드", |c| c.meaning_ko),
    })
}

fn result_fields(ctx: &mut Map<String, Value>, r: &ResultHook, mask: bool) {
    let masked = r.recipient_no.as_deref().map(mask_phone);
    let shown = if mask {
        masked.clone()
    } else {
        r.recipient_no.as_deref().map(String::from)
    };
    ctx.insert("kakaoMessageType".into(), json!(r.kakao_message_type));
    let label = |ko: bool| {
        r.kakao_message_type
            .as_deref()
            .map(|t| bizmessage::message_type_label(t).map_or(t, |(en, k)| if ko { k } else { en }))
    };
    ctx.insert("message_type_label".into(), json!(label(false)));
    ctx.insert("message_type_label_ko".into(), json!(label(true)));
    ctx.insert("requestId".into(), json!(r.request_id));
    ctx.insert("recipientSeq".into(), json!(r.recipient_seq));
    ctx.insert("requestDate".into(), json!(r.request_date));
    ctx.insert("createDate".into(), json!(r.create_date));
    ctx.insert("receiveDate".into(), json!(r.receive_date));
    ctx.insert("recipientNo".into(), json!(shown));
    ctx.insert("recipient_masked".into(), json!(masked));
    ctx.insert("resultCode".into(), json!(r.result_code));
    ctx.insert("result".into(), result_value(r.result_code.as_deref()));
    ctx.insert("senderGroupingKey".into(), json!(r.sender_grouping_key));
    ctx.insert(
        "recipientGroupingKey".into(),
        json!(r.recipient_grouping_key),
    );
    ctx.insert("isAddedChannel".into(), json!(r.is_added_channel));
    enrichment_fields(ctx, r.enrichment.as_deref());
    ctx.insert("link".into(), json!(r.links_self));
    ctx.insert(
        "_links".into(),
        r.links_self
            .as_ref()
            .map_or(Value::Null, |h| json!({"self": {"href": h}})),
    );
}

/// What enrichment learned from NHN's message query API; every key is present, null when
/// not known (not looked up, failed, or past `enrich.wait`), so templates test `{{#if}}`.
fn enrichment_fields(ctx: &mut Map<String, Value>, e: Option<&bizmessage::Enrichment>) {
    let get =
        |f: fn(&bizmessage::Enrichment) -> &Option<String>| json!(e.and_then(|e| f(e).clone()));
    ctx.insert("enriched".into(), json!(e.is_some()));
    ctx.insert("template_code".into(), get(|e| &e.template_code));
    ctx.insert("sender_key".into(), get(|e| &e.sender_key));
    ctx.insert("plus_friend_id".into(), get(|e| &e.plus_friend_id));
    ctx.insert("message_status".into(), get(|e| &e.message_status));
    ctx.insert("result_code_name".into(), get(|e| &e.result_code_name));
    ctx.insert("resend_status".into(), get(|e| &e.resend_status));
    let resend = e.and_then(|e| e.resend_status.as_deref());
    ctx.insert(
        "resend_status_label".into(),
        match resend {
            None => Value::Null,
            Some(code) => match bizmessage::resend_status_label(code) {
                Some((en, ko)) => json!({"en": en, "ko": ko, "known": true}),
                None => json!({"en": code, "ko": code, "known": false}),
            },
        },
    );
    ctx.insert("resend_result_code".into(), get(|e| &e.resend_result_code));
    ctx.insert("content".into(), get(|e| &e.content));
}

fn unknown_fields(ctx: &mut Map<String, Value>, map: &Map<String, Value>, mask: bool) {
    let mut fields = Value::Object(map.clone());
    if mask {
        mask_value(&mut fields, false);
    }
    let pretty = serde_json::to_string_pretty(&fields).unwrap_or_default();
    ctx.insert("raw_json".into(), json!(pretty));
    ctx.insert("fields".into(), fields);
}

/// Masks `recipientNo` values anywhere in the tree and phone-like text in every string, every
/// number (`821077776666` is a phone number sent as a JSON number) and every key.
fn mask_value(v: &mut Value, is_recipient: bool) {
    match v {
        Value::String(s) => {
            *s = if is_recipient {
                mask_phone(s)
            } else {
                mask_phone_like(s)
            };
        }
        Value::Number(n) if is_recipient => *v = json!(mask_phone(&n.to_string())),
        Value::Number(n) => {
            let text = n.to_string();
            let masked = mask_phone_like(&text);
            if masked != text {
                *v = json!(masked);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|i| mask_value(i, is_recipient)),
        Value::Object(map) => {
            let fields = std::mem::take(map);
            for (k, mut child) in fields {
                mask_value(&mut child, k.eq_ignore_ascii_case("recipientNo"));
                map.insert(mask_phone_like(&k), child);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests;
