//! An independent audit of a final Slack body against Slack's documented limits.
//!
//! `fit` repairs bodies; this only looks, so `bizrelay check` and the tests can prove that what
//! leaves bizrelay is acceptable without trusting the code that shaped it.

use serde_json::Value;

use super::fit as slack;

fn chars(v: &Value) -> usize {
    v.as_str().map_or(0, |s| s.chars().count())
}

pub fn violations(v: &Value) -> Vec<String> {
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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::slack;
    use crate::destination::slack::KIND;

    #[test]
    fn audit_finds_what_fit_would_repair() {
        let body = json!({"text": "", "blocks": [{"type": "header", "text": {"type": "plain_text", "text": "h".repeat(151)}}]});
        let v = KIND.violations(&body.to_string());
        assert_eq!(v.len(), 2, "{v:?}");
        let mut fixed = body.clone();
        slack::fit(&mut fixed).unwrap();
        assert!(KIND.violations(&fixed.to_string()).is_empty());
        assert_eq!(KIND.violations("nope").len(), 1);
    }
}
