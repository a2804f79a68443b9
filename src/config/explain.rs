//! Deserialization errors in an operator's words: the key (with the route's name for route
//! keys), what was expected in plain terms and what was found, without Rust type names.
//!
//! Invariants:
//! - A value that came from the environment is never shown ("the value from $VAR"); nor is a
//!   value of a secret key, nor one that looks like a URL or a token.
//! - An error about a key an override variable set names that variable, not the file.

use serde_json::Value;

use super::ConfigError;
use super::env::Origins;
use crate::suggest::closest;

/// Longest text shown as "got …"; longer values are likely tokens and are not shown.
const MAX_SHOWN: usize = 40;

/// One step of a key path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Key(String),
    Index(usize),
}

/// `a.b[0].c`, the form [`Origins`] and the validation messages use.
pub fn raw_key(steps: &[Step]) -> String {
    let mut out = String::new();
    for step in steps {
        match step {
            Step::Key(k) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(k);
            }
            Step::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

/// Whether a key holds a secret: webhook URLs, the admin token, signatures.
pub fn is_secret_key(key: &str) -> bool {
    let parts: Vec<&str> = key.split('.').collect();
    match parts.as_slice() {
        ["admin", "token"] => true,
        ["ingest", s] => s.starts_with("signatures"),
        ["destinations", _, "url" | "signing_secret" | "token"] => true,
        ["destinations", _, "headers", ..] => true,
        ["store", "url"] => true,
        ["enrich", "app_keys", _, "secret_key"] => true,
        _ => false,
    }
}

/// Turns one deserialization error into a [`ConfigError`].
pub fn deserialize_error(
    file: &str,
    err: &serde_path_to_error::Error<serde_json::Error>,
    value: &Value,
    origins: &Origins,
) -> ConfigError {
    let mut steps: Vec<Step> = err
        .path()
        .iter()
        .filter_map(|s| match s {
            serde_path_to_error::Segment::Seq { index } => Some(Step::Index(*index)),
            serde_path_to_error::Segment::Map { key } => Some(Step::Key(key.clone())),
            serde_path_to_error::Segment::Enum { .. } => None,
            serde_path_to_error::Segment::Unknown => Some(Step::Key("?".into())),
        })
        .collect();
    let message = err.inner().to_string();
    let reason = if let Some(rest) = message.strip_prefix("unknown field ") {
        let (field, expected) = split_expected(rest);
        if let Some(field) = backticked(field).into_iter().next()
            && steps.last() != Some(&Step::Key(field.clone()))
        {
            steps.push(Step::Key(field));
        }
        unknown_setting(&steps, &backticked(expected))
    } else if let Some(rest) = message.strip_prefix("missing field ") {
        if let Some(field) = backticked(rest).into_iter().next() {
            steps.push(Step::Key(field));
        }
        "is required".to_string()
    } else {
        let found = found(&steps, value, origins);
        let got = |expected: String| match &found {
            Some(f) => format!("expected {expected}, got {f}"),
            None => format!("expected {expected}"),
        };
        if let Some(rest) = message.strip_prefix("unknown variant ") {
            got(one_of(&backticked(split_expected(rest).1)))
        } else if let Some(rest) = message
            .strip_prefix("invalid type: ")
            .or_else(|| message.strip_prefix("invalid value: "))
            .or_else(|| message.strip_prefix("invalid length "))
        {
            got(expected_phrase(split_expected(rest).1))
        } else if message.starts_with("data did not match any variant of untagged enum") {
            got("text or a list of texts".into())
        } else if message == "invalid socket address syntax" {
            got("an address like \"127.0.0.1:8080\"".into())
        } else {
            without_quoted(&message)
        }
    };
    let key = raw_key(&steps);
    ConfigError {
        file: origins
            .override_of(&key)
            .map_or_else(|| file.to_string(), str::to_string),
        key: shown_key(&steps, value, origins),
        reason,
    }
}

/// `unknown setting (did you mean max_attempts?)`, or the known settings when none is close.
fn unknown_setting(steps: &[Step], known: &[String]) -> String {
    let word = match steps.last() {
        Some(Step::Key(k)) => k.as_str(),
        _ => "",
    };
    match closest(word, known.iter().map(String::as_str)) {
        Some(near) => format!("unknown setting (did you mean {near}?)"),
        None if known.is_empty() => "unknown setting".into(),
        None => format!("unknown setting (known: {})", known.join(", ")),
    }
}

/// Splits serde's "X, expected Y" into (X, Y).
fn split_expected(message: &str) -> (&str, &str) {
    match message.split_once(", expected ") {
        Some((found, expected)) => (found, expected),
        None => (message, ""),
    }
}

/// The words serde wrote between backticks.
fn backticked(text: &str) -> Vec<String> {
    text.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

fn one_of(names: &[String]) -> String {
    let quoted: Vec<String> = names.iter().map(|n| format!("\"{n}\"")).collect();
    match quoted.as_slice() {
        [] => "one of the documented values".into(),
        [one] => one.clone(),
        many => format!("one of {}", many.join(", ")),
    }
}

/// serde's "expected" (a Rust type or a visitor's words) in plain terms.
fn expected_phrase(expected: &str) -> String {
    let e = expected.trim();
    match e {
        "u8" | "u16" | "u32" | "u64" | "u128" | "usize" | "i8" | "i16" | "i32" | "i64" | "i128"
        | "isize" => "a whole number".into(),
        "f32" | "f64" => "a number".into(),
        "a boolean" => "true or false".into(),
        "a string" | "a borrowed string" => "text in quotes".into(),
        "path string" => "a path in quotes".into(),
        "a duration" => "a duration like \"30s\"".into(),
        "socket address" => "an address like \"127.0.0.1:8080\"".into(),
        "a sequence" => "a list".into(),
        "a map" => "a table".into(),
        _ if e.starts_with("struct ") => "a table".into(),
        _ if e.contains('`') => one_of(&backticked(e)),
        _ if e.starts_with("a ") || e.starts_with("an ") => e.to_string(),
        _ => "a different kind of value".into(),
    }
}

/// What was found at the key, in words that never reveal a secret.
fn found(steps: &[Step], root: &Value, origins: &Origins) -> Option<String> {
    let key = raw_key(steps);
    if let Some(source) = origins.of(&key) {
        return Some(source.instead_of_value());
    }
    let value = value_at(root, steps)?;
    Some(match value {
        Value::String(_) if is_secret_key(&key) => "a value that is not shown (a secret)".into(),
        Value::String(s) if s.contains("://") => "a URL (not shown: it may hold a secret)".into(),
        Value::String(s) if s.chars().count() > MAX_SHOWN => {
            format!("{} characters of text (not shown)", s.chars().count())
        }
        Value::String(s) => format!("{s:?}"),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Null => "nothing".into(),
        Value::Array(_) => "a list".into(),
        Value::Object(_) => "a table".into(),
    })
}

fn value_at<'v>(root: &'v Value, steps: &[Step]) -> Option<&'v Value> {
    steps.iter().try_fold(root, |v, step| match step {
        Step::Key(k) => v.get(k.as_str()),
        Step::Index(i) => v.get(*i),
    })
}

/// The key as operators read it: `routes[3] (failures).group.wait`.
pub fn shown_key(steps: &[Step], root: &Value, origins: &Origins) -> String {
    let mut out = String::new();
    for (n, step) in steps.iter().enumerate() {
        match step {
            Step::Key(k) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(k);
            }
            Step::Index(i) => {
                out.push_str(&format!("[{i}]"));
                let is_route = n == 1 && steps[0] == Step::Key("routes".into());
                if is_route
                    && origins.of(&format!("routes[{i}].name")).is_none()
                    && let Some(name) = root["routes"][*i]["name"].as_str()
                {
                    out.push_str(&format!(" ({name})"));
                }
            }
        }
    }
    out
}

/// A message with anything in quotes or backticks left out (it may quote a value).
pub fn without_quoted(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut open: Option<char> = None;
    for c in message.chars() {
        match open {
            Some(q) if c == q => {
                out.push('…');
                out.push(c);
                open = None;
            }
            Some(_) => {}
            None if c == '"' || c == '`' => {
                open = Some(c);
                out.push(c);
            }
            None => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expected_phrases_carry_no_rust_types() {
        for (serde, plain) in [
            ("u32", "a whole number"),
            ("usize", "a whole number"),
            ("f64", "a number"),
            ("a boolean", "true or false"),
            ("a duration", "a duration like \"30s\""),
            ("struct ServerConfig", "a table"),
            ("`full` or `normal`", "one of \"full\", \"normal\""),
            ("one of `slack`, `teams`", "one of \"slack\", \"teams\""),
            ("tuple struct Foo", "a different kind of value"),
        ] {
            assert_eq!(expected_phrase(serde), plain);
        }
    }

    #[test]
    fn quoted_text_is_left_out() {
        assert_eq!(
            without_quoted("unknown variant `SIGsecret`, expected \"x\""),
            "unknown variant `…`, expected \"…\""
        );
    }

    #[test]
    fn route_keys_carry_the_route_name() {
        let root =
            serde_json::json!({"routes": [{"name": "a"}, {"name": "failures", "group": {}}]});
        let steps = vec![
            Step::Key("routes".into()),
            Step::Index(1),
            Step::Key("group".into()),
            Step::Key("wait".into()),
        ];
        assert_eq!(
            shown_key(&steps, &root, &Origins::default()),
            "routes[1] (failures).group.wait"
        );
        assert_eq!(raw_key(&steps), "routes[1].group.wait");
        let list = vec![
            Step::Key("ingest".into()),
            Step::Key("signatures".into()),
            Step::Index(0),
        ];
        assert_eq!(
            shown_key(&list, &root, &Origins::default()),
            "ingest.signatures[0]"
        );
        assert!(is_secret_key("ingest.signatures[0]"));
        assert!(is_secret_key("destinations.ops.url"));
        assert!(!is_secret_key("destinations.ops.burst"));
        assert!(is_secret_key("destinations.tickets.signing_secret"));
        assert!(is_secret_key("destinations.tickets.headers.X-Api-Key"));
        assert!(is_secret_key("store.url"));
    }
}
