//! The SQLite store: one file, WAL mode, bundled SQLite (no system library).
//!
//! All writes go through one writer thread that gathers whatever jobs are waiting into a
//! single transaction (group commit). A job's caller hears back only after the commit, so "ok"
//! means durable (per `store.sync`). Jobs normally share the transaction plainly; if one
//! fails, the transaction is rolled back and the batch is run again with a savepoint per job,
//! so one failing job never undoes its neighbours (and the common case pays no savepoints).
//! Reads use a separate connection, which WAL lets run beside the writer.

mod sql;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{Connection, OpenFlags};
use tokio::sync::{mpsc, oneshot};

use super::*;
use crate::config::SyncMode;

/// Highest schema this build reads and writes.
pub const SCHEMA_VERSION: i64 = 1;
/// Jobs gathered into one transaction at most.
const MAX_BATCH: usize = 1024;
/// How long a statement waits for another process's lock before failing (then the webhook
/// answers 503 and NHN can retry).
const BUSY_TIMEOUT: Duration = Duration::from_secs(2);

/// A unit of work for the writer thread.
trait Job: Send {
    /// Applies the job's writes and keeps its result; may be called again if the batch is
    /// re-run. Returns whether it succeeded.
    fn apply(&mut self, conn: &Connection) -> bool;
    /// Reports the outcome once the transaction has committed (or failed to).
    fn finish(self: Box<Self>, commit: Result<(), String>);
}

struct TypedJob<T, F> {
    work: F,
    result: Option<Result<T, StoreError>>,
    reply: oneshot::Sender<Result<T, StoreError>>,
}

impl<T, F> Job for TypedJob<T, F>
where
    T: Send,
    F: Fn(&Connection) -> Result<T, StoreError> + Send,
{
    fn apply(&mut self, conn: &Connection) -> bool {
        let result = (self.work)(conn);
        let ok = result.is_ok();
        self.result = Some(result);
        ok
    }

    fn finish(self: Box<Self>, commit: Result<(), String>) {
        let result = match (commit, self.result) {
            (Ok(()), Some(r)) => r,
            (Ok(()), None) => Err(StoreError::Closed),
            (Err(e), _) => Err(StoreError::Commit(e)),
        };
        // The caller may have gone away (request cancelled); nothing to do then.
        let _ = self.reply.send(result);
    }
}

/// The SQLite implementation of [`Store`].
#[derive(Clone)]
pub struct SqliteStore {
    jobs: mpsc::Sender<Box<dyn Job>>,
    reader: Arc<Mutex<Connection>>,
    path: PathBuf,
    dedup_window_ms: i64,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .finish()
    }
}

fn open_connection(path: &Path, sync: SyncMode) -> Result<Connection, StoreError> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(
        None,
        "synchronous",
        match sync {
            SyncMode::Full => "FULL",
            SyncMode::Normal => "NORMAL",
        },
    )?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

impl SqliteStore {
    /// Opens (creating if needed) the store at `path`, with its folder.
    pub fn open(
        path: &Path,
        sync: SyncMode,
        dedup_window: Duration,
    ) -> Result<SqliteStore, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::Folder {
                path: dir.display().to_string(),
                source,
            })?;
        }
        let writer = open_connection(path, sync)?;
        sql::init_schema(&writer)?;
        let reader = open_connection(path, sync)?;
        let (tx, rx) = mpsc::channel::<Box<dyn Job>>(4096);
        std::thread::Builder::new()
            .name("bizrelay-store".into())
            .spawn(move || writer_loop(writer, rx))
            .map_err(|e| StoreError::Corrupt(format!("cannot start the writer thread: {e}")))?;
        Ok(SqliteStore {
            jobs: tx,
            reader: Arc::new(Mutex::new(reader)),
            path: path.to_path_buf(),
            dedup_window_ms: i64::try_from(dedup_window.as_millis()).unwrap_or(i64::MAX),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    async fn write<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: Fn(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let (reply, rx) = oneshot::channel();
        let job = TypedJob {
            work,
            result: None,
            reply,
        };
        self.jobs
            .send(Box::new(job))
            .await
            .map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    async fn read<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let reader = Arc::clone(&self.reader);
        tokio::task::spawn_blocking(move || {
            let conn = reader.lock().map_err(|_| StoreError::Closed)?;
            work(&conn)
        })
        .await
        .map_err(|_| StoreError::Closed)?
    }
}

fn writer_loop(mut conn: Connection, mut rx: mpsc::Receiver<Box<dyn Job>>) {
    while let Some(first) = rx.blocking_recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let commit = run_batch(&mut conn, &mut batch);
        for job in batch {
            job.finish(commit.clone());
        }
    }
}

fn run_batch(conn: &mut Connection, batch: &mut [Box<dyn Job>]) -> Result<(), String> {
    let immediate = rusqlite::TransactionBehavior::Immediate;
    let tx = conn
        .transaction_with_behavior(immediate)
        .map_err(|e| e.to_string())?;
    if batch.iter_mut().all(|job| job.apply(&tx)) {
        return tx.commit().map_err(|e| e.to_string());
    }
    // A job failed: undo everything and run the batch again, each job in a savepoint.
    drop(tx);
    let mut tx = conn
        .transaction_with_behavior(immediate)
        .map_err(|e| e.to_string())?;
    for job in batch.iter_mut() {
        let sp = tx.savepoint().map_err(|e| e.to_string())?;
        if job.apply(&sp) {
            sp.commit().map_err(|e| e.to_string())?;
        }
        // Dropping an uncommitted savepoint rolls back just this job.
    }
    tx.commit().map_err(|e| e.to_string())
}

#[async_trait]
impl Store for SqliteStore {
    async fn ingest(&self, post: NewPost) -> Result<IngestOutcome, StoreError> {
        let window = self.dedup_window_ms;
        self.write(move |c| sql::ingest(c, &post, post.received_at - window))
            .await
    }

    async fn undispatched(&self, limit: usize) -> Result<Vec<StoredHook>, StoreError> {
        self.read(move |c| sql::undispatched(c, limit)).await
    }

    async fn commit_dispatch(&self, batch: DispatchBatch) -> Result<(), StoreError> {
        self.write(move |c| sql::commit_dispatch(c, &batch)).await
    }

    async fn due_groups(&self, now: i64, limit: usize) -> Result<Vec<DueGroup>, StoreError> {
        self.read(move |c| sql::due_groups(c, now, limit)).await
    }

    async fn next_flush_at(&self) -> Result<Option<i64>, StoreError> {
        self.read(sql::next_flush_at).await
    }

    async fn commit_flush(&self, flush: Flush) -> Result<(), StoreError> {
        self.write(move |c| sql::commit_flush(c, &flush)).await
    }

    async fn group_timing(
        &self,
        route: &str,
        group_key: &str,
    ) -> Result<Option<GroupTiming>, StoreError> {
        let (route, key) = (route.to_string(), group_key.to_string());
        self.read(move |c| sql::group_timing(c, &route, &key)).await
    }

    async fn due_deliveries(
        &self,
        destination: &str,
        now: i64,
        limit: usize,
    ) -> Result<Vec<Delivery>, StoreError> {
        let destination = destination.to_string();
        self.read(move |c| sql::due_deliveries(c, &destination, now, limit))
            .await
    }

    async fn next_due_at(&self, destination: &str) -> Result<Option<i64>, StoreError> {
        let destination = destination.to_string();
        self.read(move |c| sql::next_due_at(c, &destination)).await
    }

    async fn record_attempt(&self, id: i64, attempt: Attempt) -> Result<(), StoreError> {
        self.write(move |c| sql::record_attempt(c, id, &attempt))
            .await
    }

    async fn dead_letters(&self, destination: Option<&str>) -> Result<Vec<DeadLetter>, StoreError> {
        let destination = destination.map(str::to_string);
        self.read(move |c| sql::dead_letters(c, destination.as_deref()))
            .await
    }

    async fn dead_sources(
        &self,
        selection: &Selection,
    ) -> Result<Vec<(DeadLetter, DeadSource)>, StoreError> {
        let selection = selection.clone();
        self.read(move |c| sql::dead_sources(c, &selection)).await
    }

    async fn requeue(
        &self,
        items: Vec<(i64, Option<String>)>,
        now: i64,
    ) -> Result<usize, StoreError> {
        self.write(move |c| sql::requeue(c, &items, now)).await
    }

    async fn purge(&self, selection: &Selection) -> Result<usize, StoreError> {
        let selection = selection.clone();
        self.write(move |c| sql::purge(c, &selection)).await
    }

    async fn dead_letter_orphans(&self, known: Vec<String>, now: i64) -> Result<usize, StoreError> {
        self.write(move |c| sql::dead_letter_orphans(c, &known, now))
            .await
    }

    async fn queue_stats(&self) -> Result<Vec<QueueStat>, StoreError> {
        self.read(sql::queue_stats).await
    }

    async fn prune(
        &self,
        seen_before: i64,
        delivered_before: i64,
    ) -> Result<PruneStats, StoreError> {
        self.write(move |c| sql::prune(c, seen_before, delivered_before))
            .await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.write(sql::ping).await
    }
}

#[cfg(test)]
mod tests;
