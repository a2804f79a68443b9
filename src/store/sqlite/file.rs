//! The store file itself: refusing a truncated or replaced file, the one-server lock, and
//! noticing when the path no longer names the file being written.
//!
//! Invariants:
//! - The lock is an `flock` on the database file itself (not a side file that can be deleted,
//!   and the same through any symlink, since it follows the inode). A process also remembers
//!   the files it serves, so a second store in the same process is refused without opening
//!   (and later closing) a descriptor of the file: closing any descriptor of a file drops the
//!   process's POSIX locks on it, SQLite's included.
//! - The lock is released only after every SQLite connection to the file is closed.

use std::collections::HashSet;
use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::store::StoreError;

/// Device and inode: what a path names.
pub type Identity = (u64, u64);

/// The files this process serves.
static SERVED: Mutex<Option<HashSet<Identity>>> = Mutex::new(None);

pub fn identity(path: &Path) -> Option<Identity> {
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

fn sibling(path: &Path, suffix: &str) -> PathBuf {
    PathBuf::from(format!("{}{suffix}", path.display()))
}

/// Refuses a zero-length database file that still has the files of an earlier run beside it:
/// the data was truncated or replaced, and opening it would start an empty store over it.
pub fn refuse_truncated(path: &Path) -> Result<(), StoreError> {
    let Ok(meta) = std::fs::metadata(path) else {
        return Ok(());
    };
    if meta.len() > 0 {
        return Ok(());
    }
    let leftovers: Vec<String> = ["-wal", "-shm", ".lock"]
        .iter()
        .map(|s| sibling(path, s))
        .filter(|p| p.exists())
        .map(|p| p.display().to_string())
        .collect();
    if leftovers.is_empty() {
        return Ok(());
    }
    Err(StoreError::Refused(format!(
        "the store file {} is empty, but files of an earlier run are beside it ({}): the \
         database was truncated or replaced. Restore it from a backup (see docs/operations.md); \
         to start a new, empty store instead, move those files away",
        path.display(),
        leftovers.join(", ")
    )))
}

/// The one-server lock on the database file; released on drop.
#[derive(Debug)]
pub struct ServeLock {
    file: File,
    identity: Identity,
}

impl ServeLock {
    /// Locks the file at `path` (creating it if missing) or refuses when another server holds
    /// it.
    pub fn take(path: &Path) -> Result<ServeLock, StoreError> {
        let in_use = || {
            StoreError::Refused(format!(
                "another bizrelay is already serving the store {} (one server per SQLite store; \
                 use PostgreSQL for several replicas)",
                path.display()
            ))
        };
        let io = |e: std::io::Error| {
            StoreError::Unavailable(format!("cannot lock the store {}: {e}", path.display()))
        };
        if let Some(id) = identity(path)
            && served().contains(&id)
        {
            return Err(in_use());
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(path)
            .map_err(io)?;
        let meta = file.metadata().map_err(io)?;
        let identity = (meta.dev(), meta.ino());
        let mut set = SERVED.lock().unwrap_or_else(|e| e.into_inner());
        let set = set.get_or_insert_with(HashSet::new);
        if set.contains(&identity) {
            // Opened through another path (a symlink) in this process: keep the descriptor
            // open forever rather than drop the other store's POSIX locks by closing it.
            std::mem::forget(file);
            return Err(in_use());
        }
        match file.try_lock() {
            Ok(()) => {
                set.insert(identity);
                Ok(ServeLock { file, identity })
            }
            Err(std::fs::TryLockError::WouldBlock) => Err(in_use()),
            Err(std::fs::TryLockError::Error(e)) => Err(io(e)),
        }
    }

    pub fn identity(&self) -> Identity {
        self.identity
    }
}

impl Drop for ServeLock {
    fn drop(&mut self) {
        let _ = self.file.unlock();
        let mut set = SERVED.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(set) = set.as_mut() {
            set.remove(&self.identity);
        }
    }
}

fn served() -> HashSet<Identity> {
    SERVED
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone()
        .unwrap_or_default()
}

/// Whether `path` still names the file with `identity` (it was not deleted or replaced).
pub fn still_names(path: &Path, identity: Identity) -> Result<(), StoreError> {
    match self::identity(path) {
        Some(id) if id == identity => Ok(()),
        Some(_) => Err(StoreError::Refused(format!(
            "the store file {} was replaced while serving: new hooks are refused (503) so none \
             is acknowledged into a file that is not the store; restart bizrelay to use the new \
             file, or put the old one back",
            path.display()
        ))),
        None => Err(StoreError::Refused(format!(
            "the store file {} was deleted while serving: new hooks are refused (503) so none is \
             acknowledged into a deleted file; restore it from a backup and restart bizrelay",
            path.display()
        ))),
    }
}
