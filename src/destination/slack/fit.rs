//! Slack's Block Kit limits, and the template-free fallback body.
//!
//! Invariant: after [`fit`], the body has a non-empty `text` of at most 4,000 characters, at
//! most 50 blocks, no empty text object, every text object within its documented limit, and at
//! most 11,000 characters of block text in total (Slack refuses around 12,000).

use serde_json::{Value, json};

use crate::destination::fitting::shrink_to_budget;
use crate::destination::{FallbackInfo, LimitError};
use crate::text::{slack_escape, truncate};

pub const MAX_BLOCKS: usize = 50;
pub const MAX_TEXT: usize = 3000;
pub const MAX_HEADER: usize = 150;
pub const MAX_FIELDS: usize = 10;
pub const MAX_FIELD_TEXT: usize = 2000;
pub const MAX_CONTEXT_ELEMENTS: usize = 10;
pub const BLOCK_TEXT_BUDGET: usize = 11_000;
pub const MAX_TOP_TEXT: usize = 4000;

pub fn fit(body: &mut Value) -> Result<(), LimitError> {
    let obj = body
        .as_object_mut()
        .ok_or_else(|| LimitError::Shape("Slack body must be a JSON object".into()))?;
    if let Some(blocks) = obj.get_mut("blocks") {
        let blocks = blocks
            .as_array_mut()
            .ok_or_else(|| LimitError::Shape("Slack `blocks` must be an array".into()))?;
        fit_blocks(blocks);
    }
    if let Some(attachments) = obj.get_mut("attachments").and_then(Value::as_array_mut) {
        for a in attachments.iter_mut() {
            if let Some(blocks) = a.get_mut("blocks").and_then(Value::as_array_mut) {
                fit_blocks(blocks);
            }
            if let Some(Value::String(t)) = a.get_mut("text") {
                *t = truncate(t, MAX_TEXT);
            }
        }
    }
    let text = match obj.get("text") {
        Some(Value::String(t)) if !t.trim().is_empty() => truncate(t, MAX_TOP_TEXT),
        Some(Value::String(_)) | None => first_block_text(obj.get("blocks"))
            .map(|t| truncate(&t, 300))
            .ok_or_else(|| {
                LimitError::Shape("Slack body has neither `text` nor any block text".into())
            })?,
        Some(_) => return Err(LimitError::Shape("Slack `text` must be a string".into())),
    };
    obj.insert("text".into(), Value::String(text));
    Ok(())
}

fn fit_blocks(blocks: &mut Vec<Value>) {
    if blocks.len() > MAX_BLOCKS {
        let dropped = blocks.len() - (MAX_BLOCKS - 1);
        blocks.truncate(MAX_BLOCKS - 1);
        blocks.push(json!({
            "type": "context",
            "elements": [{"type": "mrkdwn", "text": format!("… {dropped} more blocks not shown")}]
        }));
    }
    for block in blocks.iter_mut() {
        fit_block(block);
    }
    let mut texts = Vec::new();
    for block in blocks.iter_mut() {
        collect_texts(block, &mut texts);
    }
    shrink_to_budget(texts, BLOCK_TEXT_BUDGET);
}

fn fit_block(block: &mut Value) {
    let kind = block
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    match kind.as_str() {
        "header" => {
            if let Some(t) = block.get_mut("text") {
                fit_text_object(t, MAX_HEADER);
            }
        }
        "section" => {
            if let Some(t) = block.get_mut("text") {
                fit_text_object(t, MAX_TEXT);
            }
            if let Some(fields) = block.get_mut("fields").and_then(Value::as_array_mut) {
                cap_list(fields, MAX_FIELDS, "fields");
                for f in fields.iter_mut() {
                    fit_text_object(f, MAX_FIELD_TEXT);
                }
            }
            if let Some(acc) = block.get_mut("accessory") {
                fit_all_text_objects(acc);
            }
        }
        "context" => {
            if let Some(elements) = block.get_mut("elements").and_then(Value::as_array_mut) {
                cap_list(elements, MAX_CONTEXT_ELEMENTS, "items");
                for e in elements.iter_mut() {
                    fit_text_object(e, MAX_TEXT);
                }
            }
        }
        _ => fit_all_text_objects(block),
    }
}

/// Keeps at most `max` entries, the last one replaced by a note of how many were dropped.
fn cap_list(list: &mut Vec<Value>, max: usize, what: &str) {
    if list.len() > max {
        let dropped = list.len() - (max - 1);
        list.truncate(max - 1);
        list.push(json!({"type": "mrkdwn", "text": format!("… {dropped} more {what}")}));
    }
}

fn is_text_object(v: &Value) -> bool {
    matches!(
        v.get("type").and_then(Value::as_str),
        Some("plain_text" | "mrkdwn")
    ) && v.get("text").is_some_and(Value::is_string)
}

fn fit_text_object(v: &mut Value, max: usize) {
    if !is_text_object(v) {
        return;
    }
    if let Some(Value::String(t)) = v.get_mut("text") {
        if t.trim().is_empty() {
            *t = "—".to_string();
        } else {
            *t = truncate(t, max);
        }
    }
}

fn fit_all_text_objects(v: &mut Value) {
    if is_text_object(v) {
        fit_text_object(v, MAX_TEXT);
        return;
    }
    match v {
        Value::Array(items) => items.iter_mut().for_each(fit_all_text_objects),
        Value::Object(map) => map.values_mut().for_each(fit_all_text_objects),
        _ => {}
    }
}

fn collect_texts<'a>(v: &'a mut Value, out: &mut Vec<&'a mut String>) {
    if is_text_object(v) {
        if let Some(Value::String(t)) = v.get_mut("text") {
            out.push(t);
        }
        return;
    }
    match v {
        Value::Array(items) => items.iter_mut().for_each(|i| collect_texts(i, out)),
        Value::Object(map) => map.values_mut().for_each(|i| collect_texts(i, out)),
        _ => {}
    }
}

fn first_block_text(blocks: Option<&Value>) -> Option<String> {
    let mut blocks = blocks?.clone();
    let mut texts = Vec::new();
    collect_texts(&mut blocks, &mut texts);
    texts
        .into_iter()
        .map(|t| t.clone())
        .find(|t| !t.trim().is_empty() && t != "—")
}

pub fn fallback(info: &FallbackInfo) -> String {
    let mut lines = format!("*{}*", slack_escape(&info.title));
    for (k, v) in &info.facts {
        lines.push_str(&format!("\n*{}:* {}", slack_escape(k), slack_escape(v)));
    }
    json!({
        "text": truncate(&slack_escape(&info.title), MAX_TOP_TEXT),
        "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": truncate(&lines, MAX_TEXT)}}]
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn section(text: &str) -> Value {
        json!({"type": "section", "text": {"type": "mrkdwn", "text": text}})
    }

    #[test]
    fn long_texts_are_truncated_with_a_marker() {
        let mut body = json!({
            "text": "x".repeat(5000),
            "blocks": [
                {"type": "header", "text": {"type": "plain_text", "text": "h".repeat(200)}},
                section(&"s".repeat(4000)),
                {"type": "section", "fields": (0..14).map(|i| json!({"type": "mrkdwn", "text": format!("f{i}")})).collect::<Vec<_>>()},
                {"type": "context", "elements": (0..12).map(|_| json!({"type": "plain_text", "text": "c"})).collect::<Vec<_>>()},
            ]
        });
        fit(&mut body).unwrap();
        assert_eq!(body["text"].as_str().unwrap().chars().count(), MAX_TOP_TEXT);
        let header = body["blocks"][0]["text"]["text"].as_str().unwrap();
        assert_eq!(header.chars().count(), MAX_HEADER);
        assert!(header.ends_with('…'));
        let section_text = body["blocks"][1]["text"]["text"].as_str().unwrap();
        assert_eq!(section_text.chars().count(), MAX_TEXT);
        assert_eq!(
            body["blocks"][2]["fields"].as_array().unwrap().len(),
            MAX_FIELDS
        );
        assert_eq!(body["blocks"][2]["fields"][9]["text"], "… 5 more fields");
        assert_eq!(
            body["blocks"][3]["elements"].as_array().unwrap().len(),
            MAX_CONTEXT_ELEMENTS
        );
    }

    #[test]
    fn too_many_blocks_keep_a_note() {
        let blocks: Vec<Value> = (0..120).map(|i| section(&format!("b{i}"))).collect();
        let mut body = json!({"text": "t", "blocks": blocks});
        fit(&mut body).unwrap();
        let blocks = body["blocks"].as_array().unwrap();
        assert_eq!(blocks.len(), MAX_BLOCKS);
        assert_eq!(
            blocks[49]["elements"][0]["text"],
            "… 71 more blocks not shown"
        );
    }

    #[test]
    fn total_block_text_stays_within_budget() {
        let blocks: Vec<Value> = (0..10).map(|_| section(&"y".repeat(2900))).collect();
        let mut body = json!({"text": "t", "blocks": blocks});
        fit(&mut body).unwrap();
        let total: usize = body["blocks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["text"]["text"].as_str().unwrap().chars().count())
            .sum();
        assert!(total <= BLOCK_TEXT_BUDGET, "{total}");
    }

    #[test]
    fn empty_texts_are_replaced_and_missing_text_is_derived() {
        let mut body = json!({"blocks": [section(""), section("first words")]});
        fit(&mut body).unwrap();
        assert_eq!(body["blocks"][0]["text"]["text"], "—");
        assert_eq!(body["text"], "first words");
        let mut nothing = json!({"blocks": []});
        assert!(fit(&mut nothing).is_err());
        assert!(fit(&mut json!([1])).is_err());
        assert!(fit(&mut json!({"text": 5})).is_err());
    }

    #[test]
    fn fallback_is_valid_escaped_json() {
        let body = fallback(&FallbackInfo {
            title: "Template failed <!channel>".into(),
            facts: vec![("hook".into(), "h-1 \"quoted\"".into())],
        });
        let v: Value = serde_json::from_str(&body).unwrap();
        assert!(!body.contains("<!channel>"));
        assert!(
            v["blocks"][0]["text"]["text"]
                .as_str()
                .unwrap()
                .contains("h-1 \"quoted\"")
        );
    }
}
