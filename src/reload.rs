//! Hot reload: SIGHUP, `POST /-/reload`, and changes to the config file or the templates
//! folder (once they have stopped changing, see [`watch`]) load the config anew.
//!
//! Invariants:
//! - The new config is validated in full first, with the same rehearsal as `bizrelay check`
//!   ([`crate::preflight`]); if anything is wrong the old one stays in force, every problem
//!   is logged with file, key and reason, counted, and answered 422 over HTTP.
//! - A reload never leaves bizrelay without destinations or without routes (an emptied or
//!   half-written file): every hook would be dropped as unrouted.
//! - A config is swapped whole: requests and deliveries in flight finish with the snapshot
//!   they took, queued deliveries keep their rendered bodies.
//! - Settings that need a restart (listen addresses, store, log) are never half-applied: a
//!   reload that changes them is refused as a whole, with a log line saying so.

mod watch;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

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
        // Compared by a digest: the URL may hold a password, and Secret serialises redacted.
        "store.url": c.store.url.as_ref().map(|u| {
            use sha2::Digest;
            hex::encode(sha2::Sha256::digest(u.expose().as_bytes()))
        }),
        "store.commit_timeout": c.store.commit_timeout.as_millis() as u64,
        "store.lease": c.store.lease.as_millis() as u64,
        "store.pool_size": c.store.pool_size,
        "delivery.shutdown_grace": c.delivery.shutdown_grace.as_millis() as u64,
        // The watcher watches the folder it was started with.
        "templates.dir": c.templates.dir,
        "log": c.log,
    })
}

/// Restart-only settings by their full key (`server.max_body_bytes`, not `server`).
fn restart_only_keys(c: &Config) -> Vec<(String, serde_json::Value)> {
    let mut out = Vec::new();
    if let Some(map) = restart_only(c).as_object() {
        for (k, v) in map {
            match v.as_object() {
                Some(inner) => out.extend(
                    inner
                        .iter()
                        .map(|(ik, iv)| (format!("{k}.{ik}"), iv.clone())),
                ),
                None => out.push((k.clone(), v.clone())),
            }
        }
    }
    out
}

/// Names of restart-only settings that differ.
fn restart_changes(old: &Config, new: &Config) -> Vec<String> {
    let new_keys = restart_only_keys(new);
    restart_only_keys(old)
        .into_iter()
        .filter(|(k, v)| !new_keys.iter().any(|(nk, nv)| nk == k && nv == v))
        .map(|(k, _)| k)
        .collect()
}

/// Why a valid config must still not replace the running one.
fn refusals(old: &Loaded, new: &Loaded) -> Vec<String> {
    let mut problems = Vec::new();
    let origin = &new.origin;
    if new.config.destinations.is_empty() {
        problems.push(format!(
            "{origin}: destinations: none configured; a reload may not leave bizrelay without destinations, so nothing was reloaded"
        ));
    }
    if new.routes.is_empty() {
        problems.push(format!(
            "{origin}: routes: none configured; every hook would be dropped as unrouted, so nothing was reloaded"
        ));
    }
    let changed = restart_changes(&old.config, &new.config);
    if !changed.is_empty() {
        problems.push(format!(
            "{origin}: {} changed; these settings need a restart, so nothing was reloaded",
            changed.join(", ")
        ));
    }
    if problems.is_empty() {
        let (rendering, _) = crate::preflight::render_all(new);
        problems.extend(rendering.into_iter().map(|p| format!("{origin}: {p}")));
    }
    problems
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
        let old = self.inner.state.current();
        let outcome = tokio::task::spawn_blocking(move || -> Result<Loaded, Vec<String>> {
            let source = inner.source.read().map_err(|e| vec![e.to_string()])?;
            let new = load(&source, &inner.env)
                .map_err(|errs| errs.iter().map(ToString::to_string).collect::<Vec<_>>())?;
            let problems = refusals(&old, &new);
            if problems.is_empty() {
                Ok(new)
            } else {
                Err(problems)
            }
        })
        .await
        .unwrap_or_else(|e| Err(vec![format!("reload task failed: {e}")]));
        let state = &self.inner.state;
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
            vec!["server.listen"]
        );
        assert_eq!(
            restart_changes(
                &base,
                &config("[server]\nmax_body_bytes = 2048\n[log]\nlevel = \"debug\"\n")
            ),
            vec!["server.max_body_bytes", "log.level"]
        );
        assert_eq!(
            restart_changes(&base, &config("[store]\nsync = \"normal\"\n")),
            vec!["store.sync"]
        );
        assert_eq!(
            restart_changes(&base, &config("[admin]\nlisten = \"127.0.0.1:9\"\n")),
            vec!["admin.listen"]
        );
        let pg = |url: &str| config(&format!("[store]\nurl = \"{url}\"\n"));
        assert_eq!(
            restart_changes(&pg("postgres://u:a@h/db"), &pg("postgres://u:b@h/db")),
            vec!["store.url"],
            "a changed password is a change, though it is never shown"
        );
        assert!(restart_changes(&base, &config("[store]\nkeep_unrouted = \"1d\"\n")).is_empty());
    }
}
