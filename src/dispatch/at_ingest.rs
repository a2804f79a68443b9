//! Routing a POST's hooks before they are written, so they are stored already routed in the
//! ingest transaction (one write per hook instead of an insert, then a settle by the
//! dispatcher, each in its own transaction). During a storm routing then keeps pace with
//! ingest by construction: a 200 means the hooks are stored *and* routed.
//!
//! Invariants:
//! - Used only when the routing needs nothing but the POST, the config and the silences:
//!   with enrichment on, a hook may have to wait for a lookup, so the dispatcher routes it.
//! - Routing here is the same pure [`route_hooks_with`] the dispatcher runs, hook by hook, so
//!   a hook's work and counts can be dropped when the store finds it a duplicate.
//! - If routing fails (a panic), nothing is decided here: the POST is stored unrouted and the
//!   dispatcher routes it, finding and quarantining the hook that fails.

use std::sync::Arc;

use super::{Report, account, panic_text, route_hooks_with};
use crate::config::Loaded;
use crate::digest;
use crate::silence::Silences;
use crate::state::State;
use crate::store::{DispatchBatch, IngestOutcome, RoutedPost, StoredHook};

/// Hooks a POST may have for its routing to run on the async thread that received it;
/// larger POSTs are routed on a blocking thread (rendering many messages takes a while).
const INLINE: usize = 4;

/// Whether this config lets hooks be routed at ingest.
pub fn routes_at_ingest(loaded: &Loaded) -> bool {
    !loaded.config.enrich.enabled
}

/// The routing of one POST, waiting for its write: the store files `post`, and the reports
/// (one per hook, by position) are counted for the hooks it found fresh.
pub struct PostRouting {
    pub post: RoutedPost,
    pub reports: Vec<Report>,
}

fn route_each(
    loaded: &Loaded,
    silences: &Silences,
    hooks: &[StoredHook],
    now: i64,
) -> (DispatchBatch, Vec<Report>) {
    let mut batch = DispatchBatch::default();
    let mut reports = Vec::with_capacity(hooks.len());
    for hook in hooks {
        let (b, r) = route_hooks_with(loaded, silences, std::slice::from_ref(hook), now);
        batch.absorb(b);
        reports.push(r);
    }
    (batch, reports)
}

/// Routes `hooks` (whose `row` is their position in the POST); `None` when routing failed
/// and the dispatcher must route them from the store.
pub async fn route_post(
    state: &State,
    loaded: &Arc<Loaded>,
    hooks: &Arc<Vec<StoredHook>>,
    now: i64,
) -> Option<PostRouting> {
    let silences = state.silences.get(state.store.as_ref(), now).await;
    let routed = if hooks.len() <= INLINE {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            route_each(loaded, &silences, hooks, now)
        }))
        .map_err(|payload| panic_text(payload.as_ref()))
    } else {
        let (loaded, hooks) = (Arc::clone(loaded), Arc::clone(hooks));
        tokio::task::spawn_blocking(move || route_each(&loaded, &silences, &hooks, now))
            .await
            .map_err(|e| match e.try_into_panic() {
                Ok(payload) => panic_text(payload.as_ref()),
                Err(e) => e.to_string(),
            })
    };
    match routed {
        Ok((batch, reports)) if reports.iter().all(|r| r.unreadable.is_empty()) => {
            Some(PostRouting {
                post: RoutedPost {
                    batch,
                    rules: digest::RULES,
                },
                reports,
            })
        }
        Ok(_) => None,
        Err(panic) => {
            tracing::error!(hooks = hooks.len(), error = %panic,
                "routing a POST at ingest failed; the dispatcher routes its hooks from the store");
            None
        }
    }
}

/// Counts what routing did for the hooks the store kept (not the duplicates) and wakes the
/// senders of the destinations that got deliveries.
pub fn account_post(state: &State, reports: Vec<Report>, outcome: &IngestOutcome) {
    let mut report = Report::default();
    for (r, fresh) in reports.into_iter().zip(&outcome.fresh) {
        if *fresh {
            report.absorb(r);
        }
    }
    account(state, &report);
}
