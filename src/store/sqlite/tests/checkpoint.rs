//! The checkpointer: the writer's commits never run a checkpoint of their own below
//! `inline` pages, the thread copies the log, and the log stays bounded even when commits
//! come back to back (a storm), so it cannot grow without end.

use super::*;
use crate::store::sqlite::checkpoint::{Checkpointer, Thresholds};

fn wal_pages(path: &Path, page_size: i64) -> u64 {
    let wal = path.with_extension("db-wal");
    std::fs::metadata(wal).map(|m| m.len()).unwrap_or(0) / page_size.unsigned_abs()
}

#[test]
fn the_wal_stays_bounded_while_commits_come_back_to_back() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.db");
    let mut writer = open_connection(&path, SyncMode::Normal, true).unwrap();
    writer
        .execute_batch("CREATE TABLE t (x TEXT NOT NULL)")
        .unwrap();
    let page_size: i64 = writer
        .query_row("PRAGMA page_size", [], |r| r.get(0))
        .unwrap();
    let at = Thresholds {
        wake: 20,
        inline: 80,
    };
    let mut checkpointer = Checkpointer::start(&mut writer, &path, SyncMode::Normal, at).unwrap();
    let row = "x".repeat(2000);
    let commits = 2000;
    let mut most = 0;
    for _ in 0..commits {
        let tx = writer.transaction().unwrap();
        for _ in 0..4 {
            tx.execute("INSERT INTO t (x) VALUES (?1)", [&row]).unwrap();
        }
        tx.commit().unwrap();
        most = most.max(wal_pages(&path, page_size));
    }
    // About 2 pages per commit: 4,000 pages written. Without checkpoints the log holds them
    // all; with only the thread's checkpoints (never caught up) it keeps growing too.
    assert!(
        most < 1000,
        "the WAL reached {most} pages with checkpoints at {at:?}"
    );
    assert!(checkpointer.passes() > 0, "the checkpoint thread never ran");
    checkpointer.stop(&mut writer);
    writer
        .pragma_update(None, "wal_checkpoint", "TRUNCATE")
        .unwrap();
    assert_eq!(wal_pages(&path, page_size), 0);
    let rows: i64 = Connection::open(&path)
        .unwrap()
        .query_row("SELECT COUNT(*) FROM t", [], |r| r.get(0))
        .unwrap();
    assert_eq!(rows, commits * 4);
}

#[test]
fn below_the_inline_threshold_only_the_thread_checkpoints() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.db");
    let mut writer = open_connection(&path, SyncMode::Normal, true).unwrap();
    writer
        .execute_batch("CREATE TABLE t (x TEXT NOT NULL)")
        .unwrap();
    // The thread is never woken (wake is out of reach) and the writer never checkpoints:
    // SQLite's own auto-checkpoint at 1,000 pages is off.
    let at = Thresholds {
        wake: i32::MAX,
        inline: i32::MAX,
    };
    let mut checkpointer = Checkpointer::start(&mut writer, &path, SyncMode::Normal, at).unwrap();
    let row = "x".repeat(3000);
    for _ in 0..1500 {
        writer
            .execute("INSERT INTO t (x) VALUES (?1)", [&row])
            .unwrap();
    }
    let page_size: i64 = writer
        .query_row("PRAGMA page_size", [], |r| r.get(0))
        .unwrap();
    assert!(wal_pages(&path, page_size) >= 1500);
    assert_eq!(checkpointer.passes(), 0);
    checkpointer.stop(&mut writer);
}
