//! Loading: file text (or the built-in default) → `${VAR}` substitution → environment
//! overrides (`BIZRELAY__SECTION__KEY`, through the `config` crate) → typed structs →
//! templates → whole-config validation.
//!
//! Invariant: every error names where the value came from (the file, or the override
//! variable) and never shows a value taken from the environment.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::Value;
use sha2::{Digest, Sha256};

use super::env::{self, OVERRIDE_PREFIX, Origins};
use super::explain::{self, is_secret_key, without_quoted};
use super::{Config, ConfigError, Loaded, validate};
use crate::render::Renderer;

/// The config used when no file is given: listen on 127.0.0.1:8080, print to the console.
pub const DEFAULT_CONFIG: &str = include_str!("default.toml");

/// Where the config comes from.
#[derive(Debug, Clone)]
pub enum ConfigSource {
    Builtin,
    File { path: PathBuf, text: String },
}

impl ConfigSource {
    /// Reads a file; a missing file is an error (never a silent fallback to the default).
    pub fn read(path: &Path) -> Result<ConfigSource, ConfigError> {
        std::fs::read_to_string(path)
            .map(|text| ConfigSource::File {
                path: path.to_path_buf(),
                text,
            })
            .map_err(|e| ConfigError {
                file: path.display().to_string(),
                key: "(file)".into(),
                reason: format!("cannot read: {e}"),
            })
    }

    pub fn name(&self) -> String {
        match self {
            ConfigSource::Builtin => "built-in default".into(),
            ConfigSource::File { path, .. } => path.display().to_string(),
        }
    }

    fn text(&self) -> &str {
        match self {
            ConfigSource::Builtin => DEFAULT_CONFIG,
            ConfigSource::File { text, .. } => text,
        }
    }

    /// Folder that relative paths in the config are resolved against.
    fn base_dir(&self) -> PathBuf {
        match self {
            ConfigSource::File { path, .. } => {
                path.parent().map(Path::to_path_buf).unwrap_or_default()
            }
            ConfigSource::Builtin => PathBuf::new(),
        }
    }
}

/// Loads and validates a config. `env` is the process environment (or a test's map).
pub fn load(
    source: &ConfigSource,
    env: &HashMap<String, String>,
) -> Result<Loaded, Vec<ConfigError>> {
    let file = source.name();
    let err = |key: &str, reason: String| ConfigError {
        file: file.clone(),
        key: key.to_string(),
        reason,
    };

    let mut table: toml::Table = toml::from_str(source.text()).map_err(|e| {
        let (line, col) = e
            .span()
            .map(|s| line_col(source.text(), s.start))
            .unwrap_or((0, 0));
        vec![err(
            "(syntax)",
            format!("line {line}, column {col}: {}", e.message().trim()),
        )]
    })?;

    let mut errors = Vec::new();
    let mut origins = Origins::default();
    env::substitute_table(&mut table, env, &mut origins, &mut |key, reason| {
        errors.push(err(key, reason))
    });
    if !errors.is_empty() {
        return Err(errors);
    }
    env::record_overrides(&mut origins, env);
    let text = toml::to_string(&table).map_err(|e| vec![err("(file)", e.to_string())])?;

    let layered = config::Config::builder()
        .add_source(config::File::from_str(&text, config::FileFormat::Toml))
        .add_source(
            config::Environment::with_prefix("BIZRELAY")
                .separator("__")
                .try_parsing(true)
                .list_separator(",")
                .with_list_parse_key("ingest.signatures")
                .with_list_parse_key("ingest.app_keys")
                .source(Some(env.clone().into_iter().collect())),
        )
        .build()
        .map_err(|e| vec![err("(environment)", without_quoted(&e.to_string()))])?;
    let mut value: Value = layered
        .try_deserialize()
        .map_err(|e| vec![err("(file)", without_quoted(&e.to_string()))])?;
    verbatim_env_overrides(&mut value, env);
    let mut config: Config = serde_path_to_error::deserialize(&value)
        .map_err(|e| vec![explain::deserialize_error(&file, &e, &value, &origins)])?;

    if config.templates.dir.is_relative() {
        config.templates.dir = source.base_dir().join(&config.templates.dir);
    }
    if config.store.path.is_relative() && matches!(source, ConfigSource::File { .. }) {
        config.store.path = source.base_dir().join(&config.store.path);
    }
    let renderer = Renderer::load(Some(&config.templates.dir)).map_err(|errs| {
        errs.into_iter()
            .map(|e| ConfigError {
                file: e.path,
                key: "templates".into(),
                reason: e.reason,
            })
            .collect::<Vec<_>>()
    })?;

    let (routes, mut warnings) = validate::validate(&file, &config, &renderer).map_err(|errs| {
        errs.into_iter()
            .map(|e| hide_env_values(e, &origins))
            .collect::<Vec<_>>()
    })?;
    if !config.templates.dir.is_dir() && matches!(source, ConfigSource::File { .. }) {
        warnings.push(format!(
            "templates.dir {} does not exist: using the built-in templates only",
            config.templates.dir.display()
        ));
    }

    let hash = config_hash(&config, &renderer);
    Ok(Loaded {
        config: Arc::new(config),
        routes: Arc::new(routes),
        renderer: Arc::new(renderer),
        origin: file,
        hash,
        warnings,
    })
}

/// Secrets and ids taken from the environment verbatim. The `config` crate parses environment
/// values (so `BIZRELAY__SERVER__MAX_BODY_BYTES=2048` is a number), which would turn a
/// signature such as `00123` into the number 123 and refuse every real request.
fn verbatim_env_overrides(value: &mut serde_json::Value, env: &HashMap<String, String>) {
    use serde_json::Value;
    for (name, raw) in env {
        let Some(rest) = name.strip_prefix(OVERRIDE_PREFIX) else {
            continue;
        };
        let path: Vec<String> = rest.split("__").map(str::to_lowercase).collect();
        let keys: Vec<&str> = path.iter().map(String::as_str).collect();
        let new = match keys.as_slice() {
            ["ingest", "signatures" | "app_keys"] => Value::Array(
                raw.split(',')
                    .map(|s| Value::String(s.trim().to_string()))
                    .collect(),
            ),
            ["admin", "token"]
            | ["destinations", _, "url" | "signing_secret" | "token"]
            | ["store", "url"]
            | ["enrich", "app_keys", _, "secret_key"] => Value::String(raw.clone()),
            _ => continue,
        };
        let mut at = &mut *value;
        for key in &keys[..keys.len() - 1] {
            if !at.is_object() {
                *at = Value::Object(serde_json::Map::new());
            }
            at = at
                .as_object_mut()
                .map(|m| m.entry(key.to_string()).or_insert(Value::Null))
                .expect("made an object above");
        }
        if !at.is_object() {
            *at = Value::Object(serde_json::Map::new());
        }
        if let Some(m) = at.as_object_mut() {
            m.insert(keys[keys.len() - 1].to_string(), new);
        }
    }
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before
        .rfind('\n')
        .map_or(before.len(), |nl| before.len() - nl - 1)
        + 1;
    (line, col)
}

/// A validation error about a key whose value came from the environment: named by its
/// override variable, and with any quoted value left out.
fn hide_env_values(mut e: ConfigError, origins: &Origins) -> ConfigError {
    // `routes[0] (name).to` → `routes[0].to`
    let key = match (e.key.find(" ("), e.key.find(')')) {
        (Some(open), Some(close)) if open < close => {
            format!("{}{}", &e.key[..open], &e.key[close + 1..])
        }
        _ => e.key.clone(),
    };
    if let Some(var) = origins.override_of(&key) {
        e.file = var.to_string();
    }
    let hidden = without_quoted(&e.reason);
    if hidden != e.reason
        && let Some(source) = origins.involving(&key)
    {
        e.reason = format!("{hidden} ({})", source.instead_of_value());
    }
    e
}

/// Short hash of the effective config and template sources, to tell versions apart. Secrets
/// are replaced by placeholders first, so the hash neither changes when only a secret does nor
/// lets anyone confirm a guessed signature or token.
fn config_hash(config: &Config, renderer: &Renderer) -> String {
    let mut value = serde_json::to_value(config).unwrap_or_default();
    hide_secrets(&mut value, "");
    let mut hasher = Sha256::new();
    hasher.update(serde_json::to_vec(&value).unwrap_or_default());
    hasher.update(renderer.fingerprint().as_bytes());
    hex::encode(&hasher.finalize()[..6])
}

fn hide_secrets(value: &mut Value, key: &str) {
    let secret = is_secret_key(key);
    match value {
        Value::String(s) if secret => *s = "<secret>".into(),
        Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                let inner = if secret {
                    key.to_string()
                } else {
                    format!("{key}[{i}]")
                };
                hide_secrets(item, &inner);
            }
        }
        Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                let inner = if key.is_empty() {
                    k.clone()
                } else {
                    format!("{key}.{k}")
                };
                hide_secrets(v, &inner);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests;
