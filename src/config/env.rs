//! Values from the environment: `${VAR}` and `${VAR:-default}` inside the file's strings, and
//! `BIZRELAY__SECTION__KEY` overrides. Records which keys they set, so that an error about
//! such a key says "the value from $VAR" and never echoes what may be a secret.
//!
//! Invariants:
//! - Every key whose value holds text from the environment is in [`Origins`], with the
//!   variables' names; a `${VAR:-default}` that fell back to its default is text from the
//!   file and is not recorded.
//! - `${VAR:-default}` takes the default when VAR is unset or empty (docker compose's rule);
//!   `${VAR:-}` is an empty default. `$${` is a literal `${`.

use std::collections::{BTreeMap, HashMap};

/// Prefix of the variables that override config keys (`BIZRELAY__DELIVERY__MAX_ATTEMPTS`).
pub const OVERRIDE_PREFIX: &str = "BIZRELAY__";

/// Where a key's value came from, when the environment had a hand in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnvSource {
    /// `${VAR}` references inside a string of the file.
    Substituted(Vec<String>),
    /// A `BIZRELAY__…` variable set the value.
    Override(String),
}

impl EnvSource {
    /// What to say instead of the value: "the value from $A" (or "$A and $B").
    pub fn instead_of_value(&self) -> String {
        let names: Vec<String> = match self {
            EnvSource::Substituted(vars) => vars.iter().map(|v| format!("${v}")).collect(),
            EnvSource::Override(var) => vec![format!("${var}")],
        };
        format!("the value from {}", names.join(" and "))
    }
}

/// Keys (`server.listen`, `ingest.signatures[0]`) whose values came from the environment.
#[derive(Debug, Clone, Default)]
pub struct Origins {
    keys: BTreeMap<String, EnvSource>,
}

impl Origins {
    /// The source of `key`, or of the nearest enclosing key the environment set (an override
    /// of `ingest.signatures` covers `ingest.signatures[0]`).
    pub fn of(&self, key: &str) -> Option<&EnvSource> {
        self.keys
            .iter()
            .filter(|(k, _)| {
                key == k.as_str()
                    || key
                        .strip_prefix(k.as_str())
                        .is_some_and(|rest| rest.starts_with('.') || rest.starts_with('['))
            })
            // An override replaced whatever the file said; among equals the nearest key wins.
            .max_by_key(|(k, source)| (matches!(source, EnvSource::Override(_)), k.len()))
            .map(|(_, source)| source)
    }

    /// A source of `key`, of an enclosing key or of a key inside it (`routes[0].to` holds
    /// `routes[0].to[1]`): anything about `key` may show text from the environment.
    pub fn involving(&self, key: &str) -> Option<&EnvSource> {
        self.of(key).or_else(|| {
            self.keys
                .iter()
                .find(|(k, _)| {
                    k.strip_prefix(key)
                        .is_some_and(|rest| rest.starts_with('.') || rest.starts_with('['))
                })
                .map(|(_, source)| source)
        })
    }

    /// The override variable that set `key` (or an enclosing key), if any.
    pub fn override_of(&self, key: &str) -> Option<&str> {
        match self.of(key) {
            Some(EnvSource::Override(var)) => Some(var),
            _ => None,
        }
    }

    fn insert(&mut self, key: String, source: EnvSource) {
        self.keys.insert(key, source);
    }
}

/// The override variables and the keys they set (`delivery.max_attempts`), in name order.
pub fn overrides(env: &HashMap<String, String>) -> Vec<(&str, String)> {
    let mut out: Vec<(&str, String)> = env
        .keys()
        .filter_map(|name| {
            let rest = name.strip_prefix(OVERRIDE_PREFIX)?;
            let key = rest
                .split("__")
                .map(str::to_lowercase)
                .collect::<Vec<_>>()
                .join(".");
            Some((name.as_str(), key))
        })
        .collect();
    out.sort();
    out
}

/// Records the override variables' keys.
pub fn record_overrides(origins: &mut Origins, env: &HashMap<String, String>) {
    for (name, key) in overrides(env) {
        origins.insert(key, EnvSource::Override(name.to_string()));
    }
}

/// Replaces `${VAR}` in every string value of the table; reports problems by key and records
/// the keys that took text from the environment.
pub fn substitute_table(
    table: &mut toml::Table,
    env: &HashMap<String, String>,
    origins: &mut Origins,
    report: &mut dyn FnMut(&str, String),
) {
    for (key, value) in table.iter_mut() {
        substitute_value(value, key, env, origins, report);
    }
}

fn substitute_value(
    value: &mut toml::Value,
    path: &str,
    env: &HashMap<String, String>,
    origins: &mut Origins,
    report: &mut dyn FnMut(&str, String),
) {
    match value {
        toml::Value::String(s) => match expand(s, env) {
            Ok(Expanded { text, from_env }) => {
                *s = text;
                if !from_env.is_empty() {
                    origins.insert(path.to_string(), EnvSource::Substituted(from_env));
                }
            }
            Err(reason) => report(path, reason),
        },
        toml::Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                substitute_value(item, &format!("{path}[{i}]"), env, origins, report);
            }
        }
        toml::Value::Table(t) => {
            for (key, value) in t.iter_mut() {
                substitute_value(value, &format!("{path}.{key}"), env, origins, report);
            }
        }
        _ => {}
    }
}

/// A string with its `${…}` references replaced.
#[derive(Debug, PartialEq, Eq)]
pub struct Expanded {
    pub text: String,
    /// The variables whose values went into `text` (not those that fell back to a default).
    pub from_env: Vec<String>,
}

/// Expands `${NAME}` and `${NAME:-default}`; an unset variable without a default is an error
/// naming it (never its would-be value).
pub fn expand(s: &str, env: &HashMap<String, String>) -> Result<Expanded, String> {
    let mut text = String::with_capacity(s.len());
    let mut from_env = Vec::new();
    let mut rest = s;
    while let Some(pos) = rest.find("${") {
        if pos > 0 && rest[..pos].ends_with('$') {
            text.push_str(&rest[..pos - 1]);
            text.push_str("${");
            rest = &rest[pos + 2..];
            continue;
        }
        text.push_str(&rest[..pos]);
        let after = &rest[pos + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| "unterminated ${ (close it with })".to_string())?;
        let reference = &after[..end];
        let (name, default) = match reference.split_once(":-") {
            Some((name, default)) => (name, Some(default)),
            None => (reference, None),
        };
        let valid = !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return Err(format!(
                "`${{{reference}}}` is not a variable reference (write ${{NAME}} or ${{NAME:-default}}; $${{ for a literal ${{)"
            ));
        }
        match (
            env.get(name).filter(|v| !v.is_empty() || default.is_none()),
            default,
        ) {
            (Some(v), _) => {
                text.push_str(v);
                if !from_env.iter().any(|n| n == name) {
                    from_env.push(name.to_string());
                }
            }
            (None, Some(default)) => text.push_str(default),
            (None, None) => {
                return Err(format!(
                    "environment variable {name} is not set (or write ${{{name}:-default}})"
                ));
            }
        }
        rest = &after[end + 1..];
    }
    text.push_str(rest);
    Ok(Expanded { text, from_env })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn text(s: &str, vars: &HashMap<String, String>) -> String {
        expand(s, vars).unwrap().text
    }

    #[test]
    fn expand_rules() {
        let vars = env(&[("A", "1"), ("B", "two"), ("EMPTY", "")]);
        assert_eq!(text("x${A}y${B}", &vars), "x1ytwo");
        assert_eq!(text("cost $${A}", &vars), "cost ${A}");
        assert_eq!(text("no vars $ here", &vars), "no vars $ here");
        assert!(expand("${A", &vars).unwrap_err().contains("unterminated"));
        assert!(
            expand("${A-B}", &vars)
                .unwrap_err()
                .contains("is not a variable reference")
        );
        assert_eq!(
            expand("${NOPE}", &vars).unwrap_err(),
            "environment variable NOPE is not set (or write ${NOPE:-default})"
        );
        // A set variable without a default is taken as it is, even empty.
        assert_eq!(text("[${EMPTY}]", &vars), "[]");
    }

    #[test]
    fn defaults_apply_when_unset_or_empty() {
        let vars = env(&[("A", "1"), ("EMPTY", "")]);
        assert_eq!(
            expand("${A:-zero}", &vars).unwrap(),
            Expanded {
                text: "1".into(),
                from_env: vec!["A".into()]
            }
        );
        assert_eq!(
            expand("${UNSET:-try-bizrelay}", &vars).unwrap(),
            Expanded {
                text: "try-bizrelay".into(),
                from_env: vec![]
            }
        );
        assert_eq!(text("${EMPTY:-fallback}", &vars), "fallback");
        assert_eq!(text("${UNSET:-}", &vars), "");
        assert_eq!(text("a${UNSET:-b:-c}d", &vars), "ab:-cd");
        assert_eq!(
            expand("${A}${A}${UNSET:-x}", &vars).unwrap().from_env,
            vec!["A"]
        );
    }

    #[test]
    fn origins_cover_nested_keys_and_overrides_win() {
        let mut origins = Origins::default();
        origins.insert(
            "ingest.signatures[0]".into(),
            EnvSource::Substituted(vec!["SIG".into()]),
        );
        record_overrides(
            &mut origins,
            &env(&[
                ("BIZRELAY__INGEST__SIGNATURES", "a,b"),
                ("BIZRELAY__DELIVERY__MAX_ATTEMPT", "3"),
                ("BIZRELAY_CONFIG", "x"),
            ]),
        );
        assert_eq!(
            origins.of("ingest.signatures[0]"),
            Some(&EnvSource::Override("BIZRELAY__INGEST__SIGNATURES".into()))
        );
        assert_eq!(
            origins.override_of("delivery.max_attempt"),
            Some("BIZRELAY__DELIVERY__MAX_ATTEMPT")
        );
        assert_eq!(origins.of("delivery.max_attempts"), None);
        assert_eq!(origins.of("delivery"), None);
        assert_eq!(
            EnvSource::Substituted(vec!["A".into(), "B".into()]).instead_of_value(),
            "the value from $A and $B"
        );
    }
}
