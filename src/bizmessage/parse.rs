//! Parsing a POST body into an envelope plus one raw slice per hook, and each hook on its own.
//!
//! The envelope is parsed in one pass over the body, borrowing each hook as a raw JSON slice, so a malformed hook
//! costs only itself: [`parse_post`] fails only when the body as a whole is not an object with a
//! `hooks` array; [`parse_hook`] judges each element separately. Error messages name fields,
//! never their values.
//!
//! A field of an unexpected type never costs the hook (NHN's own guide shows
//! `"recipientSeq": "Integer"`): it is kept as received, as text, and listed in
//! [`Hook::mismatches`]. Only an element whose shape cannot be told is rejected: one that is
//! not a JSON object, or an object of unknown shape too deeply nested to keep.

mod fields;

use compact_str::CompactString;
use serde::Deserialize;
use serde::de;
use serde_json::value::RawValue;

use fields::{Mismatches, bool_field, comments_field, links_field, seq_field, string_field};

use super::{Envelope, Hook, HookBody, ResultHook, TemplateHook};

/// Why a whole POST body was refused (answered with 400).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ParseError {
    #[error("body is empty")]
    Empty,
    #[error("body is not valid UTF-8")]
    NotUtf8,
    #[error("body is not a JSON object")]
    NotAnObject,
    #[error("body is not valid JSON: {0}")]
    Syntax(String),
    #[error("body has no `hooks` array")]
    MissingHooks,
    #[error("`hooks` is not an array")]
    HooksNotArray,
}

/// Why one hook was rejected (counted in `rejected`, kept for inspection).
#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone)]
pub enum HookError {
    #[error("hook is not a JSON object")]
    NotAnObject,
    #[error("hook is not valid JSON: {0}")]
    Syntax(String),
}

/// A parsed POST: its envelope and each hook as the exact JSON text NHN sent.
#[derive(Debug)]
pub struct Post<'a> {
    pub envelope: Envelope,
    pub hooks: Vec<&'a RawValue>,
}

#[derive(Deserialize)]
struct RawEnvelope<'a> {
    #[serde(rename = "hooksId", borrow, default)]
    hooks_id: Option<&'a RawValue>,
    #[serde(rename = "webhookConfigId", borrow, default)]
    webhook_config_id: Option<&'a RawValue>,
    #[serde(rename = "productName", borrow, default)]
    product_name: Option<&'a RawValue>,
    #[serde(rename = "appKey", borrow, default)]
    app_key: Option<&'a RawValue>,
    #[serde(borrow, default)]
    event: Option<&'a RawValue>,
    #[serde(borrow, default)]
    hooks: Option<HooksField<'a>>,
}

/// The `hooks` value, read in the envelope's one pass over the body: its elements as raw
/// slices, or `None` when it is not an array (an object or a string is consumed, not kept).
struct HooksField<'a>(Option<Vec<&'a RawValue>>);

impl<'de: 'a, 'a> Deserialize<'de> for HooksField<'a> {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Elements<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> de::Visitor<'de> for Elements<'a> {
            type Value = HooksField<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an array of hooks")
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut hooks = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1024));
                while let Some(hook) = seq.next_element::<&'de RawValue>()? {
                    hooks.push(hook);
                }
                Ok(HooksField(Some(hooks)))
            }
            fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                while map
                    .next_entry::<de::IgnoredAny, de::IgnoredAny>()?
                    .is_some()
                {}
                Ok(HooksField(None))
            }
            fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
                Ok(HooksField(None))
            }
            fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
                Ok(HooksField(None))
            }
            fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
                Ok(HooksField(None))
            }
            fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
                Ok(HooksField(None))
            }
            fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
                Ok(HooksField(None))
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(HooksField(None))
            }
        }
        d.deserialize_any(Elements(std::marker::PhantomData))
    }
}

/// Splits a POST body into its envelope and raw hooks.
pub fn parse_post(body: &[u8]) -> Result<Post<'_>, ParseError> {
    let text = std::str::from_utf8(body).map_err(|_| ParseError::NotUtf8)?;
    match text.trim_start().as_bytes().first() {
        None => return Err(ParseError::Empty),
        Some(b'{') => {}
        Some(_) => {
            // Distinguish "valid JSON of the wrong type" from garbage, for a clearer error.
            return Err(match serde_json::from_str::<de::IgnoredAny>(text) {
                Ok(_) => ParseError::NotAnObject,
                Err(e) => ParseError::Syntax(describe(&e)),
            });
        }
    }
    let raw: RawEnvelope<'_> =
        serde_json::from_str(text).map_err(|e| ParseError::Syntax(describe(&e)))?;
    let hooks = raw
        .hooks
        .ok_or(ParseError::MissingHooks)?
        .0
        .ok_or(ParseError::HooksNotArray)?;
    Ok(Post {
        envelope: Envelope {
            hooks_id: loose_string(raw.hooks_id),
            webhook_config_id: loose_string(raw.webhook_config_id),
            product_name: loose_string(raw.product_name),
            app_key: loose_string(raw.app_key),
            event: loose_string(raw.event),
        },
        hooks,
    })
}

/// serde_json's message without the input excerpt (it has none) but with the position.
fn describe(e: &serde_json::Error) -> String {
    let msg = e.to_string();
    // serde_json messages for type errors quote the offending value ("invalid type: string
    // \"0101234...\""); keep only the category so no payload text leaks into logs.
    match e.classify() {
        serde_json::error::Category::Data
            if !msg.starts_with("duplicate field") && !msg.starts_with("missing field") =>
        {
            format!(
                "unexpected value at line {} column {}",
                e.line(),
                e.column()
            )
        }
        _ => msg,
    }
}

/// Longest envelope value kept (`hooksId` and friends are short ids; a huge one must not be
/// copied into every stored row and log line).
const MAX_ENVELOPE_VALUE: usize = 256;

/// Envelope metadata is informational: a string or a number is kept (clipped), anything else
/// dropped.
fn loose_string(raw: Option<&RawValue>) -> Option<String> {
    let raw = raw?.get();
    let value: String = match raw.as_bytes().first()? {
        b'"' => match fields::plain_string(raw) {
            Some(text) => text.to_string(),
            None => serde_json::from_str(raw).ok()?,
        },
        b'-' | b'0'..=b'9' => raw.to_string(),
        _ => return None,
    };
    if value.len() <= MAX_ENVELOPE_VALUE {
        return Some(value);
    }
    Some(value.chars().take(MAX_ENVELOPE_VALUE).collect())
}

#[derive(Deserialize)]
struct RawHook<'a> {
    #[serde(rename = "hookId", borrow, default)]
    hook_id: Option<&'a RawValue>,
    #[serde(rename = "senderKey", borrow, default)]
    sender_key: Option<&'a RawValue>,
    #[serde(rename = "templateCode", borrow, default)]
    template_code: Option<&'a RawValue>,
    #[serde(rename = "kakaoTemplateCode", borrow, default)]
    kakao_template_code: Option<&'a RawValue>,
    #[serde(borrow, default)]
    status: Option<&'a RawValue>,
    #[serde(borrow, default)]
    comments: Option<&'a RawValue>,
    #[serde(rename = "updateDate", borrow, default)]
    update_date: Option<&'a RawValue>,
    #[serde(rename = "kakaoMessageType", borrow, default)]
    kakao_message_type: Option<&'a RawValue>,
    #[serde(rename = "requestId", borrow, default)]
    request_id: Option<&'a RawValue>,
    #[serde(rename = "recipientSeq", borrow, default)]
    recipient_seq: Option<&'a RawValue>,
    #[serde(rename = "requestDate", borrow, default)]
    request_date: Option<&'a RawValue>,
    #[serde(rename = "createDate", borrow, default)]
    create_date: Option<&'a RawValue>,
    #[serde(rename = "receiveDate", borrow, default)]
    receive_date: Option<&'a RawValue>,
    #[serde(rename = "recipientNo", borrow, default)]
    recipient_no: Option<&'a RawValue>,
    #[serde(rename = "resultCode", borrow, default)]
    result_code: Option<&'a RawValue>,
    #[serde(rename = "senderGroupingKey", borrow, default)]
    sender_grouping_key: Option<&'a RawValue>,
    #[serde(rename = "recipientGroupingKey", borrow, default)]
    recipient_grouping_key: Option<&'a RawValue>,
    #[serde(rename = "_links", borrow, default)]
    links: Option<&'a RawValue>,
    #[serde(rename = "isAddedChannel", borrow, default)]
    is_added_channel: Option<&'a RawValue>,
}

/// Parses one element of `hooks`, classifying it by shape.
pub fn parse_hook(raw: &str) -> Result<Hook, HookError> {
    if raw.trim_start().as_bytes().first() != Some(&b'{') {
        return Err(HookError::NotAnObject);
    }
    let h: RawHook<'_> = serde_json::from_str(raw).map_err(|e| HookError::Syntax(describe(&e)))?;
    let mut found = Mismatches::default();
    let f = &mut found;
    // An empty id identifies nothing: such hooks are deduplicated by content instead.
    let hook_id =
        string_field::<CompactString>("hookId", h.hook_id, f).filter(|id| !id.trim().is_empty());

    let body = if h.template_code.is_some() && h.status.is_some() {
        HookBody::Template(TemplateHook {
            sender_key: string_field("senderKey", h.sender_key, f),
            template_code: required(string_field("templateCode", h.template_code, f)),
            kakao_template_code: string_field("kakaoTemplateCode", h.kakao_template_code, f),
            status: required(string_field("status", h.status, f)),
            comments: comments_field(h.comments, f),
            update_date: string_field("updateDate", h.update_date, f),
        })
    } else if h.kakao_message_type.is_some() || h.request_id.is_some() || h.recipient_seq.is_some()
    {
        HookBody::MessageResult(ResultHook {
            kakao_message_type: string_field("kakaoMessageType", h.kakao_message_type, f),
            request_id: string_field("requestId", h.request_id, f),
            recipient_seq: seq_field(h.recipient_seq, f),
            request_date: string_field("requestDate", h.request_date, f),
            create_date: string_field("createDate", h.create_date, f),
            receive_date: string_field("receiveDate", h.receive_date, f),
            recipient_no: string_field("recipientNo", h.recipient_no, f),
            result_code: string_field("resultCode", h.result_code, f),
            sender_grouping_key: string_field("senderGroupingKey", h.sender_grouping_key, f),
            recipient_grouping_key: string_field(
                "recipientGroupingKey",
                h.recipient_grouping_key,
                f,
            ),
            links_self: links_field(h.links),
            is_added_channel: bool_field(h.is_added_channel, f),
            enrichment: None,
        })
    } else {
        let map: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(raw).map_err(|e| HookError::Syntax(describe(&e)))?;
        HookBody::Unknown(map)
    };
    Ok(Hook {
        hook_id,
        body,
        mismatches: found.0,
    })
}

fn required(s: Option<String>) -> String {
    // Presence was checked by the classifier; only `null`s are filtered before, so this
    // cannot be reached with None, but an empty string is a safe answer if it ever is.
    s.unwrap_or_default()
}

#[cfg(test)]
mod tests;
