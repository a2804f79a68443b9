//! The dispatcher's copy of the stored silences: read from the store at most once per
//! [`REFRESH`], so a silence added by the CLI, the HTTP API or another replica takes effect
//! within about a second everywhere, without a store read per batch.
//!
//! Invariant: a failed read keeps the last known silences (an unreachable store must not
//! turn every silence off, nor on); the next batch tries again.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;

use super::Silences;
use crate::store::Store;

/// How old the copy may get before the store is read again.
pub const REFRESH: Duration = Duration::from_secs(1);

#[derive(Default)]
pub struct SilenceCache {
    current: ArcSwap<Silences>,
    /// When the copy was read (None: never, or invalidated).
    fetched: Mutex<Option<Instant>>,
    /// Bumped by every invalidation: a read that started before one must not mark the copy
    /// fresh (it may predate the change that invalidated it).
    generation: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for SilenceCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SilenceCache")
    }
}

impl SilenceCache {
    /// The silences to route with, read again from the store when the copy is stale.
    pub async fn get(&self, store: &dyn Store, now: i64) -> Arc<Silences> {
        let stale = self
            .fetched
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_none_or(|at| at.elapsed() >= REFRESH);
        if stale {
            let started = self.generation.load(std::sync::atomic::Ordering::SeqCst);
            match store.silences(now, None).await {
                Ok(stored) => {
                    let compiled = Silences::compile(&stored);
                    let ids = compiled.ids();
                    if ids != self.current.load().ids() {
                        tracing::info!(
                            silences = ids.len(),
                            ids = ?ids,
                            "silences changed; routing with the new ones"
                        );
                    }
                    self.current.store(Arc::new(compiled));
                    let mut fetched = self.fetched.lock().unwrap_or_else(|e| e.into_inner());
                    if self.generation.load(std::sync::atomic::Ordering::SeqCst) == started {
                        *fetched = Some(Instant::now());
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the silences; routing with the last known ones")
                }
            }
        }
        self.current.load_full()
    }

    /// Makes the next [`SilenceCache::get`] read the store (after this replica changed a
    /// silence).
    pub fn invalidate(&self) {
        let mut fetched = self.fetched.lock().unwrap_or_else(|e| e.into_inner());
        self.generation
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        *fetched = None;
    }
}
