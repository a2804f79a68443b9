//! The checkpointer: the writer's commits never run a checkpoint of their own below
//! `inline` pages, the thread copies the log, and the log stays bounded even when commits
//! come back to back (a storm), so it cannot grow without end.

use super::*;
use crate::store::sqlite::checkpoint::{Checkpointer, Thresholds};

/// A writer connection on a new file with one table `t`, its checkpointer started at `at`.
struct Log {
    _dir: tempfile::TempDir,
    path: PathBuf,
    writer: Connection,
    checkpointer: Checkpointer,
    page_size: u64,
}

impl Log {
    fn new(wake: i32, inline: i32) -> Log {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.db");
        let mut writer = open_connection(&path, SyncMode::Normal, true).unwrap();
        writer
            .execute_batch("CREATE TABLE t (x TEXT NOT NULL)")
            .unwrap();
        let page_size: i64 = writer
            .query_row("PRAGMA page_size", [], |r| r.get(0))
            .unwrap();
        let at = Thresholds { wake, inline };
        let checkpointer = Checkpointer::start(&mut writer, &path, SyncMode::Normal, at).unwrap();
        Log {
            _dir: dir,
            path,
            writer,
            checkpointer,
            page_size: page_size.unsigned_abs(),
        }
    }

    /// Pages in the WAL file (its size: SQLite reuses a restarted log from the start).
    fn pages(&self) -> u64 {
        let wal = self.path.with_extension("db-wal");
        std::fs::metadata(wal).map(|m| m.len()).unwrap_or(0) / self.page_size
    }

    /// Commits `n` rows of 3,000 bytes (one page each), one commit each.
    fn commit_rows(&mut self, n: usize) {
        let row = "x".repeat(3000);
        for _ in 0..n {
            self.writer
                .execute("INSERT INTO t (x) VALUES (?1)", [&row])
                .unwrap();
        }
    }

    fn stop(&mut self) -> (u64, u64) {
        self.checkpointer.stop(&mut self.writer);
        self.checkpointer.passes()
    }
}

#[test]
fn the_wal_stays_bounded_while_commits_come_back_to_back() {
    let mut log = Log::new(20, 80);
    let row = "x".repeat(2000);
    let commits = 6000;
    let mut most = 0;
    for _ in 0..commits {
        let tx = log.writer.transaction().unwrap();
        for _ in 0..4 {
            tx.execute("INSERT INTO t (x) VALUES (?1)", [&row]).unwrap();
        }
        tx.commit().unwrap();
        most = most.max(log.pages());
    }
    // About 4 pages per commit: 24,000 pages written, all of them in the log without
    // checkpoints, or with only the thread's (a checkpoint beside the writer never catches
    // up; measured: 8,220 of 8,220 pages with 2,000 commits). The log grows while a pass
    // runs, so how far depends on the machine; a quarter of everything would take one pass
    // lasting a quarter of the run.
    assert!(
        most < commits as u64,
        "the WAL reached {most} pages with checkpoints at 20 / 80 pages"
    );
    let (thread, inline) = log.stop();
    assert!(thread > 0, "the checkpoint thread never completed a pass");
    assert!(inline > 0, "the writer never caught the log up itself");
    log.writer
        .pragma_update(None, "wal_checkpoint", "TRUNCATE")
        .unwrap();
    assert_eq!(log.pages(), 0);
    let rows: i64 = Connection::open(&log.path)
        .unwrap()
        .query_row("SELECT COUNT(*) FROM t", [], |r| r.get(0))
        .unwrap();
    assert_eq!(rows, commits * 4);
}

#[test]
fn below_the_inline_threshold_only_the_thread_checkpoints() {
    let mut log = Log::new(20, i32::MAX);
    log.commit_rows(1500);
    let (thread, inline) = log.stop();
    assert!(thread > 0, "the checkpoint thread never completed a pass");
    assert_eq!(inline, 0, "the writer checkpointed below `inline`");
}

#[test]
fn with_the_thread_never_woken_nothing_checkpoints() {
    // SQLite's own auto-checkpoint (at 1,000 pages) is off once the hook is in.
    let mut log = Log::new(i32::MAX, i32::MAX);
    log.commit_rows(1500);
    assert!(log.pages() >= 1500);
    assert_eq!(log.stop(), (0, 0));
}
