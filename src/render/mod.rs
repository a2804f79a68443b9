//! Rendering: one Handlebars registry per (destination type, locale), built-in templates
//! compiled into the binary and overridable from `templates.dir`, and the output checks.
//!
//! Invariants:
//! - A template of a JSON type renders the destination's whole JSON body; `{{value}}` is
//!   escaped by the type's service: for the inside of a JSON string, and against the type's
//!   markup and mentions (Slack's `<!channel>`, Markdown links, `@channel`...), so untrusted
//!   text can neither break the JSON nor ping anyone nor hide a link. `{{{raw}}}` is the
//!   explicit escape hatch.
//! - Overrides: `<dir>/<type>/<name>.hbs` replaces a built-in (or adds a name) for every
//!   locale; `<dir>/<type>/<locale>/<name>.hbs` for that locale only, and wins over the first.
//! - Strict mode: a misspelt variable is an error, caught by `bizrelay check`.
//! - What [`Renderer::render`] returns has been parsed and fitted to the destination's limits;
//!   [`Renderer::render_or_fallback`] never fails, so a notification is never dropped because
//!   of a template.

mod explain;
pub mod helpers;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use handlebars::Handlebars;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::destination::{self, DestinationKind, FallbackInfo, LimitError};
use crate::locale::Locale;

pub use crate::destination::BUILTIN_NAMES;

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
    registries: BTreeMap<(DestinationKind, Locale), Handlebars<'static>>,
    origins: BTreeMap<(DestinationKind, Locale, String), Origin>,
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

/// An override file, read.
struct Override {
    name: String,
    path: PathBuf,
    source: String,
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

    /// Built-ins plus the `.hbs` files under `dir/<type>/` (every locale) and
    /// `dir/<type>/<locale>/`, which replace built-ins of the same name or add new names. A
    /// missing `dir` is not an error (the default folder is optional); unreadable files and
    /// templates that do not compile are, once per file.
    pub fn load(dir: Option<&Path>) -> Result<Renderer, Vec<TemplateLoadError>> {
        let mut errors = Vec::new();
        let mut registries = BTreeMap::new();
        let mut origins = BTreeMap::new();
        let mut hasher = Sha256::new();
        let mut reported = BTreeSet::new();
        for &kind in destination::ALL {
            let sub = dir.map(|d| d.join(kind.as_str()));
            let general = sub
                .as_deref()
                .map(|d| read_overrides(d, &mut hasher, &mut errors))
                .unwrap_or_default();
            for locale in Locale::ALL {
                let mut reg = Handlebars::new();
                reg.set_strict_mode(true);
                reg.set_prevent_indent(true);
                reg.register_escape_fn(move |s| kind.escape(s));
                helpers::register(&mut reg, kind, locale);
                for (name, source) in kind
                    .builtins(locale)
                    .iter()
                    .chain(kind.extra_builtins(locale))
                {
                    if let Err(e) = reg.register_template_string(name, *source) {
                        errors.push(TemplateLoadError {
                            path: format!(
                                "(built-in) {}/{}/{name}.hbs",
                                kind.as_str(),
                                locale.as_str()
                            ),
                            reason: explain::template_error(&e, source),
                        });
                    }
                    origins.insert((kind, locale, name.to_string()), Origin::Builtin);
                }
                let specific = sub
                    .as_deref()
                    .map(|d| read_overrides(&d.join(locale.as_str()), &mut hasher, &mut errors))
                    .unwrap_or_default();
                for file in general.iter().chain(&specific) {
                    match reg.register_template_string(&file.name, file.source.clone()) {
                        Ok(()) => {
                            origins.insert(
                                (kind, locale, file.name.clone()),
                                Origin::File(file.path.clone()),
                            );
                        }
                        Err(e) => {
                            if reported.insert(file.path.clone()) {
                                errors.push(TemplateLoadError {
                                    path: file.path.display().to_string(),
                                    reason: explain::template_error(&e, &file.source),
                                });
                            }
                        }
                    }
                }
                registries.insert((kind, locale), reg);
            }
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

    pub fn has(&self, kind: DestinationKind, locale: Locale, name: &str) -> bool {
        self.origins.contains_key(&(kind, locale, name.to_string()))
    }

    /// Every (type, locale, name, origin), for `check`.
    pub fn templates(&self) -> impl Iterator<Item = (DestinationKind, Locale, &str, &Origin)> {
        self.origins
            .iter()
            .map(|((k, l, n), o)| (*k, *l, n.as_str(), o))
    }

    /// Renders, parses and fits one body.
    pub fn render(
        &self,
        kind: DestinationKind,
        locale: Locale,
        name: &str,
        ctx: &Value,
    ) -> Result<String, RenderError> {
        let reg = self
            .registries
            .get(&(kind, locale))
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
        kind.fit(&rendered).map_err(|source| RenderError::Limit {
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
        locale: Locale,
        name: &str,
        ctx: &Value,
        info: impl FnOnce() -> FallbackInfo,
    ) -> (String, Option<RenderError>) {
        match self.render(kind, locale, name, ctx) {
            Ok(body) => (body, None),
            Err(e) => (kind.fallback(&info()), Some(e)),
        }
    }
}

/// A render error without the rendered text (which may contain payload data).
fn describe(e: &handlebars::RenderError, ctx: &Value) -> String {
    explain::render_error(e, ctx)
}

/// The `.hbs` files directly in `dir` (sorted, hashed into the fingerprint); a missing
/// folder has none.
fn read_overrides(
    dir: &Path,
    hasher: &mut Sha256,
    errors: &mut Vec<TemplateLoadError>,
) -> Vec<Override> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Vec::new(),
        Err(e) => {
            errors.push(TemplateLoadError {
                path: dir.display().to_string(),
                reason: e.to_string(),
            });
            return Vec::new();
        }
    };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "hbs") && !p.is_dir())
        .collect();
    paths.sort();
    let mut out = Vec::new();
    for path in paths {
        let Some(name) = path
            .file_stem()
            .and_then(|s| s.to_str())
            .map(str::to_string)
        else {
            continue;
        };
        match std::fs::read_to_string(&path) {
            Ok(source) => {
                hasher.update(path.to_string_lossy().as_bytes());
                hasher.update(source.as_bytes());
                out.push(Override { name, path, source });
            }
            Err(e) => errors.push(TemplateLoadError {
                path: path.display().to_string(),
                reason: e.to_string(),
            }),
        }
    }
    out
}

#[cfg(test)]
mod golden;
#[cfg(test)]
mod tests;
