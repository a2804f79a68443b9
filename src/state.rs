//! What the running parts share: the current config (swapped whole on reload), the store,
//! metrics, destination health and the wake-up signals between stages.
//!
//! Invariant: readers take one snapshot of [`Loaded`] per unit of work, so a reload never
//! mixes two configs inside one dispatch batch or one delivery.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use serde::Serialize;
use tokio::sync::Notify;

use crate::config::Loaded;
use crate::metrics::Metrics;
use crate::store::Store;

/// Unix milliseconds now.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

pub struct State {
    pub loaded: ArcSwap<Loaded>,
    pub store: Arc<dyn Store>,
    pub metrics: Metrics,
    pub health: Health,
    /// Rung after an ingest commits: there are hooks to route.
    pub dispatch_wake: Notify,
    wakes: Mutex<HashMap<String, Arc<Notify>>>,
}

impl State {
    pub fn new(loaded: Loaded, store: Arc<dyn Store>, metrics: Metrics) -> State {
        metrics.prepare(&loaded);
        State {
            loaded: ArcSwap::from_pointee(loaded),
            store,
            metrics,
            health: Health::default(),
            dispatch_wake: Notify::new(),
            wakes: Mutex::new(HashMap::new()),
        }
    }

    pub fn current(&self) -> Arc<Loaded> {
        self.loaded.load_full()
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
