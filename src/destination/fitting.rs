//! Tools the services' `fit` functions share: parsing a rendered body, shortening texts to a
//! per-field limit or a total budget, and capping lists with a visible note.
//!
//! Invariant: texts are only ever shortened with [`crate::text::truncate`] (so they end with
//! `…`), and of equally long texts the first is cut first (texts are in reading order, so
//! the newest comment, usually the one that matters, is shortened last).

use serde_json::{Map, Value};

use super::LimitError;
use crate::text::truncate;

/// Parses a rendered body; the error says where, never quoting the text.
pub fn parse_json(rendered: &str) -> Result<Value, LimitError> {
    serde_json::from_str(rendered).map_err(|e| {
        LimitError::NotJson(format!(
            "{} at line {} column {}",
            category(&e),
            e.line(),
            e.column()
        ))
    })
}

fn category(e: &serde_json::Error) -> &'static str {
    match e.classify() {
        serde_json::error::Category::Eof => "unexpected end",
        serde_json::error::Category::Syntax => "syntax error",
        serde_json::error::Category::Data => "unexpected value",
        serde_json::error::Category::Io => "read error",
    }
}

/// The body as an object, or a shape error naming the service.
pub fn object<'a>(
    body: &'a mut Value,
    service: &str,
) -> Result<&'a mut Map<String, Value>, LimitError> {
    body.as_object_mut()
        .ok_or_else(|| LimitError::Shape(format!("{service} body must be a JSON object")))
}

/// Index of the longest text; of equally long ones, the first.
pub(crate) fn first_longest(texts: &[&mut String]) -> Option<usize> {
    let mut best: Option<(usize, usize)> = None;
    for (i, t) in texts.iter().enumerate() {
        let n = t.chars().count();
        if best.is_none_or(|(_, b)| n > b) {
            best = Some((i, n));
        }
    }
    best.map(|(i, _)| i)
}

/// Shortens the longest texts until the total fits the budget (longest first, so short facts
/// such as codes stay whole).
pub(crate) fn shrink_to_budget(mut texts: Vec<&mut String>, budget: usize) {
    const FLOOR: usize = 40;
    loop {
        let total: usize = texts.iter().map(|t| t.chars().count()).sum();
        if total <= budget {
            return;
        }
        let Some(i) = first_longest(&texts) else {
            return;
        };
        let longest = &mut texts[i];
        let len = longest.chars().count();
        if len <= FLOOR {
            return;
        }
        let target = len.saturating_sub(total - budget).max(FLOOR);
        **longest = truncate(longest, target);
    }
}

/// Shortens the string at `key` to `max` characters; a present non-string is a shape error.
pub fn fit_str(
    obj: &mut Map<String, Value>,
    key: &str,
    max: usize,
    what: &str,
) -> Result<(), LimitError> {
    match obj.get_mut(key) {
        None | Some(Value::Null) => Ok(()),
        Some(Value::String(s)) => {
            *s = truncate(s, max);
            Ok(())
        }
        Some(_) => Err(LimitError::Shape(format!(
            "{what} `{key}` must be a string"
        ))),
    }
}

/// Whether the string at `key` has something to read.
pub fn has_text(obj: &Map<String, Value>, key: &str) -> bool {
    obj.get(key)
        .and_then(Value::as_str)
        .is_some_and(|t| !t.trim().is_empty())
}

/// A shape error unless the string at `key` has something to read.
pub fn require_text(obj: &Map<String, Value>, key: &str, what: &str) -> Result<(), LimitError> {
    if has_text(obj, key) {
        Ok(())
    } else {
        Err(LimitError::Shape(format!(
            "{what} body needs a non-empty `{key}`"
        )))
    }
}

/// The array at `key` (absent is fine), or a shape error.
pub fn array<'a>(
    obj: &'a mut Map<String, Value>,
    key: &str,
    what: &str,
) -> Result<Option<&'a mut Vec<Value>>, LimitError> {
    match obj.get_mut(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(items)) => Ok(Some(items)),
        Some(_) => Err(LimitError::Shape(format!(
            "{what} `{key}` must be an array"
        ))),
    }
}

/// Keeps at most `max` items; the last kept one becomes `note(dropped)` so readers see that
/// something is missing.
pub fn cap_list(items: &mut Vec<Value>, max: usize, note: impl Fn(usize) -> Value) {
    if max > 0 && items.len() > max {
        let dropped = items.len() - (max - 1);
        items.truncate(max - 1);
        items.push(note(dropped));
    }
}

/// Every string under `v` at one of `keys` (any depth), in document order.
pub fn strings_at<'a>(v: &'a mut Value, keys: &[&str], out: &mut Vec<&'a mut String>) {
    match v {
        Value::Object(map) => {
            for (k, child) in map.iter_mut() {
                if keys.contains(&k.as_str()) && child.is_string() {
                    if let Value::String(s) = child {
                        out.push(s);
                    }
                } else {
                    strings_at(child, keys, out);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|i| strings_at(i, keys, out)),
        _ => {}
    }
}

/// Shortens the longest strings under `v` until its JSON is at most `budget` bytes.
pub fn shrink_to_bytes(v: &mut Value, budget: usize) {
    const FLOOR: usize = 60;
    for _ in 0..10_000 {
        let total = v.to_string().len();
        if total <= budget {
            return;
        }
        let mut texts = Vec::new();
        all_strings(v, &mut texts);
        let Some(i) = first_longest(&texts).filter(|i| texts[*i].chars().count() > FLOOR) else {
            return;
        };
        let longest = &mut texts[i];
        let chars = longest.chars().count();
        let bytes_per_char = longest.len().div_ceil(chars).max(1);
        let cut = (total - budget).div_ceil(bytes_per_char) + 8;
        **longest = truncate(longest, chars.saturating_sub(cut).max(FLOOR));
    }
}

fn all_strings<'a>(v: &'a mut Value, out: &mut Vec<&'a mut String>) {
    match v {
        Value::String(s) => out.push(s),
        Value::Object(map) => map.values_mut().for_each(|c| all_strings(c, out)),
        Value::Array(items) => items.iter_mut().for_each(|c| all_strings(c, out)),
        _ => {}
    }
}

/// Characters of the string at `key`, 0 when absent.
pub fn chars(v: &Value, key: &str) -> usize {
    v.get(key)
        .and_then(Value::as_str)
        .map_or(0, |s| s.chars().count())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn budgets_cut_the_longest_first_and_lists_keep_a_note() {
        let mut v = json!({"a": "x".repeat(500), "b": "short", "c": ["y".repeat(300)]});
        shrink_to_bytes(&mut v, 400);
        assert!(v.to_string().len() <= 400, "{v}");
        assert_eq!(v["b"], "short");
        assert!(v["a"].as_str().unwrap().ends_with('…'));

        let mut items: Vec<Value> = (0..30).map(|i| json!(i)).collect();
        cap_list(&mut items, 10, |n| json!(format!("{n} more")));
        assert_eq!(items.len(), 10);
        assert_eq!(items[9], "21 more");

        let mut obj = json!({"t": "abcdef", "n": 5});
        let map = obj.as_object_mut().unwrap();
        fit_str(map, "t", 4, "X").unwrap();
        assert_eq!(map["t"], "abc…");
        assert!(fit_str(map, "n", 4, "X").is_err());
        assert!(parse_json("{").is_err());
    }
}
