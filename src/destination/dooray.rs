//! Dooray! Messenger incoming hooks (`https://hook.dooray.com/services/…`, and the other
//! Dooray! clouds' hosts): `{botName, botIconImage?, text, attachments?: [{title, titleLink?,
//! text, color?}]}`.
//!
//! Invariants:
//! - Pacing defaults to 1 message/s with no burst: Dooray! accepts one message per second per
//!   hook and drops the excess silently, so `check` also warns when message results reach a
//!   Dooray! hook one by one instead of as digests.
//! - Untrusted text cannot mention anyone (`[@name](dooray://…)`) or hide a link: `[@`,
//!   `dooray://` and `](` are broken with a zero-width space.
//! - `botName` (and `botIconImage`) come from the config at send time unless the template
//!   set them; a 2xx whose JSON body says `header.isSuccessful: false` is not a delivery.
//! - No limits are documented; bizrelay stays inside conservative ones: `text` at most
//!   [`MAX_TEXT`] characters, at most [`MAX_ATTACHMENTS`] attachments (the documented maximum
//!   for command answers), [`TEXT_BUDGET`] characters in all.

use std::time::SystemTime;

use serde::Deserialize;
use serde_json::{Value, json};

use super::config::UrlShape;
use super::fitting::{
    self, array, cap_list, fit_str, object, require_text, shrink_to_budget, strings_at,
};
use super::{
    Answer, Builtins, ChatService, Checks, DestinationConfig, DestinationKind, FallbackInfo,
    LimitError, Outgoing, Pacing, Request, RequestError, Verdict, answer, builtins, request,
};
use crate::locale::Locale;
use crate::text::{break_within, truncate};

pub const MAX_TEXT: usize = 4000;
pub const MAX_ATTACHMENTS: usize = 20;
pub const MAX_TITLE: usize = 200;
pub const MAX_ATTACHMENT_TEXT: usize = 2000;
pub const TEXT_BUDGET: usize = 10_000;
pub const DEFAULT_BOT_NAME: &str = "bizrelay";

pub struct Dooray;
pub const KIND: DestinationKind = DestinationKind::of(&Dooray);

static TEMPLATES: [Builtins; 2] = builtins!("dooray");

const URL: UrlShape = UrlShape {
    what: "a Dooray! incoming hook",
    hosts: &[
        "dooray.com",
        "gov-dooray.com",
        "gov-dooray.co.kr",
        "dooray.co.kr",
    ],
    path_prefix: "/services/",
    example: "https://hook.dooray.com/services/…",
};

#[derive(Debug, Default, Deserialize)]
struct Settings {
    bot_name: Option<String>,
    bot_icon: Option<String>,
}

/// Breaks Dooray!'s mention and link syntax in untrusted text.
pub fn escape(s: &str) -> String {
    break_within(&break_within(&break_within(s, "[@"), "dooray:"), "](")
}

impl ChatService for Dooray {
    fn name(&self) -> &'static str {
        "dooray"
    }

    fn default_pacing(&self) -> Pacing {
        Pacing {
            rate: Some(1.0),
            burst: 1,
        }
    }

    fn drops_excess_silently(&self) -> bool {
        true
    }

    fn settings(&self) -> &'static [&'static str] {
        &["bot_name", "bot_icon"]
    }

    fn check(&self, dest: &DestinationConfig, checks: &mut Checks) {
        checks.webhook_url(dest, &URL);
        let Some(s) = checks.options::<Settings>(dest) else {
            return;
        };
        if s.bot_name.as_deref().is_some_and(|n| n.trim().is_empty()) {
            checks.error("bot_name", "is empty (leave it out for \"bizrelay\")");
        }
        if let Some(icon) = &s.bot_icon
            && url::Url::parse(icon)
                .ok()
                .is_none_or(|u| !matches!(u.scheme(), "http" | "https"))
        {
            checks.error("bot_icon", "must be an http(s) URL of an image");
        }
    }

    fn escape_text(&self, s: &str) -> String {
        escape(s)
    }

    fn builtins(&self, locale: Locale) -> &'static Builtins {
        &TEMPLATES[locale as usize]
    }

    fn fit_value(&self, body: &mut Value) -> Result<(), LimitError> {
        let obj = object(body, "Dooray!")?;
        fit_str(obj, "botName", 100, "Dooray!")?;
        require_text(obj, "text", "Dooray!")?;
        fit_str(obj, "text", MAX_TEXT, "Dooray!")?;
        if let Some(items) = array(obj, "attachments", "Dooray!")? {
            cap_list(
                items,
                MAX_ATTACHMENTS,
                |n| json!({"text": format!("… {n} more not shown")}),
            );
            for a in items.iter_mut() {
                let a = object(a, "Dooray! attachment")?;
                fit_str(a, "title", MAX_TITLE, "Dooray! attachment")?;
                fit_str(a, "text", MAX_ATTACHMENT_TEXT, "Dooray! attachment")?;
            }
        }
        let mut texts = Vec::new();
        strings_at(body, &["text", "title"], &mut texts);
        shrink_to_budget(texts, TEXT_BUDGET);
        Ok(())
    }

    fn audit(&self, body: &Value, _bytes: usize) -> Vec<String> {
        let mut out = Vec::new();
        let text = fitting::chars(body, "text");
        if text == 0 || text > MAX_TEXT {
            out.push(format!("`text` must be 1..={MAX_TEXT} characters"));
        }
        let attachments = body["attachments"]
            .as_array()
            .map_or(&[][..], Vec::as_slice);
        if attachments.len() > MAX_ATTACHMENTS {
            out.push(format!(
                "{} attachments (max {MAX_ATTACHMENTS})",
                attachments.len()
            ));
        }
        let mut total = text;
        for (i, a) in attachments.iter().enumerate() {
            if fitting::chars(a, "title") > MAX_TITLE {
                out.push(format!("attachment {i}: title over {MAX_TITLE} characters"));
            }
            if fitting::chars(a, "text") > MAX_ATTACHMENT_TEXT {
                out.push(format!(
                    "attachment {i}: text over {MAX_ATTACHMENT_TEXT} characters"
                ));
            }
            total += fitting::chars(a, "title") + fitting::chars(a, "text");
        }
        if total > TEXT_BUDGET {
            out.push(format!("{total} characters of text (budget {TEXT_BUDGET})"));
        }
        out
    }

    fn headline_fields(&self) -> &'static [&'static str] {
        &["/text", "/attachments/0/title"]
    }

    fn fallback(&self, info: &FallbackInfo) -> String {
        let facts: Vec<String> = info
            .facts
            .iter()
            .map(|(k, v)| format!("{}: {}", escape(k), escape(v)))
            .collect();
        json!({
            "text": truncate(&escape(&info.title), MAX_TEXT),
            "attachments": [{"text": truncate(&facts.join("\n"), MAX_ATTACHMENT_TEXT)}],
        })
        .to_string()
    }

    fn request(
        &self,
        dest: &DestinationConfig,
        out: &Outgoing<'_>,
    ) -> Result<Request, RequestError> {
        let settings: Settings = dest
            .options
            .parse()
            .map_err(|(k, reason)| RequestError::Settings(format!("{k}: {reason}")))?;
        let mut body: Value = serde_json::from_str(out.body)
            .map_err(|e| RequestError::Settings(format!("stored body is not JSON: {e}")))?;
        if let Some(obj) = body.as_object_mut() {
            let name = settings.bot_name.unwrap_or_else(|| DEFAULT_BOT_NAME.into());
            obj.entry("botName").or_insert(json!(name));
            if let Some(icon) = settings.bot_icon {
                obj.entry("botIconImage").or_insert(json!(icon));
            }
        }
        request::json_post(dest, out, body.to_string(), Vec::new())
    }

    fn classify(&self, answer: &Answer, now: SystemTime) -> Verdict {
        let verdict = answer::classify_http(answer, now);
        let refused = answer
            .json()
            .is_some_and(|v| v["header"]["isSuccessful"] == Value::Bool(false));
        if verdict == Verdict::Delivered && refused {
            Verdict::DeadPayload
        } else {
            verdict
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::destination::Answer;
    use crate::secret::Secret;

    #[test]
    fn hostile_text_cannot_mention_or_link() {
        let e = escape("[@all](dooray://1/members/2 \"member\") [x](http://evil)");
        assert!(
            !e.contains("[@") && !e.contains("dooray:/") && !e.contains("]("),
            "{e}"
        );
        assert_eq!(
            e.replace('\u{200B}', ""),
            "[@all](dooray://1/members/2 \"member\") [x](http://evil)"
        );
    }

    #[test]
    fn fit_caps_attachments_and_texts() {
        let mut body = json!({"text": "x".repeat(5000),
            "attachments": (0..30).map(|i| json!({"title": format!("t{i}"), "text": "y".repeat(3000)})).collect::<Vec<_>>()});
        KIND.fit_value(&mut body).unwrap();
        assert!(
            KIND.audit(&body, 0).is_empty(),
            "{:?}",
            KIND.audit(&body, 0)
        );
        assert_eq!(
            body["attachments"].as_array().unwrap().len(),
            MAX_ATTACHMENTS
        );
        assert_eq!(body["attachments"][19]["text"], "… 11 more not shown");
        assert!(KIND.fit_value(&mut json!({"text": ""})).is_err());
        assert!(
            KIND.fit_value(&mut json!({"text": "a", "attachments": 3}))
                .is_err()
        );
        let fb: Value = serde_json::from_str(&KIND.fallback(&FallbackInfo {
            title: "t [@all](dooray://x)".into(),
            facts: vec![("k".into(), "v".into())],
        }))
        .unwrap();
        assert!(KIND.audit(&fb, 0).is_empty());
    }

    #[test]
    fn the_request_adds_the_bot_name_unless_the_template_set_one() {
        let dest: DestinationConfig = serde_json::from_value(json!({"type": "dooray",
            "url": "https://hook.dooray.com/services/1/2/TOKEN", "bot_icon": "https://x.invalid/i.png"}))
        .unwrap();
        let out = |body: &'static str| Outgoing {
            id: "7",
            body,
            unix_time: 0,
        };
        let Request::Http(r) = KIND.request(&dest, &out(r#"{"text":"t"}"#)).unwrap() else {
            panic!()
        };
        let v: Value = serde_json::from_str(&r.body).unwrap();
        assert_eq!(v["botName"], "bizrelay");
        assert_eq!(v["botIconImage"], "https://x.invalid/i.png");
        assert_eq!(
            r.url,
            Secret::new("https://hook.dooray.com/services/1/2/TOKEN")
        );
        assert_eq!(r.header("x-bizrelay-delivery"), Some("7"));
        let Request::Http(r) = KIND
            .request(&dest, &out(r#"{"text":"t","botName":"mine"}"#))
            .unwrap()
        else {
            panic!()
        };
        assert!(r.body.contains("\"botName\":\"mine\""));
    }

    #[test]
    fn classification_reads_the_body() {
        let now = SystemTime::UNIX_EPOCH;
        let answer = |status: u16, body: &str| Answer {
            status: Some(status),
            body: body.into(),
            ..Answer::default()
        };
        let cases = [
            (answer(200, ""), Verdict::Delivered),
            (answer(200, "not json"), Verdict::Delivered),
            (
                answer(200, r#"{"header":{"isSuccessful":true}}"#),
                Verdict::Delivered,
            ),
            (
                answer(
                    200,
                    r#"{"header":{"isSuccessful":false,"resultMessage":"bad"}}"#,
                ),
                Verdict::DeadPayload,
            ),
            (answer(404, ""), Verdict::DeadDestination),
            (
                answer(500, r#"{"header":{"isSuccessful":false}}"#),
                Verdict::Retry,
            ),
        ];
        for (a, want) in cases {
            assert_eq!(KIND.classify(&a, now), want, "{a:?}");
        }
    }

    #[test]
    fn settings_are_checked() {
        let dest = |v: Value| -> DestinationConfig { serde_json::from_value(v).unwrap() };
        let ok = Checks::of(&dest(
            json!({"type": "dooray", "url": "https://hook.dooray.com/services/1/2/T"}),
        ));
        assert_eq!(ok, Checks::default());
        let bad = Checks::of(&dest(
            json!({"type": "dooray", "url": "https://hook.dooray.com/services/1/2/T",
            "bot_name": " ", "bot_icon": "ftp://x", "bot_nmae": "x"}),
        ));
        let keys: Vec<&str> = bad.errors.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["bot_nmae", "bot_name", "bot_icon"], "{bad:?}");
        let gov = Checks::of(&dest(
            json!({"type": "dooray", "url": "https://x.gov-dooray.com/services/1/2/T"}),
        ));
        assert!(gov.warnings.is_empty(), "{gov:?}");
    }

    #[test]
    fn check_warns_when_message_results_reach_dooray_one_by_one() {
        use crate::config::{ConfigSource, load};
        let text = |group: &str| {
            format!(
                "[destinations.d]\ntype = \"dooray\"\nurl = \"https://hook.dooray.com/services/1/2/T\"\n\
                 [[routes]]\nname = \"r\"\nto = \"d\"\n[routes.match]\nkind = \"message_result\"\n{group}"
            )
        };
        let warnings = |t: String| {
            load(
                &ConfigSource::File {
                    path: "/nonexistent/c.toml".into(),
                    text: t,
                },
                &Default::default(),
            )
            .unwrap()
            .warnings
        };
        let one_by_one = warnings(text(""));
        assert!(
            one_by_one
                .iter()
                .any(|w| w.contains("routes[0] (r).to") && w.contains("digests")),
            "{one_by_one:?}"
        );
        let grouped = warnings(text("[routes.group]\nby = [\"result_code\"]\n"));
        assert!(
            !grouped.iter().any(|w| w.contains("digests")),
            "{grouped:?}"
        );
    }
}
