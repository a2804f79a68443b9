//! On-call in the store, on both engines: rate counters summed per window in the routing
//! commit (a lost claim counts nothing), a due window claimed by one consumer and judged once,
//! counts surviving a restart, and a quiet group claimed once for its resolved message.

use super::*;

pub(super) const W: i64 = 60_000;

fn rate_settings() -> RateSettings {
    RateSettings {
        to: vec!["d".into()],
        window_ms: W,
        min_messages: 1,
        fire_above: 0.1,
        resolve_below: 0.05,
        repeat_interval_ms: 4 * W,
    }
}

pub(super) fn count(row: i64, window_start: i64, code: &str, silenced: bool) -> NewRateCount {
    NewRateCount {
        route: "rate".into(),
        series_key: r#"{"message_type":"AT"}"#.into(),
        hook_row: row,
        window_start,
        outcome: if code == "1000" { "success" } else { "failure" }.into(),
        result_code: Some(code.into()),
        silenced,
        settings: rate_settings(),
    }
}

/// Ingests one hook at `at`, claims it as `owner` and commits `c` as its count.
async fn count_one(store: &Arc<dyn Store>, owner: &str, at: i64, c: NewRateCount) {
    let id = format!("{owner}-{at}");
    store.ingest(post(at, &[id.as_str()])).await.unwrap();
    let hooks = store.claim_hooks(&who(owner), at, 10).await.unwrap();
    let batch = DispatchBatch {
        hooks: vec![routed(hooks[0].row, &["rate:rate"])],
        rates: vec![NewRateCount {
            hook_row: hooks[0].row,
            ..c
        }],
        ..DispatchBatch::default()
    };
    let commit = store
        .commit_dispatch(&who(owner), batch, &RULES)
        .await
        .unwrap();
    assert!(commit.lost.is_empty());
}

/// Ingests one hook per code at `at`, claims them as `owner` and commits their counts into
/// the window starting at `window_start`; returns how many commits were lost.
async fn count_into(
    store: &Arc<dyn Store>,
    owner: &str,
    at: i64,
    window_start: i64,
    codes: &[(&str, bool)],
) -> usize {
    let ids: Vec<String> = (0..codes.len())
        .map(|i| format!("{owner}-{at}-{i}"))
        .collect();
    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    store.ingest(post(at, &ids)).await.unwrap();
    let me = who(owner);
    let hooks = store.claim_hooks(&me, at, 100).await.unwrap();
    let batch = DispatchBatch {
        hooks: hooks
            .iter()
            .map(|h| routed(h.row, &["rate:rate"]))
            .collect(),
        rates: hooks
            .iter()
            .zip(codes)
            .map(|(h, (code, silenced))| count(h.row, window_start, code, *silenced))
            .collect(),
        ..DispatchBatch::default()
    };
    store
        .commit_dispatch(&me, batch, &RULES)
        .await
        .unwrap()
        .lost
        .len()
}

fn commit_of(due: &DueSeries, firing: bool, now: i64, deliveries: Vec<NewDelivery>) -> RateCommit {
    RateCommit {
        route: due.route.clone(),
        series_key: due.series_key.clone(),
        window_ms: due.settings.window_ms,
        token: due.token,
        window_start: due.window.start,
        state: format!(r#"{{"firing":{firing}}}"#),
        firing,
        context: (!deliveries.is_empty()).then(|| r#"{"kind":"rate_firing"}"#.to_string()),
        deliveries,
        now,
    }
}

/// Claims the series due at `at` as the judge "j".
async fn claim_judged(store: &Arc<dyn Store>, at: i64) -> Vec<DueSeries> {
    store.claim_rate_series(&who("j"), at, 10).await.unwrap()
}

/// Commits the judge's verdict on `due` (no alert message); its claim must still hold.
async fn commit_judged(store: &Arc<dyn Store>, due: &DueSeries, firing: bool, at: i64) {
    assert!(
        store
            .commit_rate(&who("j"), commit_of(due, firing, at, vec![]))
            .await
            .unwrap(),
        "the judge's claim held"
    );
}

pub async fn rate_counts_sum_per_window_and_a_lost_claim_counts_nothing(e: Engine) {
    let first = e.open().await;
    let second = e.second(&first).await;
    let w0 = 10 * W;
    let lost = count_into(
        &first,
        "a",
        w0 + 5,
        w0,
        &[
            ("3019", false),
            ("3019", false),
            ("3016", false),
            ("1000", false),
            ("1000", false),
            ("3019", true),
        ],
    )
    .await;
    assert_eq!(lost, 0);
    // A consumer whose claim expired and was taken over commits nothing, counts included.
    first.ingest(post(w0 + 10, &["slow"])).await.unwrap();
    let slow = who("slow");
    let hooks = first.claim_hooks(&slow, w0 + 10, 10).await.unwrap();
    assert_eq!(hooks.len(), 1);
    let taken = second
        .claim_hooks(&who("other"), w0 + 10 + 2_000, 10)
        .await
        .unwrap();
    assert_eq!(taken.len(), 1, "the expired claim is taken over");
    let refused = first
        .commit_dispatch(
            &slow,
            DispatchBatch {
                hooks: vec![routed(hooks[0].row, &["rate:rate"])],
                rates: vec![count(hooks[0].row, w0, "3019", false)],
                ..DispatchBatch::default()
            },
            &RULES,
        )
        .await
        .unwrap();
    assert_eq!(refused.lost, vec![hooks[0].row]);

    // Not due until the window has closed and its grace passed.
    let due_at = w0 + W + RATE_GRACE_MS;
    assert_eq!(first.next_flush_at().await.unwrap(), Some(due_at));
    assert!(
        first
            .claim_rate_series(&who("j"), due_at - 1, 10)
            .await
            .unwrap()
            .is_empty()
    );
    let one = first
        .claim_rate_series(&who("one"), due_at, 10)
        .await
        .unwrap();
    let two = second
        .claim_rate_series(&who("two"), due_at, 10)
        .await
        .unwrap();
    assert_eq!(one.len() + two.len(), 1, "one consumer judges a window");
    let (due, owner) = if one.is_empty() {
        (two[0].clone(), "two")
    } else {
        (one[0].clone(), "one")
    };
    assert_eq!(due.window.start, w0);
    assert_eq!(
        (due.window.results, due.window.failures, due.window.silenced),
        (5, 3, 1),
        "silenced results are counted apart, outside the ratio"
    );
    assert_eq!(
        due.window.codes,
        vec![(Some("3019".into()), 2), (Some("3016".into()), 1)]
    );
    assert_eq!(due.previous.results, 0);
    assert_eq!(due.settings, rate_settings());
    assert_eq!(due.state, None);

    // Only the claim's holder commits; the alert goes out with its context kept.
    let other = if owner == "one" { "two" } else { "one" };
    let alert = NewDelivery {
        hook_row: None,
        hook_id: None,
        ..delivery("d", 0, due_at)
    };
    assert!(
        !first
            .commit_rate(
                &who(other),
                commit_of(&due, true, due_at, vec![alert.clone()])
            )
            .await
            .unwrap()
    );
    assert!(
        first
            .commit_rate(&who(owner), commit_of(&due, true, due_at, vec![alert]))
            .await
            .unwrap()
    );
    assert_eq!(first.queue_stats().await.unwrap()[0].pending, 1);
    // A firing series judges its next window even with nothing counted in it, and the
    // judged window is kept for the trend.
    let next = first
        .claim_rate_series(&who("one"), due_at + W, 10)
        .await
        .unwrap();
    assert_eq!(next.len(), 1);
    assert_eq!(next[0].window.start, w0 + W);
    assert_eq!(next[0].window.results, 0);
    assert_eq!(next[0].previous.failures, 3);
    assert_eq!(next[0].state.as_deref(), Some(r#"{"firing":true}"#));
}

pub async fn a_judged_window_is_never_judged_again_and_counts_survive_a_restart(e: Engine) {
    let store = e.open().await;
    let w0 = 20 * W;
    count_into(&store, "a", w0 + 1, w0, &[("3019", false), ("1000", false)]).await;
    store.close().await;
    // A restart mid-window: what was counted is still there, and counting goes on.
    let store = e.open().await;
    count_into(&store, "b", w0 + 30_000, w0, &[("3019", false)]).await;
    let due = claim_judged(&store, w0 + W + RATE_GRACE_MS).await;
    assert_eq!(due.len(), 1);
    assert_eq!(
        (due[0].window.results, due[0].window.failures),
        (3, 2),
        "nothing lost or counted twice"
    );
    commit_judged(&store, &due[0], false, w0 + W + RATE_GRACE_MS).await;
    // Quiet with nothing counted after: nothing is due.
    assert_eq!(store.next_flush_at().await.unwrap(), None);
    // A count committed after its window was judged (a slow commit, a clock behind) is not
    // lost: it goes into the next window to be judged, never into the judged one again.
    count_into(&store, "c", w0 + W + 1_500, w0, &[("3019", false)]).await;
    let w1 = w0 + W;
    assert_eq!(
        store.next_flush_at().await.unwrap(),
        Some(w1 + W + RATE_GRACE_MS)
    );
    let due = claim_judged(&store, w1 + W + RATE_GRACE_MS).await;
    assert_eq!((due[0].window.start, due[0].window.failures), (w1, 1));
    assert_eq!(
        due[0].previous.results, 3,
        "the judged window is kept for the trend"
    );
    // A count committing while that window is being judged goes into the next one too.
    count_into(&store, "e", w1 + W + 1_600, w1, &[("3016", false)]).await;
    commit_judged(&store, &due[0], false, w1 + W + RATE_GRACE_MS).await;
    let w2 = w1 + W;
    let due = claim_judged(&store, w2 + W + RATE_GRACE_MS).await;
    assert_eq!((due[0].window.start, due[0].window.failures), (w2, 1));
    assert_eq!(due[0].window.codes, vec![(Some("3016".into()), 1)]);
    commit_judged(&store, &due[0], false, w2 + W + RATE_GRACE_MS).await;
    // The next counted window is judged in its turn, after its own close.
    let w3 = w0 + 3 * W;
    count_into(&store, "d", w3 + 1, w3, &[("3019", false)]).await;
    assert_eq!(
        store.next_flush_at().await.unwrap(),
        Some(w3 + W + RATE_GRACE_MS)
    );
    let due = claim_judged(&store, w3 + W + RATE_GRACE_MS).await;
    assert_eq!(due.len(), 1);
    assert_eq!((due[0].window.start, due[0].window.results), (w3, 1));
    commit_judged(&store, &due[0], false, w3 + W + RATE_GRACE_MS).await;
    // A reload to 2m windows starts a new series beside the 1m one: replicas still on 1m
    // (counting into window 24) and those on 2m (window 26) neither mix nor drop counts.
    count_into(
        &store,
        "old",
        w0 + 4 * W + 1,
        w0 + 4 * W,
        &[("3019", false)],
    )
    .await;
    let two = NewRateCount {
        settings: RateSettings {
            window_ms: 2 * W,
            ..rate_settings()
        },
        ..count(0, w0 + 6 * W, "3016", false)
    };
    count_one(&store, "r", w0 + 6 * W, two).await;
    let at = w0 + 8 * W + RATE_GRACE_MS;
    let mut due = store.claim_rate_series(&who("j"), at, 10).await.unwrap();
    due.sort_by_key(|d| d.settings.window_ms);
    assert_eq!(due.len(), 2, "one series per window length");
    let (one, two) = (&due[0], &due[1]);
    assert_eq!((one.settings.window_ms, one.window.start), (W, w0 + 4 * W));
    assert_eq!(one.window.codes, vec![(Some("3019".into()), 1)]);
    assert_eq!(
        (two.settings.window_ms, two.window.start),
        (2 * W, w0 + 6 * W)
    );
    assert_eq!(two.window.codes, vec![(Some("3016".into()), 1)]);
    assert_eq!(
        two.previous.results, 0,
        "the 2m series' window 24 is not the 1m series' window 24"
    );
    for d in &due {
        commit_judged(&store, d, false, at).await;
    }
    store.close().await;
}

pub async fn a_quiet_group_is_claimed_once_for_its_resolved_message(e: Engine) {
    let store = e.open().await;
    store.ingest(post(1, &["a", "b"])).await.unwrap();
    let me = who("me");
    let hooks = store.claim_hooks(&me, 10, 10).await.unwrap();
    let quiet = GroupSettings {
        resolve_after_ms: Some(60_000),
        ..settings()
    };
    let members: Vec<NewMember> = hooks
        .iter()
        .map(|h| NewMember {
            settings: quiet.clone(),
            ..member(h.row, 1_000, "3019")
        })
        .collect();
    let batch = DispatchBatch {
        hooks: hooks.iter().map(|h| routed(h.row, &["d"])).collect(),
        members,
        ..DispatchBatch::default()
    };
    store.commit_dispatch(&me, batch, &RULES).await.unwrap();
    let g = store.claim_groups(&me, 2_000, 10).await.unwrap().remove(0);
    assert_eq!(
        g.timing.resolve_at,
        Some(61_000),
        "the last hook's arrival plus resolve_after"
    );
    assert!(
        store
            .commit_flush(&me, flush_of(&g, 2_000, vec![]), &RULES)
            .await
            .unwrap()
    );
    // Flushed, then quiet: the resolved message is due at resolve_at, once.
    assert_eq!(store.next_flush_at().await.unwrap(), Some(61_000));
    assert!(
        store
            .claim_groups(&me, 60_999, 10)
            .await
            .unwrap()
            .is_empty()
    );
    let r = store.claim_groups(&who("one"), 61_000, 10).await.unwrap();
    assert_eq!(r.len(), 1);
    assert_eq!((r[0].tally.count, r[0].timing.total), (0, 2));
    assert!(
        store
            .claim_groups(&who("two"), 61_000, 10)
            .await
            .unwrap()
            .is_empty()
    );
    let resolved = NewDelivery {
        hook_row: None,
        hook_id: None,
        ..delivery("d", 0, 61_000)
    };
    assert!(
        store
            .commit_flush(&who("one"), flush_of(&r[0], 61_000, vec![resolved]), &RULES)
            .await
            .unwrap()
    );
    assert!(
        store
            .claim_groups(&me, 1_000_000, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.next_flush_at().await.unwrap(), None);
    let t = store.group_timing("failures", "{}").await.unwrap().unwrap();
    assert_eq!((t.resolve_at, t.last_flush_at), (None, None));
    // The group's next hook starts it afresh.
    store.ingest(post(70_000, &["c"])).await.unwrap();
    let late = store.claim_hooks(&me, 70_000, 10).await.unwrap();
    store
        .commit_dispatch(
            &me,
            DispatchBatch {
                hooks: vec![routed(late[0].row, &["d"])],
                members: vec![NewMember {
                    settings: quiet,
                    ..member(late[0].row, 70_000, "3019")
                }],
                ..DispatchBatch::default()
            },
            &RULES,
        )
        .await
        .unwrap();
    let t = store.group_timing("failures", "{}").await.unwrap().unwrap();
    assert_eq!((t.started_at, t.total, t.pending), (70_000, 0, 1));
    assert_eq!(t.resolve_at, Some(130_000));
}

pub async fn prune_drops_quiet_on_call_state_and_keeps_what_is_still_due(e: Engine) {
    let store = e.open().await;
    let (w0, w1) = (30 * W, 31 * W);
    // A series judged quiet long ago, and one firing (it has a window to judge).
    count_into(&store, "a", w0 + 1, w0, &[("3019", false)]).await;
    let due = claim_judged(&store, w0 + W + RATE_GRACE_MS).await;
    commit_judged(&store, &due[0], false, w0 + W + RATE_GRACE_MS).await;
    let firing = NewRateCount {
        series_key: r#"{"message_type":"FT"}"#.into(),
        ..count(0, w0, "3019", false)
    };
    count_one(&store, "f", w0 + 2, firing).await;
    let due = claim_judged(&store, w0 + W + RATE_GRACE_MS).await;
    commit_judged(&store, &due[0], true, w0 + W + RATE_GRACE_MS).await;
    // A silence that ended long ago, one that ended within the keep time of unrouted hooks
    // (silences are kept that long, longer than delivered work), and one still live.
    store
        .add_silence(silence_at("result_code=3019", 0, w0))
        .await
        .unwrap();
    store
        .add_silence(silence_at("result_code=3008", 0, w0 + 2))
        .await
        .unwrap();
    store
        .add_silence(silence_at("result_code=3016", 0, 10 * w1))
        .await
        .unwrap();

    let before = PruneBefore {
        seen: 0,
        delivered: 5 * w1,
        unrouted: w0 + 1,
    };
    store.prune(before).await.unwrap();

    // The firing series is still judged in its turn...
    let due = claim_judged(&store, w1 + W + RATE_GRACE_MS).await;
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].series_key, r#"{"message_type":"FT"}"#);
    assert_eq!(due[0].state.as_deref(), Some(r#"{"firing":true}"#));
    // ...the quiet one is gone: counted again, it starts with no state.
    let w9 = 40 * W;
    count_into(&store, "b", w9 + 1, w9, &[("3019", false)]).await;
    let due = store
        .claim_rate_series(&who("k"), w9 + W + RATE_GRACE_MS, 10)
        .await
        .unwrap();
    let quiet = due
        .iter()
        .find(|d| d.series_key == r#"{"message_type":"AT"}"#)
        .unwrap();
    assert_eq!(quiet.state, None);
    let listed = store.silences(w1, Some(0)).await.unwrap();
    let patterns: Vec<&str> = listed
        .iter()
        .map(|s| s.matchers[0].pattern.as_str())
        .collect();
    assert_eq!(
        patterns,
        ["3008", "3016"],
        "only the silence ended before the keep time is pruned"
    );
}

pub async fn a_group_is_not_resolved_while_hooks_join_or_silenced_ones_arrive(e: Engine) {
    let store = e.open().await;
    let quiet = GroupSettings {
        resolve_after_ms: Some(60_000),
        ..settings()
    };
    let me = who("me");
    let join = |row: i64, at: i64| NewMember {
        settings: quiet.clone(),
        ..member(row, at, "3019")
    };
    store.ingest(post(1, &["a"])).await.unwrap();
    let hooks = store.claim_hooks(&me, 10, 10).await.unwrap();
    let batch = DispatchBatch {
        hooks: vec![routed(hooks[0].row, &["d"])],
        members: vec![join(hooks[0].row, 1_000)],
        ..DispatchBatch::default()
    };
    store.commit_dispatch(&me, batch, &RULES).await.unwrap();
    let g = store.claim_groups(&me, 2_000, 10).await.unwrap().remove(0);
    assert!(
        store
            .commit_flush(&me, flush_of(&g, 2_000, vec![]), &RULES)
            .await
            .unwrap()
    );
    // A silenced hook of the group at 30s holds the resolved message back to 90s.
    store.ingest(post(30_000, &["s"])).await.unwrap();
    let hooks = store.claim_hooks(&me, 30_000, 10).await.unwrap();
    let batch = DispatchBatch {
        hooks: vec![routed(hooks[0].row, &[])],
        silenced: vec![SilencedMember {
            route: "failures".into(),
            group_key: "{}".into(),
            hook_row: hooks[0].row,
            resolve_until: Some(90_000),
        }],
        ..DispatchBatch::default()
    };
    store.commit_dispatch(&me, batch, &RULES).await.unwrap();
    assert_eq!(store.next_flush_at().await.unwrap(), Some(90_000));
    assert!(
        store
            .claim_groups(&me, 61_000, 10)
            .await
            .unwrap()
            .is_empty()
    );
    // Claimed for its resolved message; a hook joins before the commit: nothing is sent.
    let r = store.claim_groups(&who("one"), 90_000, 10).await.unwrap();
    assert_eq!((r.len(), r[0].tally.count), (1, 0));
    store.ingest(post(90_001, &["late"])).await.unwrap();
    let hooks = store.claim_hooks(&me, 90_001, 10).await.unwrap();
    let batch = DispatchBatch {
        hooks: vec![routed(hooks[0].row, &["d"])],
        members: vec![join(hooks[0].row, 90_001)],
        ..DispatchBatch::default()
    };
    store.commit_dispatch(&me, batch, &RULES).await.unwrap();
    let notice = NewDelivery {
        hook_row: None,
        hook_id: None,
        ..delivery("d", 0, 90_002)
    };
    let resolved = Flush {
        resolved: true,
        ..flush_of(&r[0], 90_002, vec![notice])
    };
    assert!(
        !store
            .commit_flush(&who("one"), resolved, &RULES)
            .await
            .unwrap()
    );
    assert!(
        store
            .queue_stats()
            .await
            .unwrap()
            .iter()
            .all(|q| q.pending == 0),
        "nothing queued"
    );
    // The new hook's digest goes out as usual, and the group is quiet again a minute later.
    let g = store
        .claim_groups(&me, 100_000, 10)
        .await
        .unwrap()
        .remove(0);
    assert_eq!(g.tally.count, 1);
    assert!(
        store
            .commit_flush(&me, flush_of(&g, 100_000, vec![]), &RULES)
            .await
            .unwrap()
    );
    assert_eq!(store.next_flush_at().await.unwrap(), Some(150_001));
}

conformance!(
    a_group_is_not_resolved_while_hooks_join_or_silenced_ones_arrive,
    prune_drops_quiet_on_call_state_and_keeps_what_is_still_due,
    rate_counts_sum_per_window_and_a_lost_claim_counts_nothing,
    a_judged_window_is_never_judged_again_and_counts_survive_a_restart,
    a_quiet_group_is_claimed_once_for_its_resolved_message,
);
