//! Pruning the dedup keys by a sweep in key order: old keys go across chunk boundaries and
//! fresh ones stay; a round stops at its bound, the next begins where it stopped and comes
//! round the end of the key space; once the other tables have nothing left to prune, the calls
//! of that round only sweep; a schema 5 store loses its index by time.

use super::*;
use crate::store::sqlite::sql::Sweep;
use rusqlite::params;

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

/// Sweeps as the prune loop does, until a call looks at nothing; the calls that looked.
fn round(c: &Connection, cutoff: i64, sweep: &mut Sweep) -> usize {
    let round = PruneBefore {
        seen: cutoff,
        delivered: 0,
        unrouted: 0,
    };
    let mut calls = 0;
    while sql::seen::sweep(c, round, sweep).unwrap().looked > 0 {
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
    // From k04: the rest, then the end, then nothing before it is left: the round is over.
    round(&c, 800, &mut sweep);
    assert_eq!(left(&c), Vec::<usize>::new());
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
