//! The WAL checkpointer: copies committed pages from the write-ahead log into the database
//! file on a thread and connection of its own, so the writer (the store's one serial path)
//! does not stop for it. SQLite's default runs each checkpoint inside the commit that crossed
//! 1,000 WAL pages: about a tenth of the writer's time in a storm of 100-hook POSTs, and a
//! stall of several milliseconds for every POST in that batch.
//!
//! Invariants:
//! - Below `inline` pages the writer's commits never checkpoint: its WAL hook (which replaces
//!   SQLite's auto-checkpoint) only wakes this thread, once the log holds `wake` pages.
//! - The log restarts only when a write begins after a checkpoint has copied every frame and
//!   no reader holds an older snapshot. A checkpoint running beside a writer that never
//!   pauses never quite catches up, so at `inline` pages the writer stops waking the thread
//!   and checkpoints itself once the thread's pass is done (cheap: the thread has copied most
//!   pages). So the log stays near `inline` pages under any load, unless a long read holds
//!   its frames (as with SQLite's own checkpoints).
//! - Checkpoints never change what is durable: a commit is on disk (per `store.sync`) in the
//!   log before any checkpoint copies it. A failed checkpoint is only retried later.
//! - [`Checkpointer::stop`] joins the thread before the writer's closing checkpoint, which
//!   SQLite refuses while another checkpoint runs.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{SyncSender, TrySendError, sync_channel};
use std::thread::JoinHandle;

use rusqlite::hooks::Wal;
use rusqlite::wal::CheckpointMode;
use rusqlite::{Connection, ErrorCode};

use super::open_connection;
use crate::config::SyncMode;
use crate::store::StoreError;

/// When the checkpointer is woken and when the writer checkpoints itself, in WAL pages.
#[derive(Debug, Clone, Copy)]
pub(super) struct Thresholds {
    pub wake: i32,
    pub inline: i32,
}

/// 1,000 pages is SQLite's own auto-checkpoint; at 4 KB pages the log stays under about
/// 16 MB plus what the writer commits while the last copy runs.
pub(super) const DEFAULT: Thresholds = Thresholds {
    wake: 1000,
    inline: 4000,
};

/// Checkpoints that completed, by the thread and by the writer itself (for tests).
#[derive(Debug, Default)]
pub(super) struct Passes {
    pub thread: AtomicU64,
    pub inline: AtomicU64,
}

/// The running checkpointer; owned by the writer thread.
pub(super) struct Checkpointer {
    thread: Option<JoinHandle<()>>,
    #[cfg_attr(not(test), allow(dead_code))]
    passes: Arc<Passes>,
}

impl Checkpointer {
    /// Opens the checkpointer's connection to `path` and installs the WAL hook on `writer`.
    pub(super) fn start(
        writer: &mut Connection,
        path: &Path,
        sync: SyncMode,
        at: Thresholds,
    ) -> Result<Checkpointer, StoreError> {
        let conn = open_connection(path, sync, false)?;
        let (wake, woken) = sync_channel::<()>(1);
        let passes = Arc::new(Passes::default());
        let counted = Arc::clone(&passes);
        let inline = Arc::clone(&passes);
        let thread = std::thread::Builder::new()
            .name("bizrelay-checkpoint".into())
            .spawn(move || {
                // Ends when the hook (the only sender) is removed by `stop`.
                while woken.recv().is_ok() {
                    match conn.wal_checkpoint_v2(None::<&str>, CheckpointMode::PASSIVE) {
                        Ok(_) => {
                            counted.thread.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) if busy(&e) => {}
                        Err(e) => {
                            tracing::warn!(error = %e, "could not checkpoint the store's WAL")
                        }
                    }
                }
            })
            .map_err(|e| {
                StoreError::Unavailable(format!("cannot start the checkpoint thread: {e}"))
            })?;
        let mut hook = Hook {
            wake,
            next_wake: at.wake,
            told: false,
        };
        writer.wal_hook(Some(move |wal: &mut Wal, pages: i32| {
            if hook.on_commit(wal, pages, at) {
                inline.inline.fetch_add(1, Ordering::Relaxed);
            }
            // An error here would fail the statement whose commit already happened.
            Ok(())
        }))?;
        Ok(Checkpointer {
            thread: Some(thread),
            passes,
        })
    }

    /// Checkpoints completed so far: (by the thread, by the writer).
    #[cfg(test)]
    pub(super) fn passes(&self) -> (u64, u64) {
        (
            self.passes.thread.load(Ordering::Relaxed),
            self.passes.inline.load(Ordering::Relaxed),
        )
    }

    /// Removes the hook (which ends the thread once its pass is done) and joins the thread.
    pub(super) fn stop(&mut self, writer: &mut Connection) {
        let none: Option<fn(&mut Wal, i32) -> rusqlite::Result<()>> = None;
        if let Err(e) = writer.wal_hook(none) {
            tracing::warn!(error = %e, "could not remove the store's WAL hook");
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// What the writer's WAL hook keeps between commits.
struct Hook {
    wake: SyncSender<()>,
    /// The log size at which the thread is woken next: every `wake` pages, not every commit
    /// (each pass costs two fsyncs with `sync = "full"`, even with nothing new to copy).
    next_wake: i32,
    /// Whether the writer has said that the thread is gone.
    told: bool,
}

impl Hook {
    /// Runs after every commit of the writer, with the pages now in the log; true when it
    /// checkpointed itself.
    fn on_commit(&mut self, wal: &mut Wal, pages: i32, at: Thresholds) -> bool {
        if pages < at.wake {
            // A small log, or one that has just restarted.
            self.next_wake = at.wake;
            return false;
        }
        if pages < at.inline {
            if pages < self.next_wake {
                return false;
            }
            self.next_wake = pages.saturating_add(at.wake);
            // Full: the thread is already woken and will see these pages too. Gone: the log
            // still stays bounded (the writer checkpoints at `inline`), so say it once.
            if let Err(TrySendError::Disconnected(())) = self.wake.try_send(())
                && !std::mem::replace(&mut self.told, true)
            {
                tracing::warn!("the store's checkpoint thread has stopped; the writer checkpoints");
            }
            return false;
        }
        // Busy while the thread's pass runs; the next commit tries again.
        match wal.checkpoint_v2(CheckpointMode::PASSIVE) {
            Ok(_) => true,
            Err(e) if busy(&e) => false,
            Err(e) => {
                tracing::warn!(error = %e, "the store's writer could not checkpoint its WAL");
                false
            }
        }
    }
}

/// The closing checkpoint: copies the whole log into the database file and empties it. A
/// command-line tool's own checkpoint may hold the log for a moment, and SQLite does not wait
/// for another checkpoint: try again for up to a second.
pub(super) fn truncate(conn: &Connection) {
    for attempt in 0.. {
        match conn.wal_checkpoint_v2(None::<&str>, CheckpointMode::TRUNCATE) {
            Ok(_) => return,
            Err(e) if busy(&e) && attempt < 50 => {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not checkpoint the store's WAL at shutdown");
                return;
            }
        }
    }
}

/// Another checkpoint holds the log (PASSIVE checkpoints never wait for it).
fn busy(e: &rusqlite::Error) -> bool {
    e.sqlite_error_code() == Some(ErrorCode::DatabaseBusy)
}
