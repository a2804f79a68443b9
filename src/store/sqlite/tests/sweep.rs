//! Pruning the dedup keys by a sweep in key order: old keys go across chunk boundaries and
//! fresh ones stay; a round stops at its bound, the next begins where it stopped and comes
//! round the end of the key space, and ends when it comes round to where it began; a call
//! rolled back leaves the position; once the other tables have nothing left to prune, the
//! calls of that round only sweep; a schema 5 store loses its index by time.

use super::*;
use crate::store::sqlite::sql::Sweep;
use rusqlite::params;
use std::time::{Duration, Instant};

/// A store's tables on a new file, with keys `h:k00`..`h:k22`, each seen at `at(i)`.
fn keys(at: impl Fn(usize) -> i64) -> (tempfile::TempDir, Connection) {
    let dir = tempfile::tempdir().unwrap();
    let c = open_connection(&dir.path().join("seen.db"), SyncMode::Normal, true).unwrap();
    sql::init_schema(&c).unwrap();
    for i in 0..23 {
        c.execute(
            "INSERT INTO seen (key, seen_at) VALUES (?1, ?2)",
            params![format!("h:k{i:02}"), at(i)],
        )
        .unwrap();
    }
    (dir, c)
}

fn left(c: &Connection) -> Vec<usize> {
    let mut stmt = c.prepare("SELECT key FROM seen ORDER BY key").unwrap();
    stmt.query_map([], |r| r.get::<_, String>(0))
        .unwrap()
        .map(|k| k.unwrap()["h:k".len()..].parse().unwrap())
        .collect()
}

/// Cutoffs that prune only dedup keys, those seen before `seen`.
fn keys_before(seen: i64) -> PruneBefore {
    PruneBefore {
        seen,
        delivered: 0,
        unrouted: 0,
    }
}

/// Sweeps as the prune loop does, until a call looks at nothing; the calls that looked.
fn round(c: &Connection, cutoff: i64, sweep: &mut Sweep) -> usize {
    let round = keys_before(cutoff);
    // One moment for the whole round: its calls come back to back.
    let at = Instant::now();
    let mut calls = 0;
    while sql::seen::sweep(c, round, sweep, at).unwrap().looked > 0 {
        calls += 1;
        assert!(calls < 100, "the round never ends");
    }
    calls
}

#[test]
fn old_keys_go_across_chunks_and_fresh_ones_stay() {
    let (_dir, c) = keys(|i| if i % 2 == 1 { 10 } else { 1_000 });
    let mut sweep = Sweep::new(5, 1_000);
    assert_eq!(round(&c, 500, &mut sweep), 5, "23 keys in chunks of 5");
    assert_eq!(left(&c), (0..23).step_by(2).collect::<Vec<_>>());
    assert_eq!(round(&c, 500, &mut sweep), 0, "the round is over");
}

#[test]
fn a_round_stops_at_its_bound_and_the_next_goes_on_round_the_end() {
    let (_dir, c) = keys(|_| 1_000);
    let mut sweep = Sweep::new(5, 10);
    assert_eq!(
        round(&c, 500, &mut sweep),
        2,
        "nothing old: 10 keys looked at"
    );
    assert_eq!(left(&c).len(), 23);
    c.execute("UPDATE seen SET seen_at = 100", []).unwrap();
    // Begins after k09, where the last round stopped.
    assert_eq!(round(&c, 600, &mut sweep), 2);
    assert_eq!(
        left(&c),
        (0..10).chain(20..23).collect::<Vec<_>>(),
        "k10..k19 went"
    );
    // From k19: the last three keys, then round the end to the first ones.
    assert_eq!(round(&c, 700, &mut sweep), 2);
    assert_eq!(left(&c), (5..10).collect::<Vec<_>>());
    // From k04: the rest, then the end of the key space, where the bound stops it.
    assert_eq!(round(&c, 800, &mut sweep), 2);
    assert_eq!(left(&c), Vec::<usize>::new());
}

/// Puts the sweep's position after `key`, as an earlier round (or run) left it.
fn begin_after(c: &Connection, key: &str) {
    c.execute(
        "INSERT INTO meta (key, value) VALUES ('seen_sweep_after', ?1)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        [key],
    )
    .unwrap();
}

#[test]
fn a_round_ends_when_it_comes_round_to_where_it_began() {
    let (_dir, c) = keys(|i| if i % 3 == 0 { 10 } else { 1_000 });
    begin_after(&c, "h:k09");
    let mut sweep = Sweep::new(5, 1_000);
    // k10..k14, k15..k19, k20..k22 and the end, k00..k04, k05..k09: round to k09.
    assert_eq!(round(&c, 500, &mut sweep), 5);
    assert_eq!(left(&c), (0..23).filter(|i| i % 3 != 0).collect::<Vec<_>>());
}

#[test]
fn a_call_rolled_back_leaves_the_position_where_it_was() {
    let (_dir, mut c) = keys(|_| 10);
    let mut sweep = Sweep::new(5, 1_000);
    let round = keys_before(500);
    let tx = c.transaction().unwrap();
    assert_eq!(
        sql::seen::sweep(&tx, round, &mut sweep, Instant::now())
            .unwrap()
            .deleted,
        5
    );
    drop(tx);
    assert_eq!(left(&c).len(), 23, "rolled back");
    // The writer's re-run of the job: the same first chunk again, not the next one.
    assert_eq!(
        sql::seen::sweep(&c, round, &mut sweep, Instant::now())
            .unwrap()
            .deleted,
        5
    );
    assert_eq!(left(&c), (5..23).collect::<Vec<_>>());
}

#[tokio::test]
async fn a_schema_5_store_loses_its_index_by_time() {
    let dir = tempfile::tempdir().unwrap();
    open(&dir).close().await;
    let path = dir.path().join("sub/store.db");
    Connection::open(&path)
        .unwrap()
        .execute_batch(
            "CREATE INDEX seen_by_time ON seen (seen_at);
             UPDATE meta SET value = '5' WHERE key = 'schema_version';",
        )
        .unwrap();
    let index = "SELECT COUNT(*) FROM sqlite_master WHERE name = 'seen_by_time'";
    assert_eq!(count(&path, index), 1);
    SqliteStore::open(&config(&path), Mode::Serve)
        .unwrap()
        .close()
        .await;
    assert_eq!(count(&path, index), 0);
    assert_eq!(
        count(
            &path,
            "SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'schema_version'"
        ),
        6
    );
}

#[test]
fn calls_that_only_carry_the_sweep_on_skip_the_other_tables() {
    let (_dir, c) = keys(|_| 1_000);
    let mut sweep = Sweep::new(5, 1_000);
    let before = PruneBefore {
        seen: 500,
        delivered: 500,
        unrouted: 500,
    };
    let first = sql::prune(&c, before, &mut sweep).unwrap();
    assert_eq!((first.hooks, first.keys_looked_at), (0, 5));
    // Old routed hooks written now wait for the next round (the newest row always stays).
    for at in [10, 20] {
        c.execute(
            "INSERT INTO hooks (v, received_at, envelope, raw, state)
             VALUES (1, ?1, '{}', '{}', 'routed')",
            [at],
        )
        .unwrap();
    }
    let mut calls = 0;
    loop {
        let s = sql::prune(&c, before, &mut sweep).unwrap();
        if s.is_empty() {
            break;
        }
        assert_eq!(s.hooks, 0, "skipped in this round");
        calls += 1;
    }
    assert_eq!(calls, 4, "the rest of the keys, in chunks of 5");
    let next = PruneBefore {
        seen: 501,
        ..before
    };
    assert_eq!(sql::prune(&c, next, &mut sweep).unwrap().hooks, 1);
}

#[test]
fn the_same_cutoffs_after_a_pause_start_a_new_round() {
    let (_dir, c) = keys(|_| 1_000);
    let mut sweep = Sweep::new(5, 1_000);
    let round = keys_before(500);
    let t0 = Instant::now();
    let looked =
        |sweep: &mut Sweep, at: Instant| sql::seen::sweep(&c, round, sweep, at).unwrap().looked;
    for call in 0..5 {
        assert_eq!(looked(&mut sweep, t0), 5, "call {call}");
    }
    assert_eq!(looked(&mut sweep, t0 + Duration::from_secs(1)), 0, "over");
    // A stopped clock gives the prune loop the same cutoffs again: a pause still counts.
    assert_eq!(looked(&mut sweep, t0 + Duration::from_secs(61)), 5);
}
