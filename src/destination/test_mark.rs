//! The marker that makes a `send-test` message unmistakably a test: put in front of the
//! notification text (what a phone shows) and the header of every destination type, in the
//! destination's locale, before the body is fitted to the service's limits again.
//!
//! Invariant: marking never fails on a body of another shape (a custom template): the fields
//! it has are marked, and when it has none of them the marker goes into its first text
//! field found, so no test message goes out unmarked.

use serde_json::Value;

use super::{DestinationKind, LimitError};
use crate::locale::Locale;

/// The marker, in a locale.
pub fn marker(locale: Locale) -> &'static str {
    locale.pick(
        "🧪 TEST (bizrelay send-test) · ",
        "🧪 TEST (bizrelay send-test, 테스트 메시지) · ",
    )
}

/// Marks a rendered body as a test and fits it again.
pub fn mark(kind: DestinationKind, locale: Locale, body: &str) -> Result<String, LimitError> {
    let marker = marker(locale);
    if !kind.is_json() {
        return Ok(format!("{marker}{body}"));
    }
    let mut value: Value =
        serde_json::from_str(body).map_err(|e| LimitError::NotJson(e.to_string()))?;
    let mut marked = 0;
    for pointer in kind.headline_fields() {
        if let Some(Value::String(s)) = value.pointer_mut(pointer) {
            s.insert_str(0, marker);
            marked += 1;
        }
    }
    if marked == 0 {
        mark_first_text(&mut value, marker);
    }
    kind.fit(&value.to_string())
}

/// Marks the first non-empty string of a body (depth first, in key order).
fn mark_first_text(value: &mut Value, marker: &str) -> bool {
    match value {
        Value::String(s) if !s.trim().is_empty() => {
            s.insert_str(0, marker);
            true
        }
        Value::Array(items) => items.iter_mut().any(|v| mark_first_text(v, marker)),
        Value::Object(map) => map.values_mut().any(|v| mark_first_text(v, marker)),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::Renderer;
    use crate::samples;

    #[test]
    fn every_builtin_of_every_type_shows_the_marker_in_header_and_notification_text() {
        let r = Renderer::builtin();
        let sample = samples::one_of(crate::bizmessage::HookKind::MessageResult).unwrap();
        for &kind in super::super::ALL {
            for locale in Locale::ALL {
                let ctx = crate::context::hook_context(
                    &sample.envelope,
                    &sample.hook,
                    &crate::context::Meta {
                        route: "send-test",
                        destination: "d",
                        destination_type: kind,
                        locale,
                        received_at_ms: 0,
                        mask_recipient: true,
                    },
                );
                let body = r.render(kind, locale, "message_result", &ctx).unwrap();
                let marked = mark(kind, locale, &body).unwrap();
                let m = marker(locale);
                if kind.is_json() {
                    let v: Value = serde_json::from_str(&marked).unwrap();
                    for p in kind.headline_fields() {
                        let s = v.pointer(p).and_then(Value::as_str).unwrap_or("");
                        assert!(s.starts_with(m), "{kind:?} {locale:?} {p}: {s}");
                    }
                    assert!(
                        kind.headline_fields().len() >= 2,
                        "{kind:?}: notification text and header"
                    );
                    assert!(kind.violations(&marked).is_empty(), "{kind:?}");
                } else {
                    assert!(marked.starts_with(m), "{marked}");
                }
            }
        }
    }

    #[test]
    fn a_body_of_another_shape_is_still_marked() {
        let kind = crate::destination::slack::KIND;
        let marked = mark(
            kind,
            Locale::En,
            r#"{"blocks":[{"type":"section","text":{"type":"mrkdwn","text":"hi"}}]}"#,
        )
        .unwrap();
        assert!(marked.contains("🧪 TEST"), "{marked}");
    }
}
