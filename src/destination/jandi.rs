//! JANDI Connect incoming webhooks (`https://wh.jandi.com/connect-api/webhook/…`):
//! `{body, connectColor?, connectInfo?: [{title, description?, imageUrl?}]}`, posted with
//! `Accept: application/vnd.tosslab.jandi-v2+json` and `Content-Type: application/json`.
//!
//! Invariants:
//! - Untrusted text cannot make a link (`[text](url)`) or bold (`**`) take effect.
//! - `body` is never empty (JANDI refuses it with 400 `Invalid payload - body`).
//! - No limits are documented; bizrelay stays inside conservative ones: `body` at most
//!   [`MAX_BODY`] characters, at most [`MAX_INFO`] `connectInfo` items, [`TEXT_BUDGET`]
//!   characters in all.

use serde_json::{Value, json};

use super::config::UrlShape;
use super::fitting::{
    self, array, cap_list, fit_str, object, require_text, shrink_to_budget, strings_at,
};
use super::{
    Builtins, ChatService, Checks, DestinationConfig, DestinationKind, FallbackInfo, Header,
    LimitError, Outgoing, Request, RequestError, builtins, request,
};
use crate::locale::Locale;
use crate::text::{break_within, truncate};

pub const MAX_BODY: usize = 4000;
pub const MAX_INFO: usize = 20;
pub const MAX_INFO_TITLE: usize = 200;
pub const MAX_INFO_DESCRIPTION: usize = 2000;
pub const TEXT_BUDGET: usize = 10_000;
pub const ACCEPT: &str = "application/vnd.tosslab.jandi-v2+json";

pub struct Jandi;
pub const KIND: DestinationKind = DestinationKind::of(&Jandi);

static TEMPLATES: [Builtins; 2] = builtins!("jandi");

const URL: UrlShape = UrlShape {
    what: "a JANDI Connect incoming webhook",
    hosts: &["jandi.com"],
    path_prefix: "/connect-api/webhook/",
    example: "https://wh.jandi.com/connect-api/webhook/…",
};

/// Breaks JANDI's link and bold syntax in untrusted text. Only runs of exactly two `*` are
/// bold markers; longer runs (a masked number, `010****5678`) stay as they are.
pub fn escape(s: &str) -> String {
    let s = break_within(s, "](");
    let mut out = String::with_capacity(s.len() + 8);
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '*' {
            out.push(c);
            continue;
        }
        let mut run = 1;
        while chars.peek() == Some(&'*') {
            chars.next();
            run += 1;
        }
        if run == 2 {
            out.push_str("*\u{200B}*");
        } else {
            out.extend(std::iter::repeat_n('*', run));
        }
    }
    out
}

impl ChatService for Jandi {
    fn name(&self) -> &'static str {
        "jandi"
    }

    fn check(&self, dest: &DestinationConfig, checks: &mut Checks) {
        checks.webhook_url(dest, &URL);
    }

    fn escape_text(&self, s: &str) -> String {
        escape(s)
    }

    fn builtins(&self, locale: Locale) -> &'static Builtins {
        &TEMPLATES[locale as usize]
    }

    fn fit_value(&self, body: &mut Value) -> Result<(), LimitError> {
        let obj = object(body, "JANDI")?;
        require_text(obj, "body", "JANDI")?;
        fit_str(obj, "body", MAX_BODY, "JANDI")?;
        if let Some(items) = array(obj, "connectInfo", "JANDI")? {
            cap_list(
                items,
                MAX_INFO,
                |n| json!({"title": format!("… {n} more not shown")}),
            );
            for item in items.iter_mut() {
                let item = object(item, "JANDI connectInfo item")?;
                if !item.get("title").is_some_and(Value::is_string) {
                    item.insert("title".into(), json!("—"));
                }
                fit_str(item, "title", MAX_INFO_TITLE, "JANDI connectInfo")?;
                fit_str(
                    item,
                    "description",
                    MAX_INFO_DESCRIPTION,
                    "JANDI connectInfo",
                )?;
            }
        }
        let mut texts = Vec::new();
        strings_at(body, &["body", "title", "description"], &mut texts);
        shrink_to_budget(texts, TEXT_BUDGET);
        Ok(())
    }

    fn audit(&self, body: &Value, _bytes: usize) -> Vec<String> {
        let mut out = Vec::new();
        let text = fitting::chars(body, "body");
        if text == 0 || text > MAX_BODY {
            out.push(format!("`body` must be 1..={MAX_BODY} characters"));
        }
        let info = body["connectInfo"]
            .as_array()
            .map_or(&[][..], Vec::as_slice);
        if info.len() > MAX_INFO {
            out.push(format!("{} connectInfo items (max {MAX_INFO})", info.len()));
        }
        let mut total = text;
        for (i, item) in info.iter().enumerate() {
            if !item["title"].is_string() {
                out.push(format!("connectInfo {i}: no title"));
            }
            if fitting::chars(item, "title") > MAX_INFO_TITLE
                || fitting::chars(item, "description") > MAX_INFO_DESCRIPTION
            {
                out.push(format!("connectInfo {i}: text over its limit"));
            }
            total += fitting::chars(item, "title") + fitting::chars(item, "description");
        }
        if total > TEXT_BUDGET {
            out.push(format!("{total} characters of text (budget {TEXT_BUDGET})"));
        }
        out
    }

    fn headline_fields(&self) -> &'static [&'static str] {
        &["/body", "/connectInfo/0/title"]
    }

    fn fallback(&self, info: &FallbackInfo) -> String {
        let items: Vec<Value> = info
            .facts
            .iter()
            .take(MAX_INFO)
            .map(|(k, v)| json!({"title": escape(k), "description": truncate(&escape(v), 500)}))
            .collect();
        json!({"body": truncate(&escape(&info.title), MAX_BODY), "connectColor": "#E01E5A",
            "connectInfo": items})
        .to_string()
    }

    fn request(
        &self,
        dest: &DestinationConfig,
        out: &Outgoing<'_>,
    ) -> Result<Request, RequestError> {
        request::json_post(
            dest,
            out,
            out.body.to_string(),
            vec![
                Header::new("Accept", ACCEPT),
                Header::new("Content-Type", "application/json"),
            ],
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_text_cannot_link_or_bold() {
        let e = escape("**x** [safe](http://evil) 010****5678 *one*");
        assert!(!e.contains("**x") && !e.contains("]("), "{e}");
        assert!(e.contains("010****5678") && e.contains("*one*"), "{e}");
    }

    #[test]
    fn fit_and_audit() {
        let mut body = json!({"body": "b".repeat(6000), "connectInfo":
            (0..25).map(|_| json!({"description": "d".repeat(3000)})).collect::<Vec<_>>()});
        KIND.fit_value(&mut body).unwrap();
        assert!(
            KIND.audit(&body, 0).is_empty(),
            "{:?}",
            KIND.audit(&body, 0)
        );
        assert_eq!(body["connectInfo"][0]["title"], "—");
        assert_eq!(body["connectInfo"][19]["title"], "… 6 more not shown");
        assert!(KIND.fit_value(&mut json!({"body": " "})).is_err());
        let fb: Value = serde_json::from_str(&KIND.fallback(&FallbackInfo {
            title: "t".into(),
            facts: vec![("k".into(), "v".into())],
        }))
        .unwrap();
        assert!(KIND.audit(&fb, 0).is_empty());
    }

    #[test]
    fn requests_carry_jandi_s_headers() {
        let dest: DestinationConfig = serde_json::from_value(
            json!({"type": "jandi", "url": "https://wh.jandi.com/connect-api/webhook/1/abc"}),
        )
        .unwrap();
        let Request::Http(r) = KIND
            .request(
                &dest,
                &Outgoing {
                    id: "3",
                    body: "{\"body\":\"x\"}",
                    unix_time: 0,
                },
            )
            .unwrap()
        else {
            panic!()
        };
        assert_eq!(r.header("accept"), Some(ACCEPT));
        assert_eq!(r.header("content-type"), Some("application/json"));
        assert_eq!(
            r.headers
                .iter()
                .filter(|h| h.name.eq_ignore_ascii_case("content-type"))
                .count(),
            1
        );
        assert_eq!(r.body, "{\"body\":\"x\"}");
    }
}
