//! Routing at ingest: the dispatcher's routing of the same hooks, hook by hook, or nothing at
//! all when it fails (the dispatcher then routes them from the store).

use super::*;
use crate::metrics::Metrics;
use crate::state::Clock;

async fn state_in(dir: &std::path::Path) -> Arc<State> {
    with_broken_template(dir);
    let cfg = crate::config::StoreConfig {
        path: dir.join("s.db"),
        ..Default::default()
    };
    let store = crate::store::open(&cfg, crate::store::Mode::Serve)
        .await
        .unwrap();
    Arc::new(State::new(
        loaded(CONFIG, dir),
        store,
        Metrics::new(),
        Clock::manual(1_000_000),
    ))
}

/// `n` hooks of the mixed fixture (a template, a failure, a success, ...), rows 0..n.
fn hooks(n: usize) -> Vec<StoredHook> {
    let mut all = stored("mixed.json", 0);
    all.truncate(3); // the fixture's fourth is not a hook at all
    (0..n)
        .map(|i| StoredHook {
            row: i as i64,
            ..all[i % 3].clone()
        })
        .collect()
}

#[tokio::test]
async fn a_post_routed_at_ingest_gets_what_the_dispatcher_would_give_it() {
    let dir = tempfile::tempdir().unwrap();
    let state = state_in(dir.path()).await;
    let loaded = state.current();
    assert!(routes_at_ingest(&loaded));
    for n in [3, 9] {
        let hooks = hooks(n);
        let routing = route_post(&state, &loaded, &Arc::new(hooks.clone()), 5_000)
            .await
            .expect("routed");
        let (want, report) = route_hooks(&loaded, &hooks, 5_000);
        assert_eq!(routing.post.batch.hooks, want.hooks, "{n} hooks");
        let payloads = |b: &DispatchBatch| {
            b.deliveries
                .iter()
                .map(|d| (d.hook_row, d.destination.clone(), d.payload.clone()))
                .collect::<Vec<_>>()
        };
        assert_eq!(payloads(&routing.post.batch), payloads(&want));
        assert!(!want.deliveries.is_empty() && !want.members.is_empty());
        let members = |b: &DispatchBatch| {
            b.members
                .iter()
                .map(|m| (m.hook_row, m.group_key.clone()))
                .collect::<Vec<_>>()
        };
        assert_eq!(members(&routing.post.batch), members(&want));
        assert_eq!(routing.reports.len(), n, "one report per hook");
        let mut merged = Report::default();
        routing.reports.into_iter().for_each(|r| merged.absorb(r));
        assert_eq!(
            (merged.matches, merged.unrouted),
            (report.matches, report.unrouted)
        );
    }
    state.store.close().await;
}

#[tokio::test]
async fn a_post_whose_routing_panics_is_left_to_the_dispatcher() {
    let dir = tempfile::tempdir().unwrap();
    let state = state_in(dir.path()).await;
    let loaded = state.current();
    // Routed on the receiving thread (small POSTs) and on a blocking thread (larger ones).
    for n in [3, 9] {
        let mut hooks = hooks(n);
        hooks[1].raw = r#"{"hookId":"bizrelay-test-panic"}"#.into();
        let routing = route_post(&state, &loaded, &Arc::new(hooks), 5_000).await;
        assert!(routing.is_none(), "{n} hooks: nothing decided");
    }
    state.store.close().await;
}
