//! Picks the engine from the config: `store.url` (postgres://) selects PostgreSQL, otherwise
//! `store.path` is an SQLite file.

use std::sync::Arc;

use super::{Store, StoreError, postgres, sqlite};
use crate::config::StoreConfig;

/// Who opens the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `serve`: the store's consumer. SQLite: takes the one-server lock, checks the file
    /// (integrity, a truncated file, a replaced file) and releases claims left by a crashed
    /// run. PostgreSQL: creates or migrates the schema.
    Serve,
    /// A command-line tool working beside a running server: no lock, no claim changes.
    Tool,
}

pub async fn open(cfg: &StoreConfig, mode: Mode) -> Result<Arc<dyn Store>, StoreError> {
    match &cfg.url {
        Some(url) => Ok(Arc::new(
            postgres::PostgresStore::open(url.expose(), cfg, mode).await?,
        )),
        None => {
            let cfg = cfg.clone();
            let store = tokio::task::spawn_blocking(move || sqlite::SqliteStore::open(&cfg, mode))
                .await
                .map_err(|e| StoreError::Unavailable(format!("opening the store failed: {e}")))??;
            Ok(Arc::new(store))
        }
    }
}
