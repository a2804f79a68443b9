//! `bizrelay threads list [--destination D] [--format json]` and `bizrelay threads forget KEY`:
//! the Slack threads of `slack_bot` destinations, read from (and dropped in) the store
//! directly, also while the server runs. A forgotten key's next event posts a new root.

use std::process::ExitCode;

use serde_json::json;

use super::{OutputFormat, ThreadCommand, count, out};
use crate::config::Loaded;
use crate::context::format_ms;
use crate::store::{Store, StoreError, ThreadKey};

pub async fn run(loaded: &Loaded, cmd: ThreadCommand) -> ExitCode {
    let store = match super::open_store(loaded).await {
        Ok(s) => s,
        Err(code) => return code,
    };
    let result = match cmd {
        ThreadCommand::List {
            destination,
            format,
        } => list(store.as_ref(), destination.as_deref(), format).await,
        ThreadCommand::Forget { key } => forget(store.as_ref(), &key).await,
    };
    store.close().await;
    match result {
        Ok(code) => code,
        Err(e) => {
            out::err(&format!("error: {e}"));
            ExitCode::from(2)
        }
    }
}

async fn list(
    store: &dyn Store,
    destination: Option<&str>,
    format: OutputFormat,
) -> Result<ExitCode, StoreError> {
    let threads = store.threads(destination).await?;
    if format == OutputFormat::Json {
        let list: Vec<_> = threads
            .iter()
            .map(|t| {
                json!({"key": t.key.display(), "destination": t.key.destination,
                    "sender_key": t.key.sender_key, "template_code": t.key.template_code,
                    "channel": t.channel, "root_ts": t.root_ts, "status": t.status,
                    "status_at": t.status_at, "comments_shown": t.shown.len(),
                    "created_at": format_ms(t.created_at), "updated_at": format_ms(t.updated_at)})
            })
            .collect();
        out::json(&json!(list));
        return Ok(ExitCode::SUCCESS);
    }
    if threads.is_empty() {
        out::line("no Slack threads");
        return Ok(ExitCode::SUCCESS);
    }
    out::line(&format!(
        "{} (key = destination/senderKey/templateCode):",
        count(threads.len(), "thread", "threads")
    ));
    for t in &threads {
        let label = crate::bizmessage::status_label(&t.status).map_or("", |(en, _)| en);
        out::line(&format!(
            "{}  channel {} root {}  {} {}  updated {}",
            out::cell(&t.key.display()),
            out::cell(&t.channel),
            out::cell(&t.root_ts),
            out::cell(&t.status),
            label,
            format_ms(t.updated_at)
        ));
    }
    Ok(ExitCode::SUCCESS)
}

async fn forget(store: &dyn Store, key: &str) -> Result<ExitCode, StoreError> {
    let Some(parsed) = ThreadKey::parse(key) else {
        out::err(&format!(
            "error: `{}` is not a thread key; write destination/senderKey/templateCode as `bizrelay threads list` shows it",
            out::cell(key)
        ));
        return Ok(ExitCode::from(2));
    };
    if store.forget_thread(&parsed).await? {
        out::line(&format!(
            "forgot thread {}; its next event starts a new root message",
            out::cell(key)
        ));
        Ok(ExitCode::SUCCESS)
    } else {
        out::err(&format!(
            "error: no thread {} (see `bizrelay threads list`)",
            out::cell(key)
        ));
        Ok(ExitCode::from(1))
    }
}
