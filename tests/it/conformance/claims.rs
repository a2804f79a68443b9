//! Digest claims taken over: the live claim flushes the members marked by any earlier one,
//! even when a claim in between was taken and never marked anything (on PostgreSQL a claim
//! commits before its members are marked).

use super::*;

pub async fn marks_of_a_claim_taken_over_before_it_marked_are_still_flushed(e: Engine) {
    let store = e.open().await;
    grouped(&store, &["a", "b"]).await;
    let dead = store.claim_groups(&who("dies"), 2_000, 10).await.unwrap();
    assert_eq!(dead[0].tally.count, 2);
    // Another replica took the expired claim over, then died before marking anything.
    e.execute("UPDATE groups SET claim_owner = 'lost', claim_token = 7, claim_until = 2500")
        .await;
    let taken = store.claim_groups(&who("next"), 3_100, 10).await.unwrap();
    assert_eq!(taken.len(), 1);
    assert_eq!(
        taken[0].tally.count, 2,
        "the members the first claim marked"
    );
    flush_whole(&store, "next", &taken[0], 2).await;
    store.close().await;
}

conformance!(marks_of_a_claim_taken_over_before_it_marked_are_still_flushed);
