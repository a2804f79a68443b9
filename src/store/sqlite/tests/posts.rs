//! The envelope of a POST of several hooks, written once in `posts` (schema 5): read back
//! for every hook, inline when it cannot be shared, pruned with the last of its hooks, and
//! the rows of schema 4 (an envelope each) still read.

use super::*;

/// `hooks_id` of each hook in the inbox that is waiting, in row order, as the store reads
/// them back (the envelope of every one of them).
async fn envelopes(store: &SqliteStore) -> Vec<Option<String>> {
    store
        .hooks_in(HookState::Waiting, 100)
        .await
        .unwrap()
        .into_iter()
        .rev()
        .map(|l| l.hook.envelope.hooks_id.clone())
        .collect()
}

/// Changes the closed store at `path` by hand, then opens it again.
fn reopen_after(path: &Path, sql: &str) -> SqliteStore {
    Connection::open(path).unwrap().execute_batch(sql).unwrap();
    SqliteStore::open(&config(path), Mode::Serve).unwrap()
}

fn ids(posts: &[(i64, usize)]) -> Vec<Option<String>> {
    posts
        .iter()
        .flat_map(|(at, n)| std::iter::repeat_n(Some(format!("post-{at}")), *n))
        .collect()
}

#[tokio::test]
async fn a_post_of_several_hooks_writes_its_envelope_once_and_every_hook_reads_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sub/store.db");
    let store = open(&dir);
    store.ingest(post(1, &["a", "b", "c"])).await.unwrap();
    store.ingest(post(2, &["d"])).await.unwrap();
    // Two of three fresh: still shared; one of two fresh: inline.
    store.ingest(post(3, &["e", "a", "f"])).await.unwrap();
    store.ingest(post(4, &["g", "b"])).await.unwrap();
    assert_eq!(
        envelopes(&store).await,
        ids(&[(1, 3), (2, 1), (3, 2), (4, 1)])
    );
    store.close().await;
    assert_eq!(count(&path, "SELECT COUNT(*) FROM posts"), 2);
    assert_eq!(
        count(&path, "SELECT COUNT(*) FROM hooks WHERE envelope = ''"),
        5
    );
}

#[tokio::test]
async fn rows_that_are_not_consecutive_get_the_envelope_each() {
    // With the largest id taken, SQLite picks new ids at random.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sub/store.db");
    let store = open(&dir);
    store.close().await;
    let store = reopen_after(
        &path,
        "INSERT INTO hooks (id, v, received_at, envelope, raw, state)
         VALUES (9223372036854775807, 1, 0, '{}', '{}', 'routed')",
    );
    store.ingest(post(1, &["a", "b", "c", "d"])).await.unwrap();
    let mut read = envelopes(&store).await;
    read.sort();
    assert_eq!(read, ids(&[(1, 4)]));
    store.close().await;
    assert_eq!(count(&path, "SELECT COUNT(*) FROM posts"), 0);
}

#[tokio::test]
async fn a_missing_shared_envelope_is_named_as_damage() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sub/store.db");
    let store = open(&dir);
    store.ingest(post(1, &["a", "b"])).await.unwrap();
    store.close().await;
    let store = reopen_after(&path, "DELETE FROM posts");
    let err = store.hooks_in(HookState::Waiting, 10).await.unwrap_err();
    assert!(
        matches!(&err, StoreError::Corrupt(m) if m.contains("envelope") && m.contains("posts")),
        "{err}"
    );
}

#[tokio::test]
async fn a_shared_envelope_is_pruned_with_the_last_of_its_hooks() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sub/store.db");
    let store = open(&dir);
    // Stored unrouted, so pruning may take them; the newest hook always stays.
    store.ingest(routed_unrouted(1, &["a", "b"])).await.unwrap();
    store.ingest(routed_unrouted(2, &["c", "d"])).await.unwrap();
    store
        .ingest(routed_unrouted(5000, &["e", "f"]))
        .await
        .unwrap();
    let before = PruneBefore {
        seen: 0,
        delivered: 1000,
        unrouted: 1000,
    };
    assert_eq!(store.prune(before).await.unwrap().hooks, 4);
    store.close().await;
    assert_eq!(count(&path, "SELECT COUNT(*) FROM posts"), 1);
    assert_eq!(count(&path, "SELECT MIN(received_at) FROM posts"), 5000);
    // A POST's envelope stays while any of its hooks does.
    let store = reopen_after(
        &path,
        "DELETE FROM hooks WHERE received_at = 5000 AND raw LIKE '%\"e\"%'",
    );
    let later = PruneBefore {
        seen: 0,
        delivered: 9000,
        unrouted: 9000,
    };
    store.prune(later).await.unwrap();
    store.close().await;
    assert_eq!(count(&path, "SELECT COUNT(*) FROM posts"), 1);
    assert_eq!(count(&path, "SELECT COUNT(*) FROM hooks"), 1);
}

#[tokio::test]
async fn a_schema_4_store_keeps_reading_its_envelopes_and_shares_new_ones() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sub/store.db");
    let store = open(&dir);
    store.ingest(post(1, &["a", "b"])).await.unwrap();
    store.close().await;
    // Schema 4: no `posts`, an envelope in every row.
    let store = reopen_after(
        &path,
        "UPDATE hooks SET envelope = (SELECT envelope FROM posts) WHERE envelope = '';
         DROP TABLE posts;
         UPDATE meta SET value = '4' WHERE key = 'schema_version';",
    );
    store.ingest(post(2, &["c", "d"])).await.unwrap();
    assert_eq!(envelopes(&store).await, ids(&[(1, 2), (2, 2)]));
    store.close().await;
    let version = "SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'schema_version'";
    assert_eq!(count(&path, version), SCHEMA_VERSION);
    assert_eq!(count(&path, "SELECT COUNT(*) FROM posts"), 1);
}
