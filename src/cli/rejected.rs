//! `bizrelay rejected list | show | purge`: the hooks of a POST that could not be understood
//! (kept in the store's `rejected` table with why), so an operator reaches them without
//! `sqlite3`. Works beside a running server.
//!
//! Invariant: recipient numbers are masked when shown unless `privacy.mask_recipient = false`
//! (ingest masks them before storing; masking again here covers rows an older version stored).

use std::process::ExitCode;

use serde_json::json;

use super::{OutputFormat, RejectedCommand, count, out};
use crate::config::Loaded;
use crate::context::format_ms;
use crate::mask::mask_phone_like;
use crate::state::now_ms;
use crate::store::{RejectedHook, Selection, Store, StoreError};
use crate::text;

/// Characters of a rejected hook shown in `list`.
const EXCERPT: usize = 60;

pub async fn run(loaded: &Loaded, cmd: RejectedCommand) -> ExitCode {
    let store = match super::open_store(loaded).await {
        Ok(s) => s,
        Err(code) => return code,
    };
    let mask = loaded.config.privacy.mask_recipient;
    let result = match cmd {
        RejectedCommand::List { format } => list(store.as_ref(), mask, format).await,
        RejectedCommand::Show { id, format } => show(store.as_ref(), mask, id, format).await,
        RejectedCommand::Purge { which } => purge(store.as_ref(), &which).await,
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

fn shown(raw: &str, mask: bool) -> String {
    if mask {
        mask_phone_like(raw)
    } else {
        raw.to_string()
    }
}

fn as_json(r: &RejectedHook, mask: bool) -> serde_json::Value {
    json!({
        "id": r.id, "received_at": format_ms(r.received_at), "hooks_id": r.hooks_id,
        "position": r.position, "reason": r.reason, "raw": shown(&r.raw, mask),
    })
}

async fn list(store: &dyn Store, mask: bool, format: OutputFormat) -> Result<ExitCode, StoreError> {
    let hooks = store.rejected(&Selection::All).await?;
    match format {
        OutputFormat::Json => {
            let items: Vec<_> = hooks.iter().map(|r| as_json(r, mask)).collect();
            out::json(&serde_json::Value::Array(items));
        }
        OutputFormat::Text => {
            if hooks.is_empty() {
                out::line(&format!("no rejected hooks in {}", store.describe()));
                return Ok(ExitCode::SUCCESS);
            }
            out::line(&format!(
                "{:>6}  {:<19}  {:<26} {:>4}  {:<36}  EXCERPT",
                "ID", "RECEIVED (KST)", "POST (hooksId)", "#", "REASON"
            ));
            for r in &hooks {
                out::line(&format!(
                    "{:>6}  {:<19}  {:<26} {:>4}  {:<36}  {}",
                    r.id,
                    format_ms(r.received_at),
                    text::truncate(&out::cell(r.hooks_id.as_deref().unwrap_or("-")), 26),
                    r.position,
                    text::truncate(&out::cell(&r.reason), 36),
                    text::truncate(&out::cell(&shown(&r.raw, mask)), EXCERPT)
                ));
            }
            out::line(&format!(
                "{} in {}; see one whole with: bizrelay rejected show ID",
                count(hooks.len(), "rejected hook", "rejected hooks"),
                store.describe()
            ));
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn show(
    store: &dyn Store,
    mask: bool,
    id: i64,
    format: OutputFormat,
) -> Result<ExitCode, StoreError> {
    let found = store.rejected(&Selection::Ids(vec![id])).await?;
    let Some(r) = found.first() else {
        out::err(&format!(
            "error: no rejected hook {id} in {} (list them with: bizrelay rejected list)",
            store.describe()
        ));
        return Ok(ExitCode::from(1));
    };
    match format {
        OutputFormat::Json => out::json(&as_json(r, mask)),
        OutputFormat::Text => {
            let raw = shown(&r.raw, mask);
            let pretty = serde_json::from_str::<serde_json::Value>(&raw)
                .and_then(|v| serde_json::to_string_pretty(&v))
                .unwrap_or(raw);
            out::line(&format!(
                "rejected hook {}: hook #{} of POST {}, received {} KST\nreason: {}\n{pretty}",
                r.id,
                r.position,
                out::cell(r.hooks_id.as_deref().unwrap_or("(no hooksId)")),
                format_ms(r.received_at),
                out::cell(&r.reason),
            ));
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn purge(store: &dyn Store, which: &super::PurgeWhich) -> Result<ExitCode, StoreError> {
    let sel = which.selection(now_ms());
    let n = store.purge_rejected(&sel).await?;
    if n == 0 {
        out::line(&format!(
            "no matching rejected hooks in {}",
            store.describe()
        ));
    } else {
        out::line(&format!(
            "purged {}",
            count(n, "rejected hook", "rejected hooks")
        ));
    }
    Ok(ExitCode::SUCCESS)
}
