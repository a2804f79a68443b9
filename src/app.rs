//! Builds a running relay from a loaded config: opens the store, binds the listeners (port 0
//! in tests), starts the dispatcher, one sender per destination, the pruner, the store probe
//! and the reload watchers, supervises them, and stops them all in order on one token.
//!
//! Invariants:
//! - A long-running task that ends without being asked to (a panic included) is logged with
//!   its cause and started again (after a backoff), and counted in `/readyz` and metrics.
//! - Shutdown order: stop accepting → let open requests finish → stop picking new deliveries
//!   → let in-flight posts finish (all within `delivery.shutdown_grace`) → close the store
//!   (SQLite: checkpoint and release the lock). Anything unfinished stays in the store and
//!   resumes on the next start (or on another replica).

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::Loaded;
use crate::metrics::Metrics;
use crate::reload::{Reloader, SourceSpec};
use crate::server::{self, listener};
use crate::state::{Clock, State, StoreUse};
use crate::store::{self, Mode, PruneBefore};
use crate::{deliver, dispatch};

/// How often old dedup keys and delivered rows are pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(600);
/// How often the store is probed (a write, and for SQLite a check that the file is still the
/// one being written).
const PROBE_EVERY: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("cannot open {what}: {source}")]
    Store {
        what: String,
        source: crate::store::StoreError,
    },
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
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
    pub clock: Clock,
}

impl Options {
    pub fn new(source: SourceSpec, env: HashMap<String, String>) -> Options {
        Options {
            source,
            env,
            watch_files: false,
            clock: Clock::System,
        }
    }
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
}

/// What the store is, for error messages (never a password).
pub fn store_name(cfg: &crate::config::StoreConfig) -> String {
    match &cfg.url {
        Some(url) => crate::store::postgres::describe_url(url.expose()),
        None => format!("the store {}", cfg.path.display()),
    }
}

impl App {
    pub async fn build(loaded: Loaded, options: Options) -> Result<App, AppError> {
        let cfg = Arc::clone(&loaded.config);
        let client = deliver::client().map_err(AppError::Http)?;
        let store = store::open(&cfg.store, Mode::Serve)
            .await
            .map_err(|source| AppError::Store {
                what: store_name(&cfg.store),
                source,
            })?;
        let bound = async {
            let main = listener::bind(cfg.server.listen, cfg.server.backlog)
                .await
                .map_err(|source| AppError::Bind {
                    addr: cfg.server.listen,
                    source,
                })?;
            let admin = match cfg.admin.listen {
                Some(addr) => Some(
                    listener::bind(addr, cfg.server.backlog)
                        .await
                        .map_err(|source| AppError::Bind { addr, source })?,
                ),
                None => None,
            };
            Ok::<_, AppError>((main, admin))
        }
        .await;
        let (main, admin) = match bound {
            Ok(b) => b,
            Err(e) => {
                store.close().await;
                return Err(e);
            }
        };
        let addr = main.local_addr().map_err(|source| AppError::Bind {
            addr: cfg.server.listen,
            source,
        })?;
        let admin_addr = admin.as_ref().and_then(|l| l.local_addr().ok());

        for w in &loaded.warnings {
            tracing::warn!(warning = %w, "config warning");
        }
        let state = Arc::new(State::new(loaded, store, Metrics::new(), options.clock));
        if cfg.store.url.is_none() {
            // One process per SQLite store: whatever waits for a destination this config
            // lacks would wait forever. (With replicas, another one may have it.)
            dead_letter_unknown(&state).await;
        }
        let reloader = Reloader::new(
            Arc::clone(&state),
            options.source.clone(),
            options.env.clone(),
        );
        let shutdown = CancellationToken::new();
        let grace = cfg.delivery.shutdown_grace;

        let limits = listener::Limits {
            header_timeout: cfg.server.header_read_timeout,
            max_connections: cfg.server.max_connections,
        };
        let mut listeners = vec![listener::serve(
            main,
            server::main_routes(Arc::clone(&state), reloader.clone(), admin.is_none()),
            limits,
            shutdown.clone(),
            grace,
        )];
        if let Some(admin) = admin {
            listeners.push(listener::serve(
                admin,
                server::admin_routes(Arc::clone(&state), reloader.clone()),
                limits,
                shutdown.clone(),
                grace,
            ));
        }
        let delivery_stop = CancellationToken::new();
        let mut workers = vec![
            supervise(&state, dispatch::TASK, delivery_stop.clone(), {
                let (state, stop) = (Arc::clone(&state), delivery_stop.clone());
                move || dispatch::run(Arc::clone(&state), stop.clone())
            }),
            // Idle while `[enrich]` is off (a reload can turn it on).
            supervise(
                &state,
                crate::enrich::worker::TASK,
                delivery_stop.clone(),
                {
                    let (state, stop) = (Arc::clone(&state), delivery_stop.clone());
                    move || crate::enrich::worker::run(Arc::clone(&state), stop.clone())
                },
            ),
            supervise(&state, "pruner", delivery_stop.clone(), {
                let (state, stop) = (Arc::clone(&state), delivery_stop.clone());
                move || prune_loop(Arc::clone(&state), stop.clone())
            }),
            supervise(&state, "store probe", delivery_stop.clone(), {
                let (state, stop) = (Arc::clone(&state), delivery_stop.clone());
                move || probe_loop(Arc::clone(&state), stop.clone())
            }),
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

        tracing::info!(listen = %addr, admin = ?admin_addr, store = %state.store.describe(),
            replica = %state.claimant.owner,
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
        self.state.store.close().await;
        tracing::info!("stopped; unfinished work stays in the store");
    }
}

/// Runs a long-running task and starts it again whenever it ends without `stop` (a panic
/// included), after a backoff that doubles up to 30 s; each restart is logged with its cause.
fn supervise<F, Fut>(
    state: &Arc<State>,
    name: &'static str,
    stop: CancellationToken,
    task: F,
) -> JoinHandle<()>
where
    F: Fn() -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let state = Arc::clone(state);
    tokio::spawn(async move {
        let mut backoff = Duration::from_secs(1);
        loop {
            // Aborting this supervisor (at shutdown) must stop the task too: a detached task
            // would go on using the store while it is being closed.
            let mut run = tokio::spawn(task());
            let _abort_with_me = AbortOnDrop(run.abort_handle());
            let outcome = (&mut run).await;
            if stop.is_cancelled() {
                state.liveness.stopped(name, None);
                return;
            }
            let cause = match outcome {
                Ok(()) => "it returned".to_string(),
                Err(e) => match e.try_into_panic() {
                    Ok(p) => format!("it panicked: {}", dispatch::panic_text(p.as_ref())),
                    Err(e) => format!("it was cancelled: {e}"),
                },
            };
            tracing::error!(task = name, cause = %cause, restart_in_ms = backoff.as_millis() as u64,
                "a background task stopped unexpectedly; starting it again");
            state.liveness.stopped(name, Some(cause));
            state.metrics.task_restarts.with_label_values(&[name]).inc();
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(Duration::from_secs(30));
        }
    })
}

/// Aborts a task when dropped.
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// One sender per configured destination; destinations added by a reload get theirs, and a
/// sender that stopped unexpectedly (a panic) is started again with its cause logged.
async fn run_senders(
    state: Arc<State>,
    client: reqwest::Client,
    reloaded: Arc<tokio::sync::Notify>,
    stop: CancellationToken,
) {
    let mut running: HashMap<String, JoinHandle<()>> = HashMap::new();
    loop {
        let names = state.destination_names();
        let finished: Vec<String> = running
            .iter()
            .filter(|(_, h)| h.is_finished())
            .map(|(n, _)| n.clone())
            .collect();
        for name in finished {
            let Some(h) = running.remove(&name) else {
                continue;
            };
            let task = deliver::task_name(&name);
            match h.await {
                Err(e) if e.is_panic() => {
                    let cause = e
                        .try_into_panic()
                        .map(|p| dispatch::panic_text(p.as_ref()))
                        .unwrap_or_default();
                    tracing::error!(destination = %name, cause = %cause, "a sender panicked; starting it again");
                    state
                        .liveness
                        .stopped(&task, Some(format!("it panicked: {cause}")));
                    state
                        .metrics
                        .task_restarts
                        .with_label_values(&[&task])
                        .inc();
                }
                _ if names.contains(&name) && !stop.is_cancelled() => {
                    tracing::error!(destination = %name, "a sender stopped unexpectedly; starting it again");
                    state.liveness.stopped(&task, Some("it returned".into()));
                }
                _ => {}
            }
        }
        for name in &names {
            if let std::collections::hash_map::Entry::Vacant(slot) = running.entry(name.clone()) {
                let healthy = !state.health.unhealthy().contains_key(name);
                state
                    .metrics
                    .destination_healthy
                    .with_label_values(&[name])
                    .set(i64::from(healthy));
                slot.insert(tokio::spawn(deliver::run(
                    Arc::clone(&state),
                    name.clone(),
                    client.clone(),
                    stop.clone(),
                )));
            }
        }
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = reloaded.notified() => {}
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
    for (_, h) in running {
        let _ = h.await;
    }
}

/// Waiting deliveries of destinations the config lacks would wait forever unseen: move them
/// to the dead-letter list, where operators see and can replay them.
pub async fn dead_letter_unknown(state: &State) {
    let known = state.destination_names();
    let queued = match state.store.queued_destinations().await {
        Ok(q) => q,
        Err(e) => {
            tracing::error!(error = %e, "cannot list the destinations with waiting deliveries");
            return;
        }
    };
    let gone: Vec<String> = queued.into_iter().filter(|d| !known.contains(d)).collect();
    dead_letter_removed(state, gone).await;
}

/// Dead-letters the waiting deliveries of these (removed) destinations.
pub async fn dead_letter_removed(state: &State, gone: Vec<String>) {
    if gone.is_empty() {
        return;
    }
    match state
        .store
        .dead_letter_destinations(gone.clone(), state.now())
        .await
    {
        Ok(0) => {}
        Ok(n) => tracing::warn!(
            deliveries = n,
            destinations = ?gone,
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
        let now = state.now();
        let ago = |d: Duration| now - i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        let before = PruneBefore {
            seen: ago(cfg.store.dedup_window),
            delivered: ago(cfg.store.keep_delivered),
            unrouted: ago(cfg.store.keep_unrouted),
        };
        let threads_before = ago(cfg.threads.keep);
        loop {
            match state.store.prune_threads(threads_before).await {
                Ok(0) => break,
                Ok(n) => tracing::debug!(threads = n, "pruned"),
                Err(e) => {
                    tracing::warn!(error = %e, "pruning threads failed; will try again later");
                    break;
                }
            }
            if stop.is_cancelled() {
                return;
            }
        }
        loop {
            match state.store.prune(before).await {
                Ok(s) if s.is_empty() => break,
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

/// Probes the store regularly, so a deleted file, a stalled disk or a lost database
/// connection makes the service unready (and the webhook answer 503) even when no request
/// happens to touch the store, and so readiness comes back by itself when it mends.
async fn probe_loop(state: Arc<State>, stop: CancellationToken) {
    let mut was_failing = false;
    loop {
        let result = state.store.ping().await;
        state.store_health.record(StoreUse::Probe, &result);
        state
            .metrics
            .store_writable
            .set(if result.is_ok() { 1.0 } else { 0.0 });
        match (&result, was_failing) {
            (Err(e), false) => {
                tracing::error!(error = %e, "the store failed its probe; the webhook answers 503 until it passes again")
            }
            (Ok(()), true) => tracing::info!("the store passes its probe again"),
            _ => {}
        }
        was_failing = result.is_err();
        state.liveness.progress("store probe", state.now());
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(PROBE_EVERY) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    /// The built-in config over a fresh SQLite store in `dir`.
    async fn built_in_state(dir: &std::path::Path) -> Arc<State> {
        let cfg = crate::config::StoreConfig {
            path: dir.join("s.db"),
            ..Default::default()
        };
        let store = store::open(&cfg, Mode::Serve).await.unwrap();
        let loaded =
            crate::config::load(&crate::config::ConfigSource::Builtin, &HashMap::new()).unwrap();
        Arc::new(State::new(loaded, store, Metrics::new(), Clock::System))
    }

    #[tokio::test]
    async fn aborting_a_supervisor_stops_its_task() {
        let dir = tempfile::tempdir().unwrap();
        let state = built_in_state(dir.path()).await;
        // The running task holds a clone of `alive`: the count tells whether it still exists.
        let alive = Arc::new(AtomicU32::new(0));
        let handle = supervise(&state, "ticker", CancellationToken::new(), {
            let alive = Arc::clone(&alive);
            move || {
                let alive = Arc::clone(&alive);
                async move {
                    loop {
                        alive.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                }
            }
        });
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while alive.load(Ordering::SeqCst) == 0 {
            assert!(tokio::time::Instant::now() < deadline, "the task never ran");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        handle.abort();
        let _ = handle.await;
        while Arc::strong_count(&alive) > 1 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the task went on after its supervisor was aborted"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        state.store.close().await;
    }

    #[tokio::test]
    async fn a_task_that_panics_is_logged_counted_and_started_again() {
        let dir = tempfile::tempdir().unwrap();
        let state = built_in_state(dir.path()).await;
        let runs = Arc::new(AtomicU32::new(0));
        let stop = CancellationToken::new();
        let handle = supervise(&state, "flaky", stop.clone(), {
            let (runs, stop) = (Arc::clone(&runs), stop.clone());
            move || {
                let (runs, stop) = (Arc::clone(&runs), stop.clone());
                async move {
                    if runs.fetch_add(1, Ordering::SeqCst) == 0 {
                        panic!("first run fails");
                    }
                    stop.cancelled().await;
                }
            }
        });
        // Generous: with RUST_BACKTRACE set, the first panic of the test binary spends
        // seconds reading debug info before the supervisor hears of it (seen at 5 s).
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while runs.load(Ordering::SeqCst) < 2 {
            assert!(tokio::time::Instant::now() < deadline, "not restarted");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let life = state.liveness.snapshot()["flaky"].clone();
        assert_eq!(life.restarts, 1);
        assert!(
            life.last_failure.unwrap().contains("first run fails"),
            "the cause is kept"
        );
        assert!(
            state
                .metrics
                .render()
                .contains("bizrelay_task_restarts_total{task=\"flaky\"} 1")
        );
        stop.cancel();
        handle.await.unwrap();
        assert_eq!(
            runs.load(Ordering::SeqCst),
            2,
            "not restarted after a requested stop"
        );
        state.store.close().await;
    }
}
