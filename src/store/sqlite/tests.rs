use super::*;
use crate::bizmessage::HookKind;

const DAY: i64 = 86_400_000;

fn open(dir: &tempfile::TempDir) -> SqliteStore {
    SqliteStore::open(
        &dir.path().join("sub/store.db"),
        SyncMode::Normal,
        Duration::from_secs(7 * 86_400),
    )
    .unwrap()
}

fn hook(id: &str) -> NewHook {
    NewHook {
        dedup_key: format!("h:{id}"),
        raw: format!(r#"{{"hookId":"{id}","requestId":"r","resultCode":"3019"}}"#),
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
    }
}

fn delivery(dest: &str, row: i64, at: i64) -> NewDelivery {
    NewDelivery {
        destination: dest.into(),
        route: "r".into(),
        template: "message_result".into(),
        hook_row: Some(row),
        hook_id: Some(format!("h{row}")),
        payload: format!("payload {row}"),
        created_at: at,
        received_at: at,
        dead: None,
    }
}

fn settings() -> GroupSettings {
    GroupSettings {
        to: vec!["d".into()],
        template: "message_digest".into(),
        wait_ms: 1_000,
        interval_ms: 5_000,
        max_items: 10,
    }
}

#[tokio::test]
async fn ingest_dedups_within_the_window_and_across_posts() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let out = store.ingest(post(1_000, &["a", "b", "a"])).await.unwrap();
    assert_eq!((out.accepted, out.duplicates), (2, 1));
    let out = store.ingest(post(2_000, &["b", "c"])).await.unwrap();
    assert_eq!((out.accepted, out.duplicates), (1, 1));
    // Eight days later the key has left the window: relayed again.
    let out = store.ingest(post(1_000 + 8 * DAY, &["a"])).await.unwrap();
    assert_eq!((out.accepted, out.duplicates), (1, 0));
    let hooks = store.undispatched(100).await.unwrap();
    let raws: Vec<&str> = hooks.iter().map(|h| h.raw.as_str()).collect();
    assert_eq!(raws.len(), 4);
    assert!(raws[0].contains("\"a\"") && raws[2].contains("\"c\"") && raws[3].contains("\"a\""));
    assert_eq!(hooks[0].envelope.hooks_id.as_deref(), Some("post-1000"));
    assert_eq!(hooks[2].envelope.hooks_id.as_deref(), Some("post-2000"));
}

#[tokio::test]
async fn rejected_hooks_are_kept_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let mut p = post(1, &["a"]);
    p.rejected.push(NewRejected {
        position: 1,
        reason: "hook is not a JSON object".into(),
        raw: "42".into(),
    });
    let out = store.ingest(p).await.unwrap();
    assert_eq!((out.accepted, out.rejected), (1, 1));
    let n: i64 = store
        .read(|c| {
            Ok(
                c.query_row("SELECT COUNT(*) FROM rejected WHERE raw = '42'", [], |r| {
                    r.get(0)
                })?,
            )
        })
        .await
        .unwrap();
    assert_eq!(n, 1);
}

#[tokio::test]
async fn dispatch_moves_the_cursor_atomically() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    store.ingest(post(1, &["a", "b", "c"])).await.unwrap();
    let hooks = store.undispatched(2).await.unwrap();
    assert_eq!(hooks.len(), 2);
    store
        .commit_dispatch(DispatchBatch {
            upto: hooks[1].row,
            deliveries: vec![delivery("d", hooks[0].row, 10)],
            members: vec![],
        })
        .await
        .unwrap();
    let rest = store.undispatched(10).await.unwrap();
    assert_eq!(rest.len(), 1);
    // A stale batch (cursor already past it) is refused and changes nothing.
    let stale = store
        .commit_dispatch(DispatchBatch {
            upto: hooks[1].row,
            deliveries: vec![delivery("d", hooks[1].row, 10)],
            members: vec![],
        })
        .await;
    assert!(matches!(stale, Err(StoreError::Corrupt(_))));
    assert_eq!(store.due_deliveries("d", 100, 10).await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_failing_job_does_not_undo_its_batch_neighbours() {
    // Runs one batch by hand, so the three jobs certainly share a transaction.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("batch.db");
    let mut conn = open_connection(&path, SyncMode::Normal).unwrap();
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
    let commit = run_batch(&mut conn, &mut batch);
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
async fn delivery_lifecycle_retry_dead_requeue_purge() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    store.ingest(post(1, &["a", "b", "c"])).await.unwrap();
    let hooks = store.undispatched(10).await.unwrap();
    let deliveries = hooks.iter().map(|h| delivery("d", h.row, 100)).collect();
    store
        .commit_dispatch(DispatchBatch {
            upto: hooks[2].row,
            deliveries,
            members: vec![],
        })
        .await
        .unwrap();
    let due = store.due_deliveries("d", 100, 10).await.unwrap();
    assert_eq!(
        due.iter()
            .map(|d| d.payload.as_str())
            .collect::<Vec<_>>()
            .len(),
        3
    );
    assert!(due.windows(2).all(|w| w[0].id < w[1].id), "arrival order");
    assert!(
        store
            .due_deliveries("other", 100, 10)
            .await
            .unwrap()
            .is_empty()
    );

    store
        .record_attempt(
            due[0].id,
            Attempt::Retry {
                status: Some(500),
                error: "HTTP 500".into(),
                at: 200,
                next_at: 1_200,
            },
        )
        .await
        .unwrap();
    store
        .record_attempt(
            due[1].id,
            Attempt::Delivered {
                status: 200,
                at: 210,
            },
        )
        .await
        .unwrap();
    store
        .record_attempt(
            due[2].id,
            Attempt::Dead {
                status: Some(404),
                reason: "HTTP 404: no_service".into(),
                at: 220,
            },
        )
        .await
        .unwrap();
    // The retry waits; nothing else is due.
    assert!(
        store
            .due_deliveries("d", 1_000, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.next_due_at("d").await.unwrap(), Some(1_200));
    let again = store.due_deliveries("d", 1_200, 10).await.unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].attempts, 1);

    let dead = store.dead_letters(None).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].reason, "HTTP 404: no_service");
    assert_eq!(dead[0].last_status, Some(404));
    assert_eq!(dead[0].first_attempt_at, Some(220));
    let stats = store.queue_stats().await.unwrap();
    assert_eq!(
        stats,
        vec![QueueStat {
            destination: "d".into(),
            pending: 1,
            oldest_pending_at: Some(100),
            dead: 1
        }]
    );

    let sources = store
        .dead_sources(&Selection::Destination("d".into()))
        .await
        .unwrap();
    assert!(matches!(&sources[0].1, DeadSource::Hook { hook } if hook.raw.contains("\"c\"")));
    assert_eq!(
        store
            .requeue(vec![(dead[0].id, Some("new body".into()))], 5_000)
            .await
            .unwrap(),
        1
    );
    let due = store.due_deliveries("d", 5_000, 10).await.unwrap();
    let replayed = due.iter().find(|d| d.id == dead[0].id).unwrap();
    assert_eq!(
        (replayed.payload.as_str(), replayed.attempts),
        ("new body", 0)
    );
    assert!(store.dead_letters(None).await.unwrap().is_empty());

    store
        .record_attempt(
            replayed.id,
            Attempt::Dead {
                status: Some(410),
                reason: "gone".into(),
                at: 6_000,
            },
        )
        .await
        .unwrap();
    assert_eq!(store.purge(&Selection::OlderThan(6_000)).await.unwrap(), 0);
    assert_eq!(
        store
            .purge(&Selection::Ids(vec![replayed.id]))
            .await
            .unwrap(),
        1
    );
    assert!(store.dead_letters(None).await.unwrap().is_empty());
}

#[tokio::test]
async fn group_members_go_into_exactly_one_digest() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    store.ingest(post(1, &["a", "b", "c"])).await.unwrap();
    let hooks = store.undispatched(10).await.unwrap();
    let member = |row: i64, at: i64| NewMember {
        route: "failures".into(),
        group_key: r#"{"result_code":"3019"}"#.into(),
        hook_row: row,
        joined_at: at,
        kind: HookKind::MessageResult,
        result_code: Some(if row % 2 == 0 { "3016" } else { "3019" }.into()),
        message_type: Some("ALIMTALK_NORMAL".into()),
        sender_key: None,
        settings: settings(),
    };
    store
        .commit_dispatch(DispatchBatch {
            upto: hooks[1].row,
            deliveries: vec![],
            members: vec![member(hooks[0].row, 10_000), member(hooks[1].row, 10_500)],
        })
        .await
        .unwrap();
    assert_eq!(store.next_flush_at().await.unwrap(), Some(11_000));
    assert!(store.due_groups(10_999, 10).await.unwrap().is_empty());
    let due = store.due_groups(11_000, 10).await.unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].tally.count, 2);
    assert_eq!(due[0].samples.len(), 2);
    assert_eq!(due[0].upto, hooks[1].row);
    assert_eq!(due[0].tally.first_at, Some(10_000));
    assert_eq!(due[0].tally.last_at, Some(10_500));
    assert_eq!(
        due[0].tally.message_types,
        vec![(Some("ALIMTALK_NORMAL".to_string()), 2)]
    );
    assert_eq!(due[0].tally.codes.iter().map(|c| c.1).sum::<usize>(), 2);
    assert_eq!(due[0].settings, settings());

    // A third member joins before the flush commits: it must stay for the next digest.
    store
        .commit_dispatch(DispatchBatch {
            upto: hooks[2].row,
            deliveries: vec![],
            members: vec![member(hooks[2].row, 11_000)],
        })
        .await
        .unwrap();
    let flush = Flush {
        route: "failures".into(),
        group_key: due[0].group_key.clone(),
        upto: due[0].upto,
        count: 2,
        context: "{}".into(),
        deliveries: vec![NewDelivery {
            hook_row: None,
            ..delivery("d", 0, 11_000)
        }],
        now: 11_000,
    };
    store.commit_flush(flush.clone()).await.unwrap();
    let t = store
        .group_timing("failures", &due[0].group_key)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((t.total, t.pending, t.next_flush_at), (2, 1, Some(16_000)));
    // Flushing the same members twice is refused: no hook is counted in two digests.
    assert!(matches!(
        store.commit_flush(flush).await,
        Err(StoreError::Corrupt(_))
    ));
    let due = store.due_groups(16_000, 10).await.unwrap();
    assert_eq!(due[0].tally.count, 1);
    assert_eq!(due[0].samples[0].row, hooks[2].row);
    assert_eq!(due[0].total_before, 2);
    assert_eq!(
        store.due_deliveries("d", 20_000, 10).await.unwrap().len(),
        1
    );
}

#[tokio::test]
async fn everything_survives_reopening() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open(&dir);
        store.ingest(post(1, &["a", "b"])).await.unwrap();
    }
    let store = open(&dir);
    assert_eq!(store.undispatched(10).await.unwrap().len(), 2);
    assert_eq!(
        store.ingest(post(2, &["a"])).await.unwrap().duplicates,
        1,
        "dedup survives restarts"
    );
}

#[tokio::test]
async fn concurrent_ingests_all_commit() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let mut tasks = Vec::new();
    for i in 0..200 {
        let s = store.clone();
        tasks.push(tokio::spawn(async move {
            s.ingest(post(i, &[&format!("k{i}"), "shared"])).await
        }));
    }
    let mut accepted = 0;
    for t in tasks {
        accepted += t.await.unwrap().unwrap().accepted;
    }
    assert_eq!(accepted, 201, "200 unique keys plus one 'shared'");
    assert_eq!(store.undispatched(1000).await.unwrap().len(), 201);
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
async fn prune_removes_only_what_nothing_needs() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    store.ingest(post(1, &["a", "b", "c"])).await.unwrap();
    let hooks = store.undispatched(10).await.unwrap();
    store
        .commit_dispatch(DispatchBatch {
            upto: hooks[2].row,
            deliveries: vec![
                delivery("d", hooks[0].row, 1),
                delivery("d", hooks[1].row, 1),
            ],
            members: vec![],
        })
        .await
        .unwrap();
    let due = store.due_deliveries("d", 10, 10).await.unwrap();
    store
        .record_attempt(due[0].id, Attempt::Delivered { status: 200, at: 5 })
        .await
        .unwrap();
    store
        .record_attempt(
            due[1].id,
            Attempt::Dead {
                status: Some(400),
                reason: "x".into(),
                at: 5,
            },
        )
        .await
        .unwrap();
    let stats = store.prune(100, 100).await.unwrap();
    // The delivered row and its hook go; the dead letter and its hook stay; the unrouted hook
    // stays too because it is the newest (ids must never be reused below the cursor).
    assert_eq!((stats.seen, stats.deliveries, stats.hooks), (3, 1, 1));
    let sources = store.dead_sources(&Selection::All).await.unwrap();
    assert!(matches!(sources[0].1, DeadSource::Hook { .. }));
    // Keys left the dedup table, so the same ids are new again.
    assert_eq!(store.ingest(post(200, &["a"])).await.unwrap().accepted, 1);
}

#[tokio::test]
async fn pruning_everything_never_lets_a_new_hook_hide_below_the_cursor() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    store.ingest(post(1, &["a", "b"])).await.unwrap();
    let hooks = store.undispatched(10).await.unwrap();
    store
        .commit_dispatch(DispatchBatch {
            upto: hooks[1].row,
            ..DispatchBatch::default()
        })
        .await
        .unwrap();
    while store.prune(i64::MAX, i64::MAX).await.unwrap().hooks > 0 {}
    store.ingest(post(2, &["c"])).await.unwrap();
    let next = store.undispatched(10).await.unwrap();
    assert_eq!(next.len(), 1, "the new hook is dispatched");
    assert!(next[0].row > hooks[1].row);
}

#[tokio::test]
async fn a_newer_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    drop(open(&dir));
    let c = Connection::open(dir.path().join("sub/store.db")).unwrap();
    c.execute(
        "UPDATE meta SET value = '99' WHERE key = 'schema_version'",
        [],
    )
    .unwrap();
    drop(c);
    let err = SqliteStore::open(
        &dir.path().join("sub/store.db"),
        SyncMode::Full,
        Duration::from_secs(1),
    )
    .unwrap_err();
    assert!(
        matches!(err, StoreError::NewerSchema { found: 99, .. }),
        "{err}"
    );
}
