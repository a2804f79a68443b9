//! What only the SQLite engine has: the writer thread's batches, the file (lock, truncation,
//! replacement, damage, checkpoint), deadlines and the schema 1 migration. The behaviour
//! both engines share is tested by the conformance suite (tests/it/conformance.rs).

use super::*;
use crate::bizmessage::Envelope;

mod checkpoint;
mod posts;
mod sweep;

fn config(path: &Path) -> StoreConfig {
    StoreConfig {
        path: path.to_path_buf(),
        sync: SyncMode::Normal,
        ..StoreConfig::default()
    }
}

fn open(dir: &tempfile::TempDir) -> SqliteStore {
    SqliteStore::open(&config(&dir.path().join("sub/store.db")), Mode::Serve).unwrap()
}

fn hook(id: &str) -> NewHook {
    NewHook {
        dedup_key: format!("h:{id}"),
        raw: format!(r#"{{"hookId":"{id}","requestId":"r","resultCode":"3019"}}"#).into(),
    }
}

fn post(at: i64, ids: &[&str]) -> NewPost {
    let envelope = Envelope {
        hooks_id: Some(format!("post-{at}")),
        ..Envelope::default()
    };
    NewPost {
        received_at: at,
        hooks_id: envelope.hooks_id.clone(),
        envelope_json: serde_json::to_string(&envelope).unwrap(),
        hooks: ids.iter().map(|i| hook(i)).collect(),
        rejected: vec![],
        claim: None,
        routed: None,
    }
}

fn count(path: &Path, sql: &str) -> i64 {
    Connection::open(path)
        .unwrap()
        .query_row(sql, [], |r| r.get(0))
        .unwrap()
}

#[tokio::test]
async fn a_failing_job_does_not_undo_its_batch_neighbours() {
    // Runs one batch by hand, so the three jobs certainly share a transaction.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("batch.db");
    let mut conn = open_connection(&path, SyncMode::Normal, true).unwrap();
    sql::init_schema(&conn).unwrap();
    type Work = Box<dyn Fn(&Connection) -> Result<IngestOutcome, StoreError> + Send>;
    let job = |work: Work| {
        let (reply, rx) = oneshot::channel::<Result<IngestOutcome, StoreError>>();
        (
            Box::new(TypedJob {
                work,
                result: None,
                reply,
            }) as Box<dyn Job>,
            rx,
        )
    };
    let (good1, r1) = job(Box::new(|c| sql::ingest(c, &post(1, &["a"]), 0)));
    let (bad, r2) = job(Box::new(|c| {
        // Writes, then fails: its write must be undone, and only its own.
        sql::ingest(c, &post(2, &["poison"]), 0)?;
        Err(StoreError::Corrupt("this job fails".into()))
    }));
    let (good2, r3) = job(Box::new(|c| sql::ingest(c, &post(3, &["b"]), 0)));
    let mut batch = vec![good1, bad, good2];
    let target = Target {
        path: path.clone(),
        identity: None,
    };
    let commit = run_batch(&mut conn, &mut batch, &target);
    assert!(commit.is_ok());
    for j in batch {
        j.finish(commit.clone());
    }
    assert_eq!(r1.await.unwrap().unwrap().accepted, 1);
    assert!(r2.await.unwrap().is_err());
    assert_eq!(r3.await.unwrap().unwrap().accepted, 1);
    let keys: Vec<String> = conn
        .prepare("SELECT key FROM seen ORDER BY key")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(keys, vec!["h:a", "h:b"]);
    let hooks: i64 = conn
        .query_row("SELECT COUNT(*) FROM hooks", [], |r| r.get(0))
        .unwrap();
    assert_eq!(hooks, 2);
}

#[tokio::test]
async fn a_locked_database_is_an_error_not_a_hang() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let other = Connection::open(store.path()).unwrap();
    other.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let result = store.ingest(post(1, &["a"])).await;
    assert!(result.is_err(), "{result:?}");
    other.execute_batch("ROLLBACK").unwrap();
    assert_eq!(
        store.ingest(post(1, &["a"])).await.unwrap().accepted,
        1,
        "recovers once the lock is gone"
    );
    assert!(store.ping().await.is_ok());
}

#[tokio::test]
async fn a_stalled_writer_gives_a_timeout_and_the_work_still_commits_later() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(&dir.path().join("s.db"));
    cfg.commit_timeout = Duration::from_millis(300);
    let store = SqliteStore::open(&cfg, Mode::Serve).unwrap();
    // The writer is busy for a second (a disk that stalls looks the same from here).
    let (done, stalled) = std::sync::mpsc::channel::<()>();
    let stall = {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .write(move |_| {
                    std::thread::sleep(Duration::from_millis(1000));
                    let _ = done.send(());
                    Ok(())
                })
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    let started = std::time::Instant::now();
    let err = store.ingest(post(1, &["late"])).await.unwrap_err();
    assert!(matches!(err, StoreError::Timeout(_)), "{err}");
    assert!(
        started.elapsed() < Duration::from_millis(900),
        "the caller is answered at the deadline, not when the disk comes back"
    );
    let _ = stall.await;
    tokio::task::spawn_blocking(move || stalled.recv())
        .await
        .unwrap()
        .unwrap();
    // The timed-out ingest was queued and commits once the writer is free: nothing lost,
    // and a retry by NHN is a duplicate.
    let again = store.ingest(post(2, &["late"])).await.unwrap();
    assert_eq!((again.accepted, again.duplicates), (0, 1));
    store.close().await;
}

#[tokio::test]
async fn a_newer_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    open(&dir).close().await;
    let c = Connection::open(dir.path().join("sub/store.db")).unwrap();
    c.execute(
        "UPDATE meta SET value = '99' WHERE key = 'schema_version'",
        [],
    )
    .unwrap();
    drop(c);
    let err =
        SqliteStore::open(&config(&dir.path().join("sub/store.db")), Mode::Serve).unwrap_err();
    assert!(
        matches!(err, StoreError::NewerSchema { found: 99, .. }),
        "{err}"
    );
}

#[tokio::test]
async fn a_schema_2_migration_cut_short_is_finished_on_the_next_open() {
    // The column was added but the version not yet written (a crash, or a second opener
    // that raced the first): opening again must not trip over the column.
    let dir = tempfile::tempdir().unwrap();
    open(&dir).close().await;
    let path = dir.path().join("sub/store.db");
    let c = Connection::open(&path).unwrap();
    c.execute(
        "UPDATE meta SET value = '2' WHERE key = 'schema_version'",
        [],
    )
    .unwrap();
    drop(c);
    let store = SqliteStore::open(&config(&path), Mode::Serve).unwrap();
    store.close().await;
    assert_eq!(
        count(
            &path,
            "SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'schema_version'"
        ),
        super::SCHEMA_VERSION
    );
}

#[tokio::test]
async fn a_schema_1_store_is_migrated_keeping_what_was_routed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    {
        let c = Connection::open(&path).unwrap();
        c.pragma_update(None, "journal_mode", "WAL").unwrap();
        c.execute_batch(include_str!("testdata/schema_v1.sql"))
            .unwrap();
        c.execute_batch(
            "INSERT INTO meta VALUES ('schema_version', '1'), ('dispatch_cursor', '2');
             INSERT INTO hooks (id, v, received_at, envelope, raw) VALUES
               (1, 1, 10, '{}', '{\"hookId\":\"a\",\"requestId\":\"r\"}'),
               (2, 1, 10, '{}', '{\"hookId\":\"b\",\"requestId\":\"r\"}'),
               (3, 1, 10, '{}', '{\"hookId\":\"c\",\"requestId\":\"r\"}');
             INSERT INTO deliveries (v, destination, route, template, hook_row, payload, state,
               created_at, received_at, next_attempt_at)
               VALUES (1, 'ops', 'r', 't', 1, 'p', 'done', 10, 10, 10);",
        )
        .unwrap();
    }
    let store = SqliteStore::open(&config(&path), Mode::Serve).unwrap();
    let who = Claimant {
        owner: "me".into(),
        ttl_ms: 1000,
    };
    // Row 3 was behind the cursor's reach: it is the only one left to route.
    let claimed = store.claim_hooks(&who, 100, 10).await.unwrap();
    assert_eq!(claimed.iter().map(|h| h.row).collect::<Vec<_>>(), vec![3]);
    let stats = store.inbox_stats().await.unwrap();
    assert_eq!(
        stats.unrouted, 1,
        "row 2 had no delivery: it matched no route"
    );
    let listed = store.hooks_in(HookState::Routed, 10).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].hook.sent_to, vec!["ops"]);
    store.close().await;
    assert_eq!(
        count(
            &path,
            "SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'schema_version'"
        ),
        super::SCHEMA_VERSION,
        "migrated through every version (2 added claims, 3 resolved messages, 4 dropped an unused index)"
    );
}

#[tokio::test]
async fn a_truncated_store_with_leftovers_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sub/store.db");
    let store = open(&dir);
    store.ingest(post(1, &["a"])).await.unwrap();
    // Simulate a crash: the WAL and shm stay; then someone empties the database file.
    std::mem::forget(store);
    std::fs::write(
        dir.path().join("sub/store.db-wal"),
        b"wal of an earlier run",
    )
    .unwrap();
    let truncated = dir.path().join("other/store.db");
    std::fs::create_dir_all(truncated.parent().unwrap()).unwrap();
    std::fs::write(&truncated, b"").unwrap();
    std::fs::write(dir.path().join("other/store.db-wal"), b"x").unwrap();
    let err = SqliteStore::open(&config(&truncated), Mode::Serve).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("is empty") && text.contains("store.db-wal") && text.contains("backup"),
        "{text}"
    );
    assert!(path.exists());
    // An empty file with nothing beside it is simply a new store.
    let fresh = dir.path().join("fresh/store.db");
    std::fs::create_dir_all(fresh.parent().unwrap()).unwrap();
    std::fs::write(&fresh, b"").unwrap();
    SqliteStore::open(&config(&fresh), Mode::Serve)
        .unwrap()
        .close()
        .await;
}

#[tokio::test]
async fn one_server_per_store_through_symlinks_and_without_a_lock_file() {
    let dir = tempfile::tempdir().unwrap();
    let real = dir.path().join("sub/store.db");
    let first = open(&dir);
    // Through a symlink: the same file, refused.
    let link = dir.path().join("link.db");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let err = SqliteStore::open(&config(&link), Mode::Serve).unwrap_err();
    assert!(err.to_string().contains("already serving"), "{err}");
    // Through the folder's symlink too.
    let dir_link = dir.path().join("alias");
    std::os::unix::fs::symlink(dir.path().join("sub"), &dir_link).unwrap();
    let err = SqliteStore::open(&config(&dir_link.join("store.db")), Mode::Serve).unwrap_err();
    assert!(err.to_string().contains("already serving"), "{err}");
    // There is no lock file to delete: the lock is on the database file itself.
    assert!(!dir.path().join("sub/store.db.lock").exists());
    // A tool beside the server is fine.
    let tool = SqliteStore::open(&config(&link), Mode::Tool).unwrap();
    assert!(tool.dead_letters(None).await.unwrap().is_empty());
    tool.close().await;
    first.close().await;
    // Released on close.
    SqliteStore::open(&config(&link), Mode::Serve)
        .unwrap()
        .close()
        .await;
}

#[test]
fn another_process_is_refused_by_the_lock() {
    // flock conflicts between open file descriptions; a child process proves it for real.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.db");
    let store = SqliteStore::open(&config(&path), Mode::Serve).unwrap();
    let status = std::process::Command::new("flock")
        .args(["--nonblock", "--exclusive"])
        .arg(&path)
        .arg("true")
        .status();
    match status {
        Ok(s) => assert!(!s.success(), "another process got the lock"),
        Err(e) => panic!("the flock tool (util-linux) is needed for this test: {e}"),
    }
    drop(store);
}

#[tokio::test]
async fn a_deleted_or_replaced_store_file_fails_every_commit() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sub/store.db");
    let store = open(&dir);
    assert_eq!(store.ingest(post(1, &["a"])).await.unwrap().accepted, 1);
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    let err = store.ingest(post(2, &["b"])).await.unwrap_err();
    assert!(err.to_string().contains("deleted"), "{err}");
    let err = store.ping().await.unwrap_err();
    assert!(matches!(err, StoreError::Refused(_)), "{err}");
    // A new file at the same path is not the store being written either.
    std::fs::write(&path, b"").unwrap();
    let err = store.ping().await.unwrap_err();
    assert!(err.to_string().contains("replaced"), "{err}");
    std::mem::forget(store);
}

#[tokio::test]
async fn a_damaged_store_is_refused_at_start_saying_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sub/store.db");
    let store = open(&dir);
    for i in 0..200 {
        let ids: Vec<String> = (0..20).map(|j| format!("h{i}-{j}")).collect();
        let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
        store.ingest(post(i, &ids)).await.unwrap();
    }
    store.close().await;
    // Random bytes over a few pages near the end of the file.
    let mut bytes = std::fs::read(&path).unwrap();
    let len = bytes.len();
    assert!(len > 64 * 1024, "{len}");
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    for b in &mut bytes[len - 5 * 4096..len - 4096] {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        *b = seed as u8;
    }
    std::fs::write(&path, &bytes).unwrap();
    let err = SqliteStore::open(&config(&path), Mode::Serve).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("damaged") && text.contains(".recover") && text.contains("backup"),
        "{text}"
    );
}

#[tokio::test]
async fn a_clean_close_checkpoints_so_the_db_file_alone_holds_everything() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sub/store.db");
    let store = open(&dir);
    for i in 0..50 {
        store.ingest(post(i, &[&format!("k{i}")])).await.unwrap();
    }
    let wal = dir.path().join("sub/store.db-wal");
    assert!(std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0) > 0);
    store.close().await;
    assert_eq!(
        std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0),
        0,
        "the WAL is folded into the database file"
    );
    // A copy of just the .db file (what a naive backup takes) has every hook.
    let copy = dir.path().join("copy.db");
    std::fs::copy(&path, &copy).unwrap();
    assert_eq!(count(&copy, "SELECT COUNT(*) FROM hooks"), 50);
}

#[tokio::test]
async fn a_schema_3_store_loses_the_unused_index_and_keeps_its_hooks() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sub/store.db");
    let store = open(&dir);
    store.ingest(post(1, &["a", "b"])).await.unwrap();
    store.close().await;
    let c = Connection::open(&path).unwrap();
    c.execute_batch(
        "CREATE INDEX hooks_kept ON hooks (state, id) WHERE state IN ('unrouted', 'quarantined');
         UPDATE meta SET value = '3' WHERE key = 'schema_version';",
    )
    .unwrap();
    drop(c);
    let store = SqliteStore::open(&config(&path), Mode::Serve).unwrap();
    store.close().await;
    let index = "SELECT COUNT(*) FROM sqlite_master WHERE type = 'index' AND name = 'hooks_kept'";
    assert_eq!(count(&path, index), 0);
    assert_eq!(count(&path, "SELECT COUNT(*) FROM hooks"), 2);
    assert_eq!(
        count(
            &path,
            "SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'schema_version'"
        ),
        SCHEMA_VERSION
    );
}

/// The kept counts against a scan of the hooks.
async fn assert_kept_counts(store: &SqliteStore, path: &Path, step: &str) {
    let stats = store.inbox_stats().await.unwrap();
    let truth = |state: &str| {
        count(
            path,
            &format!("SELECT COUNT(*) FROM hooks WHERE state = '{state}'"),
        )
    };
    assert_eq!(
        (stats.unrouted, stats.quarantined),
        (truth("unrouted"), truth("quarantined")),
        "after {step}"
    );
}

/// Routing's verdict on one hook: routed to `to`, or unrouted when `to` is empty.
fn outcome(row: i64, to: &[&str]) -> HookOutcome {
    HookOutcome {
        row,
        routed: !to.is_empty(),
        sent_to: to.iter().map(|d| d.to_string()).collect(),
    }
}

/// Work for `hooks` alone.
fn verdicts(hooks: Vec<HookOutcome>) -> DispatchBatch {
    DispatchBatch {
        hooks,
        ..DispatchBatch::default()
    }
}

fn routed_unrouted(at: i64, ids: &[&str]) -> NewPost {
    let batch = verdicts((0..ids.len()).map(|p| outcome(p as i64, &[])).collect());
    NewPost {
        routed: Some(RoutedPost {
            batch,
            rules: crate::digest::RULES,
        }),
        ..post(at, ids)
    }
}

#[tokio::test]
async fn the_kept_counts_follow_every_change_of_state() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sub/store.db");
    let store = open(&dir);
    let who = Claimant {
        owner: "me".into(),
        ttl_ms: 60_000,
    };
    store
        .ingest(routed_unrouted(10, &["u1", "u2", "u3"]))
        .await
        .unwrap();
    // A duplicate is not stored, so not counted.
    store
        .ingest(routed_unrouted(11, &["u1", "u4"]))
        .await
        .unwrap();
    assert_kept_counts(&store, &path, "ingest routed at ingest").await;

    store
        .ingest(post(20, &["w1", "w2", "w3", "w4"]))
        .await
        .unwrap();
    let claimed = store.claim_hooks(&who, 30, 10).await.unwrap();
    let rows: Vec<i64> = claimed.iter().map(|h| h.row).collect();
    assert_eq!(rows.len(), 4);
    let batch = verdicts(vec![outcome(rows[0], &[]), outcome(rows[1], &["ops"])]);
    store
        .commit_dispatch(&who, batch, &crate::digest::RULES)
        .await
        .unwrap();
    // A settle whose claim is lost changes nothing.
    let stranger = Claimant {
        owner: "other".into(),
        ttl_ms: 60_000,
    };
    let lost = verdicts(vec![outcome(rows[2], &[])]);
    store
        .commit_dispatch(&stranger, lost, &crate::digest::RULES)
        .await
        .unwrap();
    assert_kept_counts(&store, &path, "commit_dispatch").await;

    let failure = RoutingFailure {
        rows: vec![rows[2], rows[3]],
        reason: "boom".into(),
        now: 40,
        quarantine_after: 1,
        retry_at: 40,
    };
    assert_eq!(store.fail_dispatch(&who, failure).await.unwrap().len(), 2);
    assert_kept_counts(&store, &path, "quarantine").await;

    store
        .reroute(Reroute::Rows(vec![rows[0], rows[2], 9999]), 50)
        .await
        .unwrap();
    assert_kept_counts(&store, &path, "reroute rows").await;
    store.reroute(Reroute::Quarantined, 50).await.unwrap();
    assert_kept_counts(&store, &path, "reroute quarantined").await;
    store.reroute(Reroute::Unrouted, 50).await.unwrap();
    assert_kept_counts(&store, &path, "reroute unrouted").await;

    store
        .ingest(routed_unrouted(60, &["u5", "u6"]))
        .await
        .unwrap();
    store.reroute(Reroute::Since(60), 70).await.unwrap();
    assert_kept_counts(&store, &path, "reroute since").await;

    // Route everything waiting as unrouted again, then prune all but the newest hook.
    let claimed = store.claim_hooks(&who, 80, 100).await.unwrap();
    let batch = verdicts(claimed.iter().map(|h| outcome(h.row, &[])).collect());
    store
        .commit_dispatch(&who, batch, &crate::digest::RULES)
        .await
        .unwrap();
    assert_kept_counts(&store, &path, "routing the rerouted").await;
    let before = PruneBefore {
        seen: 0,
        delivered: 1000,
        unrouted: 1000,
    };
    assert!(store.prune(before).await.unwrap().hooks > 0);
    assert_kept_counts(&store, &path, "prune").await;
    store.close().await;
}

#[tokio::test]
async fn a_store_without_kept_counts_is_counted_once_when_opened() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sub/store.db");
    let store = open(&dir);
    store
        .ingest(routed_unrouted(10, &["a", "b"]))
        .await
        .unwrap();
    store.close().await;
    // As a store written before the table (its rows are made by the next open).
    Connection::open(&path)
        .unwrap()
        .execute_batch("DROP TABLE inbox_counts;")
        .unwrap();
    let store = SqliteStore::open(&config(&path), Mode::Serve).unwrap();
    assert_eq!(store.inbox_stats().await.unwrap().unrouted, 2);
    store.close().await;
}
