//! One conformance suite for every store engine: each test is written against `dyn Store`
//! and runs on SQLite and on a real PostgreSQL (a fresh database per test). It covers the
//! invariants in `src/store/mod.rs`: durable ingest with dedup, claims and their takeover,
//! atomic routing commits fenced by the claim, one delivery per (hook, destination) even when
//! routed again, quarantine, digests that take every member exactly once, one live lease per
//! destination with shared pace and 429 pauses, the dead-letter lifecycle, pruning, and
//! everything surviving a reopen.

use std::sync::Arc;

use bizrelay::bizmessage::{Envelope, HookKind};
use bizrelay::config::StoreConfig;
use bizrelay::digest::RULES;
use bizrelay::store::*;

/// Where a test's store lives; `open` may be called again (a restart, another replica).
pub struct Engine {
    cfg: StoreConfig,
    _dir: tempfile::TempDir,
}

impl Engine {
    pub async fn sqlite() -> Engine {
        let dir = tempfile::tempdir().unwrap();
        let cfg = StoreConfig {
            path: dir.path().join("store.db"),
            sync: bizrelay::config::SyncMode::Normal,
            ..StoreConfig::default()
        };
        Engine { cfg, _dir: dir }
    }

    pub async fn postgres() -> Engine {
        let url = crate::common::postgres_database().await;
        let cfg = StoreConfig {
            url: Some(bizrelay::secret::Secret::new(url)),
            pool_size: 4,
            ..StoreConfig::default()
        };
        Engine {
            cfg,
            _dir: tempfile::tempdir().unwrap(),
        }
    }

    pub fn is_postgres(&self) -> bool {
        self.cfg.url.is_some()
    }

    pub async fn open(&self) -> Arc<dyn Store> {
        open(&self.cfg, Mode::Serve).await.unwrap()
    }

    /// Runs `sql` on the store's database by hand (both engines understand it), as a crashed
    /// or stalled replica might have left it.
    pub async fn execute(&self, sql: &str) {
        if let Some(url) = &self.cfg.url {
            let (client, conn) = tokio_postgres::connect(url.expose(), tokio_postgres::NoTls)
                .await
                .unwrap();
            tokio::spawn(conn);
            client.batch_execute(sql).await.unwrap();
        } else {
            let (path, sql) = (self.cfg.path.clone(), sql.to_string());
            tokio::task::spawn_blocking(move || {
                let c = rusqlite::Connection::open(path).unwrap();
                c.busy_timeout(std::time::Duration::from_secs(5)).unwrap();
                c.execute_batch(&sql).unwrap();
            })
            .await
            .unwrap();
        }
    }

    /// A second consumer: another replica on PostgreSQL; on SQLite (one server per file) the
    /// same store, used under another owner.
    pub async fn second(&self, first: &Arc<dyn Store>) -> Arc<dyn Store> {
        if self.is_postgres() {
            self.open().await
        } else {
            Arc::clone(first)
        }
    }
}

fn who(owner: &str) -> Claimant {
    Claimant {
        owner: owner.into(),
        ttl_ms: 1_000,
    }
}

fn raw(id: &str, code: &str) -> String {
    format!(
        r#"{{"hookId":"{id}","kakaoMessageType":"ALIMTALK_NORMAL","requestId":"r","recipientSeq":1,"resultCode":"{code}"}}"#
    )
}

fn post(at: i64, ids: &[&str]) -> NewPost {
    let envelope = Envelope {
        hooks_id: Some(format!("post-{at}")),
        app_key: Some("app".into()),
        ..Envelope::default()
    };
    NewPost {
        received_at: at,
        hooks_id: envelope.hooks_id.clone(),
        envelope_json: serde_json::to_string(&envelope).unwrap(),
        hooks: ids
            .iter()
            .map(|id| NewHook {
                dedup_key: format!("h:{id}"),
                raw: raw(id, "3019").into(),
            })
            .collect(),
        rejected: vec![],
        claim: None,
        routed: None,
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
        max_items: 2,
        resolve_after_ms: None,
    }
}

fn member(row: i64, at: i64, code: &str) -> NewMember {
    NewMember {
        route: "failures".into(),
        group_key: "{}".into(),
        hook_row: row,
        joined_at: at,
        routed_at: at,
        kind: HookKind::MessageResult,
        result_code: Some(code.into()),
        message_type: Some("ALIMTALK_NORMAL".into()),
        sender_key: None,
        settings: settings(),
    }
}

fn routed(row: i64, to: &[&str]) -> HookOutcome {
    HookOutcome {
        row,
        routed: !to.is_empty(),
        sent_to: to.iter().map(|s| s.to_string()).collect(),
    }
}

fn unlimited() -> Pacer {
    bizrelay::pace::pacer(None, 1)
}

fn flush_of(g: &DueGroup, now: i64, deliveries: Vec<NewDelivery>) -> Flush {
    Flush {
        route: g.route.clone(),
        group_key: g.group_key.clone(),
        token: g.token,
        count: g.tally.count as i64,
        context: "{}".into(),
        deliveries,
        now,
        silenced: g.silenced,
        resolved: g.tally.count == 0,
    }
}

/// Ingests hooks and routes each to `dest` under `owner`; returns their rows.
async fn routed_to(store: &Arc<dyn Store>, ids: &[&str], dest: &str, at: i64) -> Vec<i64> {
    store.ingest(post(at, ids)).await.unwrap();
    let me = who("router");
    let hooks = store.claim_hooks(&me, at, 100).await.unwrap();
    let rows: Vec<i64> = hooks.iter().map(|h| h.row).collect();
    let batch = DispatchBatch {
        hooks: rows.iter().map(|r| routed(*r, &[dest])).collect(),
        deliveries: rows.iter().map(|r| delivery(dest, *r, at)).collect(),
        members: vec![],
        silenced: vec![],
        rates: vec![],
    };
    store.commit_dispatch(&me, batch, &RULES).await.unwrap();
    rows
}

async fn lease(store: &Arc<dyn Store>, dest: &str, owner: &str, now: i64) -> LeaseOutcome {
    store
        .lease_delivery(dest, &who(owner), now, &unlimited())
        .await
        .unwrap()
}

fn leased(outcome: LeaseOutcome) -> Lease {
    match outcome {
        LeaseOutcome::Leased(l) => l,
        other => panic!("expected a lease, got {other:?}"),
    }
}

// ------------------------------------------------------------------------------------------

pub async fn ingest_dedups_within_the_window_and_across_posts(e: Engine) {
    let store = e.open().await;
    let day = 86_400_000;
    let out = store.ingest(post(1_000, &["a", "b", "a"])).await.unwrap();
    assert_eq!((out.accepted, out.duplicates), (2, 1));
    assert_eq!(out.fresh, vec![true, true, false]);
    let out = store.ingest(post(2_000, &["b", "c"])).await.unwrap();
    assert_eq!((out.accepted, out.duplicates), (1, 1));
    // Eight days later the key has left the (7-day) window: relayed again.
    let out = store.ingest(post(1_000 + 8 * day, &["a"])).await.unwrap();
    assert_eq!((out.accepted, out.duplicates), (1, 0));
    let hooks = store.claim_hooks(&who("x"), 10 * day, 100).await.unwrap();
    assert_eq!(hooks.len(), 4);
    assert!(
        hooks.windows(2).all(|w| w[0].row < w[1].row),
        "oldest first"
    );
    assert_eq!(hooks[0].envelope.hooks_id.as_deref(), Some("post-1000"));
    assert!(hooks[3].raw.contains("\"a\""));
    store.close().await;
}

pub async fn concurrent_ingests_all_commit_and_share_dedup(e: Engine) {
    let first = e.open().await;
    let second = e.second(&first).await;
    let mut tasks = Vec::new();
    for i in 0..100 {
        let store = Arc::clone(if i % 2 == 0 { &first } else { &second });
        tasks.push(tokio::spawn(async move {
            store.ingest(post(i, &[&format!("k{i}"), "shared"])).await
        }));
    }
    let mut accepted = 0;
    for t in tasks {
        accepted += t.await.unwrap().unwrap().accepted;
    }
    assert_eq!(
        accepted, 101,
        "100 unique keys plus one 'shared', across consumers"
    );
    let stats = first.inbox_stats().await.unwrap();
    assert_eq!(stats.waiting, 101);
    first.close().await;
    second.close().await;
}

pub async fn two_consumers_never_claim_the_same_hook_and_expired_claims_are_taken_over(e: Engine) {
    let first = e.open().await;
    let second = e.second(&first).await;
    first.ingest(post(1, &["a", "b", "c", "d"])).await.unwrap();
    let (one, two) = (who("one"), who("two"));
    let got_one = first.claim_hooks(&one, 10, 2).await.unwrap();
    let got_two = second.claim_hooks(&two, 10, 10).await.unwrap();
    assert_eq!(got_one.len(), 2);
    assert_eq!(got_two.len(), 2, "the other consumer gets only the rest");
    let rows_one: Vec<i64> = got_one.iter().map(|h| h.row).collect();
    assert!(got_two.iter().all(|h| !rows_one.contains(&h.row)));
    // While both claims live, nobody gets anything more, its own claims included...
    assert!(second.claim_hooks(&two, 500, 10).await.unwrap().is_empty());
    assert!(first.claim_hooks(&one, 500, 10).await.unwrap().is_empty());
    // ...and once the claims expired (ttl 1 s), `two` takes them all.
    let taken = second.claim_hooks(&two, 1_500, 10).await.unwrap();
    let mut rows: Vec<i64> = taken.iter().map(|h| h.row).collect();
    rows.sort_unstable();
    let mut want = rows_one.clone();
    want.extend(got_two.iter().map(|h| h.row));
    want.sort_unstable();
    assert_eq!(rows, want, "the expired claims of both");
    // `one` wakes up and commits: it no longer holds them, so nothing of it is written.
    let batch = DispatchBatch {
        hooks: rows_one.iter().map(|r| routed(*r, &["d"])).collect(),
        deliveries: rows_one.iter().map(|r| delivery("d", *r, 1_600)).collect(),
        members: rows_one.iter().map(|r| member(*r, 1_600, "3019")).collect(),
        silenced: vec![],
        rates: vec![],
    };
    let commit = first.commit_dispatch(&one, batch, &RULES).await.unwrap();
    assert_eq!(commit.committed, 0);
    assert_eq!(commit.lost, rows_one);
    assert!(first.queue_stats().await.unwrap().is_empty());
    assert_eq!(first.next_flush_at().await.unwrap(), None);
    first.close().await;
    second.close().await;
}

pub async fn hooks_born_claimed_at_ingest_stay_with_their_consumer_until_the_claim_expires(
    e: Engine,
) {
    let first = e.open().await;
    let second = e.second(&first).await;
    let mut p = post(100, &["mine-1", "mine-2", "dup"]);
    p.claim = Some(who("ingester"));
    let out = first.ingest(p).await.unwrap();
    assert!(out.rows.iter().all(Option::is_some), "{out:?}");
    assert!(
        out.rows[0] < out.rows[1] && out.rows[1] < out.rows[2],
        "rows in order"
    );
    let mut again = post(150, &["dup", "other"]);
    again.claim = Some(who("ingester"));
    let out2 = first.ingest(again).await.unwrap();
    assert_eq!(out2.rows[0], None, "a duplicate has no row");
    // Nobody else may claim them while the ingester's claim lives...
    assert!(
        second
            .claim_hooks(&who("thief"), 500, 10)
            .await
            .unwrap()
            .is_empty()
    );
    // ...the ingester commits their routing from memory, fenced by its claim...
    let rows: Vec<i64> = out.rows.iter().flatten().copied().collect();
    let commit = first
        .commit_dispatch(
            &who("ingester"),
            DispatchBatch {
                hooks: rows.iter().map(|r| routed(*r, &[])).collect(),
                ..DispatchBatch::default()
            },
            &RULES,
        )
        .await
        .unwrap();
    assert_eq!(commit.committed, 3);
    // ...and what it never routed (it died) is taken over once the claim expires.
    let taken = second.claim_hooks(&who("thief"), 1_200, 10).await.unwrap();
    assert_eq!(
        taken.iter().map(|h| h.row).collect::<Vec<_>>(),
        out2.rows.iter().flatten().copied().collect::<Vec<_>>()
    );
    first.close().await;
    second.close().await;
}

pub async fn a_dispatch_commit_is_atomic_and_settles_every_hook(e: Engine) {
    let store = e.open().await;
    store.ingest(post(1, &["a", "b", "c"])).await.unwrap();
    let me = who("me");
    let hooks = store.claim_hooks(&me, 10, 10).await.unwrap();
    let r: Vec<i64> = hooks.iter().map(|h| h.row).collect();
    let batch = DispatchBatch {
        hooks: vec![
            routed(r[0], &["d"]),
            routed(r[1], &["d"]),
            routed(r[2], &[]),
        ],
        deliveries: vec![delivery("d", r[0], 20)],
        members: vec![member(r[1], 20, "3019")],
        silenced: vec![],
        rates: vec![],
    };
    let commit = store.commit_dispatch(&me, batch, &RULES).await.unwrap();
    assert_eq!((commit.committed, commit.lost.len()), (3, 0));
    let stats = store.inbox_stats().await.unwrap();
    assert_eq!((stats.waiting, stats.unrouted), (0, 1));
    assert!(store.claim_hooks(&me, 5_000, 10).await.unwrap().is_empty());
    assert_eq!(store.queue_stats().await.unwrap()[0].pending, 1);
    let t = store.group_timing("failures", "{}").await.unwrap().unwrap();
    assert_eq!((t.pending, t.next_flush_at), (1, Some(1_020)));
    let unrouted = store.hooks_in(HookState::Unrouted, 10).await.unwrap();
    assert_eq!(unrouted.len(), 1);
    assert_eq!(unrouted[0].hook.row, r[2]);
    store.close().await;
}

pub async fn out_of_order_commits_never_skip_a_hook(e: Engine) {
    let store = e.open().await;
    let me = who("me");
    // A hook whose row id is lower than hooks already routed (PostgreSQL ids commit out of
    // order across sessions) is still claimed when it becomes visible.
    store.ingest(post(1, &["first"])).await.unwrap();
    let late_row;
    if e.is_postgres() {
        let url = e.cfg.url.as_ref().unwrap().expose().to_string();
        let (mut client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        let tx = client.transaction().await.unwrap();
        late_row = tx
            .query_one(
                "INSERT INTO hooks (v, received_at, envelope, raw) VALUES (1, 2, '{}', $1) RETURNING id",
                &[&raw("late", "3019")],
            )
            .await
            .unwrap()
            .get::<_, i64>(0);
        // A later hook commits first and is routed...
        store.ingest(post(3, &["after"])).await.unwrap();
        let got = store.claim_hooks(&me, 10, 10).await.unwrap();
        let rows: Vec<i64> = got.iter().map(|h| h.row).collect();
        assert!(
            !rows.contains(&late_row) && rows.iter().any(|r| *r > late_row),
            "{rows:?}"
        );
        store
            .commit_dispatch(
                &me,
                DispatchBatch {
                    hooks: rows.iter().map(|r| routed(*r, &[])).collect(),
                    ..DispatchBatch::default()
                },
                &RULES,
            )
            .await
            .unwrap();
        // ...and only then the earlier one commits.
        tx.commit().await.unwrap();
    } else {
        let rows = store.claim_hooks(&me, 10, 10).await.unwrap();
        store
            .commit_dispatch(
                &me,
                DispatchBatch {
                    hooks: rows.iter().map(|h| routed(h.row, &[])).collect(),
                    ..DispatchBatch::default()
                },
                &RULES,
            )
            .await
            .unwrap();
        // SQLite commits ids in order; a row below the routed ones still gets routed.
        let path = e.cfg.path.clone();
        late_row = tokio::task::spawn_blocking(move || {
            let c = rusqlite::Connection::open(path).unwrap();
            c.execute(
                "INSERT INTO hooks (id, v, received_at, envelope, raw) VALUES (0, 1, 2, '{}', ?1)",
                [raw("late", "3019")],
            )
            .unwrap();
            0i64
        })
        .await
        .unwrap();
    }
    let got = store.claim_hooks(&me, 20, 10).await.unwrap();
    assert_eq!(
        got.iter().map(|h| h.row).collect::<Vec<_>>(),
        vec![late_row]
    );
    store.close().await;
}

pub async fn a_hook_gets_one_delivery_per_destination_even_when_routed_again(e: Engine) {
    let store = e.open().await;
    let rows = routed_to(&store, &["a", "b"], "ops", 10).await;
    assert_eq!(store.reroute(Reroute::Since(0), 100).await.unwrap(), 2);
    let me = who("router");
    let again = store.claim_hooks(&me, 100, 10).await.unwrap();
    assert_eq!(again.len(), 2);
    assert!(again.iter().all(|h| h.sent_to == vec!["ops".to_string()]));
    // Even a router that forgot `sent_to` cannot make a second delivery to `ops`.
    let batch = DispatchBatch {
        hooks: rows.iter().map(|r| routed(*r, &["ops", "new"])).collect(),
        deliveries: rows
            .iter()
            .flat_map(|r| [delivery("ops", *r, 100), delivery("new", *r, 100)])
            .collect(),
        members: vec![],
        silenced: vec![],
        rates: vec![],
    };
    store.commit_dispatch(&me, batch, &RULES).await.unwrap();
    let stats = store.queue_stats().await.unwrap();
    let pending: Vec<(String, i64)> = stats
        .into_iter()
        .map(|s| (s.destination, s.pending))
        .collect();
    assert_eq!(pending, vec![("new".into(), 2), ("ops".into(), 2)]);
    store.close().await;
}

pub async fn repeated_routing_failures_quarantine_a_hook_until_rerouted(e: Engine) {
    let store = e.open().await;
    store.ingest(post(1, &["bad", "good"])).await.unwrap();
    let me = who("me");
    let mut now = 10;
    let mut failures = 0;
    let mut neighbour_handed_out = false;
    loop {
        let hooks = store.claim_hooks(&me, now, 10).await.unwrap();
        neighbour_handed_out |= hooks.iter().any(|h| h.raw.contains("\"good\""));
        let Some(row) = hooks
            .iter()
            .find(|h| h.raw.contains("\"bad\""))
            .map(|h| h.row)
        else {
            panic!("the failing hook was not handed out again after {failures} failures");
        };
        failures += 1;
        let q = store
            .fail_dispatch(
                &me,
                RoutingFailure {
                    rows: vec![row],
                    reason: "routing failed: boom".into(),
                    now,
                    quarantine_after: 3,
                    retry_at: now + 100,
                },
            )
            .await
            .unwrap();
        // Held back until `retry_at`, then handed out again.
        assert!(
            store
                .claim_hooks(&me, now + 50, 10)
                .await
                .unwrap()
                .iter()
                .all(|h| h.row != row)
        );
        now += 200;
        if !q.is_empty() {
            assert_eq!(q, vec![row]);
            break;
        }
    }
    assert_eq!(failures, 3, "quarantined at the third failure");
    let q = store.hooks_in(HookState::Quarantined, 10).await.unwrap();
    assert_eq!(q.len(), 1);
    assert_eq!(q[0].hook.failures, 3);
    assert_eq!(q[0].reason.as_deref(), Some("routing failed: boom"));
    let bad_row = q[0].hook.row;
    // The neighbour was never held back by it: handed out at once, and after its claim
    // expired it is the only hook left to claim.
    assert!(neighbour_handed_out);
    let rest = store.claim_hooks(&me, now + 2_000, 10).await.unwrap();
    assert_eq!(rest.len(), 1);
    assert!(rest[0].raw.contains("\"good\""));
    assert_eq!(store.inbox_stats().await.unwrap().quarantined, 1);
    assert_eq!(store.reroute(Reroute::Quarantined, now).await.unwrap(), 1);
    let back = store
        .claim_hooks(&who("other"), now + 2_000, 10)
        .await
        .unwrap();
    assert!(back.iter().any(|h| h.row == bad_row && h.failures == 0));
    store.close().await;
}

pub async fn reroute_selects_unrouted_or_recent_hooks(e: Engine) {
    let store = e.open().await;
    let me = who("me");
    store.ingest(post(100, &["old"])).await.unwrap();
    store.ingest(post(5_000, &["new"])).await.unwrap();
    let hooks = store.claim_hooks(&me, 6_000, 10).await.unwrap();
    let batch = DispatchBatch {
        hooks: vec![routed(hooks[0].row, &[]), routed(hooks[1].row, &["d"])],
        deliveries: vec![delivery("d", hooks[1].row, 6_000)],
        members: vec![],
        silenced: vec![],
        rates: vec![],
    };
    store.commit_dispatch(&me, batch, &RULES).await.unwrap();
    assert_eq!(store.reroute(Reroute::Unrouted, 7_000).await.unwrap(), 1);
    let got = store.claim_hooks(&me, 7_000, 10).await.unwrap();
    assert_eq!(got.len(), 1);
    assert!(got[0].raw.contains("\"old\""));
    store
        .commit_dispatch(
            &me,
            DispatchBatch {
                hooks: vec![routed(got[0].row, &[])],
                ..DispatchBatch::default()
            },
            &RULES,
        )
        .await
        .unwrap();
    assert_eq!(
        store.reroute(Reroute::Since(1_000), 8_000).await.unwrap(),
        1
    );
    let got = store.claim_hooks(&me, 8_000, 10).await.unwrap();
    assert!(got[0].raw.contains("\"new\""));
    assert_eq!(got[0].sent_to, vec!["d"]);
    store.close().await;
}

pub async fn every_grouped_hook_goes_into_exactly_one_digest(e: Engine) {
    let first = e.open().await;
    let second = e.second(&first).await;
    first.ingest(post(1, &["a", "b", "c"])).await.unwrap();
    let me = who("me");
    let hooks = first.claim_hooks(&me, 10, 10).await.unwrap();
    let members: Vec<NewMember> = hooks
        .iter()
        .zip(["3019", "3019", "3016"])
        .map(|(h, code)| member(h.row, 1_000, code))
        .collect();
    let batch = DispatchBatch {
        hooks: hooks.iter().map(|h| routed(h.row, &["d"])).collect(),
        deliveries: vec![],
        members,
        silenced: vec![],
        rates: vec![],
    };
    first.commit_dispatch(&me, batch, &RULES).await.unwrap();
    assert_eq!(first.next_flush_at().await.unwrap(), Some(2_000));
    assert!(first.claim_groups(&me, 1_999, 10).await.unwrap().is_empty());
    // Two consumers ask at once: one gets the group.
    let one = first.claim_groups(&who("one"), 2_000, 10).await.unwrap();
    let two = second.claim_groups(&who("two"), 2_000, 10).await.unwrap();
    assert_eq!(one.len() + two.len(), 1);
    let (g, owner) = if one.is_empty() {
        (two[0].clone(), "two")
    } else {
        (one[0].clone(), "one")
    };
    assert_eq!(g.tally.count, 3);
    assert_eq!(
        g.tally.codes,
        vec![(Some("3019".into()), 2), (Some("3016".into()), 1)]
    );
    assert_eq!(g.samples.len(), 2, "max_items samples");
    assert_eq!(g.timing.total, 0);
    // A hook joining while the digest is being built waits for the next one.
    first.ingest(post(2_100, &["d"])).await.unwrap();
    let late = first.claim_hooks(&me, 2_100, 10).await.unwrap();
    first
        .commit_dispatch(
            &me,
            DispatchBatch {
                hooks: vec![routed(late[0].row, &["d"])],
                deliveries: vec![],
                members: vec![member(late[0].row, 2_100, "3019")],
                silenced: vec![],
                rates: vec![],
            },
            &RULES,
        )
        .await
        .unwrap();
    // A flush by a consumer that does not hold the claim writes nothing.
    let other = if owner == "one" { "two" } else { "one" };
    let refused = first
        .commit_flush(&who(other), flush_of(&g, 2_200, vec![]), &RULES)
        .await
        .unwrap();
    assert!(!refused);
    let digest = NewDelivery {
        hook_row: None,
        hook_id: None,
        ..delivery("d", 0, 2_200)
    };
    assert!(
        first
            .commit_flush(&who(owner), flush_of(&g, 2_200, vec![digest]), &RULES)
            .await
            .unwrap()
    );
    let t = first.group_timing("failures", "{}").await.unwrap().unwrap();
    assert_eq!((t.total, t.pending), (3, 1));
    assert_eq!(
        t.next_flush_at,
        Some(7_200),
        "the next digest waits for the interval"
    );
    let next = second.claim_groups(&who("two"), 7_200, 10).await.unwrap();
    assert_eq!(next.len(), 1);
    assert_eq!(next[0].tally.count, 1, "only the late member");
    assert_eq!(next[0].timing.total, 3);
    assert!(
        second
            .commit_flush(&who("two"), flush_of(&next[0], 7_300, vec![]), &RULES)
            .await
            .unwrap()
    );
    assert_eq!(first.next_flush_at().await.unwrap(), None);
    assert_eq!(first.queue_stats().await.unwrap()[0].pending, 1);
    first.close().await;
    second.close().await;
}

/// Flushes `due` under `owner`'s claim (which must still hold) and checks that it took the
/// whole group of `total` members, leaving none pending.
async fn flush_whole(store: &Arc<dyn Store>, owner: &str, due: &DueGroup, total: i64) {
    assert!(
        store
            .commit_flush(&who(owner), flush_of(due, 3_200, vec![]), &RULES)
            .await
            .unwrap()
    );
    let t = store.group_timing("failures", "{}").await.unwrap().unwrap();
    assert_eq!((t.total, t.pending), (total, 0));
}

/// Stores `ids` (received at 1) and routes them into the `failures` group (joined at 1,000),
/// as owner `me`.
async fn grouped(store: &Arc<dyn Store>, ids: &[&str]) {
    store.ingest(post(1, ids)).await.unwrap();
    let me = who("me");
    let hooks = store.claim_hooks(&me, 10, 10).await.unwrap();
    store
        .commit_dispatch(
            &me,
            DispatchBatch {
                hooks: hooks.iter().map(|h| routed(h.row, &["d"])).collect(),
                members: hooks.iter().map(|h| member(h.row, 1_000, "3019")).collect(),
                ..DispatchBatch::default()
            },
            &RULES,
        )
        .await
        .unwrap();
}

pub async fn an_abandoned_digest_claim_is_taken_over_whole(e: Engine) {
    let store = e.open().await;
    grouped(&store, &["a", "b"]).await;
    let dead = store.claim_groups(&who("dies"), 2_000, 10).await.unwrap();
    assert_eq!(dead[0].tally.count, 2);
    // Its claim (ttl 1 s) is live: nobody else gets the group...
    assert!(
        store
            .claim_groups(&who("next"), 2_500, 10)
            .await
            .unwrap()
            .is_empty()
    );
    // ...then it expires, and the taker gets the members the dead one had marked.
    let taken = store.claim_groups(&who("next"), 3_100, 10).await.unwrap();
    assert_eq!(taken.len(), 1);
    assert_eq!(taken[0].tally.count, 2);
    assert!(
        !store
            .commit_flush(&who("dies"), flush_of(&dead[0], 3_200, vec![]), &RULES)
            .await
            .unwrap(),
        "the old claim is void"
    );
    flush_whole(&store, "next", &taken[0], 2).await;
    store.close().await;
}

pub async fn a_flush_that_does_not_count_its_members_is_refused(e: Engine) {
    let store = e.open().await;
    store.ingest(post(1, &["a"])).await.unwrap();
    let me = who("me");
    let hooks = store.claim_hooks(&me, 10, 10).await.unwrap();
    store
        .commit_dispatch(
            &me,
            DispatchBatch {
                hooks: vec![routed(hooks[0].row, &["d"])],
                deliveries: vec![],
                members: vec![member(hooks[0].row, 1_000, "3019")],
                silenced: vec![],
                rates: vec![],
            },
            &RULES,
        )
        .await
        .unwrap();
    let g = store.claim_groups(&me, 2_000, 10).await.unwrap().remove(0);
    let mut wrong = flush_of(&g, 2_100, vec![]);
    wrong.count = 5;
    let err = store.commit_flush(&me, wrong, &RULES).await.unwrap_err();
    assert!(err.to_string().contains("counts 5 members"), "{err}");
    // Nothing was removed: the right flush still works.
    assert!(
        store
            .commit_flush(&me, flush_of(&g, 2_100, vec![]), &RULES)
            .await
            .unwrap()
    );
    store.close().await;
}

pub async fn one_live_lease_per_destination_and_expired_leases_are_taken_over(e: Engine) {
    let first = e.open().await;
    let second = e.second(&first).await;
    routed_to(&first, &["a", "b"], "d", 10).await;
    let l1 = leased(lease(&first, "d", "one", 100).await);
    // Another consumer of the same destination waits while the lease lives.
    assert_eq!(
        lease(&second, "d", "two", 200).await,
        LeaseOutcome::Busy(1_100)
    );
    assert!(matches!(
        lease(&second, "other", "two", 200).await,
        LeaseOutcome::Idle(None)
    ));
    // The holder dies; after its lease expires the same delivery goes to the other.
    let l2 = leased(lease(&second, "d", "two", 1_200).await);
    assert_eq!(
        l2.delivery.id, l1.delivery.id,
        "arrival order: the oldest first"
    );
    assert_ne!(l2.token, l1.token);
    // The late holder's outcome is not recorded.
    let done = Attempt::Delivered {
        status: 200,
        at: 1_300,
    };
    assert!(!first.record_attempt(&l1, done.clone(), None).await.unwrap());
    assert!(second.record_attempt(&l2, done, None).await.unwrap());
    let l3 = leased(lease(&first, "d", "one", 1_400).await);
    assert_ne!(l3.delivery.id, l1.delivery.id);
    assert!(
        first
            .record_attempt(
                &l3,
                Attempt::Delivered {
                    status: 200,
                    at: 1_500
                },
                None
            )
            .await
            .unwrap()
    );
    assert_eq!(
        lease(&first, "d", "one", 1_600).await,
        LeaseOutcome::Idle(None)
    );
    assert!(first.queue_stats().await.unwrap().is_empty());
    first.close().await;
    second.close().await;
}

pub async fn the_pace_and_a_429_pause_are_shared_by_every_consumer(e: Engine) {
    let first = e.open().await;
    let second = e.second(&first).await;
    routed_to(&first, &["a", "b", "c", "d"], "d", 10).await;
    let pacer = bizrelay::pace::pacer(Some(1.0), 1);
    let take = |store: &Arc<dyn Store>, owner: &'static str, now: i64| {
        let store = Arc::clone(store);
        async move {
            store
                .lease_delivery("d", &who(owner), now, &pacer)
                .await
                .unwrap()
        }
    };
    let l = leased(take(&first, "one", 1_000).await);
    assert!(
        first
            .record_attempt(
                &l,
                Attempt::Delivered {
                    status: 200,
                    at: 1_010
                },
                None
            )
            .await
            .unwrap()
    );
    // One per second, whoever asks.
    assert_eq!(
        take(&second, "two", 1_500).await,
        LeaseOutcome::Paced(2_000)
    );
    let l = leased(take(&second, "two", 2_000).await);
    // A 429 seen by one pauses the destination for all until its Retry-After.
    let retry = Attempt::Retry {
        status: Some(429),
        error: "HTTP 429".into(),
        at: 2_010,
        next_at: 12_000,
    };
    assert!(
        second
            .record_attempt(
                &l,
                retry,
                Some(Pause {
                    until: 12_000,
                    pacer
                })
            )
            .await
            .unwrap()
    );
    assert_eq!(
        take(&first, "one", 5_000).await,
        LeaseOutcome::Paced(12_000)
    );
    let l = leased(take(&first, "one", 12_000).await);
    assert_eq!(
        l.delivery.attempts, 1,
        "the throttled delivery goes first again"
    );
    first.close().await;
    second.close().await;
}

pub async fn delivery_lifecycle_retry_dead_requeue_purge(e: Engine) {
    let store = e.open().await;
    let rows = routed_to(&store, &["a", "b", "c"], "d", 100).await;
    let mut ids = Vec::new();
    for (i, attempt) in [
        Attempt::Retry {
            status: Some(500),
            error: "HTTP 500".into(),
            at: 200,
            next_at: 1_200,
        },
        Attempt::Delivered {
            status: 200,
            at: 210,
        },
        Attempt::Dead {
            status: Some(404),
            reason: "HTTP 404: no_service".into(),
            at: 220,
        },
    ]
    .into_iter()
    .enumerate()
    {
        let l = leased(lease(&store, "d", "me", 200 + i as i64).await);
        assert_eq!(
            l.delivery.hook_id.as_deref(),
            Some(format!("h{}", rows[i]).as_str())
        );
        ids.push(l.delivery.id);
        assert!(store.record_attempt(&l, attempt, None).await.unwrap());
    }
    assert_eq!(
        lease(&store, "d", "me", 1_000).await,
        LeaseOutcome::Idle(Some(1_200))
    );
    let again = leased(lease(&store, "d", "me", 1_200).await);
    assert_eq!((again.delivery.id, again.delivery.attempts), (ids[0], 1));
    let dead = store.dead_letters(None).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].reason, "HTTP 404: no_service");
    assert_eq!(dead[0].last_status, Some(404));
    assert_eq!(dead[0].first_attempt_at, Some(220));
    assert_eq!(
        store.queue_stats().await.unwrap(),
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
    assert!(store.dead_letters(None).await.unwrap().is_empty());
    assert!(
        store
            .record_attempt(
                &again,
                Attempt::Delivered {
                    status: 200,
                    at: 5_000
                },
                None
            )
            .await
            .unwrap()
    );
    let replayed = leased(lease(&store, "d", "me", 5_000).await);
    assert_eq!(
        (
            replayed.delivery.payload.as_str(),
            replayed.delivery.attempts
        ),
        ("new body", 0)
    );
    let gone = Attempt::Dead {
        status: Some(410),
        reason: "gone".into(),
        at: 6_000,
    };
    assert!(store.record_attempt(&replayed, gone, None).await.unwrap());
    assert_eq!(store.purge(&Selection::OlderThan(6_000)).await.unwrap(), 0);
    assert_eq!(
        store
            .purge(&Selection::Ids(vec![replayed.delivery.id]))
            .await
            .unwrap(),
        1
    );
    assert!(store.dead_letters(None).await.unwrap().is_empty());
    store.close().await;
}

pub async fn removed_destinations_are_dead_lettered_and_digests_keep_their_context(e: Engine) {
    let store = e.open().await;
    routed_to(&store, &["a", "b"], "gone", 10).await;
    routed_to(&store, &["c"], "kept", 20).await;
    assert_eq!(
        store.queued_destinations().await.unwrap(),
        vec!["gone", "kept"]
    );
    assert_eq!(
        store
            .dead_letter_destinations(vec!["gone".into()], 30)
            .await
            .unwrap(),
        2
    );
    let dead = store.dead_letters(Some("gone")).await.unwrap();
    assert_eq!(dead.len(), 2);
    assert!(dead[0].reason.contains("no longer in the config"));
    assert_eq!(store.queued_destinations().await.unwrap(), vec!["kept"]);
    // A dead-lettered digest can be re-rendered from its stored context.
    store.ingest(post(40, &["g"])).await.unwrap();
    let me = who("me");
    let h = store.claim_hooks(&me, 40, 10).await.unwrap();
    store
        .commit_dispatch(
            &me,
            DispatchBatch {
                hooks: vec![routed(h[0].row, &["gone"])],
                deliveries: vec![],
                members: vec![member(h[0].row, 40, "3019")],
                silenced: vec![],
                rates: vec![],
            },
            &RULES,
        )
        .await
        .unwrap();
    let g = store.claim_groups(&me, 5_000, 10).await.unwrap().remove(0);
    let mut f = flush_of(&g, 5_000, vec![]);
    f.context = r#"{"count":1}"#.into();
    f.deliveries = vec![NewDelivery {
        hook_row: None,
        hook_id: None,
        dead: Some("destination `gone` is no longer in the config".into()),
        ..delivery("gone", 0, 5_000)
    }];
    assert!(store.commit_flush(&me, f, &RULES).await.unwrap());
    let sources = store.dead_sources(&Selection::All).await.unwrap();
    assert!(sources.iter().any(
        |(_, s)| matches!(s, DeadSource::Digest { context } if context.contains("\"count\":1"))
    ));
    store.close().await;
}

pub async fn prune_removes_only_what_nothing_needs(e: Engine) {
    let store = e.open().await;
    let day = 86_400_000;
    // Routed and delivered long ago: pruned. Routed with a pending delivery: kept.
    let rows = routed_to(&store, &["done", "pending"], "d", 10).await;
    let l = leased(lease(&store, "d", "me", 20).await);
    assert_eq!(l.delivery.hook_id, Some(format!("h{}", rows[0])));
    assert!(
        store
            .record_attempt(
                &l,
                Attempt::Delivered {
                    status: 200,
                    at: 30
                },
                None
            )
            .await
            .unwrap()
    );
    // Unrouted, two days old: kept for reroute (keep_unrouted 7 d) but past keep_delivered.
    store.ingest(post(40, &["unrouted"])).await.unwrap();
    let me = who("me");
    let h = store.claim_hooks(&me, 40, 10).await.unwrap();
    store
        .commit_dispatch(
            &me,
            DispatchBatch {
                hooks: vec![routed(h[0].row, &[])],
                ..DispatchBatch::default()
            },
            &RULES,
        )
        .await
        .unwrap();
    let before = PruneBefore {
        seen: 2 * day,
        delivered: 2 * day,
        unrouted: 40,
    };
    let mut total = PruneStats::default();
    loop {
        let s = store.prune(before).await.unwrap();
        if s.is_empty() {
            break;
        }
        total.seen += s.seen;
        total.hooks += s.hooks;
        total.deliveries += s.deliveries;
    }
    assert_eq!(total.deliveries, 1, "the delivered one");
    assert_eq!(total.seen, 3, "old dedup keys");
    assert!(total.hooks >= 1, "the delivered hook");
    assert_eq!(store.queue_stats().await.unwrap()[0].pending, 1);
    assert_eq!(
        store.inbox_stats().await.unwrap().unrouted,
        1,
        "kept for reroute"
    );
    let after = PruneBefore {
        unrouted: 2 * day,
        ..before
    };
    while !store.prune(after).await.unwrap().is_empty() {}
    // SQLite keeps its newest row, so it never hands the same id out again; PostgreSQL's ids
    // come from a sequence and need no such care.
    let left = if e.is_postgres() { 0 } else { 1 };
    assert_eq!(store.inbox_stats().await.unwrap().unrouted, left);
    store.close().await;
}

pub async fn rejected_hooks_are_kept_listed_and_purged(e: Engine) {
    let store = e.open().await;
    let mut p = post(1_000, &["a"]);
    p.rejected.push(NewRejected {
        position: 1,
        reason: "hook is not a JSON object".into(),
        raw: "42".into(),
    });
    let out = store.ingest(p).await.unwrap();
    assert_eq!((out.accepted, out.rejected), (1, 1));
    let listed = store.rejected(&Selection::All).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(
        (
            listed[0].raw.as_str(),
            listed[0].position,
            listed[0].hooks_id.as_deref()
        ),
        ("42", 1, Some("post-1000"))
    );
    assert_eq!(
        store
            .purge_rejected(&Selection::OlderThan(500))
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        store
            .purge_rejected(&Selection::Ids(vec![listed[0].id]))
            .await
            .unwrap(),
        1
    );
    assert!(store.rejected(&Selection::All).await.unwrap().is_empty());
    store.close().await;
}

pub async fn everything_survives_reopening(e: Engine) {
    let store = e.open().await;
    routed_to(&store, &["a"], "d", 10).await;
    store.ingest(post(20, &["waiting"])).await.unwrap();
    store.close().await;
    let store = e.open().await;
    assert_eq!(store.queue_stats().await.unwrap()[0].pending, 1);
    let out = store.ingest(post(30, &["a"])).await.unwrap();
    assert_eq!(out.duplicates, 1, "dedup keys survive");
    let waiting = store.claim_hooks(&who("new"), 40, 10).await.unwrap();
    assert_eq!(waiting.len(), 1);
    assert!(store.ping().await.is_ok());
    store.close().await;
    let err = store.ping().await;
    assert!(err.is_err(), "a closed store answers nothing");
}

fn thread_of(dest: &str, code: &str, ts: &str, applied: Option<i64>, at: i64) -> Thread {
    Thread {
        key: ThreadKey {
            destination: dest.into(),
            sender_key: "sk".into(),
            template_code: code.into(),
        },
        channel: "C0123456789".into(),
        root_ts: ts.into(),
        status: "TSC01".into(),
        status_at: "2026-11-28 09:00:00".into(),
        shown: vec!["1".into(), "h:ab".into()],
        applied,
        created_at: at,
        updated_at: at,
    }
}

pub async fn threads_are_saved_only_under_a_live_lease_and_survive_reopening(e: Engine) {
    let first = e.open().await;
    let second = e.second(&first).await;
    routed_to(&first, &["a"], "d", 10).await;
    let l1 = leased(lease(&first, "d", "one", 100).await);
    let t = thread_of("d", "CODE/WITH/SLASH", "1.1", None, 100);
    assert_eq!(first.thread(&t.key).await.unwrap(), None);
    assert!(first.save_thread(&l1, &t).await.unwrap());
    assert_eq!(second.thread(&t.key).await.unwrap(), Some(t.clone()));
    // Replaced whole (re-pointed to a new root), created_at kept.
    let moved = Thread {
        root_ts: "2.2".into(),
        status: "TSC04".into(),
        applied: Some(l1.delivery.id),
        updated_at: 150,
        created_at: 999,
        ..t.clone()
    };
    assert!(first.save_thread(&l1, &moved).await.unwrap());
    let got = first.thread(&t.key).await.unwrap().unwrap();
    assert_eq!(
        (got.root_ts.as_str(), got.status.as_str()),
        ("2.2", "TSC04")
    );
    assert_eq!(
        (got.applied, got.created_at, got.updated_at),
        (Some(l1.delivery.id), 100, 150)
    );
    // The lease expires and another consumer takes the delivery over: the late holder
    // changes nothing, the new one can.
    let l2 = leased(lease(&second, "d", "two", 1_200).await);
    let late = Thread {
        root_ts: "3.3".into(),
        ..moved.clone()
    };
    assert!(!first.save_thread(&l1, &late).await.unwrap());
    assert_eq!(first.thread(&t.key).await.unwrap().unwrap().root_ts, "2.2");
    assert!(second.save_thread(&l2, &late).await.unwrap());
    // After the attempt is recorded the lease is gone: no more writes under it.
    second
        .record_attempt(
            &l2,
            Attempt::Delivered {
                status: 200,
                at: 1_300,
            },
            None,
        )
        .await
        .unwrap();
    assert!(!second.save_thread(&l2, &moved).await.unwrap());
    assert_eq!(first.thread(&t.key).await.unwrap().unwrap().root_ts, "3.3");
    first.close().await;
    second.close().await;
    let store = e.open().await;
    let got = store.thread(&t.key).await.unwrap().unwrap();
    assert_eq!(got.shown, vec!["1".to_string(), "h:ab".to_string()]);
    assert_eq!(got.key.display(), "d/sk/CODE/WITH/SLASH");
    assert_eq!(ThreadKey::parse(&got.key.display()), Some(got.key.clone()));
}

pub async fn threads_are_listed_forgotten_and_pruned(e: Engine) {
    let store = e.open().await;
    routed_to(&store, &["a"], "d", 10).await;
    routed_to(&store, &["b"], "e", 10).await;
    let ld = leased(lease(&store, "d", "one", 100).await);
    let le = leased(lease(&store, "e", "one", 100).await);
    for (l, dest, code, at) in [
        (&ld, "d", "B", 100),
        (&ld, "d", "A", 5_000),
        (&le, "e", "A", 100),
    ] {
        assert!(
            store
                .save_thread(l, &thread_of(dest, code, "1.1", None, at))
                .await
                .unwrap()
        );
    }
    let names = |list: Vec<Thread>| {
        list.into_iter()
            .map(|t| t.key.display())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        names(store.threads(None).await.unwrap()),
        ["d/sk/A", "d/sk/B", "e/sk/A"]
    );
    assert_eq!(
        names(store.threads(Some("d")).await.unwrap()),
        ["d/sk/A", "d/sk/B"]
    );
    let key = ThreadKey::parse("e/sk/A").unwrap();
    assert!(store.forget_thread(&key).await.unwrap());
    assert!(
        !store.forget_thread(&key).await.unwrap(),
        "already forgotten"
    );
    assert_eq!(store.thread(&key).await.unwrap(), None);
    // Pruning takes what was last changed before the cut, nothing else.
    assert_eq!(store.prune_threads(1_000).await.unwrap(), 1);
    assert_eq!(names(store.threads(None).await.unwrap()), ["d/sk/A"]);
    assert_eq!(store.prune_threads(1_000).await.unwrap(), 0);
}

fn silence_at(matcher: &str, from: i64, to: i64) -> NewSilence {
    let (key, pattern) = matcher.split_once('=').unwrap();
    NewSilence {
        matchers: vec![SilenceMatcher {
            key: key.into(),
            pattern: pattern.into(),
        }],
        starts_at: from,
        ends_at: to,
        comment: "NHN incident #123".into(),
        author: Some("kim".into()),
        created_at: from,
    }
}

pub async fn silences_are_listed_while_live_and_expired_by_id(e: Engine) {
    let store = e.open().await;
    let a = store
        .add_silence(silence_at("result_code=3019", 1_000, 5_000))
        .await
        .unwrap();
    let b = store
        .add_silence(silence_at("template_code=ORDER_*", 2_000, 3_000))
        .await
        .unwrap();
    assert!(b.id > a.id, "ids grow");
    assert_eq!(a.matchers[0].pattern, "3019");
    assert_eq!(a.author.as_deref(), Some("kim"));
    let ids = |v: Vec<StoredSilence>| v.iter().map(|s| s.id).collect::<Vec<_>>();
    // Pending (not yet started) and active silences are live; an ended one is not.
    assert_eq!(
        ids(store.silences(500, None).await.unwrap()),
        vec![a.id, b.id]
    );
    assert_eq!(ids(store.silences(3_000, None).await.unwrap()), vec![a.id]);
    assert_eq!(
        ids(store.silences(3_000, Some(2_999)).await.unwrap()),
        vec![a.id, b.id],
        "ended within the asked window are listed too"
    );
    let listed = store.silences(3_000, None).await.unwrap();
    assert_eq!(listed[0], a, "stored as given");

    assert_eq!(
        store.expire_silence(a.id, 4_000).await.unwrap(),
        Expired::Now
    );
    assert_eq!(
        store.expire_silence(a.id, 4_500).await.unwrap(),
        Expired::Already(4_000)
    );
    assert_eq!(
        store.expire_silence(b.id, 4_500).await.unwrap(),
        Expired::Already(3_000),
        "ended by itself"
    );
    assert_eq!(
        store.expire_silence(a.id + 1_000, 4_500).await.unwrap(),
        Expired::Unknown
    );
    assert!(store.silences(4_000, None).await.unwrap().is_empty());
    store.close().await;
}

pub async fn silences_survive_a_restart_and_are_seen_by_every_replica(e: Engine) {
    let store = e.open().await;
    let other = e.second(&store).await;
    let s = store
        .add_silence(silence_at("result_code=3019", 1_000, 9_000))
        .await
        .unwrap();
    assert_eq!(other.silences(2_000, None).await.unwrap(), vec![s.clone()]);
    assert_eq!(
        other.expire_silence(s.id, 3_000).await.unwrap(),
        Expired::Now
    );
    assert!(store.silences(3_000, None).await.unwrap().is_empty());
    let t = store
        .add_silence(silence_at("outcome=failure", 3_000, 9_000))
        .await
        .unwrap();
    if !Arc::ptr_eq(&store, &other) {
        other.close().await;
    }
    store.close().await;
    let store = e.open().await;
    assert_eq!(store.silences(4_000, None).await.unwrap(), vec![t]);
    store.close().await;
}

pub async fn silenced_hooks_of_a_group_are_counted_into_its_next_digest_once(e: Engine) {
    let store = e.open().await;
    store.ingest(post(1, &["m", "s1", "s2"])).await.unwrap();
    let me = who("me");
    let hooks = store.claim_hooks(&me, 10, 10).await.unwrap();
    let silenced = |row: i64| SilencedMember {
        route: "failures".into(),
        group_key: "{}".into(),
        hook_row: row,
        resolve_until: None,
    };
    let batch = DispatchBatch {
        hooks: hooks.iter().map(|h| routed(h.row, &[])).collect(),
        deliveries: vec![],
        members: vec![member(hooks[0].row, 1_000, "3019")],
        silenced: vec![silenced(hooks[1].row), silenced(hooks[2].row)],
        rates: vec![],
    };
    store.commit_dispatch(&me, batch, &RULES).await.unwrap();
    let g = store.claim_groups(&me, 2_000, 10).await.unwrap().remove(0);
    assert_eq!((g.tally.count, g.silenced), (1, 2));
    // One more silenced while the digest is built: it waits for the next digest.
    store.ingest(post(2_100, &["s3"])).await.unwrap();
    let late = store.claim_hooks(&me, 2_100, 10).await.unwrap();
    store
        .commit_dispatch(
            &me,
            DispatchBatch {
                hooks: vec![routed(late[0].row, &[])],
                deliveries: vec![],
                members: vec![member(late[0].row, 2_100, "3019")],
                silenced: vec![],
                rates: vec![],
            },
            &RULES,
        )
        .await
        .unwrap();
    store.ingest(post(2_200, &["s4"])).await.unwrap();
    let later = store.claim_hooks(&me, 2_200, 10).await.unwrap();
    store
        .commit_dispatch(
            &me,
            DispatchBatch {
                hooks: vec![routed(later[0].row, &[])],
                deliveries: vec![],
                members: vec![],
                silenced: vec![silenced(later[0].row)],
                rates: vec![],
            },
            &RULES,
        )
        .await
        .unwrap();
    assert!(
        store
            .commit_flush(&me, flush_of(&g, 3_000, vec![]), &RULES)
            .await
            .unwrap()
    );
    let next = store.claim_groups(&me, 60_000, 10).await.unwrap().remove(0);
    assert_eq!(
        (next.tally.count, next.silenced),
        (1, 1),
        "the later one, once"
    );
    assert!(
        store
            .commit_flush(&me, flush_of(&next, 60_000, vec![]), &RULES)
            .await
            .unwrap()
    );
    // A silenced hook whose claim was lost is not counted.
    store.ingest(post(70_000, &["s5", "m2"])).await.unwrap();
    let two = store.claim_hooks(&me, 70_000, 10).await.unwrap();
    store
        .commit_dispatch(
            &who("someone-else"),
            DispatchBatch {
                hooks: vec![routed(two[0].row, &[])],
                deliveries: vec![],
                members: vec![],
                silenced: vec![silenced(two[0].row)],
                rates: vec![],
            },
            &RULES,
        )
        .await
        .unwrap();
    store
        .commit_dispatch(
            &me,
            DispatchBatch {
                hooks: vec![routed(two[1].row, &[])],
                deliveries: vec![],
                members: vec![member(two[1].row, 70_000, "3019")],
                silenced: vec![],
                rates: vec![],
            },
            &RULES,
        )
        .await
        .unwrap();
    let last = store
        .claim_groups(&me, 200_000, 10)
        .await
        .unwrap()
        .remove(0);
    assert_eq!((last.tally.count, last.silenced), (1, 0));
    store.close().await;
}

fn lookup(id: &str, app_key: &str, seq: i64) -> LookupRequest {
    LookupRequest {
        request_id: id.into(),
        app_key: app_key.into(),
        message_type: Some("ALIMTALK_MASS".into()),
        recipient_seq: seq,
        href: None,
    }
}

fn fields(template: &str) -> bizrelay::bizmessage::Enrichment {
    bizrelay::bizmessage::Enrichment {
        template_code: Some(template.into()),
        resend_status: Some("RSC04".into()),
        ..Default::default()
    }
}

async fn enrichment_lookups_are_single_flight_claimed_and_cached_for_every_replica(e: Engine) {
    let a = e.open().await;
    let b = e.second(&a).await;
    // A storm of one request files one lookup; another request files its own.
    let storm: Vec<_> = (1..=50).map(|seq| lookup("M1", "AK", seq)).collect();
    assert_eq!(a.request_lookups(storm, 100).await.unwrap(), 1);
    assert_eq!(
        b.request_lookups(vec![lookup("M1", "AK", 7)], 101)
            .await
            .unwrap(),
        0,
        "already pending"
    );
    assert_eq!(
        a.request_lookups(vec![lookup("N1", "AK2", 1)], 102)
            .await
            .unwrap(),
        1
    );
    // Claims are per app key and exclusive; an expired claim is taken over.
    let mine = a.claim_lookups(&who("a"), "AK", 200, 5).await.unwrap();
    assert_eq!(mine.len(), 1);
    assert_eq!(
        mine[0].request.recipient_seq, 1,
        "the first hook's recipient is looked up"
    );
    assert!(
        b.claim_lookups(&who("b"), "AK", 300, 5)
            .await
            .unwrap()
            .is_empty()
    );
    let taken = b.claim_lookups(&who("b"), "AK", 1_300, 5).await.unwrap();
    assert_eq!(taken.len(), 1, "the expired claim is taken over");
    // The lost claim records nothing; the owner's answer is cached for everyone.
    let found = LookupResult::Found {
        fields: fields("ORDER_SHIPPED_V2"),
        expires_at: 10_000,
    };
    assert!(
        !a.finish_lookup(&who("a"), "M1", found.clone(), 1_400)
            .await
            .unwrap()
    );
    assert!(
        b.finish_lookup(&who("b"), "M1", found, 1_400)
            .await
            .unwrap()
    );
    let cached = a
        .cached_enrichments(vec!["M1".into(), "N1".into(), "M1".into()], 2_000)
        .await
        .unwrap();
    assert_eq!(cached.len(), 1);
    let c = &cached[0];
    assert_eq!(c.request_id, "M1");
    assert_eq!(c.recipient_seq, Some(1));
    // The recipient looked up gets every field, the others the request's own.
    assert_eq!(
        c.for_recipient(Some(1)).unwrap().resend_status.as_deref(),
        Some("RSC04")
    );
    let other = c.for_recipient(Some(9)).unwrap();
    assert_eq!(other.template_code.as_deref(), Some("ORDER_SHIPPED_V2"));
    assert_eq!(
        other.resend_status, None,
        "another recipient's fallback is not known"
    );
    // Cached: no second lookup until it expires.
    assert_eq!(
        a.request_lookups(vec![lookup("M1", "AK", 3)], 2_000)
            .await
            .unwrap(),
        0
    );
    assert!(
        a.cached_enrichments(vec!["M1".into()], 10_001)
            .await
            .unwrap()
            .is_empty(),
        "expired"
    );
    assert_eq!(
        a.request_lookups(vec![lookup("M1", "AK", 3)], 10_001)
            .await
            .unwrap(),
        1,
        "expired: asked again"
    );
    // Retries wait for their time; a missing answer is cached as empty.
    let n1 = a.claim_lookups(&who("a"), "AK2", 2_000, 5).await.unwrap();
    assert_eq!(n1.len(), 1);
    let retry = LookupResult::Retry {
        at: 5_000,
        reason: "HTTP 503".into(),
    };
    assert!(
        a.finish_lookup(&who("a"), "N1", retry, 2_100)
            .await
            .unwrap()
    );
    assert!(
        a.claim_lookups(&who("a"), "AK2", 4_999, 5)
            .await
            .unwrap()
            .is_empty(),
        "not due yet"
    );
    let again = a.claim_lookups(&who("a"), "AK2", 5_000, 5).await.unwrap();
    assert_eq!(again[0].attempts, 1);
    let missing = LookupResult::Missing {
        reason: "-4016".into(),
        expires_at: 6_000,
    };
    assert!(
        a.finish_lookup(&who("a"), "N1", missing, 5_100)
            .await
            .unwrap()
    );
    let empty = a
        .cached_enrichments(vec!["N1".into()], 5_500)
        .await
        .unwrap();
    assert_eq!(empty.len(), 1);
    assert_eq!(empty[0].fields, None);
    assert_eq!(empty[0].for_recipient(Some(1)), None);
    let stats = a.lookup_stats(5_500).await.unwrap();
    assert_eq!((stats.pending, stats.cached), (1, 2));
    // Pruning removes expired rows only.
    assert_eq!(a.prune_enrichments(20_000).await.unwrap(), 2);
    // The cache survives a restart.
    let found = LookupResult::Found {
        fields: fields("KEPT"),
        expires_at: 90_000,
    };
    let m1 = a.claim_lookups(&who("a"), "AK", 20_000, 5).await.unwrap();
    assert_eq!(m1.len(), 1);
    assert!(
        a.finish_lookup(&who("a"), "M1", found, 20_000)
            .await
            .unwrap()
    );
    a.close().await;
    if !e.is_postgres() {
        drop(b);
    } else {
        b.close().await;
    }
    let reopened = e.open().await;
    let kept = reopened
        .cached_enrichments(vec!["M1".into()], 30_000)
        .await
        .unwrap();
    assert_eq!(
        kept[0].fields.as_ref().unwrap().template_code.as_deref(),
        Some("KEPT")
    );
}

async fn holding_hooks_for_a_lookup_extends_only_the_holders_claims(e: Engine) {
    let store = e.open().await;
    store.ingest(post(10, &["a", "b"])).await.unwrap();
    let claimed = store.claim_hooks(&who("a"), 20, 10).await.unwrap();
    assert_eq!(claimed.len(), 2);
    let rows: Vec<i64> = claimed.iter().map(|h| h.row).collect();
    assert_eq!(
        store
            .hold_hooks(&who("other"), rows.clone(), 50_000)
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        store
            .hold_hooks(&who("a"), rows[..1].to_vec(), 50_000)
            .await
            .unwrap(),
        1
    );
    // Past the normal claim, only the hook not held can be taken over.
    let taken = store.claim_hooks(&who("b"), 5_000, 10).await.unwrap();
    assert_eq!(
        taken.iter().map(|h| h.row).collect::<Vec<_>>(),
        vec![rows[1]]
    );
    let ids = |hooks: Vec<StoredHook>| hooks.iter().map(|h| h.row).collect::<Vec<_>>();
    // Still held at 49_999 (only b's expired claim is free), free after 50_000.
    assert_eq!(
        ids(store.claim_hooks(&who("b"), 49_999, 10).await.unwrap()),
        vec![rows[1]]
    );
    assert_eq!(
        ids(store.claim_hooks(&who("b"), 50_001, 10).await.unwrap()),
        vec![rows[0]]
    );
}

/// Runs every test above on both engines.
macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test] async fn $name() { super::$name(super::Engine::sqlite().await).await })*
        }
        mod postgres {
            $(#[tokio::test] async fn $name() { super::$name(super::Engine::postgres().await).await })*
        }
    };
}

conformance!(
    ingest_dedups_within_the_window_and_across_posts,
    concurrent_ingests_all_commit_and_share_dedup,
    two_consumers_never_claim_the_same_hook_and_expired_claims_are_taken_over,
    hooks_born_claimed_at_ingest_stay_with_their_consumer_until_the_claim_expires,
    a_dispatch_commit_is_atomic_and_settles_every_hook,
    out_of_order_commits_never_skip_a_hook,
    a_hook_gets_one_delivery_per_destination_even_when_routed_again,
    repeated_routing_failures_quarantine_a_hook_until_rerouted,
    reroute_selects_unrouted_or_recent_hooks,
    every_grouped_hook_goes_into_exactly_one_digest,
    an_abandoned_digest_claim_is_taken_over_whole,
    a_flush_that_does_not_count_its_members_is_refused,
    one_live_lease_per_destination_and_expired_leases_are_taken_over,
    the_pace_and_a_429_pause_are_shared_by_every_consumer,
    delivery_lifecycle_retry_dead_requeue_purge,
    removed_destinations_are_dead_lettered_and_digests_keep_their_context,
    prune_removes_only_what_nothing_needs,
    rejected_hooks_are_kept_listed_and_purged,
    everything_survives_reopening,
    threads_are_saved_only_under_a_live_lease_and_survive_reopening,
    threads_are_listed_forgotten_and_pruned,
    silences_are_listed_while_live_and_expired_by_id,
    silences_survive_a_restart_and_are_seen_by_every_replica,
    silenced_hooks_of_a_group_are_counted_into_its_next_digest_once,
    enrichment_lookups_are_single_flight_claimed_and_cached_for_every_replica,
    holding_hooks_for_a_lookup_extends_only_the_holders_claims,
);

mod at_ingest;
mod claims;
mod counts;
mod races;
mod rates;
