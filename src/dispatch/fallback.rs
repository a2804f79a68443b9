//! The plain message a hook becomes when its template fails at run time: ids and codes in the
//! destination's language, no personal data, bidi controls dropped (it bypasses the template
//! context, which drops them for templates).

use crate::bizmessage::{Envelope, Hook, HookBody};
use crate::destination::FallbackInfo;
use crate::locale::Locale;

/// A short description of a hook for fallback messages: ids and codes, no personal data.
pub fn fallback_info(
    template: &str,
    envelope: &Envelope,
    hook: &Hook,
    locale: Locale,
) -> FallbackInfo {
    let l = |en: &str, ko: &str| locale.pick(en, ko).to_string();
    let mut facts = vec![
        (l("kind", "종류"), hook.kind().as_str().to_string()),
        (
            l("hook id", "훅 ID"),
            hook.hook_id.as_deref().unwrap_or("—").to_string(),
        ),
        (
            l("event", "이벤트"),
            envelope.event.clone().unwrap_or_else(|| "—".into()),
        ),
    ];
    match &hook.body {
        HookBody::Template(t) => {
            facts.push((l("template code", "템플릿 코드"), t.template_code.clone()));
            facts.push((l("status", "상태"), t.status.clone()));
        }
        HookBody::MessageResult(r) => {
            let code = r.result_code.as_deref().unwrap_or("—").to_string();
            let meaning_key = locale.pick("meaning_en", "meaning_ko");
            let meaning = crate::context::result_value(r.result_code.as_deref())[meaning_key]
                .as_str()
                .unwrap_or("")
                .to_string();
            facts.push((l("result code", "결과 코드"), format!("{code} {meaning}")));
            facts.push((
                l("message type", "메시지 유형"),
                r.kakao_message_type.as_deref().unwrap_or("—").to_string(),
            ));
            facts.push((
                l("request id", "요청 ID"),
                r.request_id.as_deref().unwrap_or("—").to_string(),
            ));
        }
        HookBody::Unknown(_) => {}
    }
    FallbackInfo {
        title: match locale {
            Locale::En => {
                format!("bizrelay could not render template `{template}`; the event in brief:")
            }
            Locale::Ko => {
                format!("bizrelay가 템플릿 `{template}`을(를) 렌더링하지 못했습니다. 이벤트 요약:")
            }
        },
        // The fallback bypasses the template context, so it drops bidi controls itself.
        facts: facts
            .into_iter()
            .map(|(k, v)| (k, crate::text::strip_bidi(&v).into_owned()))
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bizmessage::HookKind;

    #[test]
    fn fallbacks_speak_the_destinations_language_in_every_service() {
        let s = crate::samples::one_of(HookKind::MessageResult).unwrap();
        let ko = fallback_info("message_result", &s.envelope, &s.hook, Locale::Ko);
        assert!(ko.title.contains("렌더링하지 못했습니다"), "{}", ko.title);
        assert!(
            ko.facts.iter().any(|(k, _)| k == "결과 코드"),
            "{:?}",
            ko.facts
        );
        let en = fallback_info("message_result", &s.envelope, &s.hook, Locale::En);
        assert!(en.title.contains("could not render"), "{}", en.title);
        assert!(en.facts.iter().any(|(k, _)| k == "result code"));
        for &kind in crate::destination::ALL {
            let body = kind.fallback(&ko);
            assert!(
                body.contains("결과 코드") && !body.contains("result code"),
                "{}: {body}",
                kind.as_str()
            );
            assert!(
                kind.fallback(&en).contains("result code"),
                "{}",
                kind.as_str()
            );
        }
    }
}
