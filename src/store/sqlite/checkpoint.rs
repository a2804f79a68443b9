//! The WAL checkpointer: copies committed pages from the write-ahead log into the database
//! file on a thread and connection of its own, so the writer (the store's one serial path)
//! does not stop for it. SQLite's default runs each checkpoint inside the commit that crossed
//! 1,000 WAL pages: about a tenth of the writer's time in a storm of 100-hook POSTs, and a
//! stall of several milliseconds for every POST in that batch.
//!
//! Invariants:
//! - The writer's connection never checkpoints on its own schedule: its WAL hook (which
//!   replaces SQLite's auto-checkpoint) wakes this thread once the log holds `wake` pages.
//! - The log stays bounded under a load with no pause. It restarts only when a write begins
//!   after a checkpoint has copied every frame, which a checkpoint running beside the writer
//!   never quite does; so at `inline` pages the writer stops waking the thread and runs a
//!   checkpoint itself once the thread is done (cheap: the thread has copied most pages).
//! - Checkpoints never change what is durable: a commit is on disk (per `store.sync`) in the
//!   log before any checkpoint copies it. A failed checkpoint is only retried later.
//! - [`Checkpointer::stop`] joins the thread before the writer's closing checkpoint, which
//!   would fail while another checkpoint runs.

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

/// The running checkpointer; owned by the writer thread.
pub(super) struct Checkpointer {
    thread: Option<JoinHandle<()>>,
    #[cfg_attr(not(test), allow(dead_code))]
    passes: Arc<AtomicU64>,
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
        let passes = Arc::new(AtomicU64::new(0));
        let counted = Arc::clone(&passes);
        let thread = std::thread::Builder::new()
            .name("bizrelay-checkpoint".into())
            .spawn(move || {
                // Ends when the hook (the only sender) is removed by `stop`.
                while woken.recv().is_ok() {
                    match conn.wal_checkpoint_v2(None::<&str>, CheckpointMode::PASSIVE) {
                        Ok(_) => {}
                        Err(e) if busy(&e) => {}
                        Err(e) => {
                            tracing::warn!(error = %e, "could not checkpoint the store's WAL")
                        }
                    }
                    counted.fetch_add(1, Ordering::Relaxed);
                }
            })
            .map_err(|e| {
                StoreError::Unavailable(format!("cannot start the checkpoint thread: {e}"))
            })?;
        writer.wal_hook(Some(move |wal: &mut Wal, pages: i32| {
            on_commit(&wake, wal, pages, at);
            // An error here would fail the statement whose commit already happened.
            Ok(())
        }))?;
        Ok(Checkpointer {
            thread: Some(thread),
            passes,
        })
    }

    /// Checkpoints the thread has run (for tests).
    #[cfg(test)]
    pub(super) fn passes(&self) -> u64 {
        self.passes.load(Ordering::Relaxed)
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

/// Runs after every commit of the writer, with the pages now in the log.
fn on_commit(wake: &SyncSender<()>, wal: &mut Wal, pages: i32, at: Thresholds) {
    if pages < at.wake {
        return;
    }
    if pages < at.inline {
        // Full: the thread is already woken and will see these pages too.
        if let Err(TrySendError::Disconnected(())) = wake.try_send(()) {
            tracing::warn!("the store's checkpoint thread has stopped");
        }
        return;
    }
    // Busy while the thread's pass runs; the next commit tries again.
    match wal.checkpoint_v2(CheckpointMode::PASSIVE) {
        Ok(_) => {}
        Err(e) if busy(&e) => {}
        Err(e) => tracing::warn!(error = %e, "the store's writer could not checkpoint its WAL"),
    }
}

/// Another checkpoint holds the log (PASSIVE checkpoints never wait for it).
fn busy(e: &rusqlite::Error) -> bool {
    e.sqlite_error_code() == Some(ErrorCode::DatabaseBusy)
}
