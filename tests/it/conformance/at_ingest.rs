//! Hooks routed before the write, on both engines: a POST carrying its routing is stored
//! already routed, with its deliveries, digest memberships, silenced and rate counts, in the
//! ingest transaction; a hook the store finds a duplicate gets none of it; nothing is left
//! for a dispatcher to claim.

use super::rates::{W, count};
use super::*;

/// `ids` with their routing: every hook to `d`, also into the failures group, and counted
/// for the rate route; the last one silenced instead of grouped.
fn routed_post(at: i64, ids: &[&str]) -> NewPost {
    let mut p = post(at, ids);
    let n = ids.len() as i64;
    let batch = DispatchBatch {
        hooks: (0..n).map(|i| routed(i, &["d", "rate:rate"])).collect(),
        deliveries: (0..n).map(|i| delivery("d", i, at)).collect(),
        members: (0..n - 1).map(|i| member(i, at, "3019")).collect(),
        silenced: vec![SilencedMember {
            route: "failures".into(),
            group_key: "{}".into(),
            hook_row: n - 1,
            resolve_until: None,
        }],
        rates: (0..n).map(|i| count(i, 0, "3019", false)).collect(),
    };
    p.routed = Some(RoutedPost {
        batch,
        rules: RULES,
    });
    p
}

pub async fn a_post_routed_before_the_write_is_stored_routed_and_its_duplicates_get_nothing(
    e: Engine,
) {
    let store = e.open().await;
    // "seen" arrives first the usual way (waiting for a dispatcher).
    store.ingest(post(100, &["seen"])).await.unwrap();
    let out = store
        .ingest(routed_post(1_000, &["a", "seen", "b", "a", "c"]))
        .await
        .unwrap();
    assert_eq!(out.fresh, vec![true, false, true, false, true]);
    assert_eq!((out.accepted, out.duplicates), (3, 2));

    // Only the earlier, unrouted hook is left for a dispatcher.
    let stats = store.inbox_stats().await.unwrap();
    assert_eq!((stats.waiting, stats.unrouted), (1, 0), "{stats:?}");
    let claimable = store.claim_hooks(&who("x"), 1_000, 10).await.unwrap();
    assert_eq!(claimable.len(), 1);
    assert!(claimable[0].raw.contains("\"seen\""));

    // One delivery per fresh hook, for the rows they got.
    let q = store.queue_stats().await.unwrap();
    assert_eq!(
        q.iter()
            .map(|s| (s.destination.as_str(), s.pending))
            .collect::<Vec<_>>(),
        vec![("d", 3)]
    );
    let lease = leased(lease(&store, "d", "sender", 1_000).await);
    assert_eq!(lease.delivery.payload, "payload 0", "the oldest first");
    let stored = store.hooks_in(HookState::Routed, 10).await.unwrap();
    assert_eq!(
        stored.iter().map(|h| Some(h.hook.row)).collect::<Vec<_>>(),
        vec![out.rows[4], out.rows[2], out.rows[0]],
        "newest first"
    );
    assert!(
        stored
            .iter()
            .all(|h| h.hook.sent_to == ["d", "rate:rate"] && h.hook.failures == 0)
    );

    // The fresh hooks grouped (a, b: c was silenced), the duplicates not.
    assert_eq!(store.next_flush_at().await.unwrap(), Some(2_000));
    let groups = store.claim_groups(&who("me"), 2_000, 10).await.unwrap();
    assert_eq!(groups.len(), 1);
    assert_eq!(groups[0].tally.count, 2, "a and b, not the duplicate a");
    assert_eq!(groups[0].silenced, 1, "c, silenced");

    // Counted once each for the rate route.
    let due = store
        .claim_rate_series(&who("j"), W + RATE_GRACE_MS, 10)
        .await
        .unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!((due[0].window.results, due[0].window.failures), (3, 3));
    store.close().await;
}

/// A hook the routing decided nothing for (no outcome) is stored waiting for the dispatcher,
/// and no work naming it is filed (it would be filed again when the dispatcher routes it).
pub async fn a_hook_without_an_outcome_is_stored_waiting_with_none_of_its_work(e: Engine) {
    let store = e.open().await;
    let mut p = routed_post(1_000, &["x", "y"]);
    if let Some(r) = p.routed.as_mut() {
        r.batch.hooks.retain(|h| h.row == 0);
    }
    let out = store.ingest(p).await.unwrap();
    assert_eq!(out.accepted, 2);
    let stats = store.inbox_stats().await.unwrap();
    assert_eq!(stats.waiting, 1, "{stats:?}");
    let waiting = store.claim_hooks(&who("x"), 1_000, 10).await.unwrap();
    assert_eq!(waiting.len(), 1);
    assert!(waiting[0].raw.contains("\"y\""));
    let q = store.queue_stats().await.unwrap();
    assert_eq!(
        q.iter()
            .map(|s| (s.destination.as_str(), s.pending))
            .collect::<Vec<_>>(),
        vec![("d", 1)],
        "x's delivery only"
    );
    let groups = store.claim_groups(&who("me"), 2_000, 10).await.unwrap();
    assert_eq!(groups.len(), 1);
    assert_eq!((groups[0].tally.count, groups[0].silenced), (1, 0));
    let due = store
        .claim_rate_series(&who("j"), W + RATE_GRACE_MS, 10)
        .await
        .unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].window.results, 1);
    store.close().await;
}

conformance!(
    a_post_routed_before_the_write_is_stored_routed_and_its_duplicates_get_nothing,
    a_hook_without_an_outcome_is_stored_waiting_with_none_of_its_work,
);
