//! Which app keys NHN refused the secret key of ([`EnrichHealth`]), shared by the lookup task
//! (which records refusals), the dispatcher (which stops holding hooks of a refused key) and
//! `/readyz` (which lists them).

use std::collections::BTreeMap;
use std::sync::Mutex;

/// App keys whose secret key NHN refused, with when it was last seen refused and why. Kept
/// here (not per hook) so bad credentials are reported once and hooks of that app key are
/// routed at once instead of each waiting for a lookup that will fail.
#[derive(Debug, Default)]
pub struct EnrichHealth {
    refused: Mutex<BTreeMap<String, (i64, String)>>,
}

/// How long hooks of an app key whose secret was refused skip enrichment before one lookup
/// tries the key again.
pub const REFUSED_RETRY_MS: i64 = 5 * 60 * 1000;

impl EnrichHealth {
    /// Records a refusal; true when the app key was not already known as refused.
    pub fn refused(&self, app_key: &str, reason: &str, now: i64) -> bool {
        let mut map = self.refused.lock().unwrap_or_else(|e| e.into_inner());
        map.insert(app_key.to_string(), (now, reason.to_string()))
            .is_none()
    }

    /// Records an accepted answer; true when the app key was known as refused.
    pub fn accepted(&self, app_key: &str) -> bool {
        let mut map = self.refused.lock().unwrap_or_else(|e| e.into_inner());
        map.remove(app_key).is_some()
    }

    /// Whether hooks of this app key skip enrichment now (refused recently).
    pub fn skips(&self, app_key: &str, now: i64) -> bool {
        let map = self.refused.lock().unwrap_or_else(|e| e.into_inner());
        map.get(app_key)
            .is_some_and(|(at, _)| now - at < REFUSED_RETRY_MS)
    }

    /// App keys refused, with why (for `/readyz`).
    pub fn refused_keys(&self) -> Vec<(String, String)> {
        let map = self.refused.lock().unwrap_or_else(|e| e.into_inner());
        map.iter()
            .map(|(k, (_, r))| (k.clone(), r.clone()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_key_is_reported_once_skipped_for_a_while_then_tried_again() {
        let h = EnrichHealth::default();
        assert!(
            h.refused("AK", "NHN answered -1001", 1_000),
            "first refusal: report"
        );
        assert!(
            !h.refused("AK", "NHN answered -1001", 2_000),
            "again: already reported"
        );
        assert!(h.skips("AK", 2_000 + REFUSED_RETRY_MS - 1));
        assert!(
            !h.skips("AK", 2_000 + REFUSED_RETRY_MS),
            "time to try the key again"
        );
        assert!(!h.skips("other", 2_000));
        assert_eq!(
            h.refused_keys(),
            vec![("AK".to_string(), "NHN answered -1001".to_string())]
        );
        assert!(h.accepted("AK"));
        assert!(!h.accepted("AK"));
        assert!(h.refused_keys().is_empty());
    }
}
