//! An independent audit of a final body against the destination's documented limits.
//!
//! `fit` repairs bodies; this only looks, so `bizrelay check` and the tests can prove that what
//! leaves bizrelay is acceptable without trusting the code that shaped it.

use serde_json::Value;

use super::{DestinationKind, slack, teams};

/// Every rule the body breaks; empty when it is fine to send.
pub fn violations(kind: DestinationKind, body: &str) -> Vec<String> {
    match kind {
        DestinationKind::Console => Vec::new(),
        DestinationKind::Slack => match serde_json::from_str::<Value>(body) {
            Ok(v) => slack_violations(&v),
            Err(e) => vec![format!("not valid JSON: {e}")],
        },
        DestinationKind::Teams => match serde_json::from_str::<Value>(body) {
            Ok(v) => teams_violations(&v, body.len()),
            Err(e) => vec![format!("not valid JSON: {e}")],
        },
    }
}

fn chars(v: &Value) -> usize {
    v.as_str().map_or(0, |s| s.chars().count())
}

fn slack_violations(v: &Value) -> Vec<String> {
    let mut out = Vec::new();
    match v.get("text").and_then(Value::as_str) {
        Some(t) if !t.trim().is_empty() && t.chars().count() <= slack::MAX_TOP_TEXT => {}
        _ => out.push(format!(
            "`text` must be 1..={} characters",
            slack::MAX_TOP_TEXT
        )),
    }
    let blocks = v
        .get("blocks")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if blocks.len() > slack::MAX_BLOCKS {
        out.push(format!(
            "{} blocks (max {})",
            blocks.len(),
            slack::MAX_BLOCKS
        ));
    }
    let mut total = 0;
    for (i, b) in blocks.iter().enumerate() {
        let kind = b.get("type").and_then(Value::as_str).unwrap_or("");
        if kind == "header" && chars(&b["text"]["text"]) > slack::MAX_HEADER {
            out.push(format!(
                "block {i}: header over {} characters",
                slack::MAX_HEADER
            ));
        }
        if let Some(fields) = b.get("fields").and_then(Value::as_array) {
            if fields.len() > slack::MAX_FIELDS {
                out.push(format!(
                    "block {i}: {} fields (max {})",
                    fields.len(),
                    slack::MAX_FIELDS
                ));
            }
            for f in fields {
                if chars(&f["text"]) > slack::MAX_FIELD_TEXT {
                    out.push(format!(
                        "block {i}: field over {} characters",
                        slack::MAX_FIELD_TEXT
                    ));
                }
            }
        }
        if kind == "context"
            && b.get("elements")
                .and_then(Value::as_array)
                .is_some_and(|e| e.len() > slack::MAX_CONTEXT_ELEMENTS)
        {
            out.push(format!(
                "block {i}: more than {} context elements",
                slack::MAX_CONTEXT_ELEMENTS
            ));
        }
        walk_text_objects(b, &mut |t| {
            let n = t.chars().count();
            total += n;
            if n == 0 || t.trim().is_empty() {
                out.push(format!("block {i}: empty text object"));
            }
            if n > slack::MAX_TEXT {
                out.push(format!(
                    "block {i}: text object over {} characters",
                    slack::MAX_TEXT
                ));
            }
        });
    }
    if total > slack::BLOCK_TEXT_BUDGET {
        out.push(format!(
            "{total} characters of block text (budget {})",
            slack::BLOCK_TEXT_BUDGET
        ));
    }
    out
}

fn walk_text_objects(v: &Value, f: &mut dyn FnMut(&str)) {
    let is_text = matches!(
        v.get("type").and_then(Value::as_str),
        Some("plain_text" | "mrkdwn")
    );
    if is_text && let Some(t) = v.get("text").and_then(Value::as_str) {
        f(t);
        return;
    }
    match v {
        Value::Array(items) => items.iter().for_each(|i| walk_text_objects(i, f)),
        Value::Object(map) => map.values().for_each(|i| walk_text_objects(i, f)),
        _ => {}
    }
}

fn teams_violations(v: &Value, bytes: usize) -> Vec<String> {
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
    use super::*;
    use serde_json::json;

    #[test]
    fn audit_finds_what_fit_would_repair() {
        let body = json!({"text": "", "blocks": [{"type": "header", "text": {"type": "plain_text", "text": "h".repeat(151)}}]});
        let v = violations(DestinationKind::Slack, &body.to_string());
        assert_eq!(v.len(), 2, "{v:?}");
        let mut fixed = body.clone();
        slack::fit(&mut fixed).unwrap();
        assert!(violations(DestinationKind::Slack, &fixed.to_string()).is_empty());
    }

    #[test]
    fn teams_audit() {
        let card = |version: &str, el: Value| {
            json!({"type": "message", "attachments": [{"contentType": teams::CARD_CONTENT_TYPE,
                "content": {"type": "AdaptiveCard", "version": version, "body": [el]}}]})
            .to_string()
        };
        assert!(
            violations(
                DestinationKind::Teams,
                &card(
                    "1.4",
                    json!({"type": "TextBlock", "text": "x", "wrap": true})
                )
            )
            .is_empty()
        );
        assert_eq!(
            violations(
                DestinationKind::Teams,
                &card(
                    "1.5",
                    json!({"type": "TextBlock", "text": "x", "wrap": true})
                )
            )
            .len(),
            1
        );
        assert_eq!(
            violations(
                DestinationKind::Teams,
                &card("1.4", json!({"type": "Table"}))
            )
            .len(),
            1
        );
        assert_eq!(
            violations(
                DestinationKind::Teams,
                &card("1.4", json!({"type": "TextBlock", "text": "x"}))
            )
            .len(),
            1
        );
        assert_eq!(violations(DestinationKind::Teams, "nope").len(), 1);
    }
}
