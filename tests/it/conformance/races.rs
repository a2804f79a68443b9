//! PostgreSQL only (SQLite has one writer): what replicas racing on the same rows must not do.

use super::*;

/// Prune picked its hooks in a subquery, then deleted them by id. A hook that a reroute on
/// another replica had moved back to waiting meanwhile was deleted after the reroute
/// committed: lost, though nothing had routed it. Prune now locks what it picked and skips
/// what another transaction holds.
#[tokio::test]
async fn prune_leaves_a_hook_that_a_reroute_is_moving_back() {
    let e = Engine::postgres().await;
    let store = e.open().await;
    store.ingest(post(1_000, &["a"])).await.unwrap();
    let me = who("one");
    let hooks = store.claim_hooks(&me, 1_000, 10).await.unwrap();
    let batch = DispatchBatch {
        hooks: vec![routed(hooks[0].row, &[])],
        ..DispatchBatch::default()
    };
    store.commit_dispatch(&me, batch, &RULES).await.unwrap();
    // Another replica's reroute, not yet committed.
    let url = e.cfg.url.as_ref().unwrap().expose().to_string();
    let (reroute, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    reroute
        .batch_execute(
            "BEGIN; UPDATE hooks SET state = 'waiting', owner = NULL, claim_until = NULL",
        )
        .await
        .unwrap();
    let pruner = Arc::clone(&store);
    let old = PruneBefore {
        seen: 0,
        delivered: 0,
        unrouted: 10_000,
    };
    let prune = tokio::spawn(async move { pruner.prune(old).await });
    // Until the prune is done, or waits for the reroute's lock.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let waiting: i64 = reroute
            .query_one(
                "SELECT COUNT(*) FROM pg_stat_activity
                 WHERE datname = current_database() AND wait_event_type = 'Lock'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        if prune.is_finished() || waiting > 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "prune neither finished nor waited"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    reroute.batch_execute("COMMIT").await.unwrap();
    prune.await.unwrap().unwrap();
    assert_eq!(
        store.hooks_in(HookState::Waiting, 10).await.unwrap().len(),
        1,
        "the rerouted hook was pruned"
    );
    store.close().await;
}
