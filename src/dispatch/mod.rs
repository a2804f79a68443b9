//! Inbox → routes → outbox: the dispatcher task claims stored hooks, routes them and flushes
//! digests when their window closes; [`plan`] holds the (pure) decisions.
//!
//! Invariants:
//! - Work is claimed before it is routed, so several dispatchers (replicas) can share a
//!   store: each claimed batch is routed with one config snapshot and committed in one
//!   transaction; hooks whose claim was lost in between are left to their new owner.
//! - A template failure never drops a notification: the plain fallback goes out instead.
//! - A hook whose routing fails (a panic, a hook that no longer parses) never blocks the
//!   hooks behind it: the rest of its batch is routed, and after [`QUARANTINE_AFTER`]
//!   failures it is quarantined (kept, counted, listed by `bizrelay quarantine list`).

mod alerts;
mod at_ingest;
mod fallback;
mod plan;
mod preview;

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

pub use alerts::build_rate;
pub use at_ingest::{PostRouting, account_post, route_post, routes_at_ingest};
pub use fallback::fallback_info;
pub use plan::*;
pub use preview::preview_flush;

use crate::config::Loaded;
use crate::digest;
use crate::enrich::{self, hold::Held};
use crate::silence::Silences;
use crate::state::{State, StoreUse};
use crate::store::{DispatchBatch, RoutingFailure, StoreError, StoredHook};

/// Hooks routed per transaction.
const BATCH: usize = 500;
/// Groups flushed per pass.
const GROUPS_PER_PASS: usize = 32;
/// Shortest time between two passes.
const COALESCE: Duration = Duration::from_millis(20);
/// Longest sleep without looking at the store (covers work added by another process or
/// replica, such as `reroute`, and clock jumps).
const POLL: Duration = Duration::from_secs(1);
/// Failed routing attempts after which a hook is quarantined.
pub const QUARANTINE_AFTER: i64 = 3;
/// How long a hook whose routing failed waits before it is tried again.
const RETRY_FAILED: i64 = 2_000;
/// The name this task reports its liveness under.
pub const TASK: &str = "dispatcher";

fn account(state: &State, report: &Report) {
    for (route, n) in &report.matches {
        state
            .metrics
            .route_matches
            .with_label_values(&[route])
            .inc_by(*n);
    }
    state.metrics.unrouted.inc_by(report.unrouted);
    for (route, n) in &report.silenced {
        state
            .metrics
            .silenced
            .with_label_values(&[route])
            .inc_by(*n);
    }
    for (kind, template, e) in &report.fallbacks {
        tracing::error!(destination_type = kind.as_str(), template = %template, error = %e, "template failed; sent the plain fallback message");
        state
            .metrics
            .render_fallbacks
            .with_label_values(&[kind.as_str(), template])
            .inc();
    }
    for dest in &report.touched {
        state.wake_of(dest).notify_one();
    }
}

/// The text of a panic payload.
pub fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

/// Routes a batch off the async threads; a panic comes back as its message.
async fn route_off_thread(
    loaded: Arc<Loaded>,
    silences: Arc<Silences>,
    hooks: Arc<Vec<StoredHook>>,
    now: i64,
) -> Result<(DispatchBatch, Report), String> {
    tokio::task::spawn_blocking(move || route_hooks_with(&loaded, &silences, &hooks, now))
        .await
        .map_err(|e| match e.try_into_panic() {
            Ok(payload) => panic_text(payload.as_ref()),
            Err(e) => e.to_string(),
        })
}

/// Routes claimed hooks. When the batch as a whole fails, each hook is routed alone, so the
/// one that fails is found and held back while its neighbours go through.
async fn route_claimed(
    state: &State,
    hooks: Vec<StoredHook>,
) -> Result<(DispatchBatch, Report), StoreError> {
    let now = state.now();
    let loaded = state.current();
    // Shared, not cloned: the batch is only copied hook by hook in the rare case it failed.
    let hooks = Arc::new(hooks);
    let silences = state.silences.get(state.store.as_ref(), now).await;
    let (mut batch, mut report) = match route_off_thread(
        Arc::clone(&loaded),
        Arc::clone(&silences),
        Arc::clone(&hooks),
        now,
    )
    .await
    {
        Ok(done) => done,
        Err(panic) => {
            tracing::error!(hooks = hooks.len(), error = %panic, "routing a batch failed; routing its hooks one by one");
            let mut batch = DispatchBatch::default();
            let mut report = Report::default();
            let hooks = Arc::try_unwrap(hooks).unwrap_or_else(|shared| (*shared).clone());
            for hook in hooks {
                let row = hook.row;
                match route_off_thread(
                    Arc::clone(&loaded),
                    Arc::clone(&silences),
                    Arc::new(vec![hook]),
                    now,
                )
                .await
                {
                    Ok((b, r)) => {
                        batch.absorb(b);
                        report.absorb(r);
                    }
                    Err(panic) => report
                        .unreadable
                        .push((row, format!("routing failed: {panic}"))),
                }
            }
            (batch, report)
        }
    };
    if !report.unreadable.is_empty() {
        hold_back(state, std::mem::take(&mut report.unreadable)).await?;
    }
    batch.hooks.sort_by_key(|h| h.row);
    Ok((batch, report))
}

/// Records routing failures; quarantines hooks that failed too often.
async fn hold_back(state: &State, failed: Vec<(i64, String)>) -> Result<(), StoreError> {
    for (row, reason) in failed {
        let failure = RoutingFailure {
            rows: vec![row],
            reason: crate::text::truncate(&reason, 500),
            now: state.now(),
            quarantine_after: QUARANTINE_AFTER,
            retry_at: state.now() + RETRY_FAILED,
        };
        let quarantined = state.store.fail_dispatch(&state.claimant, failure).await?;
        if quarantined.is_empty() {
            tracing::warn!(row, reason = %crate::text::truncate(&reason, 300), "routing a hook failed; it will be tried again");
        } else {
            state.metrics.quarantined.inc();
            tracing::error!(row, reason = %crate::text::truncate(&reason, 300),
                "a hook failed routing repeatedly and is quarantined: `bizrelay quarantine list` shows it, `bizrelay reroute --quarantined` routes it again");
        }
    }
    Ok(())
}

/// Takes and routes one batch: the hooks handed over in memory at ingest (born claimed by
/// this replica), else hooks claimed from the store (left by a crash, a full handoff, another
/// replica or `reroute`). Returns how many it took, and the routed batch to commit.
async fn route_batch(
    state: &Arc<State>,
    claim_from_store: bool,
    held: &mut Held,
) -> Result<(Routed, Option<(DispatchBatch, Report)>), StoreError> {
    let claim_ms = crate::state::HANDOFF_CLAIM_MS.min(state.claimant.ttl_ms);
    let margin = crate::state::HANDOFF_MARGIN_MS.min(claim_ms / 2);
    let (mut claimed, stale) = state.handoff.take(BATCH, state.now() - (claim_ms - margin));
    if stale > 0 {
        tracing::debug!(
            hooks = stale,
            "hooks waited in memory nearly as long as their claim; routing them from the store"
        );
    }
    let mut from_store = 0;
    if claimed.is_empty() || claim_from_store || stale > 0 {
        let more = state
            .store
            .claim_hooks(&state.claimant, state.now(), BATCH)
            .await?;
        from_store = more.len();
        claimed.extend(more);
    }
    let mut routed = Routed {
        hooks: 0,
        store_has_more: from_store == BATCH,
    };
    if claimed.is_empty() && held.is_empty() {
        return Ok((routed, None));
    }
    // Hooks waiting for a lookup are held back (see `enrich::hold`). The count is of hooks
    // newly taken, so a pass keeps draining the handoff while all of them are held, and
    // ends when only held ones are left.
    let taken = claimed.len();
    let claimed = enrich::hold::prepare(state, claimed, held).await;
    routed.hooks = taken.max(usize::from(!claimed.is_empty()));
    if claimed.is_empty() {
        return Ok((routed, None));
    }
    let (batch, report) = route_claimed(state, claimed).await?;
    Ok((routed, Some((batch, report))))
}

/// A routed batch waiting for its commit. Its commit runs while the next batch is taken and
/// routed (both driven by the dispatcher's own task, so nothing outlives it): the claim of
/// batch n+1 shares the store's group commit with the commit of batch n, and routing (CPU)
/// overlaps the commit's `fsync`. At most one waits, so batches commit in routing order.
type RoutedBatch = (DispatchBatch, Report);

/// Commits a routed batch, if any, and accounts for it.
async fn commit(state: &Arc<State>, routed: Option<RoutedBatch>) -> Result<(), StoreError> {
    let Some((batch, report)) = routed else {
        return Ok(());
    };
    if !batch.hooks.is_empty() {
        let commit = state
            .store
            .commit_dispatch(&state.claimant, batch, &digest::RULES)
            .await?;
        if !commit.lost.is_empty() {
            tracing::warn!(
                hooks = commit.lost.len(),
                "hooks were taken over by another replica before this one committed their routing; left to it"
            );
        }
    }
    account(state, &report);
    state.liveness.progress(TASK, state.now());
    Ok(())
}

/// What one batch routed, and whether the store had more to hand out.
struct Routed {
    hooks: usize,
    store_has_more: bool,
}

/// Sends every digest that is due.
async fn flush_due(state: &Arc<State>) -> Result<(), StoreError> {
    loop {
        let groups = state
            .store
            .claim_groups(&state.claimant, state.now(), GROUPS_PER_PASS)
            .await?;
        if groups.is_empty() {
            return Ok(());
        }
        for group in groups {
            let loaded = state.current();
            let now = state.now();
            let (flush, report) =
                tokio::task::spawn_blocking(move || build_flush(&loaded, &group, now))
                    .await
                    .map_err(|e| {
                        StoreError::Unavailable(format!("building a digest failed: {e}"))
                    })?;
            let (route, count, resolved) = (flush.route.clone(), flush.count, flush.resolved);
            if state
                .store
                .commit_flush(&state.claimant, flush, &digest::RULES)
                .await?
            {
                state.metrics.digests.with_label_values(&[&route]).inc();
                if resolved {
                    tracing::info!(route = %route, "resolved message queued (the group went quiet)");
                } else {
                    tracing::info!(route = %route, hooks = count, "digest queued");
                }
                account(state, &report);
            } else if resolved {
                tracing::debug!(route = %route, "a hook joined the group while its resolved message was being built; not sent");
            } else {
                tracing::warn!(route = %route, "another replica took this digest over; left to it");
            }
        }
    }
}

/// Routes everything waiting and flushes due digests; returns when there is nothing to do.
/// A digest that falls due while a backlog is being routed goes out on time (the backlog's
/// members wait for the next one), so a storm never delays the alert about it.
async fn pass(state: &Arc<State>, held: &mut Held) -> Result<(), StoreError> {
    let mut waiting = None;
    let result = pass_pipelined(state, held, &mut waiting).await;
    // Whatever happened, a routed batch is committed (whole or not at all) before the pass ends.
    let committed = commit(state, waiting.take()).await;
    result.and(committed)
}

async fn pass_pipelined(
    state: &Arc<State>,
    held: &mut Held,
    waiting: &mut Option<RoutedBatch>,
) -> Result<(), StoreError> {
    // The store is asked for claimable hooks at least once a second, however busy the
    // handoff is (work left by a crash or another replica must not wait for a storm to end).
    // While it hands out full batches (hooks that found the handoff full), keep asking.
    let mut asked = None::<tokio::time::Instant>;
    let mut store_has_more = false;
    loop {
        let claim_from_store = store_has_more || asked.is_none_or(|t| t.elapsed() >= POLL);
        if claim_from_store {
            asked = Some(tokio::time::Instant::now());
        }
        let previous = waiting.take();
        let (taken, committed) = tokio::join!(
            route_batch(state, claim_from_store, held),
            commit(state, previous)
        );
        // A batch routed while the previous commit failed is still committed by `pass`.
        let taken = taken.map(|(batch, prepared)| {
            *waiting = prepared;
            batch
        });
        committed?;
        let batch = taken?;
        store_has_more = batch.store_has_more;
        let routed = batch.hooks;
        let due = state
            .store
            .next_flush_at()
            .await?
            .is_some_and(|at| at <= state.now());
        if routed == 0 || due {
            // Digests and alerts count what is committed.
            commit(state, waiting.take()).await?;
            flush_due(state).await?;
            alerts::judge_due(state).await?;
        }
        if routed == 0 {
            return Ok(());
        }
    }
}

/// Runs until `shutdown`: routes new hooks as they are stored and flushes digests on time.
pub async fn run(state: Arc<State>, shutdown: CancellationToken) {
    let mut last_pass: Option<tokio::time::Instant> = None;
    let mut held = Held::default();
    state.liveness.started(TASK);
    while !shutdown.is_cancelled() {
        // Under load every POST rings the bell; gathering for a few milliseconds turns many
        // tiny batches into a few large ones (far less work per hook, invisible in chat).
        if let Some(at) = last_pass {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep_until(at + COALESCE) => {}
            }
        }
        last_pass = Some(tokio::time::Instant::now());
        let result = pass(&state, &mut held).await;
        if shutdown.is_cancelled() && matches!(result, Err(StoreError::Closed)) {
            break; // shutting down: the store closed under a pass, which is routed after restart
        }
        state.store_health.record(StoreUse::Dispatch, &result);
        let failed = match result {
            Ok(()) => false,
            Err(e) => {
                tracing::error!(error = %e, "dispatch failed; retrying");
                true
            }
        };
        state.liveness.progress(TASK, state.now());
        // Keeps the silences fresh while idle too, so a change shows in the log (and applies)
        // within about a second, not only once hooks arrive.
        state.silences.get(state.store.as_ref(), state.now()).await;
        let next_flush = state.store.next_flush_at().await.ok().flatten();
        // A hook held for a lookup is routed by its deadline at the latest.
        let next_flush = match (next_flush, held.next_deadline()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let sleep = match next_flush {
            _ if failed => POLL,
            Some(at) => {
                Duration::from_millis((at - state.now()).clamp(0, POLL.as_millis() as i64) as u64)
            }
            None => POLL,
        };
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = state.dispatch_wake.notified() => {}
            _ = tokio::time::sleep(sleep) => {}
        }
    }
}

#[cfg(test)]
mod tests;
