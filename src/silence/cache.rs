//! The dispatcher's and the webhook's copy of the stored silences: read from the store at
//! most once per [`REFRESH`], so a silence added by the CLI, the HTTP API or another replica
//! takes effect within about a second everywhere, without a store read per batch or per POST.
//!
//! Invariants:
//! - A failed read keeps the last known silences (an unreachable store must not turn every
//!   silence off, nor on); the next caller tries again.
//! - One read at a time. A copy that is merely old is still used by everyone else while one
//!   caller reads it again (a burst of POSTs arriving as it ages must not become a burst of
//!   store reads); a copy this replica invalidated (it changed a silence itself) or never
//!   read is waited for, so its own change is applied to the very next hook.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;

use super::Silences;
use crate::store::{Store, StoreError, StoredSilence};

/// How old the copy may get before the store is read again.
pub const REFRESH: Duration = Duration::from_secs(1);

#[derive(Default)]
pub struct SilenceCache {
    current: ArcSwap<Silences>,
    /// When the copy was read (None: never, or invalidated).
    fetched: Mutex<Option<Instant>>,
    /// Bumped by every invalidation: a read that started before one must not mark the copy
    /// fresh (it may predate the change that invalidated it).
    generation: AtomicU64,
    /// Held by the one caller reading the store.
    reading: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for SilenceCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SilenceCache")
    }
}

/// How usable the copy is right now.
enum Freshness {
    Fresh,
    /// Older than [`REFRESH`]: good enough for anyone but the caller that reads it again.
    Old,
    /// Never read, or invalidated: wait for a read.
    Missing,
}

impl SilenceCache {
    /// The silences to route with, read again from the store when the copy is stale.
    pub async fn get(&self, store: &dyn Store, now: i64) -> Arc<Silences> {
        self.get_from(|| store.silences(now, None)).await
    }

    fn freshness(&self) -> Freshness {
        match *self.fetched.lock().unwrap_or_else(|e| e.into_inner()) {
            None => Freshness::Missing,
            Some(at) if at.elapsed() >= REFRESH => Freshness::Old,
            Some(_) => Freshness::Fresh,
        }
    }

    /// [`SilenceCache::get`] with the store read given as `read`.
    async fn get_from<F, R>(&self, read: F) -> Arc<Silences>
    where
        F: FnOnce() -> R,
        R: Future<Output = Result<Vec<StoredSilence>, StoreError>>,
    {
        let _reading = match self.freshness() {
            Freshness::Fresh => return self.current.load_full(),
            Freshness::Old => match self.reading.try_lock() {
                Ok(guard) => guard,
                Err(_) => return self.current.load_full(),
            },
            Freshness::Missing => {
                let guard = self.reading.lock().await;
                // The caller before us may have read it while we waited.
                if matches!(self.freshness(), Freshness::Fresh) {
                    return self.current.load_full();
                }
                guard
            }
        };
        let started = self.generation.load(Ordering::SeqCst);
        match read().await {
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
                if self.generation.load(Ordering::SeqCst) == started {
                    *fetched = Some(Instant::now());
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the silences; routing with the last known ones")
            }
        }
        self.current.load_full()
    }

    /// Makes the next [`SilenceCache::get`] read the store (after this replica changed a
    /// silence).
    pub fn invalidate(&self) {
        let mut fetched = self.fetched.lock().unwrap_or_else(|e| e.into_inner());
        self.generation.fetch_add(1, Ordering::SeqCst);
        *fetched = None;
    }

    #[cfg(test)]
    fn age(&self, by: Duration) {
        let mut fetched = self.fetched.lock().unwrap_or_else(|e| e.into_inner());
        *fetched = fetched.and_then(|at| at.checked_sub(by));
    }
}

#[cfg(test)]
mod tests;
