//! Reloading on file changes: the config file and everything under the templates folder.
//!
//! Invariants:
//! - A file is reloaded only once it has stopped changing: no events for the debounce, size
//!   and modification time unchanged across it, and (on Linux, where the kernel says when a
//!   writer closes a file) no writer still holding a modified file open. A slow rewrite (half
//!   the file, a pause, the rest) is therefore never loaded half-written.
//! - A writer that keeps a modified file open longer than [`MAX_OPEN_WRITE`] is taken as
//!   done (a lost close event must not stop reloads for good); the reload says so.
//! - Reads are not changes: a reload reads the templates, which must not trigger another.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use notify::event::{AccessKind, AccessMode, ModifyKind};
use notify::{EventKind, RecursiveMode, Watcher};
use tokio_util::sync::CancellationToken;

use super::{Reloader, SourceSpec};

/// How long a file may stay open for writing after its last change before it is reloaded
/// anyway.
pub const MAX_OPEN_WRITE: Duration = Duration::from_secs(30);

/// Whether the platform's watcher reports a writer closing a file (inotify does).
const SEES_CLOSES: bool = cfg!(target_os = "linux");

/// What one file event means for reloading.
#[derive(Debug)]
enum Change {
    /// Content written: a writer may still have the file open.
    Written(PathBuf),
    /// A writer closed the file, or it was replaced, renamed or removed whole.
    Settled(PathBuf),
}

fn classify(event: notify::Event) -> Vec<Change> {
    let written = match event.kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => false,
        EventKind::Access(_) => return Vec::new(),
        EventKind::Modify(ModifyKind::Data(_) | ModifyKind::Any) | EventKind::Create(_) => {
            SEES_CLOSES
        }
        _ => false,
    };
    event
        .paths
        .into_iter()
        .map(|p| {
            if written {
                Change::Written(p)
            } else {
                Change::Settled(p)
            }
        })
        .collect()
}

/// Size and modification time of every watched file, to tell when they stop changing.
type Snapshot = Vec<(PathBuf, u64, Option<SystemTime>)>;

fn snapshot(config: Option<&Path>, templates: &Path) -> Snapshot {
    let mut out = Vec::new();
    let mut record = |p: &Path| {
        if let Ok(m) = std::fs::metadata(p) {
            out.push((p.to_path_buf(), m.len(), m.modified().ok()));
        }
    };
    if let Some(c) = config {
        record(c);
    }
    let mut folders = vec![templates.to_path_buf()];
    while let Some(dir) = folders.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        paths.sort();
        for p in paths {
            if p.is_dir() {
                folders.push(p);
            } else {
                record(&p);
            }
        }
    }
    out
}

impl Reloader {
    /// Reloads when the config file or anything under the templates folder changes and has
    /// stopped changing (see the module's invariants).
    pub fn watch_files(
        &self,
        shutdown: CancellationToken,
        debounce: Duration,
    ) -> Option<tokio::task::JoinHandle<()>> {
        let config_path = match &self.inner.source {
            SourceSpec::File(p) => Some(p.canonicalize().unwrap_or_else(|_| p.clone())),
            SourceSpec::Builtin => None,
        };
        let templates = self.inner.state.current().config.templates.dir.clone();
        let templates_abs = templates
            .canonicalize()
            .unwrap_or_else(|_| templates.clone());
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Change>();
        let watched_config = config_path.clone();
        let watched_templates = templates_abs.clone();
        let handler = move |res: notify::Result<notify::Event>| {
            let Ok(event) = res else { return };
            for change in classify(event) {
                let (Change::Written(p) | Change::Settled(p)) = &change;
                let relevant = watched_config.as_deref().is_some_and(|c| same_file(p, c))
                    || p.starts_with(&watched_templates);
                if relevant {
                    let _ = tx.send(change);
                }
            }
        };
        let mut watcher = match notify::recommended_watcher(handler) {
            Ok(w) => w,
            Err(e) => {
                tracing::warn!(error = %e, "cannot watch files; reload with SIGHUP or POST /-/reload");
                return None;
            }
        };
        if let Some(parent) = config_path.as_deref().and_then(Path::parent)
            && let Err(e) = watcher.watch(parent, RecursiveMode::NonRecursive)
        {
            tracing::warn!(error = %e, "cannot watch the config file's folder");
        }
        if templates.is_dir()
            && let Err(e) = watcher.watch(&templates, RecursiveMode::Recursive)
        {
            tracing::warn!(error = %e, "cannot watch the templates folder");
        }
        let this = self.clone();
        Some(tokio::spawn(async move {
            let _keep_watching = watcher;
            // Files written and not yet closed, with the time of their last change.
            let mut open: HashMap<PathBuf, Instant> = HashMap::new();
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    got = rx.recv() => match got {
                        Some(change) => note(change, &mut open),
                        None => return,
                    },
                }
                loop {
                    let before = snapshot(config_path.as_deref(), &templates_abs);
                    match tokio::time::timeout(debounce, rx.recv()).await {
                        Ok(Some(change)) => {
                            note(change, &mut open);
                            continue;
                        }
                        Ok(None) => return,
                        Err(_quiet) => {}
                    }
                    let still_writing = open.values().any(|t| t.elapsed() < MAX_OPEN_WRITE);
                    if !still_writing && snapshot(config_path.as_deref(), &templates_abs) == before
                    {
                        break;
                    }
                }
                if !open.is_empty() {
                    tracing::warn!(
                        files = open.len(),
                        waited_s = MAX_OPEN_WRITE.as_secs(),
                        "a changed file is still open for writing; reloading it anyway"
                    );
                    open.clear();
                }
                let _ = this.reload("file change").await;
            }
        }))
    }
}

fn note(change: Change, open: &mut HashMap<PathBuf, Instant>) {
    match change {
        Change::Written(p) => {
            open.insert(p, Instant::now());
        }
        Change::Settled(p) => {
            open.remove(&p);
        }
    }
}

fn same_file(a: &Path, b: &Path) -> bool {
    a == b || a.canonicalize().is_ok_and(|a| a == b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_sees_size_changes_under_the_templates_folder() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("slack/ko")).unwrap();
        let file = dir.path().join("slack/ko/x.hbs");
        std::fs::write(&file, "a").unwrap();
        let a = snapshot(None, dir.path());
        assert_eq!(a.len(), 1);
        assert_eq!(a, snapshot(None, dir.path()));
        std::fs::write(&file, "ab").unwrap();
        assert_ne!(a, snapshot(None, dir.path()));
    }

    #[test]
    fn closes_settle_writes_and_reads_are_ignored() {
        let event = |kind| notify::Event::new(kind).add_path(PathBuf::from("/c.toml"));
        let closed = classify(event(EventKind::Access(AccessKind::Close(
            AccessMode::Write,
        ))));
        assert!(matches!(closed.as_slice(), [Change::Settled(_)]));
        assert!(classify(event(EventKind::Access(AccessKind::Open(AccessMode::Any)))).is_empty());
        let written = classify(event(EventKind::Modify(ModifyKind::Data(
            notify::event::DataChange::Content,
        ))));
        assert_eq!(
            matches!(written.as_slice(), [Change::Written(_)]),
            SEES_CLOSES
        );
        let renamed = classify(event(EventKind::Modify(ModifyKind::Name(
            notify::event::RenameMode::To,
        ))));
        assert!(matches!(renamed.as_slice(), [Change::Settled(_)]));
    }
}
