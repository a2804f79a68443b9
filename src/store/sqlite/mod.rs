//! The SQLite store: one file, WAL mode, bundled SQLite (no system library).
//!
//! All writes go through one writer thread that gathers whatever jobs are waiting into a
//! single transaction (group commit). A job's caller hears back only after the commit, so "ok"
//! means durable (per `store.sync`). Jobs normally share the transaction plainly; if one
//! fails, the transaction is rolled back and the batch is run again with a savepoint per job,
//! so one failing job never undoes its neighbours (and the common case pays no savepoints).
//! Reads use separate connections, which WAL lets run beside the writer, and the WAL is
//! checkpointed on a thread of its own (see [`checkpoint`]).
//!
//! Invariants:
//! - A caller waits at most `store.commit_timeout`; a stalled disk gives `Timeout` (the
//!   webhook answers 503), and the job still commits when the disk comes back.
//! - Before every commit the writer checks that the path still names the file it writes: a
//!   deleted or replaced store file fails the batch, so nothing is acknowledged into it.
//! - `serve` holds the one-server lock (see [`file`]) until `close`, which also checkpoints the
//!   WAL into the database file, so the `.db` file alone is a complete copy after a clean stop.

mod checkpoint;
mod file;
mod sql;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{Connection, OpenFlags};
use tokio::sync::{mpsc, oneshot};

use super::*;
use crate::config::{StoreConfig, SyncMode};

/// Highest schema this build reads and writes.
pub const SCHEMA_VERSION: i64 = 6;
/// Jobs gathered into one transaction at most.
const MAX_BATCH: usize = 1024;
/// How long a statement waits for another process's lock before failing (then the webhook
/// answers 503 and NHN can retry).
const BUSY_TIMEOUT: Duration = Duration::from_secs(2);
/// Read connections beside the writer.
const READERS: usize = 2;

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> StoreError {
        use rusqlite::ErrorCode;
        match e.sqlite_error_code() {
            Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase) => {
                StoreError::Corrupt(e.to_string())
            }
            _ => StoreError::Unavailable(e.to_string()),
        }
    }
}

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
        let TypedJob {
            work,
            result,
            reply,
        } = *self;
        // The work's captures are dropped before the reply is sent, so a caller that kept its
        // own reference to them (a POST, a routed batch) frees them on its thread, not here:
        // the writer is the store's one bottleneck.
        drop(work);
        let result = match (commit, result) {
            (Ok(()), Some(r)) => r,
            (Ok(()), None) => Err(StoreError::Closed),
            (Err(e), _) => Err(StoreError::Unavailable(format!("commit failed: {e}"))),
        };
        // The caller may have gone away (request cancelled, deadline passed): nothing to do.
        let _ = reply.send(result);
    }
}

/// What the writer thread needs to know about the file.
struct Target {
    path: PathBuf,
    identity: Option<file::Identity>,
}

struct Inner {
    jobs: Mutex<Option<mpsc::Sender<Box<dyn Job>>>>,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
    readers: Vec<Arc<Mutex<Option<Connection>>>>,
    next_reader: std::sync::atomic::AtomicUsize,
    path: PathBuf,
    identity: Option<file::Identity>,
    dedup_window_ms: i64,
    commit_timeout: Duration,
    /// Where pruning's sweep of the dedup keys is (used only by the writer's prune jobs).
    sweep: Arc<Mutex<sql::Sweep>>,
    /// Declared last: released after the connections above are closed.
    lock: Mutex<Option<file::ServeLock>>,
}

impl Inner {
    /// Stops the writer (after the jobs already queued), closes the readers, then releases
    /// the lock. Idempotent.
    fn shut(&self) {
        let sender = self.jobs.lock().unwrap_or_else(|e| e.into_inner()).take();
        drop(sender);
        let writer = self.writer.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(w) = writer {
            let _ = w.join();
        }
        for r in &self.readers {
            r.lock().unwrap_or_else(|e| e.into_inner()).take();
        }
        self.lock.lock().unwrap_or_else(|e| e.into_inner()).take();
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.shut();
    }
}

/// The SQLite implementation of [`Store`].
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.inner.path)
            .finish()
    }
}

fn open_connection(path: &Path, sync: SyncMode, create: bool) -> Result<Connection, StoreError> {
    let mut flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    if create {
        flags |= OpenFlags::SQLITE_OPEN_CREATE;
    }
    let conn = Connection::open_with_flags(path, flags)?;
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

/// Refuses a file whose pages are damaged, saying what to do (a damaged store must not be
/// served as healthy: it would accept hooks it cannot route).
fn integrity_check(conn: &Connection, path: &Path) -> Result<(), StoreError> {
    let refuse = |problem: String| {
        StoreError::Refused(format!(
            "the store {} is damaged ({problem}). Stop here and keep a copy of the file and its \
             -wal/-shm files; restore from a backup, or salvage what is readable with \
             `sqlite3 {} .recover > salvage.sql` (see docs/operations.md)",
            path.display(),
            path.display()
        ))
    };
    let first: String = conn
        .query_row("PRAGMA quick_check", [], |r| r.get(0))
        .map_err(|e| refuse(e.to_string()))?;
    if first != "ok" {
        return Err(refuse(crate::text::truncate(&first, 200)));
    }
    Ok(())
}

impl SqliteStore {
    /// Opens the store at `cfg.path`: in `Serve` mode creating it (and its folder) if needed,
    /// locking it and checking it; in `Tool` mode an existing store only.
    pub fn open(cfg: &StoreConfig, mode: Mode) -> Result<SqliteStore, StoreError> {
        let path = cfg.path.as_path();
        let serve = mode == Mode::Serve;
        if !serve && !path.exists() {
            return Err(StoreError::Refused(format!(
                "there is no store at {} (is this the config the server runs with? run the \
                 command from the server's folder or pass --config)",
                path.display()
            )));
        }
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::Folder {
                path: dir.display().to_string(),
                source,
            })?;
        }
        let lock = if serve {
            file::refuse_truncated(path)?;
            Some(file::ServeLock::take(path)?)
        } else {
            None
        };
        let mut writer = open_connection(path, cfg.sync, serve)?;
        if serve {
            integrity_check(&writer, path)?;
        }
        match sql::stored_version(&writer)? {
            Some(v) if v > SCHEMA_VERSION => {
                return Err(StoreError::NewerSchema {
                    found: v,
                    known: SCHEMA_VERSION,
                });
            }
            _ => sql::init_schema(&writer)?,
        }
        if serve {
            sql::release_claims(&writer)?;
        }
        let mut readers = Vec::new();
        for _ in 0..READERS {
            readers.push(Arc::new(Mutex::new(Some(open_connection(
                path, cfg.sync, false,
            )?))));
        }
        let identity = lock
            .as_ref()
            .map(file::ServeLock::identity)
            .or_else(|| file::identity(path));
        let (tx, rx) = mpsc::channel::<Box<dyn Job>>(4096);
        let target = Target {
            path: path.to_path_buf(),
            identity: lock.as_ref().map(file::ServeLock::identity),
        };
        // A command-line tool's store keeps SQLite's own auto-checkpoint: it writes little, and
        // a thread of its own could hold the log when the server's closing checkpoint runs.
        let checkpointer = if serve {
            Some(checkpoint::Checkpointer::start(
                &mut writer,
                path,
                cfg.sync,
                checkpoint::DEFAULT,
            )?)
        } else {
            None
        };
        let writer = std::thread::Builder::new()
            .name("bizrelay-store".into())
            .spawn(move || writer_loop(writer, rx, target, checkpointer))
            .map_err(|e| StoreError::Unavailable(format!("cannot start the writer thread: {e}")))?;
        Ok(SqliteStore {
            inner: Arc::new(Inner {
                jobs: Mutex::new(Some(tx)),
                writer: Mutex::new(Some(writer)),
                readers,
                next_reader: std::sync::atomic::AtomicUsize::new(0),
                path: path.to_path_buf(),
                identity,
                dedup_window_ms: i64::try_from(cfg.dedup_window.as_millis()).unwrap_or(i64::MAX),
                commit_timeout: cfg.commit_timeout,
                sweep: Arc::default(),
                lock: Mutex::new(lock),
            }),
        })
    }

    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    fn deadline(&self) -> StoreError {
        StoreError::Timeout(humantime::format_duration(self.inner.commit_timeout).to_string())
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
        let sender = self
            .inner
            .jobs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .ok_or(StoreError::Closed)?;
        let queued_and_done = async move {
            sender
                .send(Box::new(job))
                .await
                .map_err(|_| StoreError::Closed)?;
            rx.await.map_err(|_| StoreError::Closed)?
        };
        tokio::time::timeout(self.inner.commit_timeout, queued_and_done)
            .await
            .map_err(|_| self.deadline())?
    }

    async fn read<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let i = self
            .inner
            .next_reader
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            % self.inner.readers.len();
        let reader = Arc::clone(&self.inner.readers[i]);
        let task = tokio::task::spawn_blocking(move || {
            let conn = reader.lock().map_err(|_| StoreError::Closed)?;
            match conn.as_ref() {
                Some(c) => work(c),
                None => Err(StoreError::Closed),
            }
        });
        match tokio::time::timeout(self.inner.commit_timeout, task).await {
            Ok(Ok(result)) => result,
            Ok(Err(e)) => Err(StoreError::Unavailable(format!("a store read failed: {e}"))),
            Err(_) => Err(self.deadline()),
        }
    }
}

fn writer_loop(
    mut conn: Connection,
    mut rx: mpsc::Receiver<Box<dyn Job>>,
    target: Target,
    checkpointer: Option<checkpoint::Checkpointer>,
) {
    while let Some(first) = rx.blocking_recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let commit = run_batch(&mut conn, &mut batch, &target);
        for job in batch {
            job.finish(commit.clone());
        }
    }
    // Every sender is gone: a clean close. Fold the WAL into the database file so the file
    // alone is a complete copy (a backup of just the .db misses nothing).
    if let Some(mut c) = checkpointer {
        c.stop(&mut conn);
    }
    if target.identity.is_some() {
        checkpoint::truncate(&conn);
    }
}

fn run_batch(
    conn: &mut Connection,
    batch: &mut [Box<dyn Job>],
    target: &Target,
) -> Result<(), String> {
    let immediate = rusqlite::TransactionBehavior::Immediate;
    let check_file = || match target.identity {
        Some(id) => file::still_names(&target.path, id).map_err(|e| e.to_string()),
        None => Ok(()),
    };
    let tx = conn
        .transaction_with_behavior(immediate)
        .map_err(|e| e.to_string())?;
    if batch.iter_mut().all(|job| job.apply(&tx)) {
        check_file()?;
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
    check_file()?;
    tx.commit().map_err(|e| e.to_string())
}

#[async_trait]
impl Store for SqliteStore {
    fn describe(&self) -> String {
        format!("the SQLite store {}", self.inner.path.display())
    }

    async fn ingest(&self, post: NewPost) -> Result<IngestOutcome, StoreError> {
        let window = self.inner.dedup_window_ms;
        let post = Arc::new(post);
        let shared = Arc::clone(&post);
        let out = self
            .write(move |c| sql::ingest(c, &shared, shared.received_at - window))
            .await;
        drop(post); // usually the last reference (see `TypedJob::finish`)
        out
    }

    async fn claim_hooks(
        &self,
        who: &Claimant,
        now: i64,
        limit: usize,
    ) -> Result<Vec<StoredHook>, StoreError> {
        let who = who.clone();
        self.write(move |c| sql::claim_hooks(c, &who, now, limit))
            .await
    }

    async fn commit_dispatch(
        &self,
        who: &Claimant,
        batch: DispatchBatch,
        rules: &Rules,
    ) -> Result<DispatchCommit, StoreError> {
        let (who, rules) = (who.clone(), *rules);
        let batch = Arc::new(batch);
        let shared = Arc::clone(&batch);
        let out = self
            .write(move |c| sql::commit_dispatch(c, &who, &shared, &rules))
            .await;
        drop(batch); // usually the last reference (see `TypedJob::finish`)
        out
    }

    async fn fail_dispatch(
        &self,
        who: &Claimant,
        failure: RoutingFailure,
    ) -> Result<Vec<i64>, StoreError> {
        let who = who.clone();
        self.write(move |c| sql::fail_dispatch(c, &who, &failure))
            .await
    }

    async fn reroute(&self, which: Reroute, _now: i64) -> Result<usize, StoreError> {
        self.write(move |c| sql::reroute(c, &which)).await
    }

    async fn hooks_in(
        &self,
        state: HookState,
        limit: usize,
    ) -> Result<Vec<ListedHook>, StoreError> {
        self.read(move |c| sql::hooks_in(c, state, limit)).await
    }

    async fn inbox_stats(&self) -> Result<InboxStats, StoreError> {
        self.read(sql::inbox_stats).await
    }

    async fn rejected(&self, selection: &Selection) -> Result<Vec<RejectedHook>, StoreError> {
        let selection = selection.clone();
        self.read(move |c| sql::rejected(c, &selection)).await
    }

    async fn purge_rejected(&self, selection: &Selection) -> Result<usize, StoreError> {
        let selection = selection.clone();
        self.write(move |c| sql::purge_rejected(c, &selection))
            .await
    }

    async fn claim_groups(
        &self,
        who: &Claimant,
        now: i64,
        limit: usize,
    ) -> Result<Vec<DueGroup>, StoreError> {
        let who = who.clone();
        // The claim and its marks commit first; what the marked members count is read
        // after, off the writer (a storm's groups are large, and the writer is shared by ingest).
        let claimed = self
            .write(move |c| sql::claim_groups(c, &who, now, limit))
            .await?;
        if claimed.is_empty() {
            return Ok(Vec::new());
        }
        self.read(move |c| sql::tally_claimed(c, claimed)).await
    }

    async fn commit_flush(
        &self,
        who: &Claimant,
        flush: Flush,
        rules: &Rules,
    ) -> Result<bool, StoreError> {
        let (who, rules) = (who.clone(), *rules);
        self.write(move |c| sql::commit_flush(c, &who, &flush, &rules))
            .await
    }

    async fn next_flush_at(&self) -> Result<Option<i64>, StoreError> {
        self.read(|c| {
            let groups = sql::next_flush_at(c)?;
            let rates = sql::next_rate_at(c)?;
            Ok(groups.into_iter().chain(rates).min())
        })
        .await
    }

    async fn claim_rate_series(
        &self,
        who: &Claimant,
        now: i64,
        limit: usize,
    ) -> Result<Vec<DueSeries>, StoreError> {
        let who = who.clone();
        self.write(move |c| sql::claim_rate_series(c, &who, now, limit))
            .await
    }

    async fn commit_rate(&self, who: &Claimant, commit: RateCommit) -> Result<bool, StoreError> {
        let who = who.clone();
        self.write(move |c| sql::commit_rate(c, &who, &commit))
            .await
    }

    async fn group_timing(
        &self,
        route: &str,
        group_key: &str,
    ) -> Result<Option<GroupTiming>, StoreError> {
        let (route, key) = (route.to_string(), group_key.to_string());
        self.read(move |c| sql::group_timing(c, &route, &key)).await
    }

    async fn lease_delivery(
        &self,
        destination: &str,
        who: &Claimant,
        now: i64,
        pacer: &Pacer,
    ) -> Result<LeaseOutcome, StoreError> {
        let (destination, who, pacer) = (destination.to_string(), who.clone(), *pacer);
        self.write(move |c| sql::lease_delivery(c, &destination, &who, now, &pacer))
            .await
    }

    async fn record_attempt(
        &self,
        lease: &Lease,
        attempt: Attempt,
        pause: Option<Pause>,
    ) -> Result<bool, StoreError> {
        let lease = lease.clone();
        self.write(move |c| sql::record_attempt(c, &lease, &attempt, pause.as_ref()))
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

    async fn queue_stats(&self) -> Result<Vec<QueueStat>, StoreError> {
        self.read(sql::queue_stats).await
    }

    async fn dead_letter_destinations(
        &self,
        destinations: Vec<String>,
        now: i64,
    ) -> Result<usize, StoreError> {
        self.write(move |c| sql::dead_letter_destinations(c, &destinations, now))
            .await
    }

    async fn queued_destinations(&self) -> Result<Vec<String>, StoreError> {
        self.read(sql::queued_destinations).await
    }

    async fn prune(&self, before: PruneBefore) -> Result<PruneStats, StoreError> {
        let sweep = Arc::clone(&self.inner.sweep);
        self.write(move |c| {
            let mut sweep = sweep.lock().unwrap_or_else(|e| e.into_inner());
            sql::prune(c, before, &mut sweep)
        })
        .await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        if let Some(id) = self.inner.identity {
            file::still_names(&self.inner.path, id)?;
        }
        self.write(sql::ping).await
    }

    async fn close(&self) {
        let inner = Arc::clone(&self.inner);
        let _ = tokio::task::spawn_blocking(move || inner.shut()).await;
    }

    async fn thread(&self, key: &ThreadKey) -> Result<Option<Thread>, StoreError> {
        let key = key.clone();
        self.read(move |c| sql::thread(c, &key)).await
    }

    async fn save_thread(&self, lease: &Lease, thread: &Thread) -> Result<bool, StoreError> {
        let (lease, thread) = (lease.clone(), thread.clone());
        self.write(move |c| sql::save_thread(c, &lease, &thread))
            .await
    }

    async fn threads(&self, destination: Option<&str>) -> Result<Vec<Thread>, StoreError> {
        let destination = destination.map(str::to_string);
        self.read(move |c| sql::threads(c, destination.as_deref()))
            .await
    }

    async fn forget_thread(&self, key: &ThreadKey) -> Result<bool, StoreError> {
        let key = key.clone();
        self.write(move |c| sql::forget_thread(c, &key)).await
    }

    async fn prune_threads(&self, before: i64) -> Result<usize, StoreError> {
        self.write(move |c| sql::prune_threads(c, before)).await
    }

    async fn add_silence(&self, silence: NewSilence) -> Result<StoredSilence, StoreError> {
        self.write(move |c| sql::add_silence(c, &silence)).await
    }

    async fn silences(
        &self,
        now: i64,
        ended_since: Option<i64>,
    ) -> Result<Vec<StoredSilence>, StoreError> {
        self.read(move |c| sql::silences(c, now, ended_since)).await
    }

    async fn expire_silence(&self, id: i64, now: i64) -> Result<Expired, StoreError> {
        self.write(move |c| sql::expire_silence(c, id, now)).await
    }

    async fn request_lookups(
        &self,
        lookups: Vec<LookupRequest>,
        now: i64,
    ) -> Result<usize, StoreError> {
        if lookups.is_empty() {
            return Ok(0);
        }
        self.write(move |c| sql::request_lookups(c, &lookups, now))
            .await
    }

    async fn claim_lookups(
        &self,
        who: &Claimant,
        app_key: &str,
        now: i64,
        limit: usize,
    ) -> Result<Vec<PendingLookup>, StoreError> {
        let (who, app_key) = (who.clone(), app_key.to_string());
        self.write(move |c| sql::claim_lookups(c, &who, &app_key, now, limit))
            .await
    }

    async fn finish_lookup(
        &self,
        who: &Claimant,
        request_id: &str,
        result: LookupResult,
        now: i64,
    ) -> Result<bool, StoreError> {
        let (who, id) = (who.clone(), request_id.to_string());
        self.write(move |c| sql::finish_lookup(c, &who, &id, &result, now))
            .await
    }

    async fn cached_enrichments(
        &self,
        request_ids: Vec<String>,
        now: i64,
    ) -> Result<Vec<CachedEnrichment>, StoreError> {
        if request_ids.is_empty() {
            return Ok(Vec::new());
        }
        self.read(move |c| sql::cached_enrichments(c, &request_ids, now))
            .await
    }

    async fn hold_hooks(
        &self,
        who: &Claimant,
        rows: Vec<i64>,
        until: i64,
    ) -> Result<usize, StoreError> {
        if rows.is_empty() {
            return Ok(0);
        }
        let who = who.clone();
        self.write(move |c| sql::hold_hooks(c, &who, &rows, until))
            .await
    }

    async fn prune_enrichments(&self, now: i64) -> Result<usize, StoreError> {
        self.write(move |c| sql::prune_enrichments(c, now)).await
    }

    async fn lookup_stats(&self, now: i64) -> Result<LookupStats, StoreError> {
        self.read(move |c| sql::lookup_stats(c, now)).await
    }
}

#[cfg(test)]
mod tests;
