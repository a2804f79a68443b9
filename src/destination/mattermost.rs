//! Mattermost incoming webhooks (`https://<server>/hooks/<key>`): Slack-compatible `{text,
//! attachments}`, but standard Markdown, not Slack's mrkdwn.
//!
//! Invariants:
//! - Untrusted text shows as typed: Markdown punctuation is backslash-escaped (so the
//!   built-ins put it only where Mattermost renders Markdown: `text` and field values), and
//!   every `@` is followed by a zero-width space so `@channel`, `@all`, `@here` and `@user`
//!   never notify.
//! - A post has `text` or attachments, and at most [`TEXT_BUDGET`] characters of text in all
//!   (Mattermost splits posts over 16,383 characters).

use serde_json::{Value, json};

use super::config::UrlShape;
use super::fitting::{self, array, cap_list, fit_str, object, shrink_to_budget, strings_at};
use super::{
    Builtins, ChatService, Checks, DestinationConfig, DestinationKind, FallbackInfo, LimitError,
    builtins,
};
use crate::locale::Locale;
use crate::text::{backslash_escape, break_within, truncate};

pub const TEXT_BUDGET: usize = 16_000;
pub const MAX_ATTACHMENTS: usize = 20;
pub const MAX_FIELDS: usize = 20;

/// Markdown punctuation escaped in untrusted text.
const SPECIAL: &str = "\\*_~`|<>#[]";

pub struct Mattermost;
pub const KIND: DestinationKind = DestinationKind::of(&Mattermost);

static TEMPLATES: [Builtins; 2] = builtins!("mattermost");

/// Self-hosted: any host, the hook path.
const URL: UrlShape = UrlShape {
    what: "a Mattermost incoming webhook",
    hosts: &[],
    path_prefix: "/hooks/",
    example: "https://chat.example.com/hooks/…",
};

pub fn escape(s: &str) -> String {
    break_within(&backslash_escape(s, SPECIAL), "@")
}

impl ChatService for Mattermost {
    fn name(&self) -> &'static str {
        "mattermost"
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
        let obj = object(body, "Mattermost")?;
        fit_str(obj, "text", TEXT_BUDGET, "Mattermost")?;
        let has_text = fitting::has_text(obj, "text");
        let mut has_attachments = false;
        if let Some(items) = array(obj, "attachments", "Mattermost")? {
            has_attachments = !items.is_empty();
            cap_list(
                items,
                MAX_ATTACHMENTS,
                |n| json!({"text": format!("… {n} more not shown")}),
            );
            for a in items.iter_mut() {
                let a = object(a, "Mattermost attachment")?;
                if let Some(fields) = array(a, "fields", "Mattermost attachment")? {
                    cap_list(
                        fields,
                        MAX_FIELDS,
                        |n| json!({"title": "…", "value": format!("{n} more not shown"), "short": false}),
                    );
                }
            }
        }
        if !has_text && !has_attachments {
            return Err(LimitError::Shape(
                "Mattermost body needs `text` or `attachments`".into(),
            ));
        }
        let mut texts = Vec::new();
        strings_at(
            body,
            &["text", "title", "value", "pretext", "fallback"],
            &mut texts,
        );
        shrink_to_budget(texts, TEXT_BUDGET);
        Ok(())
    }

    fn audit(&self, body: &Value, _bytes: usize) -> Vec<String> {
        let mut out = Vec::new();
        let mut copy = body.clone();
        let mut texts = Vec::new();
        strings_at(
            &mut copy,
            &["text", "title", "value", "pretext", "fallback"],
            &mut texts,
        );
        let total: usize = texts.iter().map(|t| t.chars().count()).sum();
        if total > TEXT_BUDGET {
            out.push(format!("{total} characters of text (budget {TEXT_BUDGET})"));
        }
        let attachments = body["attachments"]
            .as_array()
            .map_or(&[][..], Vec::as_slice);
        if fitting::chars(body, "text") == 0 && attachments.is_empty() {
            out.push("neither text nor attachments".into());
        }
        if attachments.len() > MAX_ATTACHMENTS {
            out.push(format!(
                "{} attachments (max {MAX_ATTACHMENTS})",
                attachments.len()
            ));
        }
        out
    }

    fn headline_fields(&self) -> &'static [&'static str] {
        &["/text", "/attachments/0/title"]
    }

    fn fallback(&self, info: &FallbackInfo) -> String {
        let mut text = format!("**{}**", escape(&info.title));
        for (k, v) in &info.facts {
            text.push_str(&format!("\n**{}:** {}", escape(k), escape(v)));
        }
        json!({"text": truncate(&text, TEXT_BUDGET)}).to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_mentions_and_markdown_do_not_take_effect() {
        for hostile in ["@channel", "@all", "@here", "@alice"] {
            let e = escape(hostile);
            assert!(!e.contains(hostile), "{e}");
            assert_eq!(e.replace('\u{200B}', ""), hostile);
        }
        let e = escape("**bold** [x](http://evil) <!channel>");
        assert_eq!(e, "\\*\\*bold\\*\\* \\[x\\](http://evil) \\<!channel\\>");
    }

    #[test]
    fn fit_and_audit() {
        let mut body = json!({"text": "x".repeat(20_000), "attachments": [{"text": "y".repeat(9000),
            "fields": (0..30).map(|i| json!({"title": format!("f{i}"), "value": "v"})).collect::<Vec<_>>()}]});
        KIND.fit_value(&mut body).unwrap();
        assert!(
            KIND.audit(&body, 0).is_empty(),
            "{:?}",
            KIND.audit(&body, 0)
        );
        assert_eq!(
            body["attachments"][0]["fields"].as_array().unwrap().len(),
            MAX_FIELDS
        );
        assert!(KIND.fit_value(&mut json!({"text": ""})).is_err());
        assert!(
            KIND.violations(&KIND.fallback(&FallbackInfo::default()))
                .is_empty()
        );
    }
}
