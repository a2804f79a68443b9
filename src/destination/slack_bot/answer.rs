//! What a Slack Web API answer means. Slack answers most failures with HTTP 200 and
//! `{"ok": false, "error": "<code>"}`, so the status alone says little: the code decides.
//!
//! Invariant: [`classify`] is total and pure (table-tested): every status, body and code has
//! an outcome, and the explanation never quotes more of the body than the error code.

use std::time::{Duration, SystemTime};

use crate::destination::answer::{Answer, parse_retry_after};

/// Which Web API method answered (the same code can mean different things).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// `chat.postMessage`.
    Post,
    /// `chat.update`.
    Update,
}

impl Method {
    pub fn path(self) -> &'static str {
        match self {
            Method::Post => "chat.postMessage",
            Method::Update => "chat.update",
        }
    }
}

/// What one Web API call came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiOutcome {
    /// `ok: true`, with the message's channel ID and `ts` (empty when missing).
    Ok { channel: String, ts: String },
    /// HTTP 429 or `ratelimited`: pause the destination this long.
    Throttled(Duration),
    /// Slack or the network failed for now: retry with backoff.
    Retry(String),
    /// The message to update or reply to is gone or cannot be changed: post a fresh root.
    Gone(String),
    /// The body is wrong: resending it cannot help.
    DeadPayload(String),
    /// The token or the channel is wrong: the destination is broken until the operator acts.
    DeadDestination(String),
}

/// What an error code means for the operator, when it is one of the destination's own.
fn destination_problem(code: &str) -> Option<&'static str> {
    Some(match code {
        "invalid_auth" | "not_authed" => {
            "the bot token is missing or invalid; set `token` to the app's Bot User OAuth Token (xoxb-…)"
        }
        "account_inactive" | "token_revoked" | "token_expired" => {
            "the bot token was revoked or its app uninstalled; reinstall the app and set the new token"
        }
        "missing_scope" | "no_permission" => {
            "the bot token lacks the chat:write scope; add it under OAuth & Permissions and reinstall the app"
        }
        "channel_not_found" => {
            "the channel does not exist or the bot cannot see it; set `channel` to the channel ID (C…) and invite the bot"
        }
        "not_in_channel" => {
            "the bot is not a member of the channel; invite it there (/invite @your-app)"
        }
        "is_archived" | "is_inactive" => {
            "the channel is archived; unarchive it or pick another `channel`"
        }
        _ => return None,
    })
}

/// Classifies one answer of `method` (pure).
pub fn classify(method: Method, answer: &Answer, now: SystemTime) -> ApiOutcome {
    let retry_after = || parse_retry_after(answer.header("retry-after"), now);
    let Some(status) = answer.status else {
        return ApiOutcome::Retry(answer.detail.clone());
    };
    if status == 429 {
        return ApiOutcome::Throttled(retry_after());
    }
    if status >= 500 || status == 408 {
        return ApiOutcome::Retry(format!("Slack answered HTTP {status}"));
    }
    let body = answer.json();
    let ok = body.as_ref().and_then(|b| b["ok"].as_bool());
    let code = body
        .as_ref()
        .and_then(|b| b["error"].as_str())
        .map(|c| crate::text::truncate(&crate::text::strip_controls(c), 60));
    match (status, ok) {
        (200..=299, Some(true)) => {
            let field = |k: &str| {
                body.as_ref()
                    .and_then(|b| b[k].as_str())
                    .unwrap_or("")
                    .to_string()
            };
            return ApiOutcome::Ok {
                channel: field("channel"),
                ts: field("ts"),
            };
        }
        (200..=299 | 400..=499, Some(false)) => {}
        (401 | 403 | 404 | 410, _) => {
            return ApiOutcome::DeadDestination(format!(
                "Slack answered HTTP {status} to {}; check `api_url` and `token`",
                method.path()
            ));
        }
        _ => {
            return ApiOutcome::DeadPayload(format!(
                "Slack answered HTTP {status} without a Web API answer to {}; is `api_url` Slack's API (https://slack.com/api)?",
                method.path()
            ));
        }
    }
    let code = code.unwrap_or_else(|| "(no error code)".to_string());
    let said = format!("Slack said {code} to {}", method.path());
    if let Some(problem) = destination_problem(&code) {
        return ApiOutcome::DeadDestination(format!("{said}: {problem}"));
    }
    match code.as_str() {
        "ratelimited" | "rate_limited" | "message_limit_exceeded" => {
            ApiOutcome::Throttled(retry_after())
        }
        "service_unavailable" | "internal_error" | "fatal_error" | "request_timeout" => {
            ApiOutcome::Retry(said)
        }
        "message_not_found" | "cant_update_message" | "edit_window_closed"
            if method == Method::Update =>
        {
            ApiOutcome::Gone(said)
        }
        "cannot_reply_to_message"
        | "restricted_action_thread_locked"
        | "thread_not_found"
        | "message_not_found" => ApiOutcome::Gone(said),
        "msg_too_long"
        | "msg_blocks_too_long"
        | "invalid_blocks"
        | "invalid_blocks_format"
        | "no_text"
        | "too_many_attachments"
        | "block_mismatch"
        | "invalid_arguments"
        | "invalid_json"
        | "json_not_object" => ApiOutcome::DeadPayload(format!(
            "{said}: the body does not suit Slack (fix the template, then replay)"
        )),
        _ => ApiOutcome::DeadPayload(format!("{said} (not a code bizrelay knows to retry)")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: Option<u16>, body: &str, retry_after: Option<&str>) -> Answer {
        Answer {
            status,
            headers: retry_after
                .map(|v| vec![("retry-after".to_string(), v.to_string())])
                .unwrap_or_default(),
            body: body.to_string(),
            detail: "connection failed: refused".into(),
        }
    }

    #[derive(Debug, PartialEq)]
    enum K {
        Ok,
        Throttled(u64),
        Retry,
        Gone,
        Payload,
        Destination,
    }

    fn kind(o: &ApiOutcome) -> K {
        match o {
            ApiOutcome::Ok { .. } => K::Ok,
            ApiOutcome::Throttled(d) => K::Throttled(d.as_secs()),
            ApiOutcome::Retry(_) => K::Retry,
            ApiOutcome::Gone(_) => K::Gone,
            ApiOutcome::DeadPayload(_) => K::Payload,
            ApiOutcome::DeadDestination(_) => K::Destination,
        }
    }

    #[test]
    fn classification_table() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let err = |code: &str| format!("{{\"ok\":false,\"error\":\"{code}\"}}");
        use Method::{Post, Update};
        type Case<'a> = (Method, Option<u16>, String, Option<&'a str>, K);
        let cases: Vec<Case<'_>> = vec![
            (
                Post,
                Some(200),
                r#"{"ok":true,"channel":"C1","ts":"1.2"}"#.into(),
                None,
                K::Ok,
            ),
            (
                Update,
                Some(200),
                r#"{"ok":true,"channel":"C1","ts":"1.2"}"#.into(),
                None,
                K::Ok,
            ),
            (
                Post,
                Some(429),
                err("ratelimited"),
                Some("7"),
                K::Throttled(7),
            ),
            (Post, Some(429), String::new(), None, K::Throttled(5)),
            (
                Update,
                Some(200),
                err("ratelimited"),
                Some("3"),
                K::Throttled(3),
            ),
            (Post, Some(200), err("rate_limited"), None, K::Throttled(5)),
            (Update, Some(200), err("message_not_found"), None, K::Gone),
            (Update, Some(200), err("cant_update_message"), None, K::Gone),
            (Update, Some(200), err("edit_window_closed"), None, K::Gone),
            (
                Post,
                Some(200),
                err("cannot_reply_to_message"),
                None,
                K::Gone,
            ),
            (
                Post,
                Some(200),
                err("restricted_action_thread_locked"),
                None,
                K::Gone,
            ),
            (Post, Some(200), err("edit_window_closed"), None, K::Payload),
            (Post, Some(200), err("invalid_auth"), None, K::Destination),
            (Post, Some(200), err("not_authed"), None, K::Destination),
            (
                Post,
                Some(200),
                err("account_inactive"),
                None,
                K::Destination,
            ),
            (Post, Some(200), err("token_revoked"), None, K::Destination),
            (Post, Some(200), err("token_expired"), None, K::Destination),
            (Post, Some(200), err("missing_scope"), None, K::Destination),
            (
                Post,
                Some(200),
                err("channel_not_found"),
                None,
                K::Destination,
            ),
            (Post, Some(200), err("not_in_channel"), None, K::Destination),
            (Post, Some(200), err("is_archived"), None, K::Destination),
            (Update, Some(200), err("is_inactive"), None, K::Destination),
            (Post, Some(200), err("msg_too_long"), None, K::Payload),
            (
                Post,
                Some(200),
                err("msg_blocks_too_long"),
                None,
                K::Payload,
            ),
            (Post, Some(200), err("invalid_blocks"), None, K::Payload),
            (Post, Some(200), err("no_text"), None, K::Payload),
            (Post, Some(200), err("something_new"), None, K::Payload),
            (Post, Some(200), err("service_unavailable"), None, K::Retry),
            (Post, Some(200), err("internal_error"), None, K::Retry),
            (Post, Some(200), err("fatal_error"), None, K::Retry),
            (Post, Some(200), err("request_timeout"), None, K::Retry),
            (Post, Some(500), String::new(), None, K::Retry),
            (Post, Some(503), "<html>".into(), Some("30"), K::Retry),
            (Post, Some(408), String::new(), None, K::Retry),
            (Post, None, String::new(), None, K::Retry),
            (Post, Some(401), String::new(), None, K::Destination),
            (Post, Some(404), "not found".into(), None, K::Destination),
            (Post, Some(400), err("invalid_blocks"), None, K::Payload),
            (Post, Some(400), "bad".into(), None, K::Payload),
            (Post, Some(200), "ok".into(), None, K::Payload),
            (Post, Some(200), r#"{"ok":false}"#.into(), None, K::Payload),
        ];
        for (method, status, body, retry_after, want) in cases {
            let got = classify(method, &answer(status, &body, retry_after), now);
            assert_eq!(kind(&got), want, "{method:?} {status:?} {body}");
        }
    }

    #[test]
    fn ok_answers_carry_channel_and_ts_and_errors_explain_themselves() {
        let now = SystemTime::UNIX_EPOCH;
        let ok = answer(Some(200), r#"{"ok":true,"channel":"C9","ts":"17.5"}"#, None);
        assert_eq!(
            classify(Method::Post, &ok, now),
            ApiOutcome::Ok {
                channel: "C9".into(),
                ts: "17.5".into()
            }
        );
        let ApiOutcome::DeadDestination(why) = classify(
            Method::Post,
            &answer(Some(200), r#"{"ok":false,"error":"not_in_channel"}"#, None),
            now,
        ) else {
            panic!("not a destination problem");
        };
        assert!(
            why.contains("not_in_channel") && why.contains("invite"),
            "{why}"
        );
        let ApiOutcome::DeadDestination(why) = classify(
            Method::Post,
            &answer(Some(200), r#"{"ok":false,"error":"missing_scope"}"#, None),
            now,
        ) else {
            panic!("not a destination problem");
        };
        assert!(why.contains("chat:write"), "{why}");
    }
}
