//! `bizrelay silence add|list|expire`: silences written straight into the store, beside a
//! running server (of any replica): every dispatcher reads them within about a second
//! ([`crate::silence::REFRESH`]). The HTTP API (`/api/silences`) applies the same checks.

use std::process::ExitCode;
use std::time::Duration;

use super::{OutputFormat, out};
use crate::config::Loaded;
use crate::context::format_ms;
use crate::silence;
use crate::state::now_ms;
use crate::store::Expired;

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

pub async fn add(
    loaded: &Loaded,
    matchers: &[String],
    duration: Duration,
    comment: &str,
    author: Option<&str>,
) -> ExitCode {
    let mut parsed = Vec::new();
    for m in matchers {
        match silence::parse_matcher(m) {
            Ok(m) => parsed.push(m),
            Err(e) => {
                out::err(&format!("error: {e}"));
                return ExitCode::from(2);
            }
        }
    }
    let now = now_ms();
    let new = match silence::new_silence(parsed, millis(duration), comment, author, now) {
        Ok(s) => s,
        Err(e) => {
            out::err(&format!("error: {e}"));
            return ExitCode::from(2);
        }
    };
    let store = match super::open_store(loaded).await {
        Ok(s) => s,
        Err(code) => return code,
    };
    let added = store.add_silence(new).await;
    store.close().await;
    match added {
        Ok(s) => {
            out::line(&format!(
                "silence {} added: {} until {} KST (the running server applies it within a second)",
                s.id,
                out::cell(&silence::describe(&s.matchers)),
                format_ms(s.ends_at)
            ));
            out::line(&format!(
                "end it early with: bizrelay silence expire {}",
                s.id
            ));
            ExitCode::SUCCESS
        }
        Err(e) => {
            out::err(&format!("error: {e}"));
            ExitCode::from(2)
        }
    }
}

pub async fn list(loaded: &Loaded, expired: Option<Duration>, format: OutputFormat) -> ExitCode {
    let store = match super::open_store(loaded).await {
        Ok(s) => s,
        Err(code) => return code,
    };
    let now = now_ms();
    let listed = store
        .silences(now, expired.map(|d| now.saturating_sub(millis(d))))
        .await;
    store.close().await;
    let silences = match listed {
        Ok(s) => s,
        Err(e) => {
            out::err(&format!("error: {e}"));
            return ExitCode::from(2);
        }
    };
    match format {
        OutputFormat::Json => out::json(&serde_json::Value::Array(
            silences.iter().map(|s| silence::to_json(s, now)).collect(),
        )),
        OutputFormat::Text => {
            if silences.is_empty() {
                out::line(&format!("no silences in {}", store.describe()));
                return ExitCode::SUCCESS;
            }
            out::line(&format!(
                "{:>6}  {:<7}  {:<19}  {:<19}  {:<12}  MATCHERS — COMMENT",
                "ID", "STATUS", "STARTS (KST)", "ENDS (KST)", "AUTHOR"
            ));
            for s in &silences {
                out::line(&format!(
                    "{:>6}  {:<7}  {:<19}  {:<19}  {:<12}  {} — {}",
                    s.id,
                    silence::status(s, now),
                    format_ms(s.starts_at),
                    format_ms(s.ends_at),
                    crate::text::truncate(&out::cell(s.author.as_deref().unwrap_or("-")), 12),
                    out::cell(&silence::describe(&s.matchers)),
                    out::cell(&s.comment)
                ));
            }
        }
    }
    ExitCode::SUCCESS
}

pub async fn expire(loaded: &Loaded, id: i64) -> ExitCode {
    let store = match super::open_store(loaded).await {
        Ok(s) => s,
        Err(code) => return code,
    };
    let result = store.expire_silence(id, now_ms()).await;
    store.close().await;
    match result {
        Ok(Expired::Now) => {
            out::line(&format!(
                "silence {id} expired: matching hooks are sent again from now on (those it held back stay stored: `bizrelay reroute --since` sends them)"
            ));
            ExitCode::SUCCESS
        }
        Ok(Expired::Already(at)) => {
            out::line(&format!(
                "silence {id} had already ended at {} KST",
                format_ms(at)
            ));
            ExitCode::SUCCESS
        }
        Ok(Expired::Unknown) => {
            out::err(&format!(
                "error: there is no silence {id} (see `bizrelay silence list --expired 7d`)"
            ));
            ExitCode::from(1)
        }
        Err(e) => {
            out::err(&format!("error: {e}"));
            ExitCode::from(2)
        }
    }
}
