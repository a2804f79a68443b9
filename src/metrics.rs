//! Prometheus metrics: one registry per running app (so tests can run several apps in one
//! process), rendered in the text format at `GET /metrics`. docs/operations.md lists every metric.
//!
//! Invariant: no label ever holds a secret or personal data, only names from the config
//! (routes, destinations), kinds and fixed words.

use prometheus::{
    Encoder, Gauge, GaugeVec, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

use crate::store::{InboxStats, QueueStat};

#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    /// Hooks by kind and what became of them: accepted, duplicate, rejected.
    pub hooks_received: IntCounterVec,
    /// Accepted hooks' fields that came with an unexpected type, by field.
    pub hook_type_mismatches: IntCounterVec,
    /// Refused requests by reason: signature, app_key, body, size, content_type, store.
    pub requests_rejected: IntCounterVec,
    pub route_matches: IntCounterVec,
    /// Hooks an active silence held back from chat, by route (stored, routed, not sent).
    pub silenced: IntCounterVec,
    pub unrouted: IntCounter,
    /// Delivery attempts by destination and result: ok, retry, dead.
    pub deliveries: IntCounterVec,
    /// Hook received → 2xx from the destination.
    pub delivery_latency: HistogramVec,
    pub queue_depth: IntGaugeVec,
    pub queue_oldest_age: GaugeVec,
    pub dead_letters: IntGaugeVec,
    pub render_fallbacks: IntCounterVec,
    pub digests: IntCounterVec,
    pub rate_alerts: IntCounterVec,
    pub config_reloads: IntCounterVec,
    /// Always 1, labelled with the loaded config's hash.
    pub config_info: IntGaugeVec,
    pub destination_healthy: IntGaugeVec,
    pub store_writable: Gauge,
    /// Hooks quarantined because routing them failed repeatedly.
    pub quarantined: IntCounter,
    /// Long-running tasks started again after an unexpected stop.
    pub task_restarts: IntCounterVec,
    /// Hooks stored and not yet routed, and the age of the oldest (routing lag).
    pub inbox_waiting: IntGauge,
    pub routing_lag: Gauge,
    /// Stored hooks kept for `reroute`, by state (unrouted, quarantined).
    pub hooks_kept: IntGaugeVec,
    /// Enrichment lookups of NHN's message query API by outcome: found, no_data,
    /// bad_credentials, retry, given_up.
    pub enrich_lookups: IntCounterVec,
    /// Hooks enriched from the cache (no lookup of their own).
    pub enrich_cache_hits: IntCounter,
    pub enrich_lookup_latency: HistogramVec,
    /// Hooks that needed enrichment and were routed without it, by reason: wait (the lookup
    /// took longer than `enrich.wait`), no_data, bad_credentials.
    pub enrich_unenriched: IntCounterVec,
    /// 1 while NHN refuses an app key's secret key.
    pub enrich_bad_credentials: IntGaugeVec,
    /// Log lines dropped, by reason: write_failed (stderr refused them), queue_full.
    log_lines_dropped: IntCounterVec,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

fn counter(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric definition");
    r.register(Box::new(c.clone()))
        .expect("metric registered once");
    c
}

fn int_gauge(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    let g = IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric definition");
    r.register(Box::new(g.clone()))
        .expect("metric registered once");
    g
}

impl Metrics {
    pub fn new() -> Metrics {
        let r = Registry::new();
        let delivery_latency = HistogramVec::new(
            HistogramOpts::new(
                "bizrelay_delivery_latency_seconds",
                "Time from receiving a hook to the destination's 2xx",
            )
            .buckets(vec![
                0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0,
            ]),
            &["destination"],
        )
        .expect("valid metric definition");
        r.register(Box::new(delivery_latency.clone()))
            .expect("metric registered once");
        let queue_oldest_age = GaugeVec::new(
            Opts::new(
                "bizrelay_queue_oldest_age_seconds",
                "Age of the oldest pending delivery per destination",
            ),
            &["destination"],
        )
        .expect("valid metric definition");
        r.register(Box::new(queue_oldest_age.clone()))
            .expect("metric registered once");
        let unrouted = IntCounter::new(
            "bizrelay_unrouted_hooks_total",
            "Hooks that matched no route",
        )
        .expect("valid metric definition");
        r.register(Box::new(unrouted.clone()))
            .expect("metric registered once");
        let quarantined = IntCounter::new(
            "bizrelay_hooks_quarantined_total",
            "Hooks quarantined because routing them failed repeatedly",
        )
        .expect("valid metric definition");
        r.register(Box::new(quarantined.clone()))
            .expect("metric registered once");
        let inbox_waiting =
            IntGauge::new("bizrelay_inbox_waiting", "Hooks stored and not yet routed")
                .expect("valid metric definition");
        r.register(Box::new(inbox_waiting.clone()))
            .expect("metric registered once");
        let routing_lag = Gauge::new(
            "bizrelay_routing_lag_seconds",
            "Age of the oldest hook waiting to be routed",
        )
        .expect("valid metric definition");
        r.register(Box::new(routing_lag.clone()))
            .expect("metric registered once");
        let store_writable = Gauge::new(
            "bizrelay_store_writable",
            "1 when the last store write succeeded",
        )
        .expect("valid metric definition");
        r.register(Box::new(store_writable.clone()))
            .expect("metric registered once");
        let enrich_lookup_latency = HistogramVec::new(
            HistogramOpts::new(
                "bizrelay_enrich_lookup_seconds",
                "Time one lookup of NHN's message query API took",
            )
            .buckets(vec![0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0]),
            &["outcome"],
        )
        .expect("valid metric definition");
        r.register(Box::new(enrich_lookup_latency.clone()))
            .expect("metric registered once");
        let enrich_cache_hits = IntCounter::new(
            "bizrelay_enrich_cache_hits_total",
            "Hooks enriched from the requestId cache",
        )
        .expect("valid metric definition");
        r.register(Box::new(enrich_cache_hits.clone()))
            .expect("metric registered once");
        Metrics {
            enrich_lookups: counter(
                &r,
                "bizrelay_enrich_lookups_total",
                "Lookups of NHN's message query API, by outcome",
                &["outcome"],
            ),
            enrich_cache_hits,
            enrich_lookup_latency,
            enrich_unenriched: counter(
                &r,
                "bizrelay_enrich_routed_without_total",
                "Hooks that needed enrichment and were routed without it, by reason",
                &["reason"],
            ),
            enrich_bad_credentials: int_gauge(
                &r,
                "bizrelay_enrich_bad_credentials",
                "1 while NHN refuses an app key's secret key",
                &["app_key"],
            ),
            hooks_received: counter(
                &r,
                "bizrelay_hooks_received_total",
                "Hooks received, by kind and outcome (accepted, duplicate, rejected)",
                &["kind", "outcome"],
            ),
            hook_type_mismatches: counter(
                &r,
                "bizrelay_hook_type_mismatches_total",
                "Fields of accepted hooks that came with an unexpected type (kept as text), by field",
                &["field"],
            ),
            requests_rejected: counter(
                &r,
                "bizrelay_requests_rejected_total",
                "Webhook requests refused, by reason",
                &["reason"],
            ),
            route_matches: counter(
                &r,
                "bizrelay_route_matches_total",
                "Hooks that matched each route",
                &["route"],
            ),
            silenced: counter(
                &r,
                "bizrelay_silenced_total",
                "Hooks a silence held back from chat, by route (still stored and counted)",
                &["route"],
            ),
            unrouted,
            deliveries: counter(
                &r,
                "bizrelay_deliveries_total",
                "Delivery attempts by destination and result (ok, retry, dead)",
                &["destination", "result"],
            ),
            delivery_latency,
            queue_depth: int_gauge(
                &r,
                "bizrelay_queue_depth",
                "Pending deliveries per destination",
                &["destination"],
            ),
            queue_oldest_age,
            dead_letters: int_gauge(
                &r,
                "bizrelay_dead_letters",
                "Dead letters per destination",
                &["destination"],
            ),
            render_fallbacks: counter(
                &r,
                "bizrelay_render_fallbacks_total",
                "Bodies sent as the plain fallback because a template failed",
                &["destination_type", "template"],
            ),
            digests: counter(
                &r,
                "bizrelay_digests_total",
                "Digests produced, by route",
                &["route"],
            ),
            rate_alerts: counter(
                &r,
                "bizrelay_rate_alerts_total",
                "Rate alert messages produced, by route and state (firing, repeat, resolved)",
                &["route", "state"],
            ),
            config_reloads: counter(
                &r,
                "bizrelay_config_reloads_total",
                "Config reloads by result (success, failure)",
                &["result"],
            ),
            config_info: int_gauge(
                &r,
                "bizrelay_config_info",
                "The loaded config (label hash); always 1",
                &["hash"],
            ),
            destination_healthy: int_gauge(
                &r,
                "bizrelay_destination_healthy",
                "0 after a 401/403/404/410 from the destination, 1 otherwise",
                &["destination"],
            ),
            store_writable,
            quarantined,
            task_restarts: counter(
                &r,
                "bizrelay_task_restarts_total",
                "Background tasks started again after an unexpected stop, by task",
                &["task"],
            ),
            inbox_waiting,
            routing_lag,
            hooks_kept: int_gauge(
                &r,
                "bizrelay_hooks_kept",
                "Stored hooks kept for `bizrelay reroute`, by state (unrouted, quarantined)",
                &["state"],
            ),
            log_lines_dropped: counter(
                &r,
                "bizrelay_log_lines_dropped_total",
                "Log lines dropped because stderr refused them (write_failed) or was too slow (queue_full); process-wide",
                &["reason"],
            ),
            registry: r,
        }
    }

    /// Replaces the queue gauges with fresh figures: every configured destination (0 when
    /// absent from `stats`) and every destination that still has rows (removed ones too).
    pub fn set_queue_stats(&self, destinations: &[String], stats: &[QueueStat], now_ms: i64) {
        let mut all: Vec<&String> = destinations
            .iter()
            .chain(stats.iter().map(|s| &s.destination))
            .collect();
        all.sort();
        all.dedup();
        for d in all {
            let s = stats
                .iter()
                .find(|s| &s.destination == d)
                .cloned()
                .unwrap_or_default();
            self.queue_depth.with_label_values(&[d]).set(s.pending);
            self.dead_letters.with_label_values(&[d]).set(s.dead);
            let age = s
                .oldest_pending_at
                .map_or(0.0, |t| ((now_ms - t).max(0)) as f64 / 1000.0);
            self.queue_oldest_age.with_label_values(&[d]).set(age);
        }
    }

    /// Sets the inbox gauges from fresh figures.
    pub fn set_inbox_stats(&self, stats: &InboxStats, now_ms: i64) {
        self.inbox_waiting.set(stats.waiting);
        self.routing_lag.set(
            stats
                .oldest_waiting_at
                .map_or(0.0, |t| ((now_ms - t).max(0)) as f64 / 1000.0),
        );
        self.hooks_kept
            .with_label_values(&["unrouted"])
            .set(stats.unrouted);
        self.hooks_kept
            .with_label_values(&["quarantined"])
            .set(stats.quarantined);
    }

    /// Creates the labelled series a config implies at zero, so dashboards and alerts see 0
    /// rather than no data (routes, destinations, templates in use).
    pub fn prepare(&self, loaded: &crate::config::Loaded) {
        for result in ["success", "failure"] {
            self.config_reloads.with_label_values(&[result]);
        }
        for (name, dest) in &loaded.config.destinations {
            for result in ["ok", "retry", "dead"] {
                self.deliveries.with_label_values(&[name, result]);
            }
            self.delivery_latency.with_label_values(&[name]);
            for r in loaded.routes.iter().filter(|r| r.to.contains(name)) {
                for template in r.templates_used() {
                    self.render_fallbacks
                        .with_label_values(&[dest.kind.as_str(), template]);
                }
            }
        }
        for r in loaded.routes.iter() {
            self.route_matches.with_label_values(&[&r.name]);
            self.silenced.with_label_values(&[&r.name]);
            if r.group.is_some() {
                self.digests.with_label_values(&[&r.name]);
            }
        }
        self.set_config_hash(&loaded.hash);
    }

    pub fn set_config_hash(&self, hash: &str) {
        self.config_info.reset();
        self.config_info.with_label_values(&[hash]).set(1);
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        // The logger belongs to the process, not to an app: copy its counts in.
        let (write_failed, queue_full) = crate::logging::lost_lines();
        for (reason, n) in [("write_failed", write_failed), ("queue_full", queue_full)] {
            let c = self.log_lines_dropped.with_label_values(&[reason]);
            c.reset();
            c.inc_by(n);
        }
        let mut buf = Vec::new();
        // Encoding into a Vec cannot fail for well-formed metrics.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        String::from_utf8(buf).unwrap_or_default()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_render_in_text_format() {
        let m = Metrics::new();
        m.hooks_received
            .with_label_values(&["template", "accepted"])
            .inc();
        m.set_config_hash("abc123");
        m.set_queue_stats(
            &["ops".to_string(), "idle".to_string()],
            &[QueueStat {
                destination: "ops".into(),
                pending: 3,
                oldest_pending_at: Some(1_000),
                dead: 1,
            }],
            11_000,
        );
        let text = m.render();
        assert!(
            text.contains(
                "bizrelay_hooks_received_total{kind=\"template\",outcome=\"accepted\"} 1"
            ),
            "{text}"
        );
        assert!(text.contains("bizrelay_config_info{hash=\"abc123\"} 1"));
        assert!(text.contains("bizrelay_queue_depth{destination=\"ops\"} 3"));
        assert!(text.contains("bizrelay_queue_depth{destination=\"idle\"} 0"));
        assert!(text.contains("bizrelay_queue_oldest_age_seconds{destination=\"ops\"} 10"));
        assert!(text.contains("bizrelay_dead_letters{destination=\"ops\"} 1"));
        m.set_config_hash("def456");
        assert!(!m.render().contains("abc123"));
    }
}
