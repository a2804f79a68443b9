//! `bizrelay templates export DIR [--type T] [--locale L]` and `bizrelay templates list`:
//! the built-in templates written into a folder ready to edit (so an installed binary, under
//! systemd or in Docker, can be customised without the source tree), and which built-ins the
//! config's template folder overrides.
//!
//! Invariant: export never overwrites a file (an operator's edits are not lost to a second
//! run); it says which it left alone.

use std::path::Path;
use std::process::ExitCode;

use serde_json::json;

use super::{OutputFormat, count, out};
use crate::config::Loaded;
use crate::destination::{self, DestinationKind};
use crate::locale::Locale;
use crate::render::Origin;

/// The types named by `--type` (all without it), or an operator-worded error.
fn kinds(filter: Option<&str>) -> Result<Vec<DestinationKind>, String> {
    match filter {
        None => Ok(destination::ALL.to_vec()),
        Some(t) => DestinationKind::parse(t).map(|k| vec![k]).ok_or_else(|| {
            let known: Vec<&str> = destination::ALL.iter().map(|k| k.as_str()).collect();
            format!(
                "no destination type `{}` (types: {})",
                out::cell(t),
                known.join(", ")
            )
        }),
    }
}

fn locales(filter: Option<&str>) -> Result<Vec<Locale>, String> {
    match filter {
        None => Ok(Locale::ALL.to_vec()),
        Some(l) => Locale::ALL
            .into_iter()
            .find(|x| x.as_str() == l)
            .map(|x| vec![x])
            .ok_or_else(|| {
                let known: Vec<&str> = Locale::ALL.iter().map(|x| x.as_str()).collect();
                format!(
                    "no locale `{}` (locales: {})",
                    out::cell(l),
                    known.join(", ")
                )
            }),
    }
}

pub fn export(dir: &Path, kind: Option<&str>, locale: Option<&str>) -> ExitCode {
    let (kinds, locales) = match (kinds(kind), locales(locale)) {
        (Ok(k), Ok(l)) => (k, l),
        (Err(e), _) | (_, Err(e)) => {
            out::err(&format!("error: {e}"));
            return ExitCode::from(2);
        }
    };
    let shown = out::cell(&dir.display().to_string()).into_owned();
    let (mut written, mut kept) = (0, Vec::new());
    for kind in &kinds {
        for &l in &locales {
            let folder = dir.join(kind.as_str()).join(l.as_str());
            if let Err(e) = std::fs::create_dir_all(&folder) {
                out::err(&format!(
                    "error: cannot create {}: {e}",
                    out::cell(&folder.display().to_string())
                ));
                return ExitCode::from(2);
            }
            for (name, source) in kind.builtins(l) {
                let path = folder.join(format!("{name}.hbs"));
                let file = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(&path);
                let result = match file {
                    Ok(mut f) => std::io::Write::write_all(&mut f, source.as_bytes()),
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                        kept.push(path.display().to_string());
                        continue;
                    }
                    Err(e) => Err(e),
                };
                if let Err(e) = result {
                    out::err(&format!(
                        "error: cannot write {}: {e}",
                        out::cell(&path.display().to_string())
                    ));
                    return ExitCode::from(2);
                }
                written += 1;
            }
        }
    }
    for path in &kept {
        out::line(&format!(
            "kept {} (exists; not overwritten)",
            out::cell(path)
        ));
    }
    out::line(&format!(
        "wrote {} to {shown}; edit them there and set templates.dir = \"{shown}\" (a file replaces the built-in of its name; delete the ones you keep unchanged)",
        count(written, "template", "templates")
    ));
    ExitCode::SUCCESS
}

pub fn list(loaded: &Loaded, kind: Option<&str>, format: OutputFormat) -> ExitCode {
    let kinds = match kinds(kind) {
        Ok(k) => k,
        Err(e) => {
            out::err(&format!("error: {e}"));
            return ExitCode::from(2);
        }
    };
    let builtin =
        |k: DestinationKind, l: Locale, n: &str| k.builtins(l).iter().any(|(b, _)| *b == n);
    let mut rows = Vec::new();
    for (k, l, name, origin) in loaded.renderer.templates() {
        if !kinds.contains(&k) {
            continue;
        }
        let (source, file) = match origin {
            Origin::Builtin => ("built-in", None),
            Origin::File(p) if builtin(k, l, name) => ("overridden", Some(p.display().to_string())),
            Origin::File(p) => ("file", Some(p.display().to_string())),
        };
        rows.push((k, l, name.to_string(), source, file));
    }
    let dir = loaded.config.templates.dir.display().to_string();
    match format {
        OutputFormat::Json => {
            let items: Vec<_> = rows
                .iter()
                .map(|(k, l, n, s, f)| {
                    json!({"type": k.as_str(), "locale": l.as_str(), "name": n, "source": s, "file": f})
                })
                .collect();
            out::json(&serde_json::Value::Array(items));
        }
        OutputFormat::Text => {
            out::line(&format!(
                "{:<12} {:<6} {:<20} {:<10}  FILE",
                "TYPE", "LOCALE", "NAME", "SOURCE"
            ));
            for (k, l, n, s, f) in &rows {
                out::line(&format!(
                    "{:<12} {:<6} {:<20} {:<10}  {}",
                    k.as_str(),
                    l.as_str(),
                    out::cell(n),
                    s,
                    out::cell(f.as_deref().unwrap_or("-"))
                ));
            }
            let overridden = rows.iter().filter(|r| r.3 == "overridden").count();
            let added = rows.iter().filter(|r| r.3 == "file").count();
            out::line(&format!(
                "{} overridden and {} added by files in {}",
                count(overridden, "built-in", "built-ins"),
                count(added, "template", "templates"),
                out::cell(&dir)
            ));
        }
    }
    ExitCode::SUCCESS
}
