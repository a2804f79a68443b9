//! Handlebars helpers available to every template.
//!
//! `{{json value}}` writes any value as JSON (unescaped, so it can build arrays and objects;
//! strings inside get the destination's text escaping: mrkdwn for Slack, Markdown for Teams). The others return text that
//! goes through the destination's escaping like any `{{value}}`:
//! `{{truncate text 200}}`, `{{status_label status}}` (`lang="ko"`), `{{result_meaning code}}`
//! (`lang="ko"`), `{{date value}}`, `{{default value "—"}}`, `{{mask_phone value}}`,
//! `{{indent text 4}}` (indents continuation lines, for plain-text templates), and
//! `{{#each (take list 10)}}` (the first items of a list).

use handlebars::{
    Context, Handlebars, Helper, HelperDef, HelperResult, Output, RenderContext, RenderError,
    RenderErrorReason, handlebars_helper,
};
use serde_json::Value;

use crate::bizmessage::{self, codes};
use crate::destination::DestinationKind;
use crate::text;

/// Registers all helpers on a registry built for `kind`.
pub fn register(reg: &mut Handlebars<'static>, kind: DestinationKind) {
    reg.register_helper("json", Box::new(JsonHelper { kind }));
    reg.register_helper("truncate", Box::new(truncate_helper));
    reg.register_helper("status_label", Box::new(status_label_helper));
    reg.register_helper("result_meaning", Box::new(result_meaning_helper));
    reg.register_helper("date", Box::new(date_helper));
    reg.register_helper("default", Box::new(default_helper));
    reg.register_helper("mask_phone", Box::new(mask_phone_helper));
    reg.register_helper("indent", Box::new(indent_helper));
    reg.register_helper("take", Box::new(take_helper));
}

/// Text of a scalar value, empty for null (so optional fields render as nothing).
fn as_text(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

handlebars_helper!(truncate_helper: |value: Json, max: u64| {
    text::truncate(&as_text(value), usize::try_from(max).unwrap_or(usize::MAX))
});

handlebars_helper!(status_label_helper: |status: Json, {lang: str = "en"}| {
    let raw = as_text(status);
    match bizmessage::status_label(&raw) {
        Some((en, ko)) => if lang == "ko" { ko.to_string() } else { en.to_string() },
        None => raw,
    }
});

handlebars_helper!(result_meaning_helper: |code: Json, {lang: str = "en"}| {
    let raw = as_text(code);
    match codes::lookup(&raw) {
        Some(c) => if lang == "ko" { c.meaning_ko.to_string() } else { c.meaning_en.to_string() },
        None if lang == "ko" => "알 수 없는 결과 코드".to_string(),
        None => "Unknown result code".to_string(),
    }
});

handlebars_helper!(date_helper: |value: Json| display_date(value));

handlebars_helper!(default_helper: |value: Json, fallback: Json| {
    match value {
        Value::Null => as_text(fallback),
        Value::String(s) if s.is_empty() => as_text(fallback),
        v => as_text(v),
    }
});

handlebars_helper!(indent_helper: |value: Json, width: u64| {
    let pad = " ".repeat(usize::try_from(width).unwrap_or(0).min(40));
    as_text(value).replace('\n', &format!("\n{pad}"))
});

handlebars_helper!(take_helper: |list: Json, n: u64| {
    match list {
        Value::Array(items) => Value::Array(items.iter().take(usize::try_from(n).unwrap_or(usize::MAX)).cloned().collect()),
        _ => Value::Array(Vec::new()),
    }
});

handlebars_helper!(mask_phone_helper: |value: Json| crate::mask::mask_phone(&as_text(value)));

/// NHN dates (`yyyy-MM-dd HH:mm:ss`, KST, or a bare date) shown with their zone; anything
/// else is shown as sent, and null as an em dash.
pub fn display_date(value: &Value) -> String {
    let raw = as_text(value);
    let raw = raw.trim();
    if raw.is_empty() {
        return "—".to_string();
    }
    if chrono::NaiveDateTime::parse_from_str(raw, "%Y-%m-%d %H:%M:%S").is_ok() {
        return format!("{raw} KST");
    }
    raw.to_string()
}

/// `{{json value}}`: writes the value as JSON, bypassing the string escaper.
struct JsonHelper {
    kind: DestinationKind,
}

impl HelperDef for JsonHelper {
    fn call<'reg: 'rc, 'rc>(
        &self,
        h: &Helper<'rc>,
        r: &'reg Handlebars<'reg>,
        _: &'rc Context,
        _: &mut RenderContext<'reg, 'rc>,
        out: &mut dyn Output,
    ) -> HelperResult {
        let param = h
            .param(0)
            .ok_or(RenderErrorReason::ParamNotFoundForIndex("json", 0))?;
        if r.strict_mode() && param.is_value_missing() {
            return Err(RenderError::strict_error(param.relative_path()));
        }
        let mut value = param.value().clone();
        match self.kind {
            DestinationKind::Slack => map_strings(&mut value, &text::slack_escape),
            DestinationKind::Teams => map_strings(&mut value, &text::teams_text),
            DestinationKind::Console => {}
        }
        let text = serde_json::to_string(&value)
            .map_err(|e| RenderErrorReason::NestedError(Box::new(e)))?;
        out.write(&text)?;
        Ok(())
    }
}

fn map_strings(v: &mut Value, f: &dyn Fn(&str) -> String) {
    match v {
        Value::String(s) => *s = f(s),
        Value::Array(items) => items.iter_mut().for_each(|i| map_strings(i, f)),
        Value::Object(map) => map.values_mut().for_each(|i| map_strings(i, f)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn reg(kind: DestinationKind) -> Handlebars<'static> {
        let mut r = Handlebars::new();
        r.set_strict_mode(true);
        register(&mut r, kind);
        r
    }

    #[test]
    fn helpers_render_labels_meanings_dates_and_defaults() {
        let r = reg(DestinationKind::Console);
        let ctx =
            json!({"s": "TSC04", "c": "3019", "d": "2026-11-28 09:30:01", "n": null, "x": "TSC77"});
        let out = |t: &str| r.render_template(t, &ctx).unwrap();
        assert_eq!(out("{{status_label s}}"), "Rejected");
        assert_eq!(out("{{status_label s lang=\"ko\"}}"), "반려");
        assert_eq!(out("{{status_label x}}"), "TSC77");
        assert!(out("{{result_meaning c}}").contains("KakaoTalk"));
        assert_eq!(out("{{result_meaning \"0000\"}}"), "Unknown result code");
        assert_eq!(out("{{date d}}"), "2026-11-28 09:30:01 KST");
        assert_eq!(out("{{date n}}"), "—");
        assert_eq!(out("{{default n \"none\"}}"), "none");
        assert_eq!(out("{{default s \"none\"}}"), "TSC04");
        assert_eq!(out("{{truncate s 3}}"), "TS…");
        assert_eq!(out("{{mask_phone \"01012345678\"}}"), "010****5678");
        assert_eq!(
            r.render_template("{{indent t 2}}", &json!({"t": "a\nb"}))
                .unwrap(),
            "a\n  b"
        );
    }

    #[test]
    fn take_and_len_limit_lists() {
        let r = reg(DestinationKind::Console);
        let list = json!({"l": [1, 2, 3]});
        let out = |t: &str| r.render_template(t, &list).unwrap();
        assert_eq!(out("{{#each (take l 2)}}{{this}}{{/each}}"), "12");
        assert_eq!(out("{{#each (take l 9)}}{{this}}{{/each}}"), "123");
        assert_eq!(out("{{#if (gt (len l) 2)}}more{{/if}}"), "more");
    }

    #[test]
    fn json_helper_writes_values_and_escapes_for_slack() {
        let ctx = json!({"v": {"a": "<!channel> & \"q\"", "n": [1, null]}});
        let slack = reg(DestinationKind::Slack)
            .render_template("{{json v}}", &ctx)
            .unwrap();
        let back: Value = serde_json::from_str(&slack).unwrap();
        assert_eq!(back["a"], "&lt;!channel&gt; &amp; \"q\"");
        let teams = reg(DestinationKind::Teams)
            .render_template("{{json v}}", &ctx)
            .unwrap();
        let back: Value = serde_json::from_str(&teams).unwrap();
        assert_eq!(back["a"], "<!channel> & \"q\"");
    }

    #[test]
    fn strict_mode_catches_misspelt_variables() {
        let r = reg(DestinationKind::Slack);
        assert!(r.render_template("{{json nope}}", &json!({})).is_err());
        assert!(
            r.render_template("{{truncate nope 3}}", &json!({}))
                .is_err()
        );
        assert!(r.render_template("{{nope}}", &json!({})).is_err());
        assert_eq!(
            r.render_template("{{#if nope}}x{{/if}}", &json!({}))
                .unwrap(),
            ""
        );
    }
}
