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
    let commits = 6000;
    let mut most = 0;
    for _ in 0..commits {
        let tx = writer.transaction().unwrap();
        for _ in 0..4 {
            tx.execute("INSERT INTO t (x) VALUES (?1)", [&row]).unwrap();
        }
        tx.commit().unwrap();
        most = most.max(wal_pages(&path, page_size));
    }
    // About 4 pages per commit: 24,000 pages written, all of them in the log without
    // checkpoints, or with only the thread's (a checkpoint beside the writer never catches
    // up; measured: 8,220 of 8,220 pages with 2,000 commits). The log grows while a pass
    // runs, so how far depends on the machine; a quarter of everything would take one pass
    // lasting a quarter of the run.
    assert!(
        most < commits as u64,
        "the WAL reached {most} pages with checkpoints at {at:?}"
    );
    let (thread, inline) = checkpointer.passes();
    assert!(thread > 0, "the checkpoint thread never completed a pass");
    assert!(inline > 0, "the writer never caught the log up itself");
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
    let at = Thresholds {
        wake: 20,
        inline: i32::MAX,
    };
    let mut checkpointer = Checkpointer::start(&mut writer, &path, SyncMode::Normal, at).unwrap();
    let row = "x".repeat(3000);
    for _ in 0..1500 {
        writer
            .execute("INSERT INTO t (x) VALUES (?1)", [&row])
            .unwrap();
    }
    checkpointer.stop(&mut writer);
    let (thread, inline) = checkpointer.passes();
    assert!(thread > 0, "the checkpoint thread never completed a pass");
    assert_eq!(inline, 0, "the writer checkpointed below `inline`");
}

#[test]
fn with_the_thread_never_woken_nothing_checkpoints() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.db");
    let mut writer = open_connection(&path, SyncMode::Normal, true).unwrap();
    writer
        .execute_batch("CREATE TABLE t (x TEXT NOT NULL)")
        .unwrap();
    // SQLite's own auto-checkpoint (at 1,000 pages) is off once the hook is in.
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
    checkpointer.stop(&mut writer);
    assert_eq!(checkpointer.passes(), (0, 0));
}
