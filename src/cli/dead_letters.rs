//! `bizrelay dead-letters list | replay | purge`: works on the store directly, also while the
//! server runs (SQLite serialises the writes; the running senders pick replays up within a
//! second).

use std::process::ExitCode;

use serde_json::json;

use super::out;
use super::{DeadLetterCommand, OutputFormat, PurgeWhich, Which};
use crate::bizmessage::parse_hook;
use crate::config::Loaded;
use crate::context::format_ms;
use crate::dispatch;
use crate::state::now_ms;
use crate::store::{DeadLetter, DeadSource, Selection, Store};

fn selection(which: &Which) -> Selection {
    if which.all {
        Selection::All
    } else if let Some(d) = &which.destination {
        Selection::Destination(d.clone())
    } else {
        Selection::Ids(which.ids.clone())
    }
}

fn time(t: Option<i64>) -> String {
    t.map_or_else(|| "-".to_string(), format_ms)
}

pub async fn run(loaded: &Loaded, cmd: DeadLetterCommand) -> ExitCode {
    let store = match super::open_store(loaded).await {
        Ok(s) => s,
        Err(code) => return code,
    };
    let result = match cmd {
        DeadLetterCommand::List {
            destination,
            format,
        } => list(store.as_ref(), loaded, destination.as_deref(), format).await,
        DeadLetterCommand::Replay { which, rerender } => {
            replay(store.as_ref(), loaded, &selection(&which), rerender).await
        }
        DeadLetterCommand::Purge { which } => purge(store.as_ref(), &which).await,
    };
    store.close().await;
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            out::err(&format!("error: {e}"));
            ExitCode::from(2)
        }
    }
}

async fn list(
    store: &dyn Store,
    loaded: &Loaded,
    destination: Option<&str>,
    format: OutputFormat,
) -> Result<(), crate::store::StoreError> {
    let mut letters = store.dead_letters(destination).await?;
    // Reasons are redacted when recorded; this also covers those an older version recorded.
    for d in &mut letters {
        if let Some(url) = loaded
            .config
            .destinations
            .get(&d.destination)
            .and_then(|c| c.url.as_ref())
            .map(|u| u.expose())
        {
            d.reason = crate::redact::redact_url_secrets(&d.reason, url);
        }
    }
    match format {
        OutputFormat::Json => {
            let items: Vec<_> = letters.iter().map(as_json).collect();
            out::json(&serde_json::Value::Array(items));
        }
        OutputFormat::Text => {
            if letters.is_empty() {
                out::line(&format!("no dead letters in {}", store.describe()));
                return Ok(());
            }
            out::line(&format!(
                "{:>6}  {:<16} {:<20} {:<14} {:>8}  {:<19}  {:<19}  REASON",
                "ID",
                "DESTINATION",
                "ROUTE",
                "HOOK",
                "ATTEMPTS",
                "FIRST ATTEMPT (KST)",
                "LAST ATTEMPT (KST)"
            ));
            for d in &letters {
                out::line(&format!(
                    "{:>6}  {:<16} {:<20} {:<14} {:>8}  {:<19}  {:<19}  {}",
                    d.id,
                    out::cell(&d.destination),
                    out::cell(&d.route),
                    out::cell(d.hook_id.as_deref().unwrap_or("(digest)")),
                    d.attempts,
                    time(d.first_attempt_at),
                    time(d.last_attempt_at),
                    out::cell(&d.reason)
                ));
            }
        }
    }
    Ok(())
}

fn as_json(d: &DeadLetter) -> serde_json::Value {
    json!({
        "id": d.id, "destination": d.destination, "route": d.route, "template": d.template,
        "hook_id": d.hook_id, "attempts": d.attempts,
        "first_attempt_at": d.first_attempt_at.map(format_ms), "last_attempt_at": d.last_attempt_at.map(format_ms),
        "last_status": d.last_status, "reason": d.reason,
    })
}

async fn replay(
    store: &dyn Store,
    loaded: &Loaded,
    sel: &Selection,
    rerender: bool,
) -> Result<(), crate::store::StoreError> {
    let sources = store.dead_sources(sel).await?;
    if sources.is_empty() {
        out::line(&format!("no matching dead letters in {}", store.describe()));
        return Ok(());
    }
    let mut items = Vec::new();
    for (letter, source) in sources {
        let payload = if rerender {
            rerendered(loaded, &letter, &source)
        } else {
            None
        };
        if rerender && payload.is_none() {
            out::line(&format!(
                "dead letter {}: cannot re-render (its destination or source is gone); replaying the stored body",
                letter.id
            ));
        }
        items.push((letter.id, payload));
    }
    let n = store.requeue(items, now_ms()).await?;
    out::line(&format!(
        "requeued {}",
        super::count(n, "dead letter", "dead letters")
    ));
    Ok(())
}

fn rerendered(loaded: &Loaded, letter: &DeadLetter, source: &DeadSource) -> Option<String> {
    let dest = loaded.config.destinations.get(&letter.destination)?;
    match source {
        DeadSource::Hook { hook } => {
            let parsed = parse_hook(&hook.raw).ok()?;
            let (body, err) = dispatch::render_hook_with(
                loaded,
                &letter.route,
                &letter.template,
                &letter.destination,
                dest.kind,
                &hook.envelope,
                &parsed,
                hook.received_at,
            );
            if let Some(e) = err {
                out::line(&format!(
                    "dead letter {}: {}; the fallback message will be sent",
                    letter.id,
                    out::cell(&e.to_string())
                ));
            }
            Some(body)
        }
        DeadSource::Digest { context } => {
            let ctx = serde_json::from_str(context).ok()?;
            let (body, err) = dispatch::render_digest(
                loaded,
                &letter.template,
                &ctx,
                &letter.destination,
                dest.kind,
            );
            if let Some(e) = err {
                out::line(&format!(
                    "dead letter {}: {}; the fallback message will be sent",
                    letter.id,
                    out::cell(&e.to_string())
                ));
            }
            Some(body)
        }
        DeadSource::Gone => None,
    }
}

async fn purge(store: &dyn Store, which: &PurgeWhich) -> Result<(), crate::store::StoreError> {
    let sel = which.selection(now_ms());
    let n = store.purge(&sel).await?;
    if n == 0 {
        out::line(&format!("no matching dead letters in {}", store.describe()));
        return Ok(());
    }
    out::line(&format!(
        "purged {}",
        super::count(n, "dead letter", "dead letters")
    ));
    Ok(())
}
