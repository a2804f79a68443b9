use std::sync::atomic::AtomicUsize;

use tokio::sync::Notify;

use super::*;
use crate::silence::parse_matcher;

fn stored(ids: &[i64]) -> Vec<StoredSilence> {
    ids.iter()
        .map(|&id| StoredSilence {
            id,
            matchers: vec![parse_matcher("outcome=failure").unwrap()],
            starts_at: 0,
            ends_at: i64::MAX,
            comment: "test".into(),
            author: None,
            created_at: 0,
        })
        .collect()
}

/// A store read that counts itself and answers `ids`, once `gate` opens (if given).
async fn read(
    reads: &AtomicUsize,
    gate: Option<&Notify>,
    ids: &[i64],
) -> Result<Vec<StoredSilence>, StoreError> {
    reads.fetch_add(1, Ordering::SeqCst);
    if let Some(gate) = gate {
        gate.notified().await;
    }
    Ok(stored(ids))
}

#[tokio::test]
async fn an_old_copy_is_read_again_by_one_caller_while_the_others_use_it() {
    let cache = SilenceCache::default();
    let reads = AtomicUsize::new(0);
    let first = cache.get_from(|| read(&reads, None, &[1])).await;
    assert_eq!(first.ids(), vec![1]);
    cache.age(REFRESH * 2);

    let gate = Notify::new();
    let (reader, a, b, c, ()) = tokio::join!(
        cache.get_from(|| read(&reads, Some(&gate), &[1, 2])),
        cache.get_from(|| read(&reads, None, &[9])),
        cache.get_from(|| read(&reads, None, &[9])),
        cache.get_from(|| read(&reads, None, &[9])),
        async { gate.notify_one() },
    );
    assert_eq!(
        reads.load(Ordering::SeqCst),
        2,
        "one read for the three who came meanwhile"
    );
    assert_eq!(reader.ids(), vec![1, 2]);
    for other in [a, b, c] {
        assert_eq!(
            other.ids(),
            vec![1],
            "the others kept routing with the old copy"
        );
    }
    // Fresh again: nobody reads.
    let again = cache.get_from(|| read(&reads, None, &[9])).await;
    assert_eq!((again.ids(), reads.load(Ordering::SeqCst)), (vec![1, 2], 2));
}

#[tokio::test]
async fn an_invalidated_copy_is_waited_for_and_read_once() {
    let cache = SilenceCache::default();
    let reads = AtomicUsize::new(0);
    cache.get_from(|| read(&reads, None, &[1])).await;
    cache.invalidate();

    let gate = Notify::new();
    let (reader, waiter, ()) = tokio::join!(
        cache.get_from(|| read(&reads, Some(&gate), &[1, 2])),
        cache.get_from(|| read(&reads, None, &[9])),
        async { gate.notify_one() },
    );
    assert_eq!(reader.ids(), vec![1, 2]);
    assert_eq!(
        waiter.ids(),
        vec![1, 2],
        "after this replica's own change, nobody routes with the copy before it"
    );
    assert_eq!(
        reads.load(Ordering::SeqCst),
        2,
        "the waiter used the read it waited for"
    );
}

#[tokio::test]
async fn a_read_that_began_before_an_invalidation_does_not_count_as_fresh() {
    let cache = SilenceCache::default();
    let reads = AtomicUsize::new(0);
    cache.get_from(|| read(&reads, None, &[1])).await;
    cache.age(REFRESH * 2);

    let gate = Notify::new();
    let (old_read, after, ()) = tokio::join!(
        cache.get_from(|| read(&reads, Some(&gate), &[1])),
        async {
            cache.invalidate();
            cache.get_from(|| read(&reads, None, &[1, 2])).await
        },
        async { gate.notify_one() },
    );
    assert_eq!(old_read.ids(), vec![1]);
    assert_eq!(
        after.ids(),
        vec![1, 2],
        "read again after the read in flight"
    );
    assert_eq!(reads.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn a_failed_read_keeps_the_last_known_silences_and_the_next_caller_tries_again() {
    let cache = SilenceCache::default();
    let reads = AtomicUsize::new(0);
    cache.get_from(|| read(&reads, None, &[1])).await;
    cache.age(REFRESH * 2);
    let kept = cache
        .get_from(|| async {
            reads.fetch_add(1, Ordering::SeqCst);
            Err(StoreError::Unavailable("down".into()))
        })
        .await;
    assert_eq!(kept.ids(), vec![1]);
    let next = cache.get_from(|| read(&reads, None, &[1, 2])).await;
    assert_eq!((next.ids(), reads.load(Ordering::SeqCst)), (vec![1, 2], 3));
}
