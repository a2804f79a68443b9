//! NHN Cloud KakaoTalk Bizmessage webhook payloads: the envelope of one POST, the hooks inside
//! it, and the result-code table.
//!
//! Invariants:
//! - A hook's kind comes from its **shape**, never from the envelope's `event` string (the
//!   template event's name is undocumented): `templateCode` + `status` make a template hook,
//!   any of `kakaoMessageType` / `requestId` / `recipientSeq` a message-result hook, anything
//!   else is unknown and is still relayed.
//! - Parsing is tolerant of the documented type drift (numbers for strings and back, `createAt`,
//!   nulls) and keeps unknown enum values as raw strings; it never panics on network input.
//! - A field of any other unexpected type is kept as received, as text, and listed in
//!   [`Hook::mismatches`]; it never costs the hook. Only an element whose shape cannot be told
//!   (not an object) is rejected.
//! - Errors never quote values from the payload: they may hold phone numbers.

pub mod codes;
mod enrichment;
mod parse;

use compact_str::CompactString;
use serde::{Deserialize, Serialize};

pub use codes::{Outcome, ResultCode};
pub use enrichment::{Enrichment, resend_status_label};
pub use parse::{HookError, ParseError, Post, parse_hook, parse_post};

/// Envelope fields of one POST (`hooksId` is new for every POST; `hookId`s are per event).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    #[serde(rename = "hooksId")]
    pub hooks_id: Option<String>,
    #[serde(rename = "webhookConfigId")]
    pub webhook_config_id: Option<String>,
    #[serde(rename = "productName")]
    pub product_name: Option<String>,
    #[serde(rename = "appKey")]
    pub app_key: Option<String>,
    pub event: Option<String>,
}

/// The three shapes a hook can have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HookKind {
    Template,
    MessageResult,
    Unknown,
}

impl HookKind {
    pub fn as_str(self) -> &'static str {
        match self {
            HookKind::Template => "template",
            HookKind::MessageResult => "message_result",
            HookKind::Unknown => "unknown",
        }
    }

    pub fn parse(s: &str) -> Option<HookKind> {
        match s {
            "template" => Some(HookKind::Template),
            "message_result" => Some(HookKind::MessageResult),
            "unknown" => Some(HookKind::Unknown),
            _ => None,
        }
    }

    /// The built-in template that renders this kind when a route names none.
    pub fn default_template(self) -> &'static str {
        match self {
            HookKind::Template => "template_status",
            HookKind::MessageResult => "message_result",
            HookKind::Unknown => "unknown_event",
        }
    }
}

/// One event from the `hooks` array, understood.
#[derive(Debug, Clone, PartialEq)]
pub struct Hook {
    pub hook_id: Option<CompactString>,
    pub body: HookBody,
    /// Fields that came with an unexpected type, kept as text in the body.
    pub mismatches: Vec<TypeMismatch>,
}

/// A field NHN sent with a type bizrelay did not expect (the vendor's own examples put
/// `"Integer"` in `recipientSeq`). A string field keeps the value as text; a number or boolean
/// field is left empty and the template context shows the text instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypeMismatch {
    /// Where, with positions: `recipientSeq`, `comments[0].id`.
    pub field: String,
    /// The same without positions, for metrics: `comments.id`.
    pub label: &'static str,
    /// What was expected, in words: "an integer".
    pub expected: &'static str,
    /// The value as received, as text (a string's content, else its JSON), clipped.
    pub received: String,
}

#[derive(Debug, Clone, PartialEq)]
pub enum HookBody {
    Template(TemplateHook),
    MessageResult(ResultHook),
    /// Any other object, kept whole so it can be shown in a generic form.
    Unknown(serde_json::Map<String, serde_json::Value>),
}

impl Hook {
    pub fn kind(&self) -> HookKind {
        match self.body {
            HookBody::Template(_) => HookKind::Template,
            HookBody::MessageResult(_) => HookKind::MessageResult,
            HookBody::Unknown(_) => HookKind::Unknown,
        }
    }
}

/// Template review status change (`TSC01`..`TSC04`, unknown values kept raw).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TemplateHook {
    pub sender_key: Option<String>,
    pub template_code: String,
    pub kakao_template_code: Option<String>,
    pub status: String,
    pub comments: Vec<Comment>,
    pub update_date: Option<String>,
}

impl TemplateHook {
    /// The newest comment: the latest `createdAt` (the format sorts as text), ties and missing
    /// dates resolved by position, last wins.
    pub fn newest_comment(&self) -> Option<&Comment> {
        self.comments
            .iter()
            .enumerate()
            .max_by(|(ia, a), (ib, b)| {
                a.created_at
                    .as_deref()
                    .unwrap_or("")
                    .cmp(b.created_at.as_deref().unwrap_or(""))
                    .then(ia.cmp(ib))
            })
            .map(|(_, c)| c)
    }
}

/// One entry of a template's review thread. `content` is untrusted free text.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Comment {
    /// Integer or string in the vendor's docs, always a string here.
    pub id: Option<String>,
    pub content: Option<String>,
    pub user_name: Option<String>,
    /// `createdAt`, or `createAt` as the template query API spells it.
    pub created_at: Option<String>,
    pub attachments: Vec<Attachment>,
    pub status: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Attachment {
    pub original_file_name: Option<String>,
    pub file_path: Option<String>,
}

/// `MESSAGE_RESULT_UPDATE`: a message's delivery result changed. Its short fields are
/// [`CompactString`]s, kept inline up to 24 bytes: these hooks come by the thousand, and an
/// allocation per field was a large share of the webhook's CPU time.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ResultHook {
    pub kakao_message_type: Option<CompactString>,
    pub request_id: Option<CompactString>,
    pub recipient_seq: Option<i64>,
    pub request_date: Option<CompactString>,
    pub create_date: Option<CompactString>,
    pub receive_date: Option<CompactString>,
    /// The recipient's phone number: personal data, masked before it reaches any chat.
    pub recipient_no: Option<CompactString>,
    pub result_code: Option<CompactString>,
    pub sender_grouping_key: Option<CompactString>,
    pub recipient_grouping_key: Option<CompactString>,
    pub links_self: Option<String>,
    pub is_added_channel: Option<bool>,
    /// Learned from NHN's message query API before routing (never parsed from the hook).
    pub enrichment: Option<Box<Enrichment>>,
}

impl ResultHook {
    /// Outcome of this hook's result code; a missing code counts as a failure of unknown
    /// meaning, like any code the table does not list.
    pub fn outcome(&self) -> Outcome {
        self.result_code
            .as_deref()
            .map_or(Outcome::Failure, codes::outcome_of)
    }
}

/// English and Korean labels of template statuses (`TSC..`) and comment statuses.
pub fn status_label(status: &str) -> Option<(&'static str, &'static str)> {
    Some(match status {
        "TSC01" => ("Review requested", "검수 요청"),
        "TSC02" => ("Under review", "검수 중"),
        "TSC03" => ("Approved", "승인"),
        "TSC04" => ("Rejected", "반려"),
        "INQ" => ("Inquiry", "문의"),
        "APR" => ("Approved", "승인"),
        "REJ" => ("Rejected", "반려"),
        "REP" => ("Reply", "답변"),
        "REQ" => ("Under review", "검수 중"),
        _ => return None,
    })
}

/// A readable name for `kakaoMessageType` values, in English and Korean; unknown values are
/// shown raw.
pub fn message_type_label(kind: &str) -> Option<(&'static str, &'static str)> {
    Some(match kind {
        "ALIMTALK_NORMAL" => ("AlimTalk", "알림톡"),
        "ALIMTALK_AUTH" => ("AlimTalk (authentication)", "알림톡 (인증)"),
        "ALIMTALK_MASS" => ("AlimTalk (mass)", "알림톡 (대량)"),
        "FRIENDTALK_NORMAL" => ("FriendTalk", "친구톡"),
        "FRIENDTALK_MASS" => ("FriendTalk (mass)", "친구톡 (대량)"),
        "BRAND_MESSAGE_NORMAL" => ("Brand message", "브랜드 메시지"),
        "BRAND_MESSAGE_MASS" => ("Brand message (mass)", "브랜드 메시지 (대량)"),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn comment(at: Option<&str>, content: &str) -> Comment {
        Comment {
            created_at: at.map(str::to_string),
            content: Some(content.into()),
            ..Comment::default()
        }
    }

    #[test]
    fn newest_comment_is_latest_created_at_then_last() {
        let mut hook = TemplateHook::default();
        assert!(hook.newest_comment().is_none());
        hook.comments = vec![
            comment(Some("2026-11-28 09:30:00"), "b"),
            comment(Some("2026-11-28 09:29:58"), "a"),
            comment(None, "c"),
        ];
        assert_eq!(hook.newest_comment().unwrap().content.as_deref(), Some("b"));
        hook.comments
            .push(comment(Some("2026-11-28 09:30:00"), "d"));
        assert_eq!(hook.newest_comment().unwrap().content.as_deref(), Some("d"));
    }

    #[test]
    fn labels_cover_documented_statuses_and_pass_unknown_through() {
        for s in [
            "TSC01", "TSC02", "TSC03", "TSC04", "INQ", "APR", "REJ", "REP", "REQ",
        ] {
            assert!(status_label(s).is_some(), "{s}");
        }
        assert_eq!(status_label("TSC09"), None);
        assert_eq!(message_type_label("FRIENDTALK_UPGRADE_X"), None);
        assert_eq!(HookKind::parse("template"), Some(HookKind::Template));
        assert_eq!(HookKind::parse("nope"), None);
    }

    #[test]
    fn missing_result_code_is_a_failure() {
        assert_eq!(ResultHook::default().outcome(), Outcome::Failure);
        let ok = ResultHook {
            result_code: Some("1000".into()),
            ..ResultHook::default()
        };
        assert_eq!(ok.outcome(), Outcome::Success);
    }
}
