//! `bizrelay route PAYLOAD_FILE`: a dry run. Shows which routes each hook of a webhook body
//! takes and the exact body each destination would receive; for grouped routes, the group a
//! hook falls into and the digest that would be sent if the window closed now (made of this
//! file's hooks), and which live silence of the store would hold a hook back. Sends nothing,
//! stores nothing.
//!
//! Invariant: the plan is the dispatcher's own. The file's hooks become synthetic stored
//! hooks routed by [`dispatch::route_hooks`], and each group's digest is flushed by
//! [`dispatch::preview_flush`] (the dispatcher's `build_flush`), so rules such as one
//! delivery per (hook, destination) hold here exactly as in production. This module only
//! lays the plan out.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::process::ExitCode;

use serde_json::{Value, json};

use super::OutputFormat;
use super::out;
use crate::bizmessage::{Hook, parse_hook, parse_post};
use crate::config::Loaded;
use crate::destination::DestinationKind;
use crate::dispatch;
use crate::silence::{self, Silences};
use crate::state::now_ms;
use crate::store::{CachedEnrichment, NewDelivery, StoredHook, StoredSilence};

/// What the plan says about one hook of the file, in the order of the routes.
enum Step<'a> {
    Delivery(&'a NewDelivery, Option<&'a str>),
    Grouped {
        route: &'a str,
        key: &'a str,
    },
    AlreadyGiven {
        route: &'a str,
        destination: &'a str,
    },
    Counted(&'a crate::store::NewRateCount),
}

fn payload_value(kind: DestinationKind, payload: &str) -> Value {
    if kind.is_json() {
        serde_json::from_str(payload).unwrap_or_else(|_| Value::String(payload.to_string()))
    } else {
        Value::String(payload.to_string())
    }
}

fn kind_of(loaded: &Loaded, destination: &str) -> DestinationKind {
    loaded
        .config
        .destinations
        .get(destination)
        .map_or(crate::destination::console::KIND, |d| d.kind)
}

fn fallback_note(err: Option<&str>) -> String {
    err.map(|e| format!(" (template failed, fallback shown: {})", out::cell(e)))
        .unwrap_or_default()
}

/// The live silences of the store, for showing which would catch a hook; none (with a note on
/// stderr) when there is no store yet or it cannot be read: the dry run works without one.
pub async fn live_silences(loaded: &Loaded) -> Vec<StoredSilence> {
    let Ok(store) = crate::store::open(&loaded.config.store, crate::store::Mode::Tool).await else {
        return Vec::new();
    };
    let listed = store.silences(now_ms(), None).await;
    store.close().await;
    listed.unwrap_or_else(|e| {
        out::err(&format!(
            "note: cannot read the silences ({e}); shown as if there were none"
        ));
        Vec::new()
    })
}

/// What the store's enrichment cache knows of these requestIds (empty when enrichment is off
/// or the store cannot be read: then the hooks show as they would be routed without it).
async fn cached(
    loaded: &Loaded,
    request_ids: Vec<String>,
    now: i64,
) -> Result<HashMap<String, CachedEnrichment>, String> {
    if request_ids.is_empty() {
        return Ok(HashMap::new());
    }
    let store = crate::store::open(&loaded.config.store, crate::store::Mode::Tool)
        .await
        .map_err(|e| e.to_string())?;
    let rows = store.cached_enrichments(request_ids, now).await;
    store.close().await;
    Ok(rows
        .map_err(|e| e.to_string())?
        .into_iter()
        .map(|c| (c.request_id.clone(), c))
        .collect())
}

pub fn run(
    loaded: &Loaded,
    path: &Path,
    format: OutputFormat,
    stored_silences: &[StoredSilence],
    rt: &tokio::runtime::Runtime,
) -> ExitCode {
    let shown = out::cell(&path.display().to_string()).into_owned();
    let body = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) => {
            out::err(&format!("error: cannot read {shown}: {e}"));
            return ExitCode::from(2);
        }
    };
    let post = match parse_post(&body) {
        Ok(p) => p,
        Err(e) => {
            out::err(&format!("error: {shown}: {e}"));
            return ExitCode::from(2);
        }
    };
    let now = now_ms();
    let silences = Silences::compile(stored_silences);
    let mut notes = Vec::new();
    // Enrichment from the cache only: a dry run never calls NHN.
    let enrich = &loaded.config.enrich;
    let needed: Vec<String> = post
        .hooks
        .iter()
        .filter_map(|raw| parse_hook(raw.get()).ok())
        .filter_map(|h| crate::enrich::lookup_for(enrich, &post.envelope, &h))
        .map(|l| l.request_id)
        .collect();
    let cache = match rt.block_on(cached(loaded, needed, now)) {
        Ok(c) => c,
        Err(e) => {
            notes.push(format!(
                "note: the enrichment cache cannot be read ({}); hooks are shown unenriched",
                out::cell(&e)
            ));
            HashMap::new()
        }
    };
    // Each hook of the file as the dispatcher would see it once stored: its row is its
    // position in the file (enriched as the cache allows).
    let mut parsed: Vec<(usize, Result<Hook, String>)> = Vec::new();
    let mut enrichment: BTreeMap<usize, String> = BTreeMap::new();
    let mut stored = Vec::new();
    for (position, raw) in post.hooks.iter().enumerate() {
        match parse_hook(raw.get()) {
            Ok(hook) => {
                let mut one = StoredHook {
                    row: position as i64,
                    received_at: now,
                    envelope: post.envelope.clone().into(),
                    raw: raw.get().into(),
                    sent_to: vec![],
                    failures: 0,
                    parsed: Some(hook.clone()),
                };
                if let Some(lookup) = crate::enrich::lookup_for(enrich, &post.envelope, &hook) {
                    let line = match cache.get(&lookup.request_id) {
                        Some(c) => match c.for_recipient(Some(lookup.recipient_seq)) {
                            Some(fields) => {
                                let line = format!(
                                    "enriched from the cache: template {}",
                                    out::cell(fields.template_code.as_deref().unwrap_or("(none)"))
                                );
                                crate::enrich::hold::attach(&mut one, fields, enrich.show_content);
                                line
                            }
                            None => format!(
                                "NHN had no data for request {} (cached): routed without enrichment",
                                out::cell(&lookup.request_id)
                            ),
                        },
                        None => format!(
                            "request {} is not in the enrichment cache: `serve` would look it up \
                             (waiting at most {}); shown without enrichment",
                            out::cell(&lookup.request_id),
                            humantime::format_duration(enrich.wait)
                        ),
                    };
                    enrichment.insert(position, line);
                }
                let hook = one.parsed.clone().unwrap_or(hook);
                stored.push(one);
                parsed.push((position, Ok(hook)));
            }
            Err(e) => parsed.push((position, Err(e.to_string()))),
        }
    }
    let (batch, report) = dispatch::route_hooks(loaded, &stored, now);
    let fell_back: BTreeMap<usize, &str> = report
        .fell_back
        .iter()
        .map(|(i, e)| (*i, e.as_str()))
        .collect();
    let route_index = |name: &str| loaded.routes.iter().position(|r| r.name == name);

    let mut text = notes;
    let mut items = Vec::new();
    for (position, hook) in &parsed {
        let row = *position as i64;
        let hook = match hook {
            Ok(h) => h,
            Err(e) => {
                text.push(format!("hook #{position}: rejected: {}", out::cell(e)));
                items.push(json!({
                    "position": position, "hook_id": null, "route": null, "destination": null,
                    "payload": null, "reason": format!("rejected: {e}"),
                }));
                continue;
            }
        };
        let label = format!(
            "hook #{position} {} ({})",
            out::cell(hook.hook_id.as_deref().unwrap_or("(no hookId)")),
            hook.kind().as_str()
        );
        if let Some(line) = enrichment.get(position) {
            text.push(format!("{label}: {line}"));
        }
        let routed = batch.hooks.iter().any(|h| h.row == row && h.routed);
        if !routed {
            text.push(format!("{label}: no route matches (counted, not relayed)"));
            items.push(json!({
                "position": position, "hook_id": hook.hook_id, "route": null,
                "destination": null, "payload": null, "reason": "no route matches",
            }));
            continue;
        }
        if let Some(id) = silences.catching(&post.envelope, hook, now)
            && let Some(s) = stored_silences.iter().find(|s| s.id == id)
        {
            text.push(format!(
                "{label}: silenced by silence {id} ({} — {}) until {} KST: stored and counted, not sent while it lasts; the bodies below are what it would get",
                out::cell(&silence::describe(&s.matchers)),
                out::cell(&s.comment),
                crate::context::format_ms(s.ends_at)
            ));
        }
        let mut steps: Vec<(Option<usize>, Step<'_>)> = Vec::new();
        for (i, d) in batch.deliveries.iter().enumerate() {
            if d.hook_row == Some(row) {
                let err = fell_back.get(&i).copied();
                steps.push((route_index(&d.route), Step::Delivery(d, err)));
            }
        }
        for m in batch.members.iter().filter(|m| m.hook_row == row) {
            steps.push((
                route_index(&m.route),
                Step::Grouped {
                    route: &m.route,
                    key: &m.group_key,
                },
            ));
        }
        for c in batch.rates.iter().filter(|c| c.hook_row == row) {
            steps.push((route_index(&c.route), Step::Counted(c)));
        }
        for s in report.already_given.iter().filter(|s| s.row == row) {
            steps.push((
                route_index(&s.route),
                Step::AlreadyGiven {
                    route: &s.route,
                    destination: &s.destination,
                },
            ));
        }
        // Stable: within one route, deliveries keep the order of its destinations.
        steps.sort_by_key(|(i, _)| *i);
        for (_, step) in steps {
            match step {
                Step::Delivery(d, err) => {
                    let kind = kind_of(loaded, &d.destination);
                    text.push(format!(
                        "{label} → route `{}` → {} ({}){}:",
                        out::cell(&d.route),
                        out::cell(&d.destination),
                        kind.as_str(),
                        fallback_note(err)
                    ));
                    text.push(pretty(kind, &d.payload));
                    items.push(json!({
                        "position": position, "hook_id": hook.hook_id, "route": d.route,
                        "destination": d.destination, "payload": payload_value(kind, &d.payload),
                    }));
                }
                Step::Grouped { route, key } => text.push(format!(
                    "{label} → route `{}`: grouped into {} (digest below)",
                    out::cell(route),
                    out::cell(key)
                )),
                Step::Counted(c) => {
                    let outcome = if c.silenced {
                        format!("{} (silenced: counted apart, not in the ratio)", c.outcome)
                    } else {
                        c.outcome.clone()
                    };
                    text.push(format!(
                        "{label} → route `{}`: counted as {outcome} for rate series {} (window {} to {} KST); its alerts go to {}",
                        out::cell(&c.route),
                        out::cell(&c.series_key),
                        crate::context::format_ms(c.window_start),
                        crate::context::format_ms(c.window_start + c.settings.window_ms),
                        out::cell(&c.settings.to.join(", "))
                    ));
                    items.push(json!({
                        "position": position, "hook_id": hook.hook_id, "route": c.route,
                        "destination": null, "payload": null,
                        "rate": {"series": serde_json::from_str::<Value>(&c.series_key).unwrap_or(Value::Null),
                                 "outcome": c.outcome, "silenced": c.silenced},
                    }));
                }
                Step::AlreadyGiven { route, destination } => {
                    let by = batch
                        .deliveries
                        .iter()
                        .find(|d| d.hook_row == Some(row) && d.destination == destination)
                        .map_or("an earlier route", |d| d.route.as_str());
                    text.push(format!(
                        "{label} → route `{}` → {}: already given by route `{}` (one delivery per hook and destination)",
                        out::cell(route),
                        out::cell(destination),
                        out::cell(by)
                    ));
                }
            }
        }
    }

    // Each group's digest, as the dispatcher would flush it if the window closed now.
    let mut groups: BTreeMap<(&str, &str), Vec<StoredHook>> = BTreeMap::new();
    for m in &batch.members {
        if let Some(s) = stored.iter().find(|s| s.row == m.hook_row) {
            groups
                .entry((m.route.as_str(), m.group_key.as_str()))
                .or_default()
                .push(s.clone());
        }
    }
    for ((route_name, key), members) in &groups {
        let Some(r) = loaded.routes.iter().find(|r| r.name == *route_name) else {
            continue;
        };
        let Some((flush, flush_report)) = dispatch::preview_flush(loaded, r, key, members, now)
        else {
            continue;
        };
        let errs: BTreeMap<usize, &str> = flush_report
            .fell_back
            .iter()
            .map(|(i, e)| (*i, e.as_str()))
            .collect();
        let ids: Vec<Option<String>> = members
            .iter()
            .map(|m| {
                m.parsed
                    .as_ref()
                    .and_then(|h| h.hook_id.as_deref().map(String::from))
            })
            .collect();
        for (i, d) in flush.deliveries.iter().enumerate() {
            let kind = kind_of(loaded, &d.destination);
            text.push(format!(
                "digest of route `{}` group {} ({}, if the window closed now) → {} ({}){}:",
                out::cell(route_name),
                out::cell(key),
                super::count(members.len(), "hook", "hooks"),
                out::cell(&d.destination),
                kind.as_str(),
                fallback_note(errs.get(&i).copied())
            ));
            text.push(pretty(kind, &d.payload));
            items.push(json!({
                "hook_id": null, "route": route_name, "destination": d.destination,
                "payload": payload_value(kind, &d.payload),
                "group": serde_json::from_str::<Value>(key).unwrap_or(Value::Null),
                "hook_ids": ids,
            }));
        }
    }
    match format {
        OutputFormat::Text => {
            for line in text {
                out::line(&line);
            }
        }
        OutputFormat::Json => out::json(&Value::Array(items)),
    }
    ExitCode::SUCCESS
}

fn pretty(kind: DestinationKind, payload: &str) -> String {
    if kind.is_json() {
        serde_json::from_str::<Value>(payload)
            .and_then(|v| serde_json::to_string_pretty(&v))
            .unwrap_or_else(|_| payload.to_string())
    } else {
        payload.to_string()
    }
}
