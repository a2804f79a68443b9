//! Routing and rendering decisions, pure: which deliveries and group memberships a batch of
//! stored hooks produces, and what a due digest becomes. No I/O, so tests and `bizrelay route`
//! run the exact code the dispatcher runs.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use crate::bizmessage::{Envelope, Hook, HookBody, parse_hook};
use crate::config::Loaded;
use crate::context::{Meta, hook_context};

use super::fallback::fallback_info;
use crate::destination::slack_bot::thread::ThreadEvent;
use crate::destination::{DestinationKind, FallbackInfo};
use crate::digest::{self, DigestInput, Member, Tally};
use crate::locale::Locale;
use crate::render::RenderError;
use crate::route::{Route, route};
use crate::silence::Silences;
use crate::store::{
    DispatchBatch, DueGroup, Flush, GroupSettings, HookOutcome, NewDelivery, NewMember,
    SilencedMember, StoredHook,
};

/// What routing a batch did, for logs and metrics.
#[derive(Debug, Default)]
pub struct Report {
    pub matches: BTreeMap<String, u64>,
    pub unrouted: u64,
    /// Stored hooks that no longer parse (only a format change could cause it): they are
    /// quarantined, never skipped silently.
    pub unreadable: Vec<(i64, String)>,
    pub fallbacks: Vec<(DestinationKind, String, RenderError)>,
    /// Destinations that got new deliveries (their senders are woken).
    pub touched: BTreeSet<String>,
    /// Indexes (into the batch's or flush's deliveries) of the bodies that are the fallback
    /// message, with why the template failed (the dry run names them).
    pub fell_back: Vec<(usize, String)>,
    /// Destinations a matching route named but the hook already had (one delivery per hook
    /// and destination), so the dry run can say why a route sent nothing.
    pub already_given: Vec<Skip>,
    /// Hooks an active silence held back from chat, by route.
    pub silenced: BTreeMap<String, u64>,
}

/// A route's destination left out because the hook already had it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skip {
    pub row: i64,
    pub route: String,
    pub destination: String,
}

impl Report {
    /// Adds another report's counts to this one.
    pub fn absorb(&mut self, other: Report) {
        for (route, n) in other.matches {
            *self.matches.entry(route).or_default() += n;
        }
        self.unrouted += other.unrouted;
        self.unreadable.extend(other.unreadable);
        self.fallbacks.extend(other.fallbacks);
        self.touched.extend(other.touched);
        // Indexes refer to the other batch's deliveries: they do not survive a merge.
        self.already_given.extend(other.already_given);
        for (route, n) in other.silenced {
            *self.silenced.entry(route).or_default() += n;
        }
    }
}

/// The locale of a destination's templates (English for one no longer configured).
fn locale_of(loaded: &Loaded, destination: &str) -> Locale {
    loaded
        .config
        .destinations
        .get(destination)
        .map_or(Locale::En, |d| loaded.config.locale_of(d))
}

/// Renders one hook for one destination of a route (fallback on failure).
pub fn render_hook(
    loaded: &Loaded,
    r: &Route,
    destination: &str,
    kind: DestinationKind,
    envelope: &Envelope,
    hook: &Hook,
    received_at: i64,
) -> (String, Option<RenderError>) {
    let template = r.template_for(hook.kind());
    render_hook_with(
        loaded,
        &r.name,
        template,
        destination,
        kind,
        envelope,
        hook,
        received_at,
    )
}

/// Like [`render_hook`] with the route and template named directly (for re-rendering a dead
/// letter after its route changed).
#[allow(clippy::too_many_arguments)]
pub fn render_hook_with(
    loaded: &Loaded,
    route: &str,
    template: &str,
    destination: &str,
    kind: DestinationKind,
    envelope: &Envelope,
    hook: &Hook,
    received_at: i64,
) -> (String, Option<RenderError>) {
    let locale = locale_of(loaded, destination);
    let ctx = hook_context(
        envelope,
        hook,
        &Meta {
            route,
            destination,
            destination_type: kind,
            locale,
            received_at_ms: received_at,
            mask_recipient: loaded.config.privacy.mask_recipient,
        },
    );
    // A slack_bot destination keeps one thread per template review: its bodies depend on
    // the thread when the event is applied, so the event keeps its context instead.
    if kind == crate::destination::slack_bot::KIND && matches!(hook.body, HookBody::Template(_)) {
        return (ThreadEvent::of_context(ctx).to_payload(), None);
    }
    loaded
        .renderer
        .render_or_fallback(kind, locale, template, &ctx, || {
            fallback_info(template, envelope, hook, locale)
        })
}

/// Settings a grouped route's digests keep, even if the route is later edited away.
pub fn group_settings(r: &Route) -> Option<GroupSettings> {
    let g = r.group.as_ref()?;
    Some(GroupSettings {
        to: r.to.clone(),
        template: r
            .template_for(crate::bizmessage::HookKind::MessageResult)
            .to_string(),
        wait_ms: i64::try_from(g.wait.as_millis()).unwrap_or(i64::MAX),
        interval_ms: i64::try_from(g.interval.as_millis()).unwrap_or(i64::MAX),
        max_items: g.max_items,
        resolve_after_ms: g
            .resolve_after
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX)),
    })
}

/// Routes a batch of stored hooks with no silences (see [`route_hooks_with`]).
pub fn route_hooks(loaded: &Loaded, hooks: &[StoredHook], now: i64) -> (DispatchBatch, Report) {
    route_hooks_with(loaded, &Silences::none(), hooks, now)
}

/// Routes a batch of stored hooks (pure: no I/O). Every hook gets an outcome except the
/// unreadable ones, which the report lists for quarantine. A hook an active silence catches
/// is routed (its route matches are counted) but given no delivery and no digest membership,
/// and its `sent_to` does not grow, so `reroute` after the silence still delivers it.
pub fn route_hooks_with(
    loaded: &Loaded,
    silences: &Silences,
    hooks: &[StoredHook],
    now: i64,
) -> (DispatchBatch, Report) {
    let mut batch = DispatchBatch::default();
    let mut report = Report::default();
    for stored in hooks {
        // A fail point for the tests of the panic path (nothing in bizrelay panics on input).
        #[cfg(test)]
        if stored.raw.contains("bizrelay-test-panic") {
            panic!("routing blew up on row {}", stored.row);
        }
        let parsed_now;
        let hook = match &stored.parsed {
            Some(h) => h,
            None => match parse_hook(&stored.raw) {
                Ok(h) => {
                    parsed_now = h;
                    &parsed_now
                }
                Err(e) => {
                    report.unreadable.push((stored.row, e.to_string()));
                    continue;
                }
            },
        };
        let routes = route(&loaded.routes, &stored.envelope, hook);
        let silenced_by = if routes.is_empty() || silences.is_empty() {
            None
        } else {
            silences.catching(&stored.envelope, hook, now)
        };
        // One delivery per (hook, destination), ever: when several matching routes name the
        // same destination the first of them renders it, and a hook routed again (`reroute`)
        // skips the destinations it was already given.
        let prior: BTreeSet<&String> = stored.sent_to.iter().collect();
        let mut given: BTreeSet<String> = stored.sent_to.iter().cloned().collect();
        let mut grouped_to: BTreeSet<String> = BTreeSet::new();
        if routes.is_empty() {
            report.unrouted += 1;
            tracing::debug!(
                hook_id = &*crate::logging::clip(hook.hook_id.as_deref().unwrap_or("-")),
                kind = hook.kind().as_str(),
                "hook matched no route"
            );
        }
        for r in &routes {
            *report.matches.entry(r.name.clone()).or_default() += 1;
            if r.rate.is_some() {
                // Counted once per hook and rate route, ever (a rerouted hook is not counted
                // again); a silenced one is counted apart, outside the ratio.
                let mark = crate::rate::counted_mark(&r.name);
                if !prior.contains(&mark)
                    && let Some(count) = crate::rate::count(
                        r,
                        &stored.envelope,
                        hook,
                        stored.row,
                        now,
                        silenced_by.is_some(),
                    )
                {
                    batch.rates.push(count);
                    given.insert(mark);
                }
                if r.group.is_none() {
                    if silenced_by.is_some() {
                        *report.silenced.entry(r.name.clone()).or_default() += 1;
                    }
                    continue;
                }
            }
            if let Some(id) = silenced_by {
                // Destinations it already reached (a reroute) are not held back from anything.
                if !r.to.iter().all(|d| prior.contains(d)) {
                    *report.silenced.entry(r.name.clone()).or_default() += 1;
                    tracing::debug!(route = %r.name, silence = id, "hook silenced");
                    if let Some(spec) = &r.group {
                        // A silenced hook is not news, but the group is not quiet either: its
                        // resolved message waits as for any hook.
                        let resolve_until = spec.resolve_after.map(|d| {
                            stored
                                .received_at
                                .max(now)
                                .saturating_add(i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
                        });
                        batch.silenced.push(SilencedMember {
                            route: r.name.clone(),
                            group_key: digest::group_key(spec, &stored.envelope, hook),
                            hook_row: stored.row,
                            resolve_until,
                        });
                    }
                }
                continue;
            }
            if let Some(settings) = group_settings(r) {
                // Grouped routes count their hooks on their own (two grouped routes to one
                // destination make two digests, which `check` warns about), but a hook routed
                // again never joins a digest for destinations it was already given.
                if r.to.iter().all(|d| prior.contains(d)) {
                    continue;
                }
                grouped_to.extend(r.to.iter().cloned());
                let spec = r.group.as_ref().expect("group_settings implies a group");
                let (result_code, message_type, sender_key) = digest::tally_fields(hook);
                batch.members.push(NewMember {
                    route: r.name.clone(),
                    group_key: digest::group_key(spec, &stored.envelope, hook),
                    hook_row: stored.row,
                    joined_at: stored.received_at,
                    routed_at: now,
                    kind: hook.kind(),
                    result_code,
                    message_type,
                    sender_key,
                    settings,
                });
                continue;
            }
            for dest in &r.to {
                let Some(dest_cfg) = loaded.config.destinations.get(dest) else {
                    continue; // validation guarantees it exists
                };
                if !given.insert(dest.clone()) {
                    report.already_given.push(Skip {
                        row: stored.row,
                        route: r.name.clone(),
                        destination: dest.clone(),
                    });
                    continue;
                }
                let (payload, err) = render_hook(
                    loaded,
                    r,
                    dest,
                    dest_cfg.kind,
                    &stored.envelope,
                    hook,
                    stored.received_at,
                );
                if let Some(e) = err {
                    report
                        .fell_back
                        .push((batch.deliveries.len(), e.to_string()));
                    report.fallbacks.push((
                        dest_cfg.kind,
                        r.template_for(hook.kind()).to_string(),
                        e,
                    ));
                }
                report.touched.insert(dest.clone());
                batch.deliveries.push(NewDelivery {
                    destination: dest.clone(),
                    route: r.name.clone(),
                    template: r.template_for(hook.kind()).to_string(),
                    hook_row: Some(stored.row),
                    hook_id: hook.hook_id.as_deref().map(String::from),
                    payload,
                    created_at: now,
                    received_at: stored.received_at,
                    dead: None,
                });
            }
        }
        given.extend(grouped_to);
        batch.hooks.push(HookOutcome {
            row: stored.row,
            routed: !routes.is_empty(),
            sent_to: given.into_iter().collect(),
        });
    }
    (batch, report)
}

/// Parses stored hooks for a digest (unreadable ones are left out): the parsed hooks, with the
/// index of the stored hook each came from.
pub fn parse_members(stored: &[StoredHook]) -> Vec<(usize, Hook)> {
    stored
        .iter()
        .enumerate()
        .filter_map(|(i, m)| parse_hook(&m.raw).ok().map(|h| (i, h)))
        .collect()
}

/// Digest members borrowing from stored hooks and their parsed forms.
fn members<'a>(stored: &'a [StoredHook], parsed: &'a [(usize, Hook)]) -> Vec<Member<'a>> {
    parsed
        .iter()
        .map(|(i, hook)| Member {
            envelope: &stored[*i].envelope,
            hook,
            received_at: stored[*i].received_at,
        })
        .collect()
}

/// Builds a digest's context from what it counts and its stored samples.
pub fn digest_context(
    loaded: &Loaded,
    route: &str,
    group_key: &str,
    total_before: i64,
    tally: &Tally,
    samples: &[StoredHook],
) -> Value {
    let parsed = parse_members(samples);
    let list = members(samples, &parsed);
    digest::digest_context(&DigestInput {
        route,
        group_key,
        total_before,
        mask_recipient: loaded.config.privacy.mask_recipient,
        tally,
        samples: &list,
    })
}

/// Renders a digest context for one destination (fallback on failure).
pub fn render_digest(
    loaded: &Loaded,
    template: &str,
    ctx: &Value,
    destination: &str,
    kind: DestinationKind,
) -> (String, Option<RenderError>) {
    let locale = locale_of(loaded, destination);
    let ctx = match ctx["kind"].as_str() {
        Some("rate_firing" | "rate_resolved") => {
            crate::rate::for_destination(ctx.clone(), destination, kind, locale)
        }
        _ => digest::for_destination(ctx.clone(), destination, kind, locale),
    };
    let l = |en: &str, ko: &str| locale.pick(en, ko).to_string();
    let text = |k: &str| ctx[k].as_str().unwrap_or("").to_string();
    let mut facts = vec![(l("route", "경로"), text("route"))];
    if ctx["kind"] == "digest" {
        facts.push((l("group", "그룹"), text("group_label")));
        facts.push((l("hooks", "건수"), ctx["count"].to_string()));
    } else {
        // The summary line says what the notice is about, in the destination's language.
        facts.push((l("what", "내용"), text("summary")));
    }
    loaded
        .renderer
        .render_or_fallback(kind, locale, template, &ctx, || FallbackInfo {
            title: match locale {
                Locale::En => {
                    format!("bizrelay could not render template `{template}`; the notice in brief:")
                }
                Locale::Ko => {
                    format!("bizrelay가 템플릿 `{template}`을(를) 렌더링하지 못했습니다. 요약:")
                }
            },
            facts,
        })
}

/// Turns a due group into a digest flush (pure). A due group with no members is due for its resolved message (see `digest::on_resolved`).
pub fn build_flush(loaded: &Loaded, group: &DueGroup, now: i64) -> (Flush, Report) {
    let mut report = Report::default();
    // The route as configured now decides where the digest goes; the settings stored with the
    // group are the fallback when a reload removed the route.
    let settings = loaded
        .routes
        .iter()
        .find(|r| r.name == group.route)
        .and_then(group_settings)
        .unwrap_or_else(|| group.settings.clone());
    let resolved = group.tally.count == 0 && crate::store::resolve_still_due(&group.timing, now);
    let (ctx, template) = if resolved {
        let after = settings
            .resolve_after_ms
            .or(group.settings.resolve_after_ms)
            .unwrap_or(0);
        let ctx = digest::resolved_context(
            &group.route,
            &group.group_key,
            &group.timing,
            after,
            group.silenced,
            now,
        );
        (ctx, digest::RESOLVED_TEMPLATE.to_string())
    } else {
        let mut ctx = digest_context(
            loaded,
            &group.route,
            &group.group_key,
            group.timing.total,
            &group.tally,
            &group.samples,
        );
        ctx["silenced"] = serde_json::json!(group.silenced);
        (ctx, settings.template.clone())
    };
    let deliveries = notice_deliveries(
        loaded,
        &group.route,
        &settings.to,
        &template,
        &ctx,
        group.tally.first_at.unwrap_or(now),
        now,
        &mut report,
    );
    let flush = Flush {
        route: group.route.clone(),
        group_key: group.group_key.clone(),
        token: group.token,
        count: group.tally.count as i64,
        context: ctx.to_string(),
        deliveries,
        now,
        silenced: group.silenced,
        resolved,
    };
    (flush, report)
}

/// The deliveries of a summary notice (a digest, a resolved message, a rate alert) to each
/// destination, rendered from one context; a destination no longer configured gets a dead
/// letter, so a notice is never dropped.
#[allow(clippy::too_many_arguments)]
pub fn notice_deliveries(
    loaded: &Loaded,
    route: &str,
    to: &[String],
    template: &str,
    ctx: &Value,
    received_at: i64,
    now: i64,
    report: &mut Report,
) -> Vec<NewDelivery> {
    let mut deliveries = Vec::new();
    for dest in to {
        let delivery = |payload: String, dead: Option<String>| NewDelivery {
            destination: dest.clone(),
            route: route.to_string(),
            template: template.to_string(),
            hook_row: None,
            hook_id: None,
            payload,
            created_at: now,
            received_at,
            dead,
        };
        let Some(dest_cfg) = loaded.config.destinations.get(dest) else {
            // Never drop a notice: park it where an operator sees it and can replay it.
            tracing::error!(route = %route, destination = %dest, "the destination of a digest or alert no longer exists; it is dead-lettered");
            deliveries.push(delivery(
                String::new(),
                Some(format!("destination `{dest}` is no longer in the config (add it back, then replay --rerender)")),
            ));
            continue;
        };
        let (payload, err) = render_digest(loaded, template, ctx, dest, dest_cfg.kind);
        if let Some(e) = err {
            report.fell_back.push((deliveries.len(), e.to_string()));
            report
                .fallbacks
                .push((dest_cfg.kind, template.to_string(), e));
        }
        report.touched.insert(dest.clone());
        deliveries.push(delivery(payload, None));
    }
    deliveries
}
