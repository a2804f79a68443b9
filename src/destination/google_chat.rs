//! Google Chat space webhooks (`https://chat.googleapis.com/v1/spaces/…/messages?key=…&token=…`):
//! `{text}` and/or `{cardsV2}`, threaded by `thread.threadKey`.
//!
//! Invariants:
//! - The URL's `key` and `token` are the credential: the whole URL is a secret.
//! - A body with `thread.threadKey` is posted with
//!   `messageReplyOption=REPLY_MESSAGE_FALLBACK_TO_NEW_THREAD`, so messages with the same key
//!   (the built-ins use one per template, per result code, per digest group) share a thread.
//! - Untrusted text cannot mention (`<users/all>`) or link (`<url|text>`, card HTML): every
//!   `<` is followed by a zero-width space.
//! - At most [`MAX_BYTES`] of JSON (Google allows 32,000 bytes), `text` at most
//!   [`MAX_TEXT`] characters, `threadKey` at most [`MAX_THREAD_KEY`].

use serde_json::{Value, json};

use super::config::UrlShape;
use super::fitting::{self, fit_str, object, shrink_to_bytes};
use super::{
    Builtins, ChatService, Checks, DestinationConfig, DestinationKind, FallbackInfo, LimitError,
    Outgoing, Pacing, Request, RequestError, builtins, request,
};
use crate::locale::Locale;
use crate::secret::Secret;
use crate::text::{break_within, truncate};

pub const MAX_BYTES: usize = 30_000;
pub const MAX_TEXT: usize = 4096;
pub const MAX_THREAD_KEY: usize = 4000;
pub const REPLY_OPTION: &str = "REPLY_MESSAGE_FALLBACK_TO_NEW_THREAD";

pub struct GoogleChat;
pub const KIND: DestinationKind = DestinationKind::of(&GoogleChat);

static TEMPLATES: [Builtins; 2] = builtins!("google_chat");

const URL: UrlShape = UrlShape {
    what: "a Google Chat space webhook",
    hosts: &["chat.googleapis.com"],
    path_prefix: "/v1/spaces/",
    example: "https://chat.googleapis.com/v1/spaces/…/messages?key=…&token=…",
};

/// Breaks Google Chat's `<…>` syntax (mentions, links) and card HTML in untrusted text.
pub fn escape(s: &str) -> String {
    break_within(s, "<")
}

impl ChatService for GoogleChat {
    fn name(&self) -> &'static str {
        "google_chat"
    }

    /// 60 messages a minute per space.
    fn default_pacing(&self) -> Pacing {
        Pacing {
            rate: Some(1.0),
            burst: 1,
        }
    }

    fn check(&self, dest: &DestinationConfig, checks: &mut Checks) {
        checks.webhook_url(dest, &URL);
        if let Some(u) = dest.url.as_ref().and_then(super::config::http_url)
            && u.host_str() == Some("chat.googleapis.com")
        {
            let has = |k: &str| u.query_pairs().any(|(q, _)| q == k);
            if !(has("key") && has("token")) {
                checks.warn(
                    "url",
                    "has no `key` and `token`: Google Chat will refuse it",
                );
            }
        }
    }

    fn escape_text(&self, s: &str) -> String {
        escape(s)
    }

    fn builtins(&self, locale: Locale) -> &'static Builtins {
        &TEMPLATES[locale as usize]
    }

    fn fit_value(&self, body: &mut Value) -> Result<(), LimitError> {
        let obj = object(body, "Google Chat")?;
        let has_text = fitting::has_text(obj, "text");
        let has_cards = obj
            .get("cardsV2")
            .and_then(Value::as_array)
            .is_some_and(|c| !c.is_empty());
        if !has_text && !has_cards {
            return Err(LimitError::Shape(
                "Google Chat body needs a non-empty `text` or `cardsV2`".into(),
            ));
        }
        fit_str(obj, "text", MAX_TEXT, "Google Chat")?;
        if let Some(thread) = obj.get_mut("thread").and_then(Value::as_object_mut) {
            fit_str(thread, "threadKey", MAX_THREAD_KEY, "Google Chat thread")?;
        }
        shrink_to_bytes(body, MAX_BYTES);
        Ok(())
    }

    fn audit(&self, body: &Value, bytes: usize) -> Vec<String> {
        let mut out = Vec::new();
        if bytes > MAX_BYTES {
            out.push(format!("{bytes} bytes (budget {MAX_BYTES})"));
        }
        let text = fitting::chars(body, "text");
        let cards = body["cardsV2"].as_array().map_or(0, Vec::len);
        if text == 0 && cards == 0 {
            out.push("neither `text` nor `cardsV2`".into());
        }
        if text > MAX_TEXT {
            out.push(format!("`text` over {MAX_TEXT} characters"));
        }
        if fitting::chars(&body["thread"], "threadKey") > MAX_THREAD_KEY {
            out.push(format!("threadKey over {MAX_THREAD_KEY} characters"));
        }
        for (i, card) in body["cardsV2"].as_array().into_iter().flatten().enumerate() {
            if !card["card"].is_object() {
                out.push(format!("cardsV2[{i}] has no `card`"));
            }
        }
        out
    }

    fn headline_fields(&self) -> &'static [&'static str] {
        &["/text", "/cardsV2/0/card/header/title"]
    }

    fn fallback(&self, info: &FallbackInfo) -> String {
        let mut text = format!("*{}*", escape(&info.title));
        for (k, v) in &info.facts {
            text.push_str(&format!("\n{}: {}", escape(k), escape(v)));
        }
        json!({"text": truncate(&text, MAX_TEXT)}).to_string()
    }

    fn request(
        &self,
        dest: &DestinationConfig,
        out: &Outgoing<'_>,
    ) -> Result<Request, RequestError> {
        let mut req = request::json_post(dest, out, out.body.to_string(), Vec::new())?;
        let threaded = serde_json::from_str::<Value>(out.body)
            .ok()
            .is_some_and(|v| v["thread"]["threadKey"].is_string());
        if let Request::Http(http) = &mut req
            && threaded
            && let Ok(mut u) = url::Url::parse(http.url.expose())
            && !u.query_pairs().any(|(k, _)| k == "messageReplyOption")
        {
            u.query_pairs_mut()
                .append_pair("messageReplyOption", REPLY_OPTION);
            http.url = Secret::new(u.to_string());
        }
        Ok(req)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_text_cannot_mention_all() {
        let e = escape("<users/all> <https://evil|safe> <b>x</b>");
        assert!(
            !e.contains("<users") && !e.contains("<http") && !e.contains("<b>"),
            "{e}"
        );
    }

    #[test]
    fn threads_get_the_reply_option_and_keep_the_credential() {
        let dest: DestinationConfig = serde_json::from_value(json!({"type": "google_chat",
            "url": "https://chat.googleapis.com/v1/spaces/AAA/messages?key=KEY&token=TOKEN"}))
        .unwrap();
        let out = |body| Outgoing {
            id: "1",
            body,
            unix_time: 0,
        };
        let Request::Http(r) = KIND
            .request(&dest, &out(r#"{"text":"t","thread":{"threadKey":"k"}}"#))
            .unwrap()
        else {
            panic!()
        };
        let u = url::Url::parse(r.url.expose()).unwrap();
        let q: Vec<(String, String)> = u.query_pairs().into_owned().collect();
        assert_eq!(
            q,
            [
                ("key".into(), "KEY".into()),
                ("token".into(), "TOKEN".into()),
                ("messageReplyOption".into(), REPLY_OPTION.into())
            ]
        );
        let Request::Http(r) = KIND.request(&dest, &out(r#"{"text":"t"}"#)).unwrap() else {
            panic!()
        };
        assert!(!r.url.expose().contains("messageReplyOption"));
        let warned = Checks::of(
            &serde_json::from_value(json!({"type": "google_chat",
            "url": "https://chat.googleapis.com/v1/spaces/AAA/messages"}))
            .unwrap(),
        );
        assert_eq!(warned.warnings.len(), 1, "{warned:?}");
    }

    #[test]
    fn fit_and_audit() {
        let mut body = json!({"text": "x".repeat(5000), "thread": {"threadKey": "k"},
            "cardsV2": [{"cardId": "c", "card": {"sections": [{"widgets":
                (0..50).map(|_| json!({"textParagraph": {"text": "가".repeat(1000)}})).collect::<Vec<_>>()}]}}]});
        KIND.fit_value(&mut body).unwrap();
        assert!(KIND.audit(&body, body.to_string().len()).is_empty());
        assert!(KIND.fit_value(&mut json!({"text": ""})).is_err());
        let fb = KIND.fallback(&FallbackInfo {
            title: "t".into(),
            facts: vec![],
        });
        assert!(KIND.violations(&fb).is_empty());
    }
}
