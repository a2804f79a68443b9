//! The inbox figures behind `/metrics` and `/readyz`: both engines keep the unrouted and
//! quarantined counts beside the hooks (no scan of the inbox), so they must follow every
//! move into and out of those states, from every consumer at once, and survive a reopen.

use super::*;

/// The figures, checked against the hooks themselves.
async fn counts(store: &Arc<dyn Store>) -> (i64, i64, i64) {
    let s = store.inbox_stats().await.unwrap();
    let listed = |state| async move { store.hooks_in(state, 1_000).await.unwrap().len() as i64 };
    assert_eq!(
        (s.waiting, s.unrouted, s.quarantined),
        (
            listed(HookState::Waiting).await,
            listed(HookState::Unrouted).await,
            listed(HookState::Quarantined).await
        ),
        "the figures and the hooks differ"
    );
    (s.waiting, s.unrouted, s.quarantined)
}

/// Claims every waiting hook as `owner` and settles them unrouted.
async fn settle_unrouted(store: &Arc<dyn Store>, owner: &str, at: i64) {
    let me = who(owner);
    let hooks = store.claim_hooks(&me, at, 1_000).await.unwrap();
    let batch = DispatchBatch {
        hooks: hooks.iter().map(|h| routed(h.row, &[])).collect(),
        ..DispatchBatch::default()
    };
    let commit = store.commit_dispatch(&me, batch, &RULES).await.unwrap();
    assert_eq!(commit.committed, hooks.len());
}

pub async fn kept_counts_follow_every_move_and_every_consumer(e: Engine) {
    let store = e.open().await;
    let other = e.second(&store).await;
    store.ingest(post(1_000, &["a", "b", "c"])).await.unwrap();
    other.ingest(post(1_001, &["d", "e", "f"])).await.unwrap();
    assert_eq!(counts(&store).await, (6, 0, 0));
    // Two consumers settle their claims at once (on PostgreSQL: two replicas, so two
    // connections and most likely two counter shards).
    let (mine, theirs) = (who("one"), who("two"));
    let first = store.claim_hooks(&mine, 2_000, 3).await.unwrap();
    let second = other.claim_hooks(&theirs, 2_000, 3).await.unwrap();
    let settle = |hooks: &[StoredHook]| DispatchBatch {
        hooks: hooks.iter().map(|h| routed(h.row, &[])).collect(),
        ..DispatchBatch::default()
    };
    let (x, y) = tokio::join!(
        store.commit_dispatch(&mine, settle(&first), &RULES),
        other.commit_dispatch(&theirs, settle(&second), &RULES)
    );
    assert_eq!(x.unwrap().committed + y.unwrap().committed, 6);
    assert_eq!(counts(&store).await, (0, 6, 0));
    // One hook back to routing, where it fails and is quarantined.
    let a = store.hooks_in(HookState::Unrouted, 10).await.unwrap()[0]
        .hook
        .row;
    assert_eq!(
        store.reroute(Reroute::Rows(vec![a]), 3_000).await.unwrap(),
        1
    );
    assert_eq!(counts(&store).await, (1, 5, 0));
    let claimed = store.claim_hooks(&mine, 3_000, 10).await.unwrap();
    assert_eq!(claimed.len(), 1);
    let failure = RoutingFailure {
        rows: vec![a],
        reason: "routing failed: boom".into(),
        now: 3_000,
        quarantine_after: 1,
        retry_at: 3_100,
    };
    assert_eq!(store.fail_dispatch(&mine, failure).await.unwrap(), vec![a]);
    assert_eq!(counts(&store).await, (0, 5, 1));
    // Hooks routed before the write (the default when enrichment is off) are stored
    // unrouted by the ingest itself; a duplicate in the POST counts once.
    let mut p = post(4_000, &["g", "g"]);
    p.routed = Some(RoutedPost {
        batch: DispatchBatch {
            hooks: vec![routed(0, &[]), routed(1, &[])],
            ..DispatchBatch::default()
        },
        rules: RULES,
    });
    assert_eq!(store.ingest(p).await.unwrap().accepted, 1);
    // The figures survive a reopen.
    store.close().await;
    if !Arc::ptr_eq(&store, &other) {
        other.close().await;
    }
    let store = e.open().await;
    assert_eq!(counts(&store).await, (0, 6, 1));
    // Pruning nothing (everything is too young) folds PostgreSQL's counter rows of other
    // connections into one: the figures stay.
    let young = PruneBefore {
        seen: 0,
        delivered: 0,
        unrouted: 0,
    };
    while !store.prune(young).await.unwrap().is_empty() {}
    assert_eq!(counts(&store).await, (0, 6, 1));
    // Every kind of reroute takes hooks out of the counts they were in.
    assert_eq!(store.reroute(Reroute::Quarantined, 5_000).await.unwrap(), 1);
    assert_eq!(counts(&store).await, (1, 6, 0));
    settle_unrouted(&store, "one", 5_000).await;
    assert_eq!(
        store.reroute(Reroute::Since(1_001), 6_000).await.unwrap(),
        4
    );
    assert_eq!(counts(&store).await, (4, 3, 0));
    assert_eq!(store.reroute(Reroute::Unrouted, 6_000).await.unwrap(), 3);
    assert_eq!(counts(&store).await, (7, 0, 0));
    settle_unrouted(&store, "one", 7_000).await;
    assert_eq!(counts(&store).await, (0, 7, 0));
    store.close().await;
}

pub async fn a_store_from_before_the_counts_counts_its_kept_hooks_once_when_opened(e: Engine) {
    let store = e.open().await;
    store.ingest(post(1_000, &["a", "b", "c"])).await.unwrap();
    settle_unrouted(&store, "one", 1_000).await;
    store.ingest(post(2_000, &["d"])).await.unwrap();
    store.close().await;
    // As the store was before it kept counts: SQLite schema 3, PostgreSQL migration 5.
    e.execute(if e.is_postgres() {
        "DROP TABLE inbox_counts; DELETE FROM bizrelay_schema WHERE version = 6;"
    } else {
        "DELETE FROM inbox_counts;"
    })
    .await;
    let store = e.open().await;
    assert_eq!(counts(&store).await, (1, 3, 0));
    settle_unrouted(&store, "one", 3_000).await;
    assert_eq!(counts(&store).await, (0, 4, 0));
    store.close().await;
}

conformance!(
    kept_counts_follow_every_move_and_every_consumer,
    a_store_from_before_the_counts_counts_its_kept_hooks_once_when_opened
);

/// PostgreSQL only: docs/replicas.md's recount, for hooks that a replica of a version before
/// the counts moved while it still ran beside a new one.
#[tokio::test]
async fn the_documented_recount_counts_what_an_older_replica_moved() {
    let e = Engine::postgres().await;
    let store = e.open().await;
    store.ingest(post(1_000, &["a", "b", "c"])).await.unwrap();
    settle_unrouted(&store, "one", 1_000).await;
    // The older replica quarantines one and reroutes another, counting neither.
    e.execute(
        "UPDATE hooks SET state = 'quarantined' WHERE id = (SELECT MIN(id) FROM hooks);
         UPDATE hooks SET state = 'waiting' WHERE id = (SELECT MAX(id) FROM hooks);",
    )
    .await;
    assert_eq!(store.inbox_stats().await.unwrap().unrouted, 3, "drifted");
    let recount = crate::docs::blocks::block("docs/replicas.md", "recount");
    e.execute(&recount.text).await;
    assert_eq!(counts(&store).await, (1, 1, 1));
    settle_unrouted(&store, "one", 2_000).await;
    assert_eq!(counts(&store).await, (0, 2, 1));
    store.close().await;
}
