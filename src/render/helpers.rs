//! Handlebars helpers available to every template.
//!
//! `{{json value}}` writes any value as JSON (unescaped, so it can build arrays and objects;
//! strings inside get the destination type's text escaping, e.g. mrkdwn for Slack). The others
//! return text that goes through the destination's escaping like any `{{value}}`:
//! `{{truncate text 200}}`, `{{status_label status}}`, `{{result_meaning code}}`,
//! `{{date value}}` (`2026-11-28 09:30:01 KST`, or `2026년 11월 28일 09:30` in Korean),
//! `{{number n}}` (`1,204`), `{{default value "—"}}`, `{{mask_phone value}}`,
//! `{{indent text 4}}` (indents continuation lines, for plain-text templates), and
//! `{{#each (take list 10)}}` (the first items of a list). The localised helpers speak the
//! registry's locale unless told `lang="ko"` or `lang="en"`.

use handlebars::{
    Context, Handlebars, Helper, HelperDef, HelperResult, Output, RenderContext, RenderError,
    RenderErrorReason, ScopedJson, handlebars_helper,
};
use serde_json::Value;

use crate::bizmessage::{self, codes};
use crate::destination::DestinationKind;
use crate::locale::{Locale, group_digits};
use crate::text;

/// Registers all helpers on a registry built for `kind` in `locale`.
pub fn register(reg: &mut Handlebars<'static>, kind: DestinationKind, locale: Locale) {
    reg.register_helper("json", Box::new(JsonHelper { kind }));
    reg.register_helper("truncate", Box::new(truncate_helper));
    let localized: [(&str, LocalizedFn); 4] = [
        ("status_label", status_label),
        ("result_meaning", result_meaning),
        ("date", |v, l| l.date(&as_text(v))),
        ("number", number),
    ];
    for (name, f) in localized {
        reg.register_helper(name, Box::new(Localized { name, locale, f }));
    }
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

fn status_label(status: &Value, locale: Locale) -> String {
    let raw = as_text(status);
    match bizmessage::status_label(&raw) {
        Some((en, ko)) => locale.pick(en, ko).to_string(),
        None => raw,
    }
}

fn result_meaning(code: &Value, locale: Locale) -> String {
    match codes::lookup(&as_text(code)) {
        Some(c) => locale.pick(c.meaning_en, c.meaning_ko).to_string(),
        None => locale
            .pick("Unknown result code", "알 수 없는 결과 코드")
            .to_string(),
    }
}

/// Integers with thousands separators; anything else as it is.
fn number(v: &Value, _: Locale) -> String {
    match v.as_i64() {
        Some(n) => group_digits(n),
        None => as_text(v),
    }
}

type LocalizedFn = fn(&Value, Locale) -> String;

/// A one-parameter helper whose text depends on the locale (`lang="…"` overrides it).
struct Localized {
    name: &'static str,
    locale: Locale,
    f: LocalizedFn,
}

impl HelperDef for Localized {
    /// Returns the text; handlebars escapes it (or not, in `{{{…}}}`) like any value.
    fn call_inner<'reg: 'rc, 'rc>(
        &self,
        h: &Helper<'rc>,
        r: &'reg Handlebars<'reg>,
        _: &'rc Context,
        _: &mut RenderContext<'reg, 'rc>,
    ) -> Result<ScopedJson<'rc>, RenderError> {
        let param = h
            .param(0)
            .ok_or(RenderErrorReason::ParamNotFoundForIndex(self.name, 0))?;
        if r.strict_mode() && param.is_value_missing() {
            return Err(RenderError::strict_error(param.relative_path()));
        }
        let locale = h
            .hash_get("lang")
            .and_then(|v| v.value().as_str())
            .map_or(self.locale, Locale::parse_lang);
        Ok(ScopedJson::Derived(Value::String((self.f)(
            param.value(),
            locale,
        ))))
    }
}

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
        let kind = self.kind;
        map_strings(&mut value, &|s| kind.escape_text(s));
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
    use crate::destination::{console, slack, teams};
    use serde_json::json;

    fn reg(kind: DestinationKind) -> Handlebars<'static> {
        reg_in(kind, Locale::En)
    }

    fn reg_in(kind: DestinationKind, locale: Locale) -> Handlebars<'static> {
        let mut r = Handlebars::new();
        r.set_strict_mode(true);
        register(&mut r, kind, locale);
        r
    }

    #[test]
    fn helpers_render_labels_meanings_dates_and_defaults() {
        let r = reg(console::KIND);
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
        assert_eq!(out("{{number 1204}}"), "1,204");
        assert_eq!(out("{{date d lang=\"ko\"}}"), "2026년 11월 28일 09:30");
        assert_eq!(
            r.render_template("{{indent t 2}}", &json!({"t": "a\nb"}))
                .unwrap(),
            "a\n  b"
        );
    }

    #[test]
    fn a_korean_registry_speaks_korean_unless_told_otherwise() {
        let r = reg_in(console::KIND, Locale::Ko);
        let ctx = json!({"s": "TSC04", "c": "3019", "d": "2026-11-28 09:30:01"});
        let out = |t: &str| r.render_template(t, &ctx).unwrap();
        assert_eq!(out("{{status_label s}}"), "반려");
        assert_eq!(out("{{status_label s lang=\"en\"}}"), "Rejected");
        assert_eq!(out("{{result_meaning c}}"), "카카오톡 유저가 아님");
        assert_eq!(out("{{result_meaning \"0000\"}}"), "알 수 없는 결과 코드");
        assert_eq!(out("{{date d}}"), "2026년 11월 28일 09:30");
        assert!(r.render_template("{{date nope}}", &ctx).is_err());
    }

    #[test]
    fn take_and_len_limit_lists() {
        let r = reg(console::KIND);
        let list = json!({"l": [1, 2, 3]});
        let out = |t: &str| r.render_template(t, &list).unwrap();
        assert_eq!(out("{{#each (take l 2)}}{{this}}{{/each}}"), "12");
        assert_eq!(out("{{#each (take l 9)}}{{this}}{{/each}}"), "123");
        assert_eq!(out("{{#if (gt (len l) 2)}}more{{/if}}"), "more");
    }

    #[test]
    fn json_helper_writes_values_and_escapes_for_slack() {
        let ctx = json!({"v": {"a": "<!channel> & \"q\"", "n": [1, null]}});
        let slack = reg(slack::KIND)
            .render_template("{{json v}}", &ctx)
            .unwrap();
        let back: Value = serde_json::from_str(&slack).unwrap();
        assert_eq!(back["a"], "&lt;!channel&gt; &amp; \"q\"");
        let teams = reg(teams::KIND)
            .render_template("{{json v}}", &ctx)
            .unwrap();
        let back: Value = serde_json::from_str(&teams).unwrap();
        assert_eq!(back["a"], "<!channel> & \"q\"");
    }

    #[test]
    fn strict_mode_catches_misspelt_variables() {
        let r = reg(slack::KIND);
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
