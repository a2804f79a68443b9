//! `bizrelay reroute` and `bizrelay quarantine list`: put stored hooks back in the inbox so
//! the running dispatcher (of any replica) routes them with the current config, and show the
//! hooks held back because routing them failed. Both work beside a running server.

use std::process::ExitCode;

use serde_json::json;

use super::{OutputFormat, RerouteWhich, out};
use crate::bizmessage::parse_hook;
use crate::config::Loaded;
use crate::context::format_ms;
use crate::state::now_ms;
use crate::store::{HookState, Reroute};
use crate::text;

/// Quarantined hooks listed at most.
const LIST_LIMIT: usize = 1000;

pub async fn run(loaded: &Loaded, which: RerouteWhich) -> ExitCode {
    let store = match super::open_store(loaded).await {
        Ok(s) => s,
        Err(code) => return code,
    };
    let now = now_ms();
    let (selection, what) = if let Some(age) = which.since {
        (
            Reroute::Since(now - i64::try_from(age.as_millis()).unwrap_or(i64::MAX)),
            format!("received in the last {}", humantime::format_duration(age)),
        )
    } else if which.quarantined {
        (Reroute::Quarantined, "quarantined".to_string())
    } else {
        (Reroute::Unrouted, "that matched no route".to_string())
    };
    let result = store.reroute(selection, now).await;
    store.close().await;
    match result {
        Ok(0) => {
            out::line(&format!("no stored hooks {what} in {}", store.describe()));
            ExitCode::SUCCESS
        }
        Ok(n) => {
            out::line(&format!(
                "{} {what} will be routed again by the running server (destinations they already reached are skipped)",
                super::count(n, "stored hook", "stored hooks")
            ));
            ExitCode::SUCCESS
        }
        Err(e) => {
            out::err(&format!("error: {e}"));
            ExitCode::from(2)
        }
    }
}

pub async fn quarantine_list(loaded: &Loaded, format: OutputFormat) -> ExitCode {
    let store = match super::open_store(loaded).await {
        Ok(s) => s,
        Err(code) => return code,
    };
    let listed = store.hooks_in(HookState::Quarantined, LIST_LIMIT).await;
    store.close().await;
    let hooks = match listed {
        Ok(h) => h,
        Err(e) => {
            out::err(&format!("error: {e}"));
            return ExitCode::from(2);
        }
    };
    match format {
        OutputFormat::Json => {
            let items: Vec<_> = hooks
                .iter()
                .map(|h| {
                    let parsed = parse_hook(&h.hook.raw).ok();
                    json!({
                        "row": h.hook.row,
                        "received_at": format_ms(h.hook.received_at),
                        "hook_id": parsed.as_ref().and_then(|p| p.hook_id.clone()),
                        "kind": parsed.as_ref().map(|p| p.kind().as_str()),
                        "failures": h.hook.failures,
                        "reason": h.reason,
                    })
                })
                .collect();
            out::json(&serde_json::Value::Array(items));
        }
        OutputFormat::Text => {
            if hooks.is_empty() {
                out::line(&format!("no quarantined hooks in {}", store.describe()));
                return ExitCode::SUCCESS;
            }
            out::line(&format!(
                "{:>8}  {:<19}  {:<24} {:>8}  REASON",
                "ROW", "RECEIVED (KST)", "HOOK", "FAILURES"
            ));
            for h in &hooks {
                let id = parse_hook(&h.hook.raw)
                    .ok()
                    .and_then(|p| p.hook_id)
                    .unwrap_or_else(|| "(no hookId)".into());
                out::line(&format!(
                    "{:>8}  {:<19}  {:<24} {:>8}  {}",
                    h.hook.row,
                    format_ms(h.hook.received_at),
                    text::truncate(&out::cell(&id), 24),
                    h.hook.failures,
                    out::cell(h.reason.as_deref().unwrap_or("-"))
                ));
            }
            out::line("route them again with: bizrelay reroute --quarantined");
        }
    }
    ExitCode::SUCCESS
}
