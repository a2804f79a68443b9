//! Reading a hook's known fields leniently: strings that may come as numbers, sequence numbers
//! that may come as strings, and comment threads, each either understood or kept as the text
//! received and recorded as a [`TypeMismatch`]. Never fails: a field costs at most itself.

use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};
use serde_json::value::RawValue;

use crate::bizmessage::{Attachment, Comment, TypeMismatch};

/// Longest received value kept in a [`TypeMismatch`] (the field itself keeps it whole).
const MAX_RECEIVED: usize = 256;

/// The fields of one hook that had unexpected types.
#[derive(Default)]
pub(super) struct Mismatches(pub(super) Vec<TypeMismatch>);

impl Mismatches {
    /// Records a mismatch; returns the value as text, whole.
    fn flag(
        &mut self,
        field: String,
        label: &'static str,
        expected: &'static str,
        raw: &str,
    ) -> String {
        let text = as_text(raw);
        self.0.push(TypeMismatch {
            field,
            label,
            expected,
            received: crate::text::truncate(&text, MAX_RECEIVED),
        });
        text
    }
}

/// A JSON value as text: a string's content, anything else as its JSON.
fn as_text(raw: &str) -> String {
    serde_json::from_str::<String>(raw).unwrap_or_else(|_| raw.trim().to_string())
}

const EXPECT_STRING: &str = "a string or a number";

/// The text of a JSON string token without escapes, as it stands between its quotes: most
/// values are, and this spares a deserializer per field (a third of the webhook's CPU time
/// with 100-hook POSTs went to reading fields). `None` for anything else.
pub(super) fn plain_string(raw: &str) -> Option<&str> {
    let inner = raw.strip_prefix('"')?.strip_suffix('"')?;
    (!inner.contains('\\')).then_some(inner)
}

/// A field that should be a string (a `String` or a [`compact_str::CompactString`]).
pub(super) fn string_field<T>(
    field: &'static str,
    raw: Option<&RawValue>,
    f: &mut Mismatches,
) -> Option<T>
where
    T: for<'a> From<&'a str> + From<String>,
{
    let raw = raw?;
    if let Some(text) = plain_string(raw.get()) {
        return Some(T::from(text));
    }
    match serde_json::from_str::<Option<Lenient>>(raw.get()) {
        Ok(v) => v.map(|l| T::from(l.0)),
        Err(_) => Some(T::from(f.flag(
            field.into(),
            field,
            EXPECT_STRING,
            raw.get(),
        ))),
    }
}

pub(super) fn seq_field(raw: Option<&RawValue>, f: &mut Mismatches) -> Option<i64> {
    let text = raw?.get();
    if let Ok(n) = serde_json::from_str::<Option<i64>>(text) {
        return n;
    }
    if let Ok(s) = serde_json::from_str::<String>(text)
        && let Ok(n) = s.trim().parse::<i64>()
    {
        return Some(n);
    }
    f.flag("recipientSeq".into(), "recipientSeq", "an integer", text);
    None
}

pub(super) fn bool_field(raw: Option<&RawValue>, f: &mut Mismatches) -> Option<bool> {
    match raw?.get() {
        "true" | "\"true\"" | "\"Y\"" => Some(true),
        "false" | "\"false\"" | "\"N\"" => Some(false),
        "null" => None,
        other => {
            f.flag(
                "isAddedChannel".into(),
                "isAddedChannel",
                "a boolean",
                other,
            );
            None
        }
    }
}

/// `_links.self.href` is optional decoration: anything unexpected there is ignored.
pub(super) fn links_field(raw: Option<&RawValue>) -> Option<String> {
    #[derive(Deserialize)]
    struct Links {
        #[serde(rename = "self")]
        this: Option<Href>,
    }
    #[derive(Deserialize)]
    struct Href {
        href: Option<Lenient>,
    }
    let links: Links = serde_json::from_str(raw?.get()).ok()?;
    links.this?.href.map(|l| l.0)
}

/// A comment's value as text: strings and numbers as they are, anything else flagged.
fn comment_text(
    value: Option<&serde_json::Value>,
    field: impl FnOnce() -> String,
    label: &'static str,
    f: &mut Mismatches,
) -> Option<String> {
    use serde_json::Value;
    match value? {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        other => Some(f.flag(field(), label, EXPECT_STRING, &other.to_string())),
    }
}

pub(super) fn comments_field(raw: Option<&RawValue>, f: &mut Mismatches) -> Vec<Comment> {
    use serde_json::Value;
    let Some(raw) = raw else {
        return Vec::new();
    };
    let items = match serde_json::from_str::<Value>(raw.get()) {
        Ok(Value::Null) => return Vec::new(),
        Ok(Value::Array(items)) => items,
        _ => {
            f.flag(
                "comments".into(),
                "comments",
                "an array of comment objects",
                raw.get(),
            );
            return Vec::new();
        }
    };
    let mut comments = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let Value::Object(c) = item else {
            f.flag(
                format!("comments[{i}]"),
                "comments",
                "a comment object",
                &item.to_string(),
            );
            continue;
        };
        let at = |name: &str| format!("comments[{i}].{name}");
        let created = c
            .get("createdAt")
            .filter(|v| !v.is_null())
            .or(c.get("createAt"));
        comments.push(Comment {
            id: comment_text(c.get("id"), || at("id"), "comments.id", f),
            content: comment_text(c.get("content"), || at("content"), "comments.content", f),
            user_name: comment_text(c.get("userName"), || at("userName"), "comments.userName", f),
            created_at: comment_text(created, || at("createdAt"), "comments.createdAt", f),
            attachments: attachments(c.get("attachment"), i, f),
            status: comment_text(c.get("status"), || at("status"), "comments.status", f),
        });
    }
    comments
}

fn attachments(
    value: Option<&serde_json::Value>,
    comment: usize,
    f: &mut Mismatches,
) -> Vec<Attachment> {
    use serde_json::Value;
    let items = match value {
        None | Some(Value::Null) => return Vec::new(),
        Some(Value::Array(items)) => items,
        Some(other) => {
            f.flag(
                format!("comments[{comment}].attachment"),
                "comments.attachment",
                "an array of attachment objects",
                &other.to_string(),
            );
            return Vec::new();
        }
    };
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let at = |name: &str| format!("comments[{comment}].attachment[{i}].{name}");
        let Value::Object(a) = item else {
            f.flag(
                format!("comments[{comment}].attachment[{i}]"),
                "comments.attachment",
                "an attachment object",
                &item.to_string(),
            );
            continue;
        };
        out.push(Attachment {
            original_file_name: comment_text(
                a.get("originalFileName"),
                || at("originalFileName"),
                "comments.attachment.originalFileName",
                f,
            ),
            file_path: comment_text(
                a.get("filePath"),
                || at("filePath"),
                "comments.attachment.filePath",
                f,
            ),
        });
    }
    out
}

/// A string that NHN may also send as a number (comment ids, codes, sequence numbers).
struct Lenient(String);

impl<'de> Deserialize<'de> for Lenient {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Lenient;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str(EXPECT_STRING)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Lenient, E> {
                Ok(Lenient(v.to_string()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Lenient, E> {
                Ok(Lenient(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Lenient, E> {
                Ok(Lenient(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Lenient, E> {
                Ok(Lenient(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Lenient, E> {
                Ok(Lenient(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}
