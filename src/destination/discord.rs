//! Discord webhooks (`https://discord.com/api/webhooks/…`): `{content, embeds?,
//! allowed_mentions}`.
//!
//! Invariants:
//! - Every body leaves with `allowed_mentions: {"parse": []}`, whatever the template says:
//!   no `@everyone`, `@here`, user or role mention ever fires from hook text. Markdown in
//!   untrusted text is backslash-escaped, so it shows as typed (so the built-ins put it only
//!   where Discord renders Markdown: content, descriptions, field values).
//! - Discord's limits hold: `content` ≤ [`MAX_CONTENT`], ≤ [`MAX_EMBEDS`] embeds, title ≤ 256,
//!   description ≤ 4,096, ≤ 25 fields (name 256, value 1,024), footer 2,048, and at most
//!   [`EMBED_BUDGET`] characters over all embeds.
//! - A 429 waits the body's `retry_after` (fractional seconds) or else `Retry-After`.

use std::time::{Duration, SystemTime};

use serde_json::{Map, Value, json};

use super::config::UrlShape;
use super::fitting::{self, array, cap_list, fit_str, object, shrink_to_budget};
use super::{
    Answer, Builtins, ChatService, Checks, DEFAULT_RETRY_AFTER, DestinationConfig, DestinationKind,
    FallbackInfo, LimitError, MAX_RETRY_AFTER, Verdict, answer, builtins,
};
use crate::locale::Locale;
use crate::text::{backslash_escape, truncate};

pub const MAX_CONTENT: usize = 2000;
pub const MAX_EMBEDS: usize = 10;
pub const EMBED_BUDGET: usize = 6000;
pub const MAX_TITLE: usize = 256;
pub const MAX_DESCRIPTION: usize = 4096;
pub const MAX_FIELDS: usize = 25;
pub const MAX_FIELD_NAME: usize = 256;
pub const MAX_FIELD_VALUE: usize = 1024;
pub const MAX_FOOTER: usize = 2048;

/// Markdown and mention characters escaped in untrusted text.
const SPECIAL: &str = "\\*_~`|<>#[]";

pub struct Discord;
pub const KIND: DestinationKind = DestinationKind::of(&Discord);

static TEMPLATES: [Builtins; 2] = builtins!("discord");

const URL: UrlShape = UrlShape {
    what: "a Discord webhook",
    hosts: &["discord.com", "discordapp.com"],
    path_prefix: "/api/webhooks/",
    example: "https://discord.com/api/webhooks/…/…",
};

pub fn escape(s: &str) -> String {
    backslash_escape(s, SPECIAL)
}

impl ChatService for Discord {
    fn name(&self) -> &'static str {
        "discord"
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
        let obj = object(body, "Discord")?;
        obj.insert("allowed_mentions".into(), json!({"parse": []}));
        fit_str(obj, "content", MAX_CONTENT, "Discord")?;
        let has_content = fitting::has_text(obj, "content");
        let Some(embeds) = array(obj, "embeds", "Discord")? else {
            return if has_content {
                Ok(())
            } else {
                Err(LimitError::Shape(
                    "Discord body needs `content` or `embeds`".into(),
                ))
            };
        };
        if embeds.is_empty() && !has_content {
            return Err(LimitError::Shape(
                "Discord body needs `content` or `embeds`".into(),
            ));
        }
        if embeds.len() > MAX_EMBEDS {
            let dropped = embeds.len() - (MAX_EMBEDS - 1);
            embeds.truncate(MAX_EMBEDS - 1);
            embeds.push(json!({"description": format!("… {dropped} more not shown")}));
        }
        for e in embeds.iter_mut() {
            fit_embed(object(e, "Discord embed")?)?;
        }
        let mut texts = Vec::new();
        for e in embeds.iter_mut() {
            embed_texts(e, &mut texts);
        }
        shrink_to_budget(texts, EMBED_BUDGET);
        drop_to_budget(embeds);
        Ok(())
    }

    fn audit(&self, body: &Value, _bytes: usize) -> Vec<String> {
        let mut out = Vec::new();
        if body["allowed_mentions"] != json!({"parse": []}) {
            out.push("`allowed_mentions` is not {\"parse\": []}".into());
        }
        let content = fitting::chars(body, "content");
        if content > MAX_CONTENT {
            out.push(format!("content over {MAX_CONTENT} characters"));
        }
        let embeds = body["embeds"].as_array().map_or(&[][..], Vec::as_slice);
        if content == 0 && embeds.is_empty() {
            out.push("neither content nor embeds".into());
        }
        if embeds.len() > MAX_EMBEDS {
            out.push(format!("{} embeds (max {MAX_EMBEDS})", embeds.len()));
        }
        let mut total = 0;
        for (i, e) in embeds.iter().enumerate() {
            let fields = e["fields"].as_array().map_or(&[][..], Vec::as_slice);
            let limits = [
                (fitting::chars(e, "title"), MAX_TITLE, "title"),
                (
                    fitting::chars(e, "description"),
                    MAX_DESCRIPTION,
                    "description",
                ),
                (fitting::chars(&e["footer"], "text"), MAX_FOOTER, "footer"),
                (
                    fitting::chars(&e["author"], "name"),
                    MAX_FIELD_NAME,
                    "author",
                ),
            ];
            for (n, max, what) in limits {
                total += n;
                if n > max {
                    out.push(format!("embed {i}: {what} over {max} characters"));
                }
            }
            if fields.len() > MAX_FIELDS {
                out.push(format!(
                    "embed {i}: {} fields (max {MAX_FIELDS})",
                    fields.len()
                ));
            }
            for f in fields {
                let (name, value) = (fitting::chars(f, "name"), fitting::chars(f, "value"));
                total += name + value;
                if name == 0 || value == 0 || name > MAX_FIELD_NAME || value > MAX_FIELD_VALUE {
                    out.push(format!(
                        "embed {i}: a field's name or value is empty or too long"
                    ));
                }
            }
        }
        if total > EMBED_BUDGET {
            out.push(format!("{total} characters in embeds (max {EMBED_BUDGET})"));
        }
        out
    }

    fn headline_fields(&self) -> &'static [&'static str] {
        &["/content", "/embeds/0/title"]
    }

    fn fallback(&self, info: &FallbackInfo) -> String {
        let mut content = format!("**{}**", escape(&info.title));
        for (k, v) in &info.facts {
            content.push_str(&format!("\n**{}:** {}", escape(k), escape(v)));
        }
        json!({"content": truncate(&content, MAX_CONTENT), "allowed_mentions": {"parse": []}})
            .to_string()
    }

    fn classify(&self, answer: &Answer, now: SystemTime) -> Verdict {
        if answer.status != Some(429) {
            return answer::classify_http(answer, now);
        }
        let from_body = answer
            .json()
            .and_then(|v| v["retry_after"].as_f64())
            .filter(|s| s.is_finite() && *s >= 0.0);
        match from_body {
            Some(secs) => Verdict::Throttled(
                Duration::from_secs_f64(secs.min(MAX_RETRY_AFTER.as_secs_f64()))
                    .clamp(Duration::from_millis(100), MAX_RETRY_AFTER),
            ),
            None => match answer.header("retry-after") {
                Some(h) => Verdict::Throttled(super::parse_retry_after(Some(h), now)),
                None => Verdict::Throttled(DEFAULT_RETRY_AFTER),
            },
        }
    }
}

fn fit_embed(e: &mut Map<String, Value>) -> Result<(), LimitError> {
    fit_str(e, "title", MAX_TITLE, "Discord embed")?;
    fit_str(e, "description", MAX_DESCRIPTION, "Discord embed")?;
    if let Some(footer) = e.get_mut("footer").and_then(Value::as_object_mut) {
        fit_str(footer, "text", MAX_FOOTER, "Discord footer")?;
    }
    if let Some(author) = e.get_mut("author").and_then(Value::as_object_mut) {
        fit_str(author, "name", MAX_FIELD_NAME, "Discord author")?;
    }
    if let Some(fields) = array(e, "fields", "Discord embed")? {
        cap_list(
            fields,
            MAX_FIELDS,
            |n| json!({"name": "…", "value": format!("{n} more not shown")}),
        );
        for f in fields.iter_mut() {
            let f = object(f, "Discord field")?;
            for (key, max) in [("name", MAX_FIELD_NAME), ("value", MAX_FIELD_VALUE)] {
                match f.get(key).and_then(Value::as_str) {
                    Some(t) if !t.trim().is_empty() => {}
                    // Discord refuses empty names and values.
                    _ => {
                        f.insert(key.into(), json!("—"));
                    }
                }
                fit_str(f, key, max, "Discord field")?;
            }
        }
    }
    Ok(())
}

fn embed_chars(embeds: &mut [Value]) -> usize {
    let mut texts = Vec::new();
    for e in embeds.iter_mut() {
        embed_texts(e, &mut texts);
    }
    texts.iter().map(|t| t.chars().count()).sum()
}

/// When shortening is not enough (many small texts), drops fields from the end, then whole
/// embeds, and says how many fields went.
fn drop_to_budget(embeds: &mut Vec<Value>) {
    /// Room kept for the note.
    const NOTE: usize = 40;
    let mut dropped = 0usize;
    while embed_chars(embeds) + NOTE > EMBED_BUDGET && !embeds.is_empty() {
        let last = embeds.len() - 1;
        let has_fields = embeds[last]["fields"]
            .as_array()
            .is_some_and(|f| !f.is_empty());
        if has_fields {
            if let Some(fields) = embeds[last]["fields"].as_array_mut() {
                fields.pop();
            }
        } else if embeds.len() > 1 {
            embeds.pop();
        } else {
            break;
        }
        dropped += 1;
    }
    if dropped > 0
        && let Some(last) = embeds.last_mut()
        && let Some(e) = last.as_object_mut()
    {
        let fields = e.entry("fields").or_insert_with(|| json!([]));
        if let Some(fields) = fields.as_array_mut() {
            if fields.len() >= MAX_FIELDS {
                fields.pop();
                dropped += 1;
            }
            fields.push(json!({"name": "…", "value": format!("{dropped} more not shown")}));
        }
    }
}

fn embed_texts<'a>(e: &'a mut Value, out: &mut Vec<&'a mut String>) {
    let Some(e) = e.as_object_mut() else { return };
    for (k, v) in e.iter_mut() {
        match (k.as_str(), v) {
            ("title" | "description", Value::String(s)) => out.push(s),
            ("footer" | "author", Value::Object(m)) => {
                for (k, v) in m.iter_mut() {
                    if let ("text" | "name", Value::String(s)) = (k.as_str(), v) {
                        out.push(s);
                    }
                }
            }
            ("fields", Value::Array(fields)) => {
                for f in fields.iter_mut().filter_map(Value::as_object_mut) {
                    for (k, v) in f.iter_mut() {
                        if let ("name" | "value", Value::String(s)) = (k.as_str(), v) {
                            out.push(s);
                        }
                    }
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mentions_never_fire_and_markdown_shows_as_typed() {
        let mut body = json!({"content": "hi", "allowed_mentions": {"parse": ["everyone"]}});
        KIND.fit_value(&mut body).unwrap();
        assert_eq!(body["allowed_mentions"], json!({"parse": []}));
        let e = escape("@everyone **bold** [x](http://evil) <@123>");
        assert!(
            !e.contains("**") && e.contains("\\[x\\](") && e.contains("\\<@123\\>"),
            "{e}"
        );
        assert!(e.contains("\\*\\*bold\\*\\*"), "{e}");
    }

    #[test]
    fn limits_hold_after_fit() {
        let field = json!({"name": "n".repeat(300), "value": "v".repeat(2000)});
        let embed = json!({"title": "t".repeat(300), "description": "d".repeat(5000),
            "fields": (0..30).map(|_| field.clone()).collect::<Vec<_>>(), "footer": {"text": "f"}});
        let mut body = json!({"content": "c".repeat(2500),
            "embeds": (0..12).map(|_| embed.clone()).collect::<Vec<_>>()});
        KIND.fit_value(&mut body).unwrap();
        assert!(
            KIND.audit(&body, 0).is_empty(),
            "{:?}",
            KIND.audit(&body, 0)
        );
        let embeds = body["embeds"].as_array().unwrap();
        let last_field = embeds.last().unwrap()["fields"]
            .as_array()
            .unwrap()
            .last()
            .unwrap()
            .clone();
        assert!(
            last_field["value"]
                .as_str()
                .unwrap()
                .ends_with("more not shown"),
            "what was dropped is said: {last_field}"
        );
        // Few long texts are shortened, not dropped.
        let mut long = json!({"embeds": [{"description": "d".repeat(9000)}]});
        KIND.fit_value(&mut long).unwrap();
        assert!(KIND.audit(&long, 0).is_empty());
        assert!(
            long["embeds"][0]["description"]
                .as_str()
                .unwrap()
                .ends_with('…')
        );
        assert!(KIND.fit_value(&mut json!({"embeds": []})).is_err());
        assert!(
            KIND.violations(&KIND.fallback(&FallbackInfo::default()))
                .is_empty()
        );
    }

    #[test]
    fn a_429_waits_the_body_s_retry_after_else_the_header() {
        let now = SystemTime::UNIX_EPOCH;
        let a = |body: &str, header: Option<&str>| Answer {
            status: Some(429),
            body: body.into(),
            headers: header
                .map(|h| vec![("retry-after".into(), h.into())])
                .unwrap_or_default(),
            ..Answer::default()
        };
        let cases = [
            (
                a(
                    r#"{"message":"You are being rate limited.","retry_after":0.75,"global":false}"#,
                    Some("1"),
                ),
                Verdict::Throttled(Duration::from_millis(750)),
            ),
            (
                a(r#"{"retry_after": 3.5}"#, None),
                Verdict::Throttled(Duration::from_secs_f64(3.5)),
            ),
            (a("", Some("4")), Verdict::Throttled(Duration::from_secs(4))),
            (
                a(r#"{"retry_after": "soon"}"#, None),
                Verdict::Throttled(DEFAULT_RETRY_AFTER),
            ),
            (
                a(r#"{"retry_after": 99999}"#, None),
                Verdict::Throttled(MAX_RETRY_AFTER),
            ),
        ];
        for (answer, want) in cases {
            assert_eq!(KIND.classify(&answer, now), want, "{answer:?}");
        }
        let ok = Answer {
            status: Some(204),
            ..Answer::default()
        };
        assert_eq!(KIND.classify(&ok, now), Verdict::Delivered);
        let gone = Answer {
            status: Some(404),
            ..Answer::default()
        };
        assert_eq!(KIND.classify(&gone, now), Verdict::DeadDestination);
    }
}
