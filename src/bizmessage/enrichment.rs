//! What NHN's message query API tells about one sent message, beyond its result hook: the
//! template it was sent with, the channel, and the SMS fallback's outcome. Filled in by
//! `crate::enrich` before routing; `None` on a hook means "not known" (never looked up, the
//! lookup failed or took longer than `enrich.wait`), never a guess.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Enrichment {
    /// Same for every recipient of a request.
    pub template_code: Option<String>,
    pub sender_key: Option<String>,
    pub plus_friend_id: Option<String>,
    /// Of the recipient that was looked up (absent when the answer came from another
    /// recipient of the same request).
    pub message_status: Option<String>,
    pub result_code_name: Option<String>,
    /// RSC01..RSC05 (`resendStatusCode` for brand messages).
    pub resend_status: Option<String>,
    /// An SMS result code.
    pub resend_result_code: Option<String>,
    /// The rendered message, truncated; kept only with `enrich.show_content = true`.
    pub content: Option<String>,
}

impl Enrichment {
    /// The fields shared by every recipient of the request, for a hook about another
    /// recipient than the one looked up.
    pub fn request_level(&self) -> Enrichment {
        Enrichment {
            template_code: self.template_code.clone(),
            sender_key: self.sender_key.clone(),
            plus_friend_id: self.plus_friend_id.clone(),
            ..Enrichment::default()
        }
    }
}

/// `{en, ko}` of a fallback (SMS resend) status code.
pub fn resend_status_label(code: &str) -> Option<(&'static str, &'static str)> {
    Some(match code {
        "RSC01" => ("SMS fallback not eligible", "SMS 대체 발송 대상 아님"),
        "RSC02" => ("SMS fallback eligible", "SMS 대체 발송 대상"),
        "RSC03" => ("SMS fallback in progress", "SMS 대체 발송 중"),
        "RSC04" => ("SMS fallback succeeded", "SMS 대체 발송 성공"),
        "RSC05" => ("SMS fallback failed", "SMS 대체 발송 실패"),
        _ => return None,
    })
}
