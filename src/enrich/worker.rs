//! The lookup task: claims the store's pending lookups of each app key (at most
//! `max_in_flight` of that key in flight in this replica), asks NHN, and records the answer in
//! the store's cache, or the next try (back-off doubling from 1s, [`MAX_ATTEMPTS`] tries).
//!
//! Invariants:
//! - Bad credentials are reported once per app key (one error log line, the
//!   `bizrelay_enrich_bad_credentials` gauge, `/readyz`), not per hook; they are remembered
//!   for [`MISSING_KEEP_MS`](super::MISSING_KEEP_MS) in the cache, so hooks waiting for the
//!   answer are routed at once.
//! - The dispatcher is woken after every recorded answer, so held hooks go out as soon as
//!   their enrichment is known.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::answer::Answer;
use super::{MISSING_KEEP_MS, client, endpoint};
use crate::state::State;
use crate::store::{LookupResult, PendingLookup, StoreError};

/// Tries per lookup before it is given up (remembered as missing).
pub const MAX_ATTEMPTS: i64 = 5;
/// Longest pause between two tries.
const MAX_BACKOFF_MS: i64 = 30_000;
/// Longest sleep without looking for due lookups (retries, another replica's work).
const POLL: Duration = Duration::from_millis(250);
/// How often expired cache rows are pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(60);
/// The name this task reports its liveness under.
pub const TASK: &str = "enricher";

/// What a finished query means for the store.
fn result_of(
    answer: &Answer,
    attempts: i64,
    now: i64,
    cache_ms: i64,
) -> (LookupResult, &'static str) {
    match answer {
        Answer::Found(fields) => (
            LookupResult::Found {
                fields: fields.clone(),
                expires_at: now.saturating_add(cache_ms),
            },
            "found",
        ),
        Answer::NoData(reason) => (
            LookupResult::Missing {
                reason: reason.clone(),
                expires_at: now + MISSING_KEEP_MS,
            },
            "no_data",
        ),
        Answer::BadCredentials(reason) => (
            LookupResult::Missing {
                reason: reason.clone(),
                expires_at: now + MISSING_KEEP_MS,
            },
            "bad_credentials",
        ),
        Answer::Transient(reason) if attempts + 1 >= MAX_ATTEMPTS => (
            LookupResult::Missing {
                reason: reason.clone(),
                expires_at: now + MISSING_KEEP_MS,
            },
            "given_up",
        ),
        Answer::Transient(reason) => (
            LookupResult::Retry {
                at: now + backoff_ms(attempts),
                reason: reason.clone(),
            },
            "retry",
        ),
    }
}

/// The pause after the `attempts`-th failure (0-based): 1s, 2s, 4s... up to 30s.
pub fn backoff_ms(attempts: i64) -> i64 {
    1000_i64
        .saturating_mul(1_i64 << attempts.clamp(0, 20))
        .min(MAX_BACKOFF_MS)
}

type InFlight = Arc<Mutex<HashMap<String, usize>>>;

async fn lookup(
    state: Arc<State>,
    http: reqwest::Client,
    pending: PendingLookup,
    in_flight: InFlight,
) {
    let loaded = state.current();
    let cfg = &loaded.config.enrich;
    let req = &pending.request;
    let started = Instant::now();
    let answer = match (
        cfg.secret_of(&req.app_key),
        endpoint::lookup_url(
            &cfg.base_url,
            &req.app_key,
            req.message_type.as_deref(),
            &req.request_id,
            req.recipient_seq,
            req.href.as_deref(),
        ),
    ) {
        (None, _) => Answer::NoData("the app key no longer has a secret_key".into()),
        (_, Err(e)) => Answer::NoData(e.to_string()),
        (Some(secret), Ok(url)) => {
            client::query(&http, url, secret, cfg.timeout, cfg.show_content).await
        }
    };
    let now = state.now();
    let cache_ms = i64::try_from(cfg.cache.as_millis()).unwrap_or(i64::MAX);
    let (result, outcome) = result_of(&answer, pending.attempts, now, cache_ms);
    let m = &state.metrics;
    m.enrich_lookups.with_label_values(&[outcome]).inc();
    m.enrich_lookup_latency
        .with_label_values(&[outcome])
        .observe(started.elapsed().as_secs_f64());
    match &answer {
        Answer::BadCredentials(reason) => {
            if state.enrich_health.refused(&req.app_key, reason, now) {
                tracing::error!(app_key = %crate::logging::clip(&req.app_key), reason = %reason,
                    "NHN refused the secret key of this app key: hooks of it are sent without enrichment until it is fixed (enrich.app_keys.<appKey>.secret_key)");
                m.enrich_bad_credentials
                    .with_label_values(&[&req.app_key])
                    .set(1);
            }
        }
        Answer::Found(_) | Answer::NoData(_) => {
            if state.enrich_health.accepted(&req.app_key) {
                tracing::info!(app_key = %crate::logging::clip(&req.app_key), "NHN accepts this app key's secret key again");
                m.enrich_bad_credentials
                    .with_label_values(&[&req.app_key])
                    .set(0);
            }
        }
        Answer::Transient(reason) => {
            tracing::warn!(reason = %reason, attempts = pending.attempts + 1, "a lookup of NHN's message query API failed");
        }
    }
    let recorded = state
        .store
        .finish_lookup(&state.claimant, &req.request_id, result, now)
        .await;
    if let Err(e) = &recorded {
        tracing::warn!(error = %e, "recording a lookup's answer failed; it will be made again");
    }
    if let Some(n) = in_flight
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get_mut(&req.app_key)
    {
        *n = n.saturating_sub(1);
    }
    state.dispatch_wake.notify_one();
    state.enrich_wake.notify_one();
}

/// Claims what every app key may start now and starts it.
async fn start_due(
    state: &Arc<State>,
    http: &reqwest::Client,
    in_flight: &InFlight,
) -> Result<(), StoreError> {
    let loaded = state.current();
    let cfg = &loaded.config.enrich;
    if !cfg.enabled {
        return Ok(());
    }
    for app_key in cfg.app_keys.keys() {
        let busy = in_flight
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(app_key)
            .copied()
            .unwrap_or(0);
        let free = cfg.max_in_flight.saturating_sub(busy);
        if free == 0 {
            continue;
        }
        let claimed = state
            .store
            .claim_lookups(&state.claimant, app_key, state.now(), free)
            .await?;
        if claimed.is_empty() {
            continue;
        }
        *in_flight
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(app_key.clone())
            .or_default() += claimed.len();
        for pending in claimed {
            tokio::spawn(lookup(
                Arc::clone(state),
                http.clone(),
                pending,
                Arc::clone(in_flight),
            ));
        }
    }
    Ok(())
}

/// Runs until `shutdown`.
pub async fn run(state: Arc<State>, shutdown: CancellationToken) {
    let http = match client::client() {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "cannot build the HTTP client for enrichment lookups; hooks are sent without enrichment");
            state.liveness.stopped(TASK, Some(e.to_string()));
            return;
        }
    };
    let in_flight: InFlight = Arc::default();
    let mut pruned = Instant::now();
    state.liveness.started(TASK);
    while !shutdown.is_cancelled() {
        if let Err(e) = start_due(&state, &http, &in_flight).await {
            tracing::warn!(error = %e, "claiming enrichment lookups failed; retrying");
        }
        if pruned.elapsed() >= PRUNE_EVERY {
            pruned = Instant::now();
            if let Err(e) = state.store.prune_enrichments(state.now()).await {
                tracing::warn!(error = %e, "pruning the enrichment cache failed");
            }
        }
        state.liveness.progress(TASK, state.now());
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = state.enrich_wake.notified() => {}
            _ = tokio::time::sleep(POLL) => {}
        }
    }
    state.liveness.stopped(TASK, None);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transient_failures_back_off_and_are_given_up_after_max_attempts() {
        assert_eq!(backoff_ms(0), 1000);
        assert_eq!(backoff_ms(3), 8000);
        assert_eq!(backoff_ms(60), MAX_BACKOFF_MS);
        let t = Answer::Transient("HTTP 503".into());
        assert!(matches!(
            result_of(&t, 0, 0, 1),
            (LookupResult::Retry { at: 1000, .. }, "retry")
        ));
        assert!(matches!(
            result_of(&t, MAX_ATTEMPTS - 1, 0, 1),
            (LookupResult::Missing { .. }, "given_up")
        ));
        let bad = Answer::BadCredentials("-1001".into());
        assert!(matches!(
            result_of(&bad, 0, 0, 1),
            (LookupResult::Missing { .. }, "bad_credentials")
        ));
    }
}
