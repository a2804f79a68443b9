//! What the running parts share: the current config (swapped whole on reload), the store,
//! metrics, this replica's identity and clock, destination and store health, task liveness,
//! and the wake-up signals between stages.
//!
//! Invariants:
//! - Readers take one snapshot of [`Loaded`] per unit of work, so a reload never mixes two
//!   configs inside one dispatch batch or one delivery.
//! - Time comes from [`Clock`]: the system clock in production, a hand-moved one in tests.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use serde::Serialize;
use tokio::sync::Notify;

use crate::config::Loaded;
use crate::metrics::Metrics;
use crate::store::{Claimant, Store, StoreError};

mod enrich_health;
pub use enrich_health::{EnrichHealth, REFUSED_RETRY_MS};

/// Unix milliseconds now, by the system clock.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Where "now" comes from.
#[derive(Debug, Clone, Default)]
pub enum Clock {
    #[default]
    System,
    /// Moved by hand (tests): Unix milliseconds.
    Manual(Arc<AtomicI64>),
}

impl Clock {
    pub fn manual(start_ms: i64) -> Clock {
        Clock::Manual(Arc::new(AtomicI64::new(start_ms)))
    }

    pub fn now(&self) -> i64 {
        match self {
            Clock::System => now_ms(),
            Clock::Manual(t) => t.load(Ordering::SeqCst),
        }
    }

    /// Moves a manual clock forward (no effect on the system clock).
    pub fn advance(&self, ms: i64) {
        if let Clock::Manual(t) = self {
            t.fetch_add(ms, Ordering::SeqCst);
        }
    }
}

/// A name for this process among the replicas sharing a store: host, pid and a random part
/// (a restarted process is a new replica; its old claims expire or, on SQLite, are released).
pub fn replica_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "host".into());
    format!(
        "{host}-{}-{:06x}",
        std::process::id(),
        rand::random::<u32>() & 0xff_ffff
    )
}

/// Hooks this replica has just stored, handed to its dispatcher in memory: they are born
/// claimed by this replica, so the dispatcher routes them without reading them back from the
/// store or parsing them again. The store stays the truth: if the process dies, the claims
/// expire (SQLite: are released at start) and the hooks are claimed from the store.
///
/// Invariant: room is reserved before the hooks are stored, so a hook is born claimed only
/// when it certainly finds a place here; past the capacity hooks are stored unclaimed and the
/// dispatcher claims them from the store as usual.
pub struct Handoff {
    room: tokio::sync::Semaphore,
    queue: Mutex<std::collections::VecDeque<crate::store::StoredHook>>,
}

/// Hooks the handoff holds at most (about 2 KB each with their parse): a few batches ahead
/// of the dispatcher is all it needs; past that, hooks wait in the store.
pub const HANDOFF_CAPACITY: usize = 5_000;
/// A hook whose born claim ends sooner than this is left to the store path: routing and
/// committing it from memory could outlast the claim and race the store's own hand-out.
pub const HANDOFF_MARGIN_MS: i64 = 1_000;
/// How long a hook handed over in memory stays claimed by this replica: if it is not routed
/// by then (the commit that stored it timed out and landed late, the process died), the
/// dispatcher (or another replica) claims it from the store.
pub const HANDOFF_CLAIM_MS: i64 = 5_000;

impl Default for Handoff {
    fn default() -> Self {
        Handoff {
            room: tokio::sync::Semaphore::new(HANDOFF_CAPACITY),
            queue: Mutex::new(std::collections::VecDeque::new()),
        }
    }
}

impl Handoff {
    /// Reserves room for `n` hooks; false when there is not enough.
    pub fn reserve(&self, n: usize) -> bool {
        match u32::try_from(n)
            .ok()
            .and_then(|n| self.room.try_acquire_many(n).ok())
        {
            Some(permit) => {
                permit.forget();
                true
            }
            None => false,
        }
    }

    /// Gives back room reserved for hooks that were not handed over (duplicates, a failed
    /// commit).
    pub fn release(&self, n: usize) {
        self.room.add_permits(n);
    }

    /// Hands stored hooks over (their room was reserved).
    pub fn push(&self, hooks: Vec<crate::store::StoredHook>) {
        self.queue
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend(hooks);
    }

    /// Takes up to `max` hooks, oldest first, and frees their room. Hooks received before
    /// `stale_before` are dropped instead (their claim is about to end; the store hands them
    /// out again), and their number is returned beside the hooks.
    pub fn take(&self, max: usize, stale_before: i64) -> (Vec<crate::store::StoredHook>, usize) {
        let mut q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        let mut stale = 0;
        while q.front().is_some_and(|h| h.received_at < stale_before) {
            q.pop_front();
            stale += 1;
        }
        let n = q.len().min(max);
        let out: Vec<_> = q.drain(..n).collect();
        drop(q);
        self.room.add_permits(out.len() + stale);
        (out, stale)
    }
}

pub struct State {
    pub loaded: ArcSwap<Loaded>,
    pub store: Arc<dyn Store>,
    pub metrics: Metrics,
    pub health: Health,
    pub store_health: StoreHealth,
    pub liveness: Liveness,
    /// This replica's claims on hooks and digest groups.
    pub claimant: Claimant,
    pub clock: Clock,
    /// Rung after an ingest commits: there are hooks to route.
    pub dispatch_wake: Notify,
    pub handoff: Handoff,
    /// The stored silences, cached briefly for routing.
    pub silences: crate::silence::SilenceCache,
    /// Rung when lookups of NHN's message query API are filed or finish.
    pub enrich_wake: Notify,
    pub enrich_health: EnrichHealth,
    wakes: Mutex<HashMap<String, Arc<Notify>>>,
}

impl State {
    pub fn new(loaded: Loaded, store: Arc<dyn Store>, metrics: Metrics, clock: Clock) -> State {
        metrics.prepare(&loaded);
        let lease_ms = i64::try_from(loaded.config.store.lease.as_millis()).unwrap_or(i64::MAX);
        State {
            loaded: ArcSwap::from_pointee(loaded),
            store,
            metrics,
            health: Health::default(),
            store_health: StoreHealth::default(),
            liveness: Liveness::default(),
            claimant: Claimant {
                owner: replica_id(),
                ttl_ms: lease_ms,
            },
            clock,
            dispatch_wake: Notify::new(),
            handoff: Handoff::default(),
            silences: crate::silence::SilenceCache::default(),
            enrich_wake: Notify::new(),
            enrich_health: EnrichHealth::default(),
            wakes: Mutex::new(HashMap::new()),
        }
    }

    pub fn current(&self) -> Arc<Loaded> {
        self.loaded.load_full()
    }

    pub fn now(&self) -> i64 {
        self.clock.now()
    }

    /// The destinations of the current config.
    pub fn destination_names(&self) -> Vec<String> {
        self.current().config.destinations.keys().cloned().collect()
    }

    /// The wake-up signal of a destination's sender (created on first use).
    pub fn wake_of(&self, destination: &str) -> Arc<Notify> {
        let mut wakes = self.wakes.lock().unwrap_or_else(|e| e.into_inner());
        Arc::clone(wakes.entry(destination.to_string()).or_default())
    }
}

/// What the last answer of a destination says about it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct DestinationHealth {
    pub healthy: bool,
    pub last_status: Option<u16>,
    pub since: i64,
}

#[derive(Debug, Default)]
pub struct Health {
    destinations: Mutex<BTreeMap<String, DestinationHealth>>,
}

impl Health {
    /// Records an answer; returns true when the destination's health changed.
    pub fn record(&self, destination: &str, healthy: bool, status: Option<u16>, now: i64) -> bool {
        let mut map = self.destinations.lock().unwrap_or_else(|e| e.into_inner());
        let changed = map.get(destination).is_none_or(|h| h.healthy != healthy);
        if changed {
            map.insert(
                destination.to_string(),
                DestinationHealth {
                    healthy,
                    last_status: status,
                    since: now,
                },
            );
        }
        changed
    }

    /// Forgets destinations that are no longer configured; returns the ones forgotten.
    pub fn retain(&self, names: &[String]) -> Vec<String> {
        let mut map = self.destinations.lock().unwrap_or_else(|e| e.into_inner());
        let gone: Vec<String> = map.keys().filter(|k| !names.contains(k)).cloned().collect();
        for g in &gone {
            map.remove(g);
        }
        gone
    }

    pub fn unhealthy(&self) -> BTreeMap<String, DestinationHealth> {
        let map = self.destinations.lock().unwrap_or_else(|e| e.into_inner());
        map.iter()
            .filter(|(_, h)| !h.healthy)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
}

/// Who used the store, for [`StoreHealth`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreUse {
    Ingest,
    Dispatch,
    Deliver,
    Probe,
}

impl StoreUse {
    pub fn as_str(self) -> &'static str {
        match self {
            StoreUse::Ingest => "ingest",
            StoreUse::Dispatch => "dispatch",
            StoreUse::Deliver => "deliver",
            StoreUse::Probe => "probe",
        }
    }
}

/// Consecutive failures after which a use of the store counts as failing.
const FAILING_AFTER: u32 = 3;

/// Whether the store works, judged from every use of it. Each use (the webhook, the
/// dispatcher, the senders, the readiness probe) keeps its own count of consecutive
/// failures, so a store that takes writes but fails the dispatcher's reads (damaged pages)
/// still counts as failing until the dispatcher succeeds again.
#[derive(Debug, Default)]
pub struct StoreHealth {
    uses: Mutex<BTreeMap<StoreUse, (u32, String)>>,
}

impl StoreHealth {
    pub fn record<T>(&self, used: StoreUse, result: &Result<T, StoreError>) {
        let mut uses = self.uses.lock().unwrap_or_else(|e| e.into_inner());
        match result {
            Ok(_) => {
                uses.remove(&used);
            }
            Err(e) => {
                let entry = uses.entry(used).or_insert((0, String::new()));
                // A replaced, deleted or damaged file will not mend itself by retrying.
                entry.0 = match e {
                    StoreError::Refused(_) | StoreError::Corrupt(_) => FAILING_AFTER,
                    _ => entry.0.saturating_add(1),
                };
                entry.1 = e.to_string();
            }
        }
    }

    /// The failing uses and their last errors.
    pub fn failing(&self) -> Vec<(StoreUse, String)> {
        let uses = self.uses.lock().unwrap_or_else(|e| e.into_inner());
        uses.iter()
            .filter(|(_, (n, _))| *n >= FAILING_AFTER)
            .map(|(u, (_, e))| (*u, e.clone()))
            .collect()
    }

    /// Whether new hooks must be refused: any use but the webhook's own is failing (the
    /// webhook's failures answer 503 by themselves, and refusing up front on them would
    /// never let it find out the store is back).
    pub fn refuses_hooks(&self) -> Option<String> {
        self.failing()
            .into_iter()
            .find(|(u, _)| *u != StoreUse::Ingest)
            .map(|(u, e)| format!("{}: {e}", u.as_str()))
    }
}

/// What the long-running tasks report about themselves.
#[derive(Debug, Default)]
pub struct Liveness {
    tasks: Mutex<BTreeMap<String, TaskLife>>,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct TaskLife {
    pub running: bool,
    pub restarts: u64,
    /// When it last finished a unit of work (a dispatch pass, a post, a wait).
    pub last_progress: Option<i64>,
    pub last_failure: Option<String>,
}

impl Liveness {
    fn update(&self, task: &str, f: impl FnOnce(&mut TaskLife)) {
        let mut tasks = self.tasks.lock().unwrap_or_else(|e| e.into_inner());
        f(tasks.entry(task.to_string()).or_default());
    }

    pub fn started(&self, task: &str) {
        self.update(task, |t| t.running = true);
    }

    pub fn progress(&self, task: &str, now: i64) {
        self.update(task, |t| {
            t.running = true;
            t.last_progress = Some(now);
        });
    }

    pub fn stopped(&self, task: &str, failure: Option<String>) {
        self.update(task, |t| {
            t.running = false;
            if failure.is_some() {
                t.restarts += 1;
                t.last_failure = failure;
            }
        });
    }

    pub fn forget(&self, task: &str) {
        self.tasks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(task);
    }

    pub fn snapshot(&self) -> BTreeMap<String, TaskLife> {
        self.tasks.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fail() -> Result<(), StoreError> {
        Err(StoreError::Unavailable(
            "database disk image is malformed".into(),
        ))
    }

    #[test]
    fn a_store_failing_repeatedly_for_any_use_refuses_hooks_until_that_use_works() {
        let h = StoreHealth::default();
        h.record(StoreUse::Dispatch, &fail());
        h.record(StoreUse::Dispatch, &fail());
        assert!(h.refuses_hooks().is_none(), "two failures may be a blip");
        h.record(StoreUse::Dispatch, &fail());
        let why = h.refuses_hooks().expect("three in a row: refuse");
        assert!(
            why.starts_with("dispatch: ") && why.contains("malformed"),
            "{why}"
        );
        // Other uses succeeding do not hide the dispatcher's trouble (reads failing while
        // writes still work)...
        h.record(StoreUse::Ingest, &Ok(()));
        h.record(StoreUse::Probe, &Ok(()));
        assert!(h.refuses_hooks().is_some());
        // ...its own success does.
        h.record(StoreUse::Dispatch, &Ok(()));
        assert!(h.refuses_hooks().is_none());
        // A damaged or replaced file counts at once.
        h.record(
            StoreUse::Probe,
            &Err::<(), _>(StoreError::Refused("deleted".into())),
        );
        assert!(h.refuses_hooks().is_some());
        // The webhook's own failures answer 503 by themselves and never lock it out.
        let w = StoreHealth::default();
        for _ in 0..5 {
            w.record(StoreUse::Ingest, &fail());
        }
        assert!(w.refuses_hooks().is_none());
        assert_eq!(w.failing().len(), 1, "but readiness sees them");
    }

    #[test]
    fn a_manual_clock_moves_only_by_hand() {
        let c = Clock::manual(1_000);
        assert_eq!(c.now(), 1_000);
        c.advance(500);
        assert_eq!(c.now(), 1_500);
    }

    fn handed(row: i64, received_at: i64) -> crate::store::StoredHook {
        crate::store::StoredHook {
            row,
            received_at,
            envelope: Default::default(),
            raw: "{}".into(),
            sent_to: vec![],
            failures: 0,
            parsed: None,
        }
    }

    #[test]
    fn the_handoff_keeps_its_room_and_leaves_hooks_near_their_claims_end_to_the_store() {
        let h = Handoff::default();
        assert!(h.reserve(HANDOFF_CAPACITY));
        assert!(!h.reserve(1), "full");
        h.push((0..HANDOFF_CAPACITY as i64).map(|i| handed(i, i)).collect());
        // Hooks received before 10 are stale: dropped, and their room freed with the rest.
        let (got, stale) = h.take(5, 10);
        assert_eq!(stale, 10);
        assert_eq!(
            got.iter().map(|x| x.row).collect::<Vec<_>>(),
            [10, 11, 12, 13, 14]
        );
        assert!(
            h.reserve(15),
            "the room of taken and stale hooks is free again"
        );
        assert!(!h.reserve(1));
        let (rest, stale) = h.take(HANDOFF_CAPACITY, 0);
        assert_eq!((rest.len(), stale), (HANDOFF_CAPACITY - 15, 0));
        assert_eq!(rest[0].row, 15, "oldest first");
    }
}
