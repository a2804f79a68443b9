//! The dispatcher's side of enrichment: before a batch is routed, every hook that needs a
//! lookup gets what the store's cache knows, or is held (in memory, its claim extended) until
//! the lookup is done or `enrich.wait` has passed since it was received. Both the hooks
//! handed over at ingest and those claimed from the store come through here.
//!
//! Invariants:
//! - A held hook is released no later than `received_at + wait`; then it is routed without
//!   enrichment, and counted (`bizrelay_enrich_routed_without_total{reason="wait"}`).
//! - Enrichment problems never fail a dispatch: a store error here routes the hooks as they
//!   are (or holds them until their deadline), it does not stop routing.
//! - A held hook stays claimed by this replica for its whole wait (plus a lease), so another
//!   replica does not route it meanwhile; if this process dies, the claim expires and the
//!   hook is routed from the store.

use std::collections::{BTreeSet, HashMap};

use crate::bizmessage::{Enrichment, HookBody, parse_hook};
use crate::state::State;
use crate::store::{LookupRequest, StoredHook};

use super::{lookup_for, wait_ms};

/// Hooks held for a lookup, with when each must be routed at the latest.
#[derive(Debug, Default)]
pub struct Held {
    hooks: Vec<(StoredHook, i64)>,
}

impl Held {
    pub fn len(&self) -> usize {
        self.hooks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.hooks.is_empty()
    }

    /// The earliest deadline of a held hook.
    pub fn next_deadline(&self) -> Option<i64> {
        self.hooks.iter().map(|(_, d)| *d).min()
    }
}

/// Puts an enrichment on a parsed result hook (`content` only with `show_content`).
pub fn attach(hook: &mut StoredHook, mut fields: Enrichment, show_content: bool) {
    if !show_content {
        fields.content = None;
    }
    if let Some(parsed) = hook.parsed.as_mut()
        && let HookBody::MessageResult(r) = &mut parsed.body
    {
        r.enrichment = Some(Box::new(fields));
    }
}

/// Returns the hooks ready to route now (the claimed ones and held ones whose enrichment is
/// known or whose wait is over); the rest stay in `held`.
pub async fn prepare(state: &State, claimed: Vec<StoredHook>, held: &mut Held) -> Vec<StoredHook> {
    let loaded = state.current();
    let cfg = &loaded.config.enrich;
    let earlier = std::mem::take(&mut held.hooks);
    if !cfg.enabled && earlier.is_empty() {
        return claimed;
    }
    let now = state.now();
    let wait = wait_ms(cfg);
    let mut ready = Vec::with_capacity(claimed.len() + earlier.len());
    let mut needing: Vec<(StoredHook, Option<i64>, LookupRequest)> = Vec::new();
    let all = earlier
        .into_iter()
        .map(|(h, d)| (h, Some(d)))
        .chain(claimed.into_iter().map(|h| (h, None)));
    for (mut hook, deadline) in all {
        if hook.parsed.is_none()
            && let Ok(parsed) = parse_hook(&hook.raw)
        {
            hook.parsed = Some(parsed);
        }
        let need = hook
            .parsed
            .as_ref()
            .and_then(|p| lookup_for(cfg, &hook.envelope, p));
        match need {
            Some(req) => needing.push((hook, deadline, req)),
            None => ready.push(hook),
        }
    }
    if needing.is_empty() {
        return ready;
    }
    let ids: Vec<String> = needing
        .iter()
        .map(|(_, _, r)| r.request_id.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let cache: HashMap<String, _> = match state.store.cached_enrichments(ids, now).await {
        Ok(rows) => rows
            .into_iter()
            .map(|c| (c.request_id.clone(), c))
            .collect(),
        Err(e) => {
            tracing::warn!(error = %e, "reading the enrichment cache failed; hooks wait for their deadline");
            HashMap::new()
        }
    };
    let m = &state.metrics;
    let mut file: Vec<LookupRequest> = Vec::new();
    let mut hold_rows = Vec::new();
    for (mut hook, deadline, req) in needing {
        let seq = Some(req.recipient_seq);
        if let Some(cached) = cache.get(&req.request_id) {
            match cached.for_recipient(seq) {
                Some(fields) => {
                    if deadline.is_none() {
                        m.enrich_cache_hits.inc();
                    }
                    attach(&mut hook, fields, cfg.show_content);
                }
                None => m.enrich_unenriched.with_label_values(&["no_data"]).inc(),
            }
            ready.push(hook);
        } else if state.enrich_health.skips(&req.app_key, now) {
            m.enrich_unenriched
                .with_label_values(&["bad_credentials"])
                .inc();
            ready.push(hook);
        } else if now >= hook.received_at.saturating_add(wait) {
            m.enrich_unenriched.with_label_values(&["wait"]).inc();
            ready.push(hook);
        } else {
            let until = deadline.unwrap_or(hook.received_at.saturating_add(wait));
            if deadline.is_none() {
                file.push(req);
                hold_rows.push(hook.row);
            }
            held.hooks.push((hook, until));
        }
    }
    if !file.is_empty() {
        // One filing per requestId: the store skips those pending or cached anyway.
        let mut seen = BTreeSet::new();
        file.retain(|r| seen.insert(r.request_id.clone()));
        match state.store.request_lookups(file, now).await {
            Ok(n) if n > 0 => state.enrich_wake.notify_one(),
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "filing enrichment lookups failed; hooks wait for their deadline")
            }
        }
    }
    if !hold_rows.is_empty() {
        let until = now
            .saturating_add(wait)
            .saturating_add(state.claimant.ttl_ms);
        if let Err(e) = state
            .store
            .hold_hooks(&state.claimant, hold_rows, until)
            .await
        {
            tracing::warn!(error = %e, "extending the claims of hooks held for enrichment failed");
        }
    }
    ready
}
