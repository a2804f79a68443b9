//! Rendering: one Handlebars registry per destination type, built-in templates compiled into
//! the binary and overridable from `templates.dir`, and the output checks.
//!
//! Invariants:
//! - A Slack or Teams template renders the destination's whole JSON body; `{{value}}` is
//!   escaped for the inside of a JSON string (and, for Slack, mrkdwn's `&`, `<`, `>`; for
//!   Teams, Markdown line breaks and links), so untrusted text can neither break the JSON nor
//!   ping `<!channel>` nor hide a link. `{{{raw}}}` is the explicit escape hatch.
//! - Strict mode: a misspelt variable is an error, caught by `bizrelay check`.
//! - What [`Renderer::render`] returns has been parsed and fitted to the destination's limits;
//!   [`Renderer::render_or_fallback`] never fails, so a notification is never dropped because
//!   of a template.

mod builtin;
mod explain;
pub mod helpers;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use handlebars::Handlebars;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::destination::{self, DestinationKind, FallbackInfo, LimitError};
use crate::text;

pub use builtin::BUILTIN_NAMES;

/// Why a template could not be loaded.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("{path}: {reason}")]
pub struct TemplateLoadError {
    pub path: String,
    pub reason: String,
}

/// Why rendering one body failed.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum RenderError {
    #[error("no {kind} template named `{name}`")]
    Missing { kind: &'static str, name: String },
    #[error("template {kind}/{name}: {reason}")]
    Template {
        kind: &'static str,
        name: String,
        reason: String,
    },
    #[error("template {kind}/{name}: {source}")]
    Limit {
        kind: &'static str,
        name: String,
        source: LimitError,
    },
}

/// Where a template came from, for `check` and logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    Builtin,
    File(PathBuf),
}

pub struct Renderer {
    registries: BTreeMap<DestinationKind, Handlebars<'static>>,
    origins: BTreeMap<(DestinationKind, String), Origin>,
    /// Hash of the override files' paths and contents (built-ins are fixed per binary).
    fingerprint: String,
}

impl std::fmt::Debug for Renderer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Renderer")
            .field("templates", &self.origins)
            .finish()
    }
}

fn escape_for(kind: DestinationKind) -> fn(&str) -> String {
    match kind {
        DestinationKind::Slack => |s| text::json_string_escape(&text::slack_escape(s)),
        DestinationKind::Teams => |s| text::json_string_escape(&text::teams_text(s)),
        DestinationKind::Console => text::strip_controls,
    }
}

impl Renderer {
    /// Built-in templates only.
    pub fn builtin() -> Renderer {
        match Renderer::load(None) {
            Ok(r) => r,
            // The built-ins are compiled and tested with the binary; this cannot fail unless
            // the build itself is broken.
            Err(errors) => panic!("built-in templates do not compile: {errors:?}"),
        }
    }

    /// Built-ins plus the `.hbs` files under `dir/<type>/`, which replace built-ins of the
    /// same name or add new names. A missing `dir` is not an error (the default folder is
    /// optional); unreadable files and templates that do not compile are.
    pub fn load(dir: Option<&Path>) -> Result<Renderer, Vec<TemplateLoadError>> {
        let mut errors = Vec::new();
        let mut registries = BTreeMap::new();
        let mut origins = BTreeMap::new();
        let mut hasher = Sha256::new();
        for kind in DestinationKind::ALL {
            let mut reg = Handlebars::new();
            reg.set_strict_mode(true);
            reg.set_prevent_indent(true);
            reg.register_escape_fn(escape_for(kind));
            helpers::register(&mut reg, kind);
            for (name, source) in builtin::templates(kind) {
                if let Err(e) = reg.register_template_string(name, source) {
                    errors.push(TemplateLoadError {
                        path: format!("(built-in) {}/{name}.hbs", kind.as_str()),
                        reason: explain::template_error(&e, source),
                    });
                }
                origins.insert((kind, name.to_string()), Origin::Builtin);
            }
            if let Some(dir) = dir {
                let sub = dir.join(kind.as_str());
                load_overrides(&mut reg, &mut origins, &mut hasher, kind, &sub, &mut errors);
            }
            registries.insert(kind, reg);
        }
        if errors.is_empty() {
            let fingerprint = hex::encode(&hasher.finalize()[..6]);
            Ok(Renderer {
                registries,
                origins,
                fingerprint,
            })
        } else {
            Err(errors)
        }
    }

    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    pub fn has(&self, kind: DestinationKind, name: &str) -> bool {
        self.origins.contains_key(&(kind, name.to_string()))
    }

    /// Every (type, name, origin), for `check`.
    pub fn templates(&self) -> impl Iterator<Item = (DestinationKind, &str, &Origin)> {
        self.origins.iter().map(|((k, n), o)| (*k, n.as_str(), o))
    }

    /// Renders, parses and fits one body.
    pub fn render(
        &self,
        kind: DestinationKind,
        name: &str,
        ctx: &Value,
    ) -> Result<String, RenderError> {
        let reg = self
            .registries
            .get(&kind)
            .filter(|r| r.has_template(name))
            .ok_or_else(|| RenderError::Missing {
                kind: kind.as_str(),
                name: name.to_string(),
            })?;
        let rendered = reg.render(name, ctx).map_err(|e| RenderError::Template {
            kind: kind.as_str(),
            name: name.to_string(),
            reason: describe(&e, ctx),
        })?;
        destination::fit(kind, &rendered).map_err(|source| RenderError::Limit {
            kind: kind.as_str(),
            name: name.to_string(),
            source,
        })
    }

    /// Like [`Renderer::render`], but a failure yields the built-in fallback message and the
    /// error (to log and count) instead of nothing.
    pub fn render_or_fallback(
        &self,
        kind: DestinationKind,
        name: &str,
        ctx: &Value,
        info: impl FnOnce() -> FallbackInfo,
    ) -> (String, Option<RenderError>) {
        match self.render(kind, name, ctx) {
            Ok(body) => (body, None),
            Err(e) => (destination::fallback(kind, &info()), Some(e)),
        }
    }
}

/// A render error without the rendered text (which may contain payload data), in an
/// operator's words: line and column, the missing variable and the closest context field.
fn describe(e: &handlebars::RenderError, ctx: &Value) -> String {
    explain::render_error(e, ctx)
}

fn load_overrides(
    reg: &mut Handlebars<'static>,
    origins: &mut BTreeMap<(DestinationKind, String), Origin>,
    hasher: &mut Sha256,
    kind: DestinationKind,
    dir: &Path,
    errors: &mut Vec<TemplateLoadError>,
) {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
        Err(e) => {
            errors.push(TemplateLoadError {
                path: dir.display().to_string(),
                reason: e.to_string(),
            });
            return;
        }
    };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "hbs"))
        .collect();
    paths.sort();
    for path in paths {
        let Some(name) = path
            .file_stem()
            .and_then(|s| s.to_str())
            .map(str::to_string)
        else {
            continue;
        };
        let result = std::fs::read_to_string(&path)
            .map_err(|e| e.to_string())
            .and_then(|source| {
                hasher.update(path.to_string_lossy().as_bytes());
                hasher.update(source.as_bytes());
                reg.register_template_string(&name, &source)
                    .map_err(|e| explain::template_error(&e, &source))
            });
        match result {
            Ok(()) => {
                origins.insert((kind, name), Origin::File(path));
            }
            Err(reason) => errors.push(TemplateLoadError {
                path: path.display().to_string(),
                reason,
            }),
        }
    }
}

#[cfg(test)]
mod tests;
