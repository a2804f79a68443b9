//! An independent audit of a final Teams body against what Workflows webhooks display.
//!
//! `fit` repairs bodies; this only looks, so `bizrelay check` and the tests can prove that what
//! leaves bizrelay is acceptable without trusting the code that shaped it.

use serde_json::Value;

use super::fit as teams;

pub fn violations(v: &Value, bytes: usize) -> Vec<String> {
    let mut out = Vec::new();
    if bytes > teams::MAX_BYTES {
        out.push(format!("{bytes} bytes (budget {})", teams::MAX_BYTES));
    }
    if v.get("type").and_then(Value::as_str) != Some("message") {
        out.push("`type` is not \"message\"".into());
    }
    let attachments = v
        .get("attachments")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if attachments.len() != 1 {
        out.push(format!(
            "{} attachments (exactly 1 expected)",
            attachments.len()
        ));
        return out;
    }
    let a = &attachments[0];
    if a.get("contentType").and_then(Value::as_str) != Some(teams::CARD_CONTENT_TYPE) {
        out.push("attachment is not an Adaptive Card".into());
    }
    let card = &a["content"];
    if card.get("type").and_then(Value::as_str) != Some("AdaptiveCard") {
        out.push("content is not an AdaptiveCard".into());
    }
    match card.get("version").and_then(Value::as_str) {
        Some("1.0" | "1.1" | "1.2" | "1.3" | "1.4") => {}
        other => out.push(format!(
            "card version {other:?} (Workflows display at most 1.4)"
        )),
    }
    walk_elements(card.get("body").unwrap_or(&Value::Null), &mut out);
    out
}

/// Elements newer than 1.4 show as "this card couldn't be displayed"; free text without
/// `wrap` is cut to one line.
fn walk_elements(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Array(items) => items.iter().for_each(|i| walk_elements(i, out)),
        Value::Object(map) => {
            match map.get("type").and_then(Value::as_str) {
                Some("Table" | "Action.Submit" | "Action.Execute") => out.push(format!(
                    "element type {} is not supported in Workflows cards (1.4)",
                    map["type"]
                )),
                Some("TextBlock") if map.get("wrap") != Some(&Value::Bool(true)) => {
                    out.push("TextBlock without \"wrap\": true".into());
                }
                _ => {}
            }
            map.values().for_each(|c| walk_elements(c, out));
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::teams;
    use crate::destination::teams::KIND;

    #[test]
    fn teams_audit() {
        let card = |version: &str, el: Value| {
            json!({"type": "message", "attachments": [{"contentType": teams::CARD_CONTENT_TYPE,
                "content": {"type": "AdaptiveCard", "version": version, "body": [el]}}]})
            .to_string()
        };
        let wrapped = json!({"type": "TextBlock", "text": "x", "wrap": true});
        assert!(KIND.violations(&card("1.4", wrapped.clone())).is_empty());
        assert_eq!(KIND.violations(&card("1.5", wrapped)).len(), 1);
        assert_eq!(
            KIND.violations(&card("1.4", json!({"type": "Table"})))
                .len(),
            1
        );
        assert_eq!(
            KIND.violations(&card("1.4", json!({"type": "TextBlock", "text": "x"})))
                .len(),
            1
        );
        assert_eq!(KIND.violations("nope").len(), 1);
    }
}
