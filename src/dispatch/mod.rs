//! Inbox → routes → outbox: the dispatcher task routes stored hooks as they arrive and flushes
//! digests when their window closes; [`plan`] holds the (pure) decisions.
//!
//! Invariants:
//! - One dispatcher per store. Each batch of hooks is routed with one config snapshot and
//!   committed in one transaction with the cursor move, so a crash re-routes the whole batch
//!   or none of it.
//! - A template failure never drops a notification: the plain fallback goes out instead.

mod plan;

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

pub use plan::*;

use crate::state::{State, now_ms};

/// Hooks routed per transaction.
const BATCH: usize = 500;
/// Groups flushed per pass.
const GROUPS_PER_PASS: usize = 32;
/// Shortest time between two passes.
const COALESCE: Duration = Duration::from_millis(20);
/// Longest sleep without looking at the store (covers work added by another process, such as
/// `dead-letters replay`, and clock jumps).
const POLL: Duration = Duration::from_secs(1);

fn account(state: &State, report: &Report) {
    for (route, n) in &report.matches {
        state
            .metrics
            .route_matches
            .with_label_values(&[route])
            .inc_by(*n);
    }
    state.metrics.unrouted.inc_by(report.unrouted);
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

/// Routes everything waiting and flushes due digests; returns when there is nothing to do.
async fn pass(state: &Arc<State>) -> Result<(), crate::store::StoreError> {
    loop {
        let hooks = state.store.undispatched(BATCH).await?;
        if hooks.is_empty() {
            break;
        }
        let loaded = state.current();
        let (batch, report) =
            tokio::task::spawn_blocking(move || route_hooks(&loaded, &hooks, now_ms()))
                .await
                .map_err(|_| crate::store::StoreError::Closed)?;
        state.store.commit_dispatch(batch).await?;
        account(state, &report);
    }
    loop {
        let groups = state.store.due_groups(now_ms(), GROUPS_PER_PASS).await?;
        if groups.is_empty() {
            break;
        }
        for group in groups {
            let loaded = state.current();
            let (flush, report) =
                tokio::task::spawn_blocking(move || build_flush(&loaded, &group, now_ms()))
                    .await
                    .map_err(|_| crate::store::StoreError::Closed)?;
            let (route, count) = (flush.route.clone(), flush.count);
            state.store.commit_flush(flush).await?;
            state.metrics.digests.with_label_values(&[&route]).inc();
            tracing::info!(route = %route, hooks = count, "digest queued");
            account(state, &report);
        }
    }
    Ok(())
}

/// Runs until `shutdown`: routes new hooks as they are stored and flushes digests on time.
pub async fn run(state: Arc<State>, shutdown: CancellationToken) {
    let mut last_pass: Option<tokio::time::Instant> = None;
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
        let failed = match pass(&state).await {
            Ok(()) => false,
            Err(e) => {
                tracing::error!(error = %e, "dispatch failed; retrying");
                true
            }
        };
        let next_flush = state.store.next_flush_at().await.ok().flatten();
        let sleep = match next_flush {
            _ if failed => POLL,
            Some(at) => {
                Duration::from_millis((at - now_ms()).clamp(0, POLL.as_millis() as i64) as u64)
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
