//! Hot reload: SIGHUP, `POST /-/reload`, and changes to the config file or the templates
//! folder (debounced) load the config anew.
//!
//! Invariants:
//! - The new config is validated in full first; if it is invalid the old one stays in force
//!   and every problem is logged with file, key and reason.
//! - A config is swapped whole: requests and deliveries in flight finish with the snapshot
//!   they took, queued deliveries keep their rendered bodies.
//! - Settings that need a restart (listen addresses, store, log) are never half-applied: a
//!   reload that changes them is refused as a whole, with a log line saying so.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio::sync::{Mutex, Notify};
use tokio_util::sync::CancellationToken;

use crate::config::{Config, ConfigSource, Loaded, load};
use crate::state::State;

/// Where the config is read from on every (re)load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceSpec {
    Builtin,
    File(PathBuf),
}

impl SourceSpec {
    pub fn read(&self) -> Result<ConfigSource, crate::config::ConfigError> {
        match self {
            SourceSpec::Builtin => Ok(ConfigSource::Builtin),
            SourceSpec::File(p) => ConfigSource::read(p),
        }
    }
}

#[derive(Clone)]
pub struct Reloader {
    inner: Arc<Inner>,
}

struct Inner {
    state: Arc<State>,
    source: SourceSpec,
    env: HashMap<String, String>,
    serial: Mutex<()>,
    /// Rung after a successful reload (the sender manager starts new destinations).
    reloaded: Arc<Notify>,
}

/// The settings a running process cannot change.
fn restart_only(c: &Config) -> serde_json::Value {
    json!({
        "server": c.server,
        "admin.listen": c.admin.listen,
        "store.path": c.store.path,
        "store.sync": c.store.sync,
        "store.dedup_window": c.store.dedup_window.as_millis() as u64,
        "delivery.shutdown_grace": c.delivery.shutdown_grace.as_millis() as u64,
        // The watcher watches the folder it was started with.
        "templates.dir": c.templates.dir,
        "log": c.log,
    })
}

/// Names of restart-only settings that differ.
fn restart_changes(old: &Config, new: &Config) -> Vec<String> {
    let (a, b) = (restart_only(old), restart_only(new));
    let mut changed = Vec::new();
    if let (Some(a), Some(b)) = (a.as_object(), b.as_object()) {
        for (k, v) in a {
            if b.get(k) != Some(v) {
                changed.push(k.clone());
            }
        }
    }
    changed
}

impl Reloader {
    pub fn new(state: Arc<State>, source: SourceSpec, env: HashMap<String, String>) -> Reloader {
        Reloader {
            inner: Arc::new(Inner {
                state,
                source,
                env,
                serial: Mutex::new(()),
                reloaded: Arc::new(Notify::new()),
            }),
        }
    }

    pub fn reloaded(&self) -> Arc<Notify> {
        Arc::clone(&self.inner.reloaded)
    }

    /// Loads, validates and swaps in the config; returns the new hash or the problems.
    pub async fn reload(&self, trigger: &str) -> Result<String, Vec<String>> {
        let _one_at_a_time = self.inner.serial.lock().await;
        let inner = Arc::clone(&self.inner);
        let result = tokio::task::spawn_blocking(move || -> Result<Loaded, Vec<String>> {
            let source = inner.source.read().map_err(|e| vec![e.to_string()])?;
            load(&source, &inner.env).map_err(|errs| errs.iter().map(ToString::to_string).collect())
        })
        .await
        .unwrap_or_else(|e| Err(vec![format!("reload task failed: {e}")]));
        let state = &self.inner.state;
        let outcome = result.and_then(|new| {
            let old = state.current();
            let changed = restart_changes(&old.config, &new.config);
            if changed.is_empty() {
                Ok(new)
            } else {
                Err(vec![format!(
                    "{}: {} changed; these settings need a restart, so nothing was reloaded",
                    new.origin,
                    changed.join(", ")
                )])
            }
        });
        match outcome {
            Ok(new) => {
                let hash = new.hash.clone();
                for w in &new.warnings {
                    tracing::warn!(warning = %w, "config warning");
                }
                tracing::info!(trigger, config = %new.origin, hash = %hash, routes = new.routes.len(),
                    destinations = new.config.destinations.len(), "config reloaded");
                state.metrics.prepare(&new);
                let before = state.destination_names();
                state.loaded.store(Arc::new(new));
                let names = state.destination_names();
                for gone in state.health.retain(&names) {
                    let _ = state
                        .metrics
                        .destination_healthy
                        .remove_label_values(&[&gone]);
                }
                let removed = before.into_iter().filter(|d| !names.contains(d)).collect();
                crate::app::dead_letter_removed(state, removed).await;
                state
                    .metrics
                    .config_reloads
                    .with_label_values(&["success"])
                    .inc();
                self.inner.reloaded.notify_one();
                Ok(hash)
            }
            Err(problems) => {
                for p in &problems {
                    tracing::error!(trigger, problem = %p, "config reload failed; the previous config stays in force");
                }
                state
                    .metrics
                    .config_reloads
                    .with_label_values(&["failure"])
                    .inc();
                Err(problems)
            }
        }
    }

    /// Reloads on SIGHUP until shut down.
    pub fn watch_sighup(&self, shutdown: CancellationToken) -> tokio::task::JoinHandle<()> {
        let this = self.clone();
        tokio::spawn(async move {
            let Ok(mut hup) =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
            else {
                tracing::warn!("cannot listen for SIGHUP; reload by file change or POST /-/reload");
                return;
            };
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    got = hup.recv() => {
                        if got.is_none() { return; }
                        let _ = this.reload("SIGHUP").await;
                    }
                }
            }
        })
    }

    /// Reloads when the config file or anything under the templates folder changes. Bursts
    /// of file events (editors write, rename, chmod) are debounced into one reload; reads are
    /// not changes (a reload reads the templates, which must not trigger another reload).
    pub fn watch_files(
        &self,
        shutdown: CancellationToken,
        debounce: Duration,
    ) -> Option<tokio::task::JoinHandle<()>> {
        use notify::{EventKind, RecursiveMode, Watcher};
        let config_path = match &self.inner.source {
            SourceSpec::File(p) => Some(p.canonicalize().unwrap_or_else(|_| p.clone())),
            SourceSpec::Builtin => None,
        };
        let templates = self.inner.state.current().config.templates.dir.clone();
        let templates_abs = templates
            .canonicalize()
            .unwrap_or_else(|_| templates.clone());
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<()>();
        let watched_config = config_path.clone();
        let handler = move |res: notify::Result<notify::Event>| {
            let Ok(event) = res else { return };
            if matches!(event.kind, EventKind::Access(_)) {
                return;
            }
            let relevant = event.paths.iter().any(|p| {
                watched_config.as_deref().is_some_and(|c| same_file(p, c))
                    || p.starts_with(&templates_abs)
            });
            if relevant {
                let _ = tx.send(());
            }
        };
        let mut watcher = match notify::recommended_watcher(handler) {
            Ok(w) => w,
            Err(e) => {
                tracing::warn!(error = %e, "cannot watch files; reload with SIGHUP or POST /-/reload");
                return None;
            }
        };
        if let Some(parent) = config_path.as_deref().and_then(Path::parent)
            && let Err(e) = watcher.watch(parent, RecursiveMode::NonRecursive)
        {
            tracing::warn!(error = %e, "cannot watch the config file's folder");
        }
        if templates.is_dir()
            && let Err(e) = watcher.watch(&templates, RecursiveMode::Recursive)
        {
            tracing::warn!(error = %e, "cannot watch the templates folder");
        }
        let this = self.clone();
        Some(tokio::spawn(async move {
            let _keep_watching = watcher;
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    got = rx.recv() => if got.is_none() { return },
                }
                // Wait until the files have been quiet for `debounce`.
                loop {
                    match tokio::time::timeout(debounce, rx.recv()).await {
                        Ok(Some(())) => continue,
                        Ok(None) => return,
                        Err(_) => break,
                    }
                }
                let _ = this.reload("file change").await;
            }
        }))
    }
}

fn same_file(a: &Path, b: &Path) -> bool {
    a == b || a.canonicalize().is_ok_and(|a| a == b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ConfigSource;

    fn config(text: &str) -> Config {
        load(
            &ConfigSource::File {
                path: PathBuf::from("/x/c.toml"),
                text: text.into(),
            },
            &HashMap::new(),
        )
        .map(|l| (*l.config).clone())
        .unwrap()
    }

    #[test]
    fn restart_only_settings_are_detected() {
        let base = config("");
        assert!(restart_changes(&base, &config("[privacy]\nmask_recipient = false\n")).is_empty());
        assert!(restart_changes(&base, &config("[delivery]\nmax_attempts = 3\n")).is_empty());
        assert_eq!(
            restart_changes(&base, &config("[server]\nlisten = \"127.0.0.1:9\"\n")),
            vec!["server"]
        );
        assert_eq!(
            restart_changes(&base, &config("[store]\nsync = \"normal\"\n")),
            vec!["store.sync"]
        );
        assert_eq!(
            restart_changes(&base, &config("[admin]\nlisten = \"127.0.0.1:9\"\n")),
            vec!["admin.listen"]
        );
    }
}
