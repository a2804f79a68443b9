//! `bizrelay route PAYLOAD_FILE`: a dry run. Shows which routes each hook of a webhook body
//! takes and the exact body each destination would receive; for grouped routes, the group a
//! hook falls into and the digest that would be sent if the window closed now (made of this
//! file's hooks). Sends nothing, stores nothing.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::process::ExitCode;

use serde_json::{Value, json};

use super::OutputFormat;
use super::out;
use crate::bizmessage::{Hook, parse_hook, parse_post};
use crate::config::Loaded;
use crate::destination::DestinationKind;
use crate::digest;
use crate::dispatch;
use crate::route::route;
use crate::state::now_ms;
use crate::store::{CachedEnrichment, StoredHook};

/// One body that would be posted.
struct Planned {
    hook_id: Option<String>,
    route: String,
    destination: String,
    kind: DestinationKind,
    group: Option<Value>,
    hook_ids: Vec<Option<String>>,
    payload: String,
}

fn payload_value(kind: DestinationKind, payload: &str) -> Value {
    if kind.is_json() {
        serde_json::from_str(payload).unwrap_or_else(|_| Value::String(payload.to_string()))
    } else {
        Value::String(payload.to_string())
    }
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
    rt: &tokio::runtime::Runtime,
) -> ExitCode {
    let body = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) => {
            out::err(&format!(
                "error: cannot read {}: {e}",
                out::cell(&path.display().to_string())
            ));
            return ExitCode::from(2);
        }
    };
    let post = match parse_post(&body) {
        Ok(p) => p,
        Err(e) => {
            out::err(&format!(
                "error: {}: {e}",
                out::cell(&path.display().to_string())
            ));
            return ExitCode::from(2);
        }
    };
    let now = now_ms();
    let mut text = Vec::new();
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
            text.push(format!(
                "note: the enrichment cache cannot be read ({}); hooks are shown unenriched",
                out::cell(&e)
            ));
            HashMap::new()
        }
    };
    let mut planned = Vec::new();
    // Grouped hooks, by (route, group key), to preview their digests.
    let mut groups: BTreeMap<(String, String), Vec<StoredHook>> = BTreeMap::new();
    for (position, raw) in post.hooks.iter().enumerate() {
        let mut hook: Hook = match parse_hook(raw.get()) {
            Ok(h) => h,
            Err(e) => {
                text.push(format!("hook #{position}: rejected: {e}"));
                continue;
            }
        };
        let label = format!(
            "hook #{position} {} ({})",
            out::cell(hook.hook_id.as_deref().unwrap_or("(no hookId)")),
            hook.kind().as_str()
        );
        if let Some(lookup) = crate::enrich::lookup_for(enrich, &post.envelope, &hook) {
            let line = match cache.get(&lookup.request_id) {
                Some(c) => match c.for_recipient(Some(lookup.recipient_seq)) {
                    Some(fields) => {
                        let line = format!(
                            "{label}: enriched from the cache: template {}",
                            out::cell(fields.template_code.as_deref().unwrap_or("(none)"))
                        );
                        let mut stored = StoredHook {
                            row: position as i64,
                            received_at: now,
                            envelope: post.envelope.clone(),
                            raw: raw.get().to_string(),
                            sent_to: vec![],
                            failures: 0,
                            parsed: Some(hook.clone()),
                        };
                        crate::enrich::hold::attach(&mut stored, fields, enrich.show_content);
                        if let Some(h) = stored.parsed {
                            hook = h;
                        }
                        line
                    }
                    None => format!(
                        "{label}: NHN had no data for request {} (cached): routed without enrichment",
                        out::cell(&lookup.request_id)
                    ),
                },
                None => format!(
                    "{label}: request {} is not in the enrichment cache: `serve` would look it up \
                     (waiting at most {}); shown without enrichment",
                    out::cell(&lookup.request_id),
                    humantime::format_duration(enrich.wait)
                ),
            };
            text.push(line);
        }
        let routes = route(&loaded.routes, &post.envelope, &hook);
        if routes.is_empty() {
            text.push(format!("{label}: no route matches (counted, not relayed)"));
            continue;
        }
        for r in routes {
            if let Some(spec) = &r.group {
                let key = digest::group_key(spec, &post.envelope, &hook);
                text.push(format!(
                    "{label} → route `{}`: grouped into {} (digest below)",
                    out::cell(&r.name),
                    out::cell(&key)
                ));
                groups
                    .entry((r.name.clone(), key))
                    .or_default()
                    .push(StoredHook {
                        row: position as i64,
                        received_at: now,
                        envelope: post.envelope.clone(),
                        raw: raw.get().to_string(),
                        sent_to: vec![],
                        failures: 0,
                        parsed: None,
                    });
                continue;
            }
            for dest in &r.to {
                let Some(cfg) = loaded.config.destinations.get(dest) else {
                    continue;
                };
                let (payload, err) =
                    dispatch::render_hook(loaded, r, dest, cfg.kind, &post.envelope, &hook, now);
                let note = err
                    .map(|e| {
                        format!(
                            " (template failed, fallback shown: {})",
                            out::cell(&e.to_string())
                        )
                    })
                    .unwrap_or_default();
                text.push(format!(
                    "{label} → route `{}` → {} ({}){note}:",
                    out::cell(&r.name),
                    out::cell(dest),
                    cfg.kind.as_str()
                ));
                text.push(pretty(cfg.kind, &payload));
                planned.push(Planned {
                    hook_id: hook.hook_id.clone(),
                    route: r.name.clone(),
                    destination: dest.clone(),
                    kind: cfg.kind,
                    group: None,
                    hook_ids: vec![],
                    payload,
                });
            }
        }
    }
    for ((route_name, key), members) in &groups {
        let Some(r) = loaded.routes.iter().find(|r| &r.name == route_name) else {
            continue;
        };
        let Some(settings) = dispatch::group_settings(r) else {
            continue;
        };
        let ctx = dispatch::digest_of(loaded, route_name, key, settings.max_items, members);
        let ids: Vec<Option<String>> = members
            .iter()
            .map(|m| parse_hook(&m.raw).ok().and_then(|h| h.hook_id))
            .collect();
        for dest in &settings.to {
            let Some(cfg) = loaded.config.destinations.get(dest) else {
                continue;
            };
            let (payload, err) =
                dispatch::render_digest(loaded, &settings.template, &ctx, dest, cfg.kind);
            let note = err
                .map(|e| {
                    format!(
                        " (template failed, fallback shown: {})",
                        out::cell(&e.to_string())
                    )
                })
                .unwrap_or_default();
            text.push(format!(
                "digest of route `{}` group {} ({}, if the window closed now) → {} ({}){note}:",
                out::cell(route_name),
                out::cell(key),
                super::count(members.len(), "hook", "hooks"),
                out::cell(dest),
                cfg.kind.as_str()
            ));
            text.push(pretty(cfg.kind, &payload));
            planned.push(Planned {
                hook_id: None,
                route: route_name.clone(),
                destination: dest.clone(),
                kind: cfg.kind,
                group: serde_json::from_str(key).ok(),
                hook_ids: ids.clone(),
                payload,
            });
        }
    }
    match format {
        OutputFormat::Text => {
            for line in text {
                out::line(&line);
            }
        }
        OutputFormat::Json => {
            let items: Vec<Value> = planned
                .into_iter()
                .map(|p| {
                    let mut v = json!({
                        "hook_id": p.hook_id,
                        "route": p.route,
                        "destination": p.destination,
                        "payload": payload_value(p.kind, &p.payload),
                    });
                    if let Some(group) = p.group {
                        v["group"] = group;
                        v["hook_ids"] = json!(p.hook_ids);
                    }
                    v
                })
                .collect();
            out::json(&Value::Array(items));
        }
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
