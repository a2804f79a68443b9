//! Builds a running relay from a loaded config: opens the store, binds the listeners (port 0
//! in tests), starts the dispatcher, one sender per destination, the pruner and the reload
//! watchers, and stops them all in order on one cancellation token.
//!
//! Shutdown order: stop accepting → let open requests finish → stop picking new deliveries →
//! let in-flight posts finish (all within `delivery.shutdown_grace`) → close the store.
//! Anything unfinished stays in the store and resumes on the next start.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::Loaded;
use crate::metrics::Metrics;
use crate::reload::{Reloader, SourceSpec};
use crate::server::{self, listener};
use crate::state::{State, now_ms};
use crate::store::sqlite::SqliteStore;
use crate::{deliver, dispatch};

/// How often old dedup keys and delivered rows are pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(600);

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("cannot open the store {path}: {source}")]
    Store {
        path: String,
        source: crate::store::StoreError,
    },
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("another bizrelay is already serving the store {path} (its lock file {lock} is held)")]
    StoreInUse { path: String, lock: String },
    #[error("cannot lock the store {path}: {source}")]
    Lock {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot build the HTTP client: {0}")]
    Http(reqwest::Error),
}

/// Options that are not part of the config file.
#[derive(Debug, Clone)]
pub struct Options {
    pub source: SourceSpec,
    pub env: HashMap<String, String>,
    /// Watch the config file and templates folder for changes.
    pub watch_files: bool,
}

pub struct App {
    addr: SocketAddr,
    admin_addr: Option<SocketAddr>,
    state: Arc<State>,
    reloader: Reloader,
    shutdown: CancellationToken,
    listeners: Vec<JoinHandle<()>>,
    workers: Vec<JoinHandle<()>>,
    senders: JoinHandle<()>,
    /// Held while serving: one process per store (the dispatcher and senders assume it).
    _store_lock: std::fs::File,
}

impl App {
    pub async fn build(loaded: Loaded, options: Options) -> Result<App, AppError> {
        let cfg = Arc::clone(&loaded.config);
        let store_lock = lock_store(&cfg.store.path)?;
        let client = deliver::client().map_err(AppError::Http)?;
        let store = SqliteStore::open(&cfg.store.path, cfg.store.sync, cfg.store.dedup_window)
            .map_err(|source| AppError::Store {
                path: cfg.store.path.display().to_string(),
                source,
            })?;
        let main = listener::bind(cfg.server.listen)
            .await
            .map_err(|source| AppError::Bind {
                addr: cfg.server.listen,
                source,
            })?;
        let admin = match cfg.admin.listen {
            Some(addr) => Some(
                listener::bind(addr)
                    .await
                    .map_err(|source| AppError::Bind { addr, source })?,
            ),
            None => None,
        };
        let addr = main.local_addr().map_err(|source| AppError::Bind {
            addr: cfg.server.listen,
            source,
        })?;
        let admin_addr = admin.as_ref().and_then(|l| l.local_addr().ok());

        for w in &loaded.warnings {
            tracing::warn!(warning = %w, "config warning");
        }
        let state = Arc::new(State::new(loaded, Arc::new(store), Metrics::new()));
        dead_letter_orphans(&state).await;
        let reloader = Reloader::new(
            Arc::clone(&state),
            options.source.clone(),
            options.env.clone(),
        );
        let shutdown = CancellationToken::new();
        let grace = cfg.delivery.shutdown_grace;

        let mut listeners = vec![listener::serve(
            main,
            server::main_routes(Arc::clone(&state), reloader.clone(), admin.is_none()),
            cfg.server.header_read_timeout,
            shutdown.clone(),
            grace,
        )];
        if let Some(admin) = admin {
            listeners.push(listener::serve(
                admin,
                server::admin_routes(Arc::clone(&state), reloader.clone()),
                cfg.server.header_read_timeout,
                shutdown.clone(),
                grace,
            ));
        }
        let delivery_stop = CancellationToken::new();
        let mut workers = vec![
            tokio::spawn(dispatch::run(Arc::clone(&state), delivery_stop.clone())),
            tokio::spawn(prune_loop(Arc::clone(&state), delivery_stop.clone())),
            reloader.watch_sighup(shutdown.clone()),
        ];
        if options.watch_files
            && let Some(w) = reloader.watch_files(shutdown.clone(), Duration::from_millis(300))
        {
            workers.push(w);
        }
        let senders = tokio::spawn(run_senders(
            Arc::clone(&state),
            client,
            reloader.reloaded(),
            delivery_stop.clone(),
        ));
        // Senders stop picking new deliveries as soon as shutdown starts (a post in flight
        // finishes within the grace period); everything else waits in the store.
        let stop_delivery = {
            let shutdown = shutdown.clone();
            tokio::spawn(async move {
                shutdown.cancelled().await;
                delivery_stop.cancel();
            })
        };
        workers.push(stop_delivery);

        tracing::info!(listen = %addr, admin = ?admin_addr, store = %cfg.store.path.display(),
            config = %state.current().origin, hash = %state.current().hash, "bizrelay is listening");
        Ok(App {
            addr,
            admin_addr,
            state,
            reloader,
            shutdown,
            listeners,
            workers,
            senders,
            _store_lock: store_lock,
        })
    }

    /// The webhook listener's address (the real port when configured with port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The operator listener's address, when `admin.listen` is set.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin_addr
    }

    pub fn state(&self) -> &Arc<State> {
        &self.state
    }

    pub fn reloader(&self) -> &Reloader {
        &self.reloader
    }

    /// A token that stops the app when cancelled (signals are wired to it by the binary).
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Runs until the shutdown token is cancelled, then stops in order.
    pub async fn run_until_stopped(self) {
        self.shutdown.cancelled().await;
        self.stop().await;
    }

    /// Stops now: in-flight requests and posts get `delivery.shutdown_grace` to finish.
    pub async fn stop(self) {
        let grace = self.state.current().config.delivery.shutdown_grace;
        tracing::info!(grace_ms = grace.as_millis() as u64, "shutting down");
        self.shutdown.cancel();
        let deadline = tokio::time::Instant::now() + grace + Duration::from_millis(200);
        for l in self.listeners {
            let _ = tokio::time::timeout_at(deadline, l).await;
        }
        if tokio::time::timeout_at(deadline, self.senders)
            .await
            .is_err()
        {
            tracing::warn!(
                "a post was still in flight at the end of the grace period; it will be resent after restart"
            );
        }
        for w in self.workers {
            w.abort();
            let _ = w.await;
        }
        tracing::info!("stopped; unfinished work stays in the store");
    }
}

/// One sender per configured destination; destinations added by a reload get theirs too.
async fn run_senders(
    state: Arc<State>,
    client: reqwest::Client,
    reloaded: Arc<tokio::sync::Notify>,
    stop: CancellationToken,
) {
    let mut running: HashMap<String, JoinHandle<()>> = HashMap::new();
    loop {
        running.retain(|_, h| !h.is_finished());
        for name in state.destination_names() {
            if let std::collections::hash_map::Entry::Vacant(slot) = running.entry(name.clone()) {
                let healthy = !state.health.unhealthy().contains_key(&name);
                state
                    .metrics
                    .destination_healthy
                    .with_label_values(&[&name])
                    .set(i64::from(healthy));
                slot.insert(tokio::spawn(deliver::run(
                    Arc::clone(&state),
                    name,
                    client.clone(),
                    stop.clone(),
                )));
            }
        }
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = reloaded.notified() => {}
        }
    }
    for (_, h) in running {
        let _ = h.await;
    }
}

/// Takes the store's lock file (`<store>.lock`), so a second server on the same store refuses
/// to start instead of posting everything twice. The CLI's dead-letter commands do not take it.
fn lock_store(path: &std::path::Path) -> Result<std::fs::File, AppError> {
    let lock = std::path::PathBuf::from(format!("{}.lock", path.display()));
    let io = |source| AppError::Lock {
        path: path.display().to_string(),
        source,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock)
        .map_err(io)?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(AppError::StoreInUse {
            path: path.display().to_string(),
            lock: lock.display().to_string(),
        }),
        Err(std::fs::TryLockError::Error(e)) => Err(io(e)),
    }
}

/// Pending deliveries of destinations the config no longer has would wait forever unseen:
/// move them to the dead-letter list, where operators see and can replay them.
pub async fn dead_letter_orphans(state: &State) {
    match state
        .store
        .dead_letter_orphans(state.destination_names(), now_ms())
        .await
    {
        Ok(0) => {}
        Ok(n) => tracing::warn!(
            deliveries = n,
            "deliveries to destinations no longer in the config were dead-lettered"
        ),
        Err(e) => {
            tracing::error!(error = %e, "cannot dead-letter deliveries to removed destinations")
        }
    }
}

/// Prunes old dedup keys, delivered rows and what nothing references, in small chunks.
async fn prune_loop(state: Arc<State>, stop: CancellationToken) {
    loop {
        let cfg = Arc::clone(&state.current().config);
        let now = now_ms();
        let seen_before =
            now - i64::try_from(cfg.store.dedup_window.as_millis()).unwrap_or(i64::MAX);
        let delivered_before =
            now - i64::try_from(cfg.store.keep_delivered.as_millis()).unwrap_or(i64::MAX);
        loop {
            match state.store.prune(seen_before, delivered_before).await {
                Ok(s) if s.seen + s.hooks + s.deliveries + s.rejected == 0 => break,
                Ok(s) => tracing::debug!(
                    seen = s.seen,
                    hooks = s.hooks,
                    deliveries = s.deliveries,
                    "pruned"
                ),
                Err(e) => {
                    tracing::warn!(error = %e, "pruning failed; will try again later");
                    break;
                }
            }
            if stop.is_cancelled() {
                return;
            }
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(PRUNE_EVERY) => {}
        }
    }
}
