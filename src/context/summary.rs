//! The one-line notification text of a hook or a digest (what a phone shows), in the
//! destination's locale: the decision, and for a rejection the reviewer's reason.
//!
//! Invariant: built only from context values (so it says nothing the context does not), and
//! at most [`MAX_REASON`] characters of reviewer text.

use serde_json::Value;

use crate::locale::{Locale, group_digits};
use crate::text::truncate;

/// Longest reviewer reason quoted in a summary.
pub const MAX_REASON: usize = 200;

fn text<'a>(ctx: &'a Value, key: &str) -> Option<&'a str> {
    ctx.get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.trim().is_empty())
}

/// The reason a rejection gives: the first non-empty line of the newest rejecting comment (the
/// newest comment when none is marked rejecting), shortened.
pub fn rejection_reason(comments: &[Value]) -> Option<String> {
    let newest = |pred: &dyn Fn(&Value) -> bool| {
        comments
            .iter()
            .enumerate()
            .filter(|(_, c)| pred(c))
            .max_by(|(ia, a), (ib, b)| {
                let at = |c: &Value| c["createdAt"].as_str().unwrap_or("").to_string();
                at(a).cmp(&at(b)).then(ia.cmp(ib))
            })
            .map(|(_, c)| c)
    };
    let comment = newest(&|c| c["status"] == "REJ").or_else(|| newest(&|_| true))?;
    let line = comment["content"]
        .as_str()?
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())?;
    Some(truncate(line, MAX_REASON))
}

/// The summary of a hook's context.
pub fn hook(ctx: &Value, locale: Locale) -> String {
    match ctx["kind"].as_str() {
        Some("template") => template(ctx, locale),
        Some("message_result") => result(ctx, locale),
        _ => {
            let event =
                text(ctx, "event").unwrap_or(locale.pick("(no event name)", "(이벤트 이름 없음)"));
            match locale {
                Locale::En => format!("❓ Unrecognised Bizmessage event {event}"),
                Locale::Ko => format!("❓ 알 수 없는 비즈메시지 이벤트: {event}"),
            }
        }
    }
}

fn template(ctx: &Value, locale: Locale) -> String {
    let code = text(ctx, "templateCode").unwrap_or("—");
    let status = text(ctx, "status").unwrap_or("—");
    let emoji = match status {
        "TSC03" => "✅",
        "TSC04" => "❌",
        _ => "📝",
    };
    let label = ctx["status_label"][locale.as_str()]
        .as_str()
        .unwrap_or(status);
    let reason = text(ctx, "rejection_reason");
    match (locale, reason) {
        (Locale::En, None) => format!("{emoji} Template {code}: {label}"),
        (Locale::En, Some(r)) => format!("{emoji} Template {code}: {label} — {r}"),
        (Locale::Ko, None) => format!("{emoji} 템플릿 {label}: {code}"),
        (Locale::Ko, Some(r)) => format!("{emoji} 템플릿 {label}: {code} — 검수 의견: {r}"),
    }
}

fn result(ctx: &Value, locale: Locale) -> String {
    let outcome = ctx["result"]["outcome"].as_str().unwrap_or("failure");
    let emoji = match outcome {
        "success" => "✅",
        "uncertain" => "❔",
        _ => "🚫",
    };
    let code = text(ctx, "resultCode");
    let mut line = match locale {
        Locale::En => format!(
            "{emoji} {} {outcome}: {} {}",
            text(ctx, "message_type_label").unwrap_or("Message"),
            code.unwrap_or("no result code"),
            ctx["result"]["meaning_en"].as_str().unwrap_or(""),
        ),
        Locale::Ko => format!(
            "{emoji} {} {}: {} {}",
            text(ctx, "message_type_label_ko").unwrap_or("메시지"),
            outcome_ko(outcome),
            code.unwrap_or("결과 코드 없음"),
            ctx["result"]["meaning_ko"].as_str().unwrap_or(""),
        ),
    };
    // What enrichment learned (absent when the message was not looked up).
    if let Some(t) = text(ctx, "template_code") {
        line.push_str(&match locale {
            Locale::En => format!(" · template {t}"),
            Locale::Ko => format!(" · 템플릿 {t}"),
        });
    }
    if let Some(label) = ctx["resend_status_label"][locale.as_str()].as_str() {
        line.push_str(" · ");
        line.push_str(label);
    }
    line
}

/// `success`/`uncertain`/`failure` in Korean.
pub fn outcome_ko(outcome: &str) -> &'static str {
    match outcome {
        "success" => "성공",
        "uncertain" => "확인 필요",
        _ => "실패",
    }
}

/// The summary of a digest's context.
pub fn digest(ctx: &Value, locale: Locale) -> String {
    let silenced = ctx["silenced"].as_i64().unwrap_or(0);
    let line = digest_line(ctx, locale);
    match (silenced, locale) {
        (0, _) => line,
        (n, Locale::En) => format!("{line} +{} silenced", group_digits(n)),
        (n, Locale::Ko) => format!("{line} +사일런스 {}건", group_digits(n)),
    }
}

fn digest_line(ctx: &Value, locale: Locale) -> String {
    let count = ctx["count"].as_i64().unwrap_or(0);
    let route = text(ctx, "route").unwrap_or("—");
    match locale {
        Locale::En => format!(
            "🚨 {count} {} on {route} ({})",
            text(ctx, "noun").unwrap_or("events"),
            text(ctx, "group_label").unwrap_or("all"),
        ),
        Locale::Ko => {
            let group = if ctx["group"].as_object().is_none_or(|g| g.is_empty()) {
                "전체"
            } else {
                text(ctx, "group_label").unwrap_or("전체")
            };
            format!(
                "🚨 {route}: {} {}건 ({group})",
                noun_ko(ctx),
                group_digits(count)
            )
        }
    }
}

/// The summary of a group's resolved message.
pub fn digest_resolved(ctx: &Value, locale: Locale) -> String {
    let route = text(ctx, "route").unwrap_or("—");
    let label = text(ctx, "group_label").unwrap_or("all");
    let quiet = text(ctx, "quiet_for").unwrap_or("");
    let total = group_digits(ctx["total"].as_i64().unwrap_or(0));
    let since = locale.date(text(ctx, "since").unwrap_or(""));
    match locale {
        Locale::En => format!(
            "✅ Resolved: nothing new on {route} ({label}) for {quiet}; {total} in all since {since}"
        ),
        Locale::Ko => {
            format!("✅ 해소: {route} ({label}) {quiet} 동안 새 건 없음; {since} 이후 총 {total}건")
        }
    }
}

/// What a digest counts, in Korean: failures, message results, or events.
pub fn noun_ko(ctx: &Value) -> &'static str {
    let count = ctx["count"].as_u64().unwrap_or(0);
    let failures = ctx["outcomes"]["failure"].as_u64().unwrap_or(0);
    match ctx["noun"].as_str() {
        Some("event" | "events") => "이벤트",
        _ if failures == count => "실패",
        _ => "발송 결과",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_reason_is_the_newest_rejection_s_first_line() {
        let comments = vec![
            json!({"content": "old\nmore", "status": "REJ", "createdAt": "2026-11-28 09:00:00"}),
            json!({"content": "\n  new reason  \nsecond", "status": "REJ", "createdAt": "2026-11-28 10:00:00"}),
            json!({"content": "a reply", "status": "REP", "createdAt": "2026-11-28 11:00:00"}),
        ];
        assert_eq!(rejection_reason(&comments).as_deref(), Some("new reason"));
        assert_eq!(
            rejection_reason(&comments[2..]).as_deref(),
            Some("a reply"),
            "no rejecting comment: the newest"
        );
        assert_eq!(rejection_reason(&[]), None);
        let long = vec![json!({"content": "가".repeat(500), "status": "REJ"})];
        assert_eq!(rejection_reason(&long).unwrap().chars().count(), MAX_REASON);
    }

    #[test]
    fn digest_summaries_count_in_both_locales() {
        let ctx = json!({"count": 1204, "route": "alimtalk", "noun": "message results",
            "group": {"result_code": "3019"}, "group_label": "result_code=3019",
            "outcomes": {"failure": 1204}});
        assert_eq!(
            digest(&ctx, Locale::Ko),
            "🚨 alimtalk: 실패 1,204건 (result_code=3019)"
        );
        assert_eq!(
            digest(&ctx, Locale::En),
            "🚨 1204 message results on alimtalk (result_code=3019)"
        );
        let mixed = json!({"count": 3, "route": "r", "noun": "message results", "group": {},
            "group_label": "all", "outcomes": {"failure": 1}});
        assert_eq!(digest(&mixed, Locale::Ko), "🚨 r: 발송 결과 3건 (전체)");
    }

    #[test]
    fn digest_summaries_end_with_the_silenced_count_when_there_is_one() {
        let mut ctx = json!({"count": 3, "route": "r", "noun": "message results", "group": {},
            "group_label": "all", "outcomes": {"failure": 3}, "silenced": 0});
        assert!(!digest(&ctx, Locale::En).contains("silenced"));
        ctx["silenced"] = json!(1312);
        assert_eq!(
            digest(&ctx, Locale::En),
            "🚨 3 message results on r (all) +1,312 silenced"
        );
        assert_eq!(
            digest(&ctx, Locale::Ko),
            "🚨 r: 실패 3건 (전체) +사일런스 1,312건"
        );
    }
}
