use super::*;
use crate::config::Loaded;
use crate::config::{ConfigSource, load};
use crate::digest::Tally;
use crate::store::{DueGroup, GroupSettings, GroupTiming, NewDelivery, StoredHook};
use serde_json::Value;
use std::collections::HashMap;

fn loaded(text: &str, dir: &std::path::Path) -> Loaded {
    load(
        &ConfigSource::File {
            path: dir.join("config.toml"),
            text: text.into(),
        },
        &HashMap::new(),
    )
    .unwrap_or_else(|e| panic!("{e:?}"))
}

const CONFIG: &str = r#"
[destinations.slack]
type = "slack"
url = "https://hooks.slack.invalid/services/x"
[destinations.teams]
type = "teams"
url = "https://teams.invalid/x"
[destinations.console]
type = "console"

[[routes]]
name = "templates"
to = ["slack", "teams"]
[routes.match]
kind = "template"

[[routes]]
name = "failures"
to = ["slack"]
continue = true
[routes.match]
outcome = "failure"
[routes.group]
by = ["result_code"]
wait = "1s"
interval = "5s"
max_items = 2

[[routes]]
name = "failures-now"
to = ["console"]
template = "broken"
[routes.match]
outcome = "failure"
"#;

fn stored(fixture: &str, first_row: i64) -> Vec<StoredHook> {
    let path = format!("{}/tests/fixtures/{fixture}", env!("CARGO_MANIFEST_DIR"));
    let body = std::fs::read(path).unwrap();
    let post = crate::bizmessage::parse_post(&body).unwrap();
    post.hooks
        .iter()
        .enumerate()
        .map(|(i, raw)| StoredHook {
            row: first_row + i as i64,
            received_at: 1_000,
            envelope: post.envelope.clone().into(),
            raw: raw.get().into(),
            sent_to: vec![],
            failures: 0,
            parsed: None,
        })
        .collect()
}

fn with_broken_template(dir: &std::path::Path) {
    std::fs::create_dir_all(dir.join("templates/console")).unwrap();
    std::fs::write(
        dir.join("templates/console/broken.hbs"),
        "{{nonexistent_field}}",
    )
    .unwrap();
}

#[test]
fn routing_a_batch_renders_immediate_routes_and_groups_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    with_broken_template(dir.path());
    let loaded = loaded(CONFIG, dir.path());
    let mut hooks = stored("template_rejected.json", 1);
    hooks.extend(stored("message_results.json", 2));
    let (batch, report) = route_hooks(&loaded, &hooks, 5_000);
    let outcomes: Vec<(i64, bool)> = batch.hooks.iter().map(|h| (h.row, h.routed)).collect();
    assert_eq!(
        outcomes,
        vec![(1, true), (2, false), (3, true)],
        "every hook gets an outcome, the unrouted success too"
    );
    assert_eq!(batch.hooks[2].sent_to, vec!["console", "slack"]);
    // Template hook: one delivery per destination, each valid for its destination.
    let tpl: Vec<&NewDelivery> = batch
        .deliveries
        .iter()
        .filter(|d| d.route == "templates")
        .collect();
    assert_eq!(tpl.len(), 2);
    assert!(
        tpl.iter()
            .all(|d| d.hook_row == Some(1) && d.hook_id.as_deref() == Some("h-7f3a"))
    );
    assert!(tpl[1].payload.contains("AdaptiveCard"));
    // Success result (row 2): unrouted. Failure (row 3): grouped and, via continue, immediate.
    assert_eq!(report.unrouted, 1);
    assert_eq!(batch.members.len(), 1);
    assert_eq!(batch.members[0].group_key, r#"{"result_code":"3019"}"#);
    assert_eq!(batch.members[0].settings.wait_ms, 1_000);
    assert_eq!(
        batch.members[0].joined_at, 1_000,
        "groups time from the hook's arrival"
    );
    let now: Vec<&NewDelivery> = batch
        .deliveries
        .iter()
        .filter(|d| d.route == "failures-now")
        .collect();
    assert_eq!(now.len(), 1);
    // Its template is broken: the plain fallback went out and the failure is reported.
    assert!(
        now[0]
            .payload
            .contains("could not render template `broken`"),
        "{}",
        now[0].payload
    );
    assert!(!now[0].payload.contains("01098765432"));
    assert_eq!(report.fallbacks.len(), 1);
    assert_eq!(report.matches.get("failures"), Some(&1));
    assert_eq!(
        report.touched.iter().cloned().collect::<Vec<_>>(),
        vec!["console", "slack", "teams"]
    );
}

#[test]
fn a_due_group_becomes_one_digest_per_destination() {
    let dir = tempfile::tempdir().unwrap();
    with_broken_template(dir.path());
    let loaded = loaded(CONFIG, dir.path());
    let members = stored("mixed.json", 10);
    let group = DueGroup {
        route: "failures".into(),
        group_key: "{}".into(),
        settings: GroupSettings {
            to: vec!["slack".into(), "gone".into()],
            template: "message_digest".into(),
            wait_ms: 1_000,
            interval_ms: 5_000,
            max_items: 2,
            resolve_after_ms: None,
        },
        timing: GroupTiming {
            started_at: 0,
            total: 7,
            pending: 4,
            last_flush_at: None,
            next_flush_at: Some(2_000),
            resolve_at: None,
        },
        token: 77,
        tally: Tally {
            count: 4,
            non_results: 1,
            first_at: Some(1_000),
            last_at: Some(1_000),
            codes: vec![
                (None, 2),
                (Some("3016".into()), 1),
                (Some("3019".into()), 1),
            ],
            message_types: vec![],
            senders: vec![],
        },
        samples: members[..2].to_vec(),
        silenced: 0,
    };
    let (flush, report) = build_flush(&loaded, &group, 9_000);
    assert_eq!(
        (flush.token, flush.count),
        (77, 4),
        "the flush covers exactly what was counted"
    );
    assert_eq!(
        flush.deliveries.len(),
        1,
        "the removed destination is skipped"
    );
    let ctx: Value = serde_json::from_str(&flush.context).unwrap();
    assert_eq!(ctx["count"], 4);
    assert_eq!(ctx["total"], 11);
    assert_eq!(ctx["samples"].as_array().unwrap().len(), 2);
    assert!(
        flush.deliveries[0].payload.contains("4 events"),
        "{}",
        flush.deliveries[0].payload
    );
    assert!(report.fallbacks.is_empty());
}

#[test]
fn a_hook_gets_one_delivery_per_destination_even_through_several_routes() {
    let dir = tempfile::tempdir().unwrap();
    let text = r#"
[destinations.slack]
type = "slack"
url = "https://hooks.slack.invalid/services/x"
[destinations.console]
type = "console"
[[routes]]
name = "first"
to = ["slack"]
continue = true
[routes.match]
kind = "template"
[[routes]]
name = "second"
to = ["slack", "console"]
[routes.match]
status = "TSC04"
"#;
    let loaded = loaded(text, dir.path());
    let (batch, report) = route_hooks(&loaded, &stored("template_rejected.json", 1), 5_000);
    let got: Vec<(&str, &str)> = batch
        .deliveries
        .iter()
        .map(|d| (d.route.as_str(), d.destination.as_str()))
        .collect();
    assert_eq!(got, vec![("first", "slack"), ("second", "console")]);
    assert_eq!(report.matches.len(), 2, "both routes matched");
}

#[test]
fn a_digest_follows_its_route_as_configured_now_and_never_vanishes() {
    let dir = tempfile::tempdir().unwrap();
    with_broken_template(dir.path());
    let loaded = loaded(CONFIG, dir.path());
    let members = stored("message_results.json", 1);
    let stale = GroupSettings {
        to: vec!["gone".into()],
        template: "message_digest".into(),
        wait_ms: 1_000,
        interval_ms: 5_000,
        max_items: 2,
        resolve_after_ms: None,
    };
    let tally = Tally {
        count: 1,
        first_at: Some(1_000),
        last_at: Some(1_000),
        ..Tally::default()
    };
    let group = |route: &str| DueGroup {
        route: route.into(),
        group_key: "{}".into(),
        settings: stale.clone(),
        timing: GroupTiming {
            started_at: 0,
            total: 0,
            pending: 1,
            last_flush_at: None,
            next_flush_at: Some(2_000),
            resolve_at: None,
        },
        token: 1,
        tally: tally.clone(),
        samples: members[1..].to_vec(),
        silenced: 0,
    };
    // The route still exists: its current destinations win over the stored ones.
    let (flush, _) = build_flush(&loaded, &group("failures"), 9_000);
    let to: Vec<&str> = flush
        .deliveries
        .iter()
        .map(|d| d.destination.as_str())
        .collect();
    assert_eq!(to, vec!["slack"]);
    assert!(flush.deliveries[0].dead.is_none());
    // The route was removed and its stored destination too: the digest is dead-lettered.
    let (flush, _) = build_flush(&loaded, &group("removed-route"), 9_000);
    assert_eq!(flush.deliveries.len(), 1);
    assert_eq!(flush.deliveries[0].destination, "gone");
    assert!(
        flush.deliveries[0]
            .dead
            .as_deref()
            .unwrap()
            .contains("no longer in the config")
    );
    assert_eq!(flush.count, 1, "the members are still counted once");
}

#[test]
fn a_hook_routed_again_skips_the_destinations_it_already_reached() {
    let dir = tempfile::tempdir().unwrap();
    with_broken_template(dir.path());
    let loaded = loaded(CONFIG, dir.path());
    let mut hooks = stored("template_rejected.json", 1);
    hooks[0].sent_to = vec!["slack".into()];
    let (batch, _) = route_hooks(&loaded, &hooks, 5_000);
    let to: Vec<&str> = batch
        .deliveries
        .iter()
        .map(|d| d.destination.as_str())
        .collect();
    assert_eq!(to, vec!["teams"], "slack already has it");
    assert_eq!(batch.hooks[0].sent_to, vec!["slack", "teams"]);
    // A failure already digested for slack does not join the group again.
    let mut failures = stored("message_results.json", 2);
    failures[1].sent_to = vec!["slack".into()];
    let (batch, _) = route_hooks(&loaded, &failures[1..], 5_000);
    assert!(batch.members.is_empty());
    assert_eq!(batch.deliveries.len(), 1, "the console route still gets it");
}

#[test]
fn an_unreadable_stored_hook_is_reported_for_quarantine_not_skipped() {
    let dir = tempfile::tempdir().unwrap();
    with_broken_template(dir.path());
    let loaded = loaded(CONFIG, dir.path());
    let mut hooks = stored("template_rejected.json", 1);
    hooks[0].raw = "[not an object]".into();
    let (batch, report) = route_hooks(&loaded, &hooks, 5_000);
    assert!(batch.hooks.is_empty());
    assert_eq!(report.unreadable.len(), 1);
    assert_eq!(report.unreadable[0].0, 1);
}

/// A hook whose routing panics (the fail point in `route_hooks`) is held back while its
/// neighbours in the batch are routed, retried, and quarantined after `QUARANTINE_AFTER`
/// failures; it never blocks the hooks behind it.
#[tokio::test]
async fn a_hook_whose_routing_panics_is_quarantined_and_its_neighbours_routed() {
    use crate::metrics::Metrics;
    use crate::state::Clock;
    use crate::store::{Mode, NewHook, NewPost};

    let dir = tempfile::tempdir().unwrap();
    with_broken_template(dir.path());
    let cfg = crate::config::StoreConfig {
        path: dir.path().join("s.db"),
        ..Default::default()
    };
    let store = crate::store::open(&cfg, Mode::Serve).await.unwrap();
    let clock = Clock::manual(1_000_000);
    let state = Arc::new(State::new(
        loaded(CONFIG, dir.path()),
        store,
        Metrics::new(),
        clock.clone(),
    ));
    let mut raws: Vec<String> = stored("mixed.json", 1)
        .into_iter()
        .map(|h| h.raw.to_string())
        .collect();
    raws.truncate(3); // the fixture's fourth is not a hook at all
    assert_eq!(raws.len(), 3);
    raws[1] = r#"{"hookId":"bizrelay-test-panic"}"#.into();
    let hooks = raws
        .iter()
        .enumerate()
        .map(|(i, raw)| NewHook {
            dedup_key: format!("h:test-{i}"),
            raw: raw.as_str().into(),
        })
        .collect();
    state
        .store
        .ingest(NewPost {
            received_at: clock.now(),
            hooks_id: None,
            envelope_json: "{}".into(),
            hooks,
            rejected: vec![],
            claim: None,
            routed: None,
        })
        .await
        .unwrap();

    let mut held = crate::enrich::hold::Held::default();
    for round in 1..=QUARANTINE_AFTER {
        pass(&state, &mut held).await.unwrap();
        let stats = state.store.inbox_stats().await.unwrap();
        if round < QUARANTINE_AFTER {
            assert_eq!(
                stats.waiting, 1,
                "round {round}: only the failing hook waits"
            );
            assert_eq!(stats.quarantined, 0, "round {round}");
        }
        clock.advance(RETRY_FAILED + 1);
    }
    let stats = state.store.inbox_stats().await.unwrap();
    assert_eq!(stats.waiting, 0);
    assert_eq!(stats.quarantined, 1);
    let quarantined = state
        .store
        .hooks_in(crate::store::HookState::Quarantined, 10)
        .await
        .unwrap();
    assert_eq!(quarantined.len(), 1);
    assert!(
        format!("{quarantined:?}").contains("routing blew up"),
        "the panic's message is kept as the reason: {quarantined:?}"
    );
    assert!(
        state
            .metrics
            .render()
            .contains("bizrelay_hooks_quarantined_total 1")
    );
    state.store.close().await;
}

mod at_ingest;
