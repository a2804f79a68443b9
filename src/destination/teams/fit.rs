//! Microsoft Teams Workflows webhooks' limits: the message envelope with one Adaptive Card 1.4, its
//! size budget, and the template-free fallback card.
//!
//! Invariant: after [`fit`], the body is `{"type":"message","attachments":[one adaptive card]}`,
//! the card's version is at most 1.4 (Workflows render nothing newer), and the whole body is at
//! most [`MAX_BYTES`] of JSON. Teams does not report broken cards back, so this is the check.

use serde_json::{Value, json};

use crate::destination::fitting::first_longest;
use crate::destination::{FallbackInfo, LimitError};
use crate::text::truncate;

/// Teams allows about 28 KB per message; stay well inside.
pub const MAX_BYTES: usize = 24 * 1024;
pub const CARD_CONTENT_TYPE: &str = "application/vnd.microsoft.card.adaptive";

pub fn fit(body: &mut Value) -> Result<(), LimitError> {
    check_shape(body)?;
    shrink(body);
    Ok(())
}

fn shape(reason: &str) -> LimitError {
    LimitError::Shape(format!("Teams body: {reason}"))
}

fn check_shape(body: &Value) -> Result<(), LimitError> {
    if body.get("type").and_then(Value::as_str) != Some("message") {
        return Err(shape("`type` must be \"message\""));
    }
    let attachments = body
        .get("attachments")
        .and_then(Value::as_array)
        .ok_or_else(|| shape("`attachments` must be an array"))?;
    if attachments.len() != 1 {
        return Err(shape("must carry exactly one attachment"));
    }
    let a = &attachments[0];
    if a.get("contentType").and_then(Value::as_str) != Some(CARD_CONTENT_TYPE) {
        return Err(shape(&format!(
            "attachment contentType must be {CARD_CONTENT_TYPE}"
        )));
    }
    let card = a
        .get("content")
        .and_then(Value::as_object)
        .ok_or_else(|| shape("attachment has no card `content`"))?;
    if card.get("type").and_then(Value::as_str) != Some("AdaptiveCard") {
        return Err(shape("card `type` must be \"AdaptiveCard\""));
    }
    let version = card
        .get("version")
        .and_then(Value::as_str)
        .ok_or_else(|| shape("card has no `version`"))?;
    match parse_version(version) {
        Some(v) if v <= (1, 4) => {}
        Some(_) => {
            return Err(shape(&format!(
                "card version {version} is newer than 1.4, which Workflows cannot display"
            )));
        }
        None => return Err(shape(&format!("card version `{version}` is not a version"))),
    }
    if !card.get("body").is_none_or(Value::is_array) {
        return Err(shape("card `body` must be an array"));
    }
    Ok(())
}

fn parse_version(v: &str) -> Option<(u32, u32)> {
    let (major, minor) = v.trim().split_once('.')?;
    Some((major.parse().ok()?, minor.parse().ok()?))
}

fn size(body: &Value) -> usize {
    body.to_string().len()
}

/// Shortens the longest texts first (the earliest of equally long ones, so the newest
/// comment, usually the one that matters, keeps the most); if many small elements still
/// overflow, drops trailing elements of the longest list and says how many were dropped.
fn shrink(body: &mut Value) {
    const FLOOR: usize = 200;
    /// Room kept for the "… N more items not shown" note.
    const NOTE_ROOM: usize = 160;
    for _ in 0..10_000 {
        let total = size(body);
        if total <= MAX_BYTES {
            return;
        }
        let excess = total - MAX_BYTES;
        let mut texts = Vec::new();
        collect_texts(&mut body["attachments"][0]["content"], &mut texts);
        let Some(i) = first_longest(&texts).filter(|i| texts[*i].chars().count() > FLOOR) else {
            break;
        };
        let longest = &mut texts[i];
        let chars = longest.chars().count();
        let bytes_per_char = longest.len().div_ceil(chars).max(1);
        let cut = excess.div_ceil(bytes_per_char) + 16;
        **longest = truncate(longest, chars.saturating_sub(cut).max(FLOOR));
    }
    let mut dropped = 0usize;
    for _ in 0..10_000 {
        let total = size(body);
        if total + NOTE_ROOM <= MAX_BYTES {
            break;
        }
        match drop_some(
            &mut body["attachments"][0]["content"]["body"],
            total + NOTE_ROOM - MAX_BYTES,
        ) {
            0 => break,
            n => dropped += n,
        }
    }
    if dropped > 0
        && let Some(items) = body["attachments"][0]["content"]["body"].as_array_mut()
    {
        items.push(json!({
            "type": "TextBlock", "wrap": true, "isSubtle": true,
            "text": format!("… {dropped} more items not shown"),
        }));
    }
}

/// Texts a reader sees: TextBlock `text`, Fact `title`/`value`.
fn collect_texts<'a>(v: &'a mut Value, out: &mut Vec<&'a mut String>) {
    match v {
        Value::Object(map) => {
            for (k, child) in map.iter_mut() {
                let reader_text = matches!(k.as_str(), "text" | "value" | "title");
                if reader_text && child.is_string() {
                    if let Value::String(s) = child {
                        out.push(s);
                    }
                } else {
                    collect_texts(child, out);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|i| collect_texts(i, out)),
        _ => {}
    }
}

/// Removes trailing elements of the longest array under `v` until about `excess` bytes are
/// gone; returns how many were removed (0 when nothing is left to remove).
fn drop_some(v: &mut Value, excess: usize) -> usize {
    fn longest(v: &Value, path: String, best: &mut Option<(usize, String)>) {
        match v {
            Value::Array(items) => {
                if items.len() > 1 && best.as_ref().is_none_or(|(n, _)| items.len() > *n) {
                    *best = Some((items.len(), path.clone()));
                }
                for (i, item) in items.iter().enumerate() {
                    longest(item, format!("{path}/{i}"), best);
                }
            }
            Value::Object(map) => {
                for (k, child) in map {
                    let key = k.replace('~', "~0").replace('/', "~1");
                    longest(child, format!("{path}/{key}"), best);
                }
            }
            _ => {}
        }
    }
    let mut best = None;
    longest(v, String::new(), &mut best);
    let Some((_, path)) = best else { return 0 };
    let Some(items) = v.pointer_mut(&path).and_then(Value::as_array_mut) else {
        return 0;
    };
    let (mut removed, mut freed) = (0, 0);
    while items.len() > 1 && freed < excess {
        if let Some(item) = items.pop() {
            freed += item.to_string().len() + 1;
            removed += 1;
        }
    }
    removed
}

pub fn fallback(info: &FallbackInfo) -> String {
    let facts: Vec<Value> = info
        .facts
        .iter()
        .map(|(k, v)| json!({"title": k, "value": truncate(v, 500)}))
        .collect();
    json!({
        "type": "message",
        "attachments": [{
            "contentType": CARD_CONTENT_TYPE,
            "contentUrl": null,
            "content": {
                "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                "type": "AdaptiveCard",
                "version": "1.4",
                "body": [
                    {"type": "TextBlock", "text": truncate(&info.title, 500), "weight": "Bolder", "wrap": true},
                    {"type": "FactSet", "facts": facts}
                ]
            }
        }]
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn card(body: Vec<Value>) -> Value {
        json!({"type": "message", "attachments": [{"contentType": CARD_CONTENT_TYPE, "contentUrl": null,
            "content": {"type": "AdaptiveCard", "version": "1.4", "body": body}}]})
    }

    #[test]
    fn shape_errors() {
        let cases = [
            (json!({"type": "other"}), "`type` must be"),
            (json!({"type": "message", "attachments": []}), "exactly one"),
            (
                json!({"type": "message", "attachments": [{"contentType": "text/plain"}]}),
                "contentType",
            ),
        ];
        for (mut body, want) in cases {
            let err = fit(&mut body).unwrap_err().to_string();
            assert!(err.contains(want), "{err}");
        }
        let mut newer = card(vec![]);
        newer["attachments"][0]["content"]["version"] = json!("1.5");
        assert!(
            fit(&mut newer)
                .unwrap_err()
                .to_string()
                .contains("newer than 1.4")
        );
        let mut older = card(vec![]);
        older["attachments"][0]["content"]["version"] = json!("1.2");
        assert!(fit(&mut older).is_ok());
    }

    #[test]
    fn long_texts_shrink_to_the_budget() {
        let mut body = card(vec![
            json!({"type": "TextBlock", "text": "short"}),
            json!({"type": "TextBlock", "text": "가".repeat(20_000)}),
        ]);
        fit(&mut body).unwrap();
        assert!(size(&body) <= MAX_BYTES);
        assert_eq!(
            body["attachments"][0]["content"]["body"][0]["text"],
            "short"
        );
        assert!(
            body["attachments"][0]["content"]["body"][1]["text"]
                .as_str()
                .unwrap()
                .ends_with('…')
        );
    }

    #[test]
    fn many_small_items_are_dropped_with_a_note() {
        let items: Vec<Value> = (0..2000)
            .map(|i| json!({"type": "TextBlock", "text": format!("comment number {i} with some words"), "wrap": true}))
            .collect();
        let mut body = card(vec![json!({"type": "Container", "items": items})]);
        fit(&mut body).unwrap();
        assert!(size(&body) <= MAX_BYTES);
        let top = body["attachments"][0]["content"]["body"]
            .as_array()
            .unwrap();
        assert!(
            top.last().unwrap()["text"]
                .as_str()
                .unwrap()
                .contains("more items not shown")
        );
    }

    #[test]
    fn equally_long_texts_are_cut_oldest_first() {
        let long = "x".repeat(3000);
        let mut body = card(
            (0..10)
                .map(|_| json!({"type": "TextBlock", "text": long, "wrap": true}))
                .collect(),
        );
        fit(&mut body).unwrap();
        let lens: Vec<usize> = body["attachments"][0]["content"]["body"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["text"].as_str().unwrap().chars().count())
            .collect();
        assert_eq!(lens[9], 3000, "the newest text is kept whole: {lens:?}");
        assert!(lens[0] < lens[9], "{lens:?}");
        assert!(lens.windows(2).all(|w| w[0] <= w[1]), "{lens:?}");
    }

    #[test]
    fn the_dropped_items_note_keeps_the_template_s_last_line() {
        let rows: Vec<Value> = (0..2000)
            .map(|i| json!({"title": format!("code {i}"), "value": "meaning of the code"}))
            .collect();
        let mut body = card(vec![
            json!({"type": "FactSet", "facts": rows}),
            json!({"type": "TextBlock", "text": "…and 291 more", "wrap": true}),
        ]);
        fit(&mut body).unwrap();
        let items = body["attachments"][0]["content"]["body"]
            .as_array()
            .unwrap();
        assert!(size(&body) <= MAX_BYTES);
        assert_eq!(items[1]["text"], "…and 291 more");
        assert!(
            items[2]["text"]
                .as_str()
                .unwrap()
                .ends_with("more items not shown")
        );
    }

    #[test]
    fn fallback_is_a_valid_card() {
        let mut v: Value = serde_json::from_str(&fallback(&FallbackInfo {
            title: "t \"q\"".into(),
            facts: vec![("a".into(), "b".into())],
        }))
        .unwrap();
        fit(&mut v).unwrap();
    }
}
