//! Reading the query API's answers: the envelope `header{resultCode, resultMessage,
//! isSuccessful}` and the message under `message` (or `body` for AlimTalk mass recipients),
//! any of which may be null. Pure.
//!
//! Invariants:
//! - Never panics on the answer's text; unknown fields are ignored, strings sent as numbers
//!   are taken as text.
//! - `content` is masked (phone-like text) and truncated here, before it is stored anywhere.
//! - Nothing from the answer's text ends up in a [`Answer`] reason but NHN's result code and
//!   the HTTP status (a `resultMessage` could echo request data).

use serde_json::Value;

use crate::bizmessage::Enrichment;

/// Characters of `content` kept.
pub const CONTENT_CHARS: usize = 300;

/// What one answer means for the lookup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    Found(Enrichment),
    /// NHN has nothing for this message (`message: null`, -4016 "not exist data", -4103,
    /// data older than 90 days, another 4xx): do not ask again.
    NoData(String),
    /// -1000 invalid app key, -1001 invalid secret key, HTTP 401/403.
    BadCredentials(String),
    /// Worth retrying: 5xx, 429, a body that is not JSON.
    Transient(String),
}

fn text(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn result_code(header: Option<&Value>) -> Option<i64> {
    match header?.get("resultCode")? {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// Reads an answer of HTTP `status` with body `body`.
pub fn read(status: u16, body: &[u8], show_content: bool) -> Answer {
    let json: Option<Value> = serde_json::from_slice(body).ok();
    let header = json.as_ref().and_then(|j| j.get("header"));
    let code = result_code(header);
    match code {
        Some(c @ (-1000 | -1001)) => {
            return Answer::BadCredentials(format!(
                "NHN answered {c} ({})",
                if c == -1000 {
                    "invalid appKey"
                } else {
                    "invalid secretKey"
                }
            ));
        }
        Some(c @ (-4016 | -4103)) => return Answer::NoData(format!("NHN answered {c}")),
        _ => {}
    }
    match status {
        401 | 403 => return Answer::BadCredentials(format!("NHN answered HTTP {status}")),
        429 => return Answer::Transient("NHN answered HTTP 429".into()),
        500..=599 => return Answer::Transient(format!("NHN answered HTTP {status}")),
        200..=299 => {}
        _ => return Answer::NoData(format!("NHN answered HTTP {status}")),
    }
    let Some(json) = json.as_ref() else {
        return Answer::Transient(format!(
            "NHN answered HTTP {status} with a body that is not JSON"
        ));
    };
    let successful = header
        .and_then(|h| h.get("isSuccessful"))
        .and_then(Value::as_bool)
        .unwrap_or(code == Some(0));
    if !successful {
        return Answer::NoData(match code {
            Some(c) => format!("NHN answered {c}"),
            None => "NHN's answer was not successful".into(),
        });
    }
    let message = ["message", "body"]
        .iter()
        .filter_map(|k| json.get(*k))
        .find(|m| m.is_object());
    let Some(m) = message else {
        return Answer::NoData("NHN has no data for this message".into());
    };
    let content = if show_content {
        text(m.get("content"))
            .map(|c| crate::text::truncate(&crate::mask::mask_phone_like(&c), CONTENT_CHARS))
    } else {
        None
    };
    Answer::Found(Enrichment {
        template_code: text(m.get("templateCode")),
        sender_key: text(m.get("senderKey")),
        plus_friend_id: text(m.get("plusFriendId")),
        message_status: text(m.get("messageStatus")),
        result_code_name: text(m.get("resultCodeName")),
        resend_status: text(m.get("resendStatus")).or_else(|| text(m.get("resendStatusCode"))),
        resend_result_code: text(m.get("resendResultCode")),
        content,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(a: Answer) -> Enrichment {
        match a {
            Answer::Found(e) => e,
            other => panic!("expected Found, got {other:?}"),
        }
    }

    #[test]
    fn a_single_answer_gives_the_documented_fields() {
        let body = br#"{"header":{"resultCode":0,"resultMessage":"success","isSuccessful":true},
          "message":{"requestId":"R","recipientSeq":3,"plusFriendId":"@shop","senderKey":"SK",
          "templateCode":"ORDER_SHIPPED_V2","recipientNo":"01012345678",
          "content":"Hello 010-1234-5678, your order shipped","messageStatus":"FAILED",
          "resultCode":"3019","resultCodeName":"Message blocked","resendStatus":"RSC04",
          "resendStatusName":"success","resendResultCode":"1000","extra":{"x":1}}}"#;
        let e = found(read(200, body, true));
        assert_eq!(e.template_code.as_deref(), Some("ORDER_SHIPPED_V2"));
        assert_eq!(e.sender_key.as_deref(), Some("SK"));
        assert_eq!(e.plus_friend_id.as_deref(), Some("@shop"));
        assert_eq!(e.message_status.as_deref(), Some("FAILED"));
        assert_eq!(e.result_code_name.as_deref(), Some("Message blocked"));
        assert_eq!(e.resend_status.as_deref(), Some("RSC04"));
        assert_eq!(e.resend_result_code.as_deref(), Some("1000"));
        let content = e.content.unwrap();
        assert!(
            !content.contains("1234-5678") && content.contains("order shipped"),
            "{content}"
        );
        // Without show_content nothing of the rendered message is kept.
        assert_eq!(found(read(200, body, false)).content, None);
    }

    #[test]
    fn a_mass_answer_is_wrapped_in_body_and_brand_messages_say_resend_status_code() {
        let mass = br#"{"header":{"resultCode":0,"isSuccessful":true},
          "body":{"templateCode":"MASS_T","messageStatus":"FAILED","resendStatus":null}}"#;
        let e = found(read(200, mass, false));
        assert_eq!(e.template_code.as_deref(), Some("MASS_T"));
        assert_eq!(e.resend_status, None);
        let brand = br#"{"header":{"resultCode":"0","isSuccessful":true},
          "message":{"templateCode":null,"resendStatusCode":"RSC05","plusFriendId":"@b"}}"#;
        let e = found(read(200, brand, false));
        assert_eq!(e.template_code, None);
        assert_eq!(e.resend_status.as_deref(), Some("RSC05"));
    }

    #[test]
    fn empty_and_failed_answers_are_told_apart() {
        let null = br#"{"header":{"resultCode":0,"isSuccessful":true},"message":null}"#;
        assert!(matches!(read(200, null, false), Answer::NoData(_)));
        let missing = br#"{"header":{"resultCode":-4016,"resultMessage":"Not exist data","isSuccessful":false}}"#;
        assert_eq!(
            read(200, missing, false),
            Answer::NoData("NHN answered -4016".into())
        );
        for c in ["-1000", "-1001"] {
            let bad = format!(r#"{{"header":{{"resultCode":{c},"isSuccessful":false}}}}"#);
            assert!(matches!(
                read(200, bad.as_bytes(), false),
                Answer::BadCredentials(_)
            ));
        }
        assert!(matches!(read(401, b"", false), Answer::BadCredentials(_)));
        assert!(matches!(read(503, b"<html>", false), Answer::Transient(_)));
        assert!(matches!(read(429, b"", false), Answer::Transient(_)));
        assert!(matches!(read(200, b"<html>", false), Answer::Transient(_)));
        assert!(matches!(read(404, b"", false), Answer::NoData(_)));
        // A resultMessage is never echoed (it could repeat request data).
        let echo = br#"{"header":{"resultCode":-9,"resultMessage":"01012345678 bad","isSuccessful":false}}"#;
        assert!(!format!("{:?}", read(200, echo, false)).contains("0101234"));
    }
}
