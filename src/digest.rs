//! Digests: group keys, window timing and the digest template context. Pure, no I/O; the
//! store keeps group membership durable and the dispatcher decides when to flush.
//!
//! Timing (Alertmanager's model): a new group's first digest goes out `wait` after its first
//! hook; hooks arriving later wait for the next digest, no sooner than `interval` after the
//! previous one; a group with nothing new sends nothing, and a group idle for a whole
//! `interval` after its last digest starts afresh (its `total` restarts), unless its resolved
//! message (`resolve_after`) is still to come: then it goes on.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use crate::bizmessage::{self, Envelope, Hook, HookBody, Outcome};
use crate::context::{self, Meta, hook_context, summary};
use crate::destination::{self, DestinationKind};
use crate::locale::Locale;
use crate::route::GroupSpec;
pub use crate::store::Tally;
use crate::store::{Flushed, GroupTiming, Join, Rules};

/// The group a hook falls into: a JSON object of the group-by keys and their values (null
/// when the hook lacks the field), in the order the route lists them.
pub fn group_key(spec: &GroupSpec, envelope: &Envelope, hook: &Hook) -> String {
    crate::route::key_of(&spec.by, envelope, hook)
}

/// The rules the store applies to a group's row when hooks join it and when a digest goes out.
pub const RULES: Rules = Rules {
    join: join_rule,
    flushed: flush_rule,
};

fn join_rule(existing: Option<GroupTiming>, j: Join) -> GroupTiming {
    GroupTiming {
        resolve_at: j
            .resolve_after_ms
            .map(|ms| j.at.max(j.routed_at).saturating_add(ms)),
        ..on_join(existing, j.at, j.wait_ms, j.interval_ms)
    }
}

fn flush_rule(t: GroupTiming, f: Flushed) -> GroupTiming {
    if f.resolved {
        return on_resolved(t);
    }
    on_flush(t, f.members, f.at, f.interval_ms)
}

/// Timing after the group's resolved message went out: its next hook starts it afresh. A
/// hook that joined while the notice was being built keeps the group going instead.
pub fn on_resolved(t: GroupTiming) -> GroupTiming {
    if t.pending > 0 {
        return t;
    }
    GroupTiming {
        last_flush_at: None,
        resolve_at: None,
        ..t
    }
}

/// Timing after a hook joins a group at `now`.
pub fn on_join(
    existing: Option<GroupTiming>,
    now: i64,
    wait_ms: i64,
    interval_ms: i64,
) -> GroupTiming {
    match existing {
        Some(t) if t.pending > 0 => GroupTiming {
            pending: t.pending + 1,
            next_flush_at: Some(t.next_flush_at.unwrap_or(now + wait_ms)),
            ..t
        },
        Some(t) if t.last_flush_at.is_some_and(|last| now - last < interval_ms) => GroupTiming {
            pending: 1,
            next_flush_at: t.last_flush_at.map(|last| last + interval_ms),
            ..t
        },
        // Idle for an interval but its resolved message not sent yet: the storm goes on, so
        // the group does too (its total keeps counting); the digest comes after `wait`.
        Some(t) if t.resolve_at.is_some() => GroupTiming {
            pending: 1,
            next_flush_at: Some(now + wait_ms),
            ..t
        },
        _ => GroupTiming {
            started_at: now,
            total: 0,
            pending: 1,
            last_flush_at: None,
            next_flush_at: Some(now + wait_ms),
            resolve_at: None,
        },
    }
}

/// Timing after `flushed` members went out in a digest at `now`. Members that joined while
/// the digest was being built stay pending and go in the next one.
pub fn on_flush(t: GroupTiming, flushed: i64, now: i64, interval_ms: i64) -> GroupTiming {
    let pending = (t.pending - flushed).max(0);
    GroupTiming {
        total: t.total + flushed,
        pending,
        last_flush_at: Some(now),
        next_flush_at: (pending > 0).then_some(now + interval_ms),
        ..t
    }
}

/// A group member, parsed (samples, and whole groups in dry runs).
pub struct Member<'a> {
    pub envelope: &'a Envelope,
    pub hook: &'a Hook,
    pub received_at: i64,
}

/// What a member contributes to a [`Tally`]: (result code, message type, sender key), all
/// `None` for hooks that are not message results.
pub fn tally_fields(hook: &Hook) -> (Option<String>, Option<String>, Option<String>) {
    match &hook.body {
        HookBody::MessageResult(r) => (
            r.result_code.as_deref().map(String::from),
            r.kakao_message_type.as_deref().map(String::from),
            r.sender_grouping_key.as_deref().map(String::from),
        ),
        _ => (None, None, None),
    }
}

fn count_by<K: Ord>(items: impl Iterator<Item = K>) -> Vec<(K, usize)> {
    let mut counts: BTreeMap<K, usize> = BTreeMap::new();
    for k in items {
        *counts.entry(k).or_default() += 1;
    }
    let mut v: Vec<(K, usize)> = counts.into_iter().collect();
    // By count, descending; ties keep key order.
    v.sort_by_key(|entry| std::cmp::Reverse(entry.1));
    v
}

/// Counts parsed members the way the store counts stored ones.
pub fn tally(members: &[Member<'_>]) -> Tally {
    let fields: Vec<_> = members.iter().map(|m| tally_fields(m.hook)).collect();
    Tally {
        count: members.len(),
        non_results: members
            .iter()
            .filter(|m| !matches!(m.hook.body, HookBody::MessageResult(_)))
            .count(),
        first_at: members.iter().map(|m| m.received_at).min(),
        last_at: members.iter().map(|m| m.received_at).max(),
        codes: count_by(fields.iter().map(|f| f.0.clone())),
        message_types: count_by(fields.iter().map(|f| f.1.clone())),
        senders: count_by(fields.iter().map(|f| f.2.clone())),
    }
}

/// What a digest is about.
pub struct DigestInput<'a> {
    pub route: &'a str,
    pub group_key: &'a str,
    /// Members sent in earlier digests of this group.
    pub total_before: i64,
    pub mask_recipient: bool,
    pub tally: &'a Tally,
    /// The first `max_items` members, shown as samples.
    pub samples: &'a [Member<'a>],
}

/// The context of a digest previewed from hooks held in memory (`check`'s rehearsal,
/// `send-test`): the first digest of its group, counting every member and showing the first
/// `max_items` as samples, as the dispatcher's flush would. The one place previews are
/// built, so a preview cannot drift from what is sent.
pub fn preview_context(
    route: &str,
    group_key: &str,
    max_items: usize,
    mask_recipient: bool,
    members: &[Member<'_>],
) -> Value {
    let tally = tally(members);
    digest_context(&DigestInput {
        route,
        group_key,
        total_before: 0,
        mask_recipient,
        tally: &tally,
        samples: &members[..members.len().min(max_items)],
    })
}

/// The digest template context (destination fields are filled by [`for_destination`]).
pub fn digest_context(input: &DigestInput<'_>) -> Value {
    let t = input.tally;
    let codes: Vec<Value> = t
        .codes
        .iter()
        .map(|(code, n)| {
            let r = context::result_value(code.as_deref());
            json!({"code": code, "count": n, "outcome": r["outcome"], "meaning_en": r["meaning_en"], "meaning_ko": r["meaning_ko"]})
        })
        .collect();
    let types: Vec<Value> = t
        .message_types
        .iter()
        .map(|(ty, n)| {
            let labels = ty
                .as_deref()
                .map(|ty| bizmessage::message_type_label(ty).unwrap_or((ty, ty)));
            json!({"type": ty, "label": labels.map(|l| l.0), "label_ko": labels.map(|l| l.1), "count": n})
        })
        .collect();
    let senders: Vec<Value> = t
        .senders
        .iter()
        .map(|(k, n)| json!({"key": k, "count": n}))
        .collect();
    // Members without a code (including non-results) are failures of unknown meaning.
    let mut outcomes = json!({"success": 0, "uncertain": 0, "failure": 0});
    for (code, n) in &t.codes {
        let o = code
            .as_deref()
            .map_or(Outcome::Failure, crate::bizmessage::codes::outcome_of);
        outcomes[o.as_str()] = json!(outcomes[o.as_str()].as_u64().unwrap_or(0) + *n as u64);
    }
    let samples: Vec<Value> = input
        .samples
        .iter()
        .map(|m| {
            hook_context(
                m.envelope,
                m.hook,
                &Meta {
                    route: input.route,
                    destination: "",
                    destination_type: destination::console::KIND,
                    locale: Locale::En,
                    received_at_ms: m.received_at,
                    mask_recipient: input.mask_recipient,
                },
            )
        })
        .collect();
    let group: Map<String, Value> = serde_json::from_str(input.group_key).unwrap_or_default();
    let label = label_of(&group);
    let noun = match (t.non_results == 0, t.count == 1) {
        (true, true) => "message result",
        (true, false) => "message results",
        (false, true) => "event",
        (false, false) => "events",
    };
    let mut ctx = json!({
        "kind": "digest",
        "route": input.route,
        "destination": "",
        "destination_type": "",
        "locale": Locale::En.as_str(),
        "summary": "",
        "group": group,
        "group_label": label,
        "count": t.count,
        "noun": noun,
        "total": input.total_before + t.count as i64,
        "first_at": t.first_at.map(context::format_ms),
        "last_at": t.last_at.map(context::format_ms),
        "codes": codes,
        "message_types": types,
        "sender_grouping_keys": senders,
        "outcomes": outcomes,
        "omitted": t.count.saturating_sub(samples.len()),
        // Hooks of the group a silence held back (set by the dispatcher; none in dry runs).
        "silenced": 0,
        "samples": samples,
    });
    // Codes, types, sender keys and group values come from hooks too (samples already are).
    context::neutralise(&mut ctx);
    ctx
}

/// The built-in template of a group's resolved message.
pub const RESOLVED_TEMPLATE: &str = "digest_resolved";

/// The context of a group's resolved message: nothing joined it for `resolve_after`.
/// `timing` is the group's before the notice (its total counts every member sent since it
/// started).
pub fn resolved_context(
    route: &str,
    group_key: &str,
    timing: &GroupTiming,
    resolve_after_ms: i64,
    silenced: i64,
    now: i64,
) -> Value {
    let group: Map<String, Value> = serde_json::from_str(group_key).unwrap_or_default();
    let last_at = timing.resolve_at.map(|at| at - resolve_after_ms);
    let mut ctx = json!({
        "kind": "digest_resolved",
        "route": route,
        "destination": "",
        "destination_type": "",
        "locale": Locale::En.as_str(),
        "summary": "",
        "group": group,
        "group_label": label_of(&group),
        "total": timing.total + timing.pending,
        "since": context::format_ms(timing.started_at),
        "last_at": last_at.map(context::format_ms),
        "quiet_for_ms": resolve_after_ms,
        "quiet_for": "",
        "silenced": silenced,
        "at": context::format_ms(now),
    });
    context::neutralise(&mut ctx);
    ctx
}

/// A sample resolved context (previews, rehearsal, golden renders): 1,204 failures with
/// result code 3019 since 10:02 KST, then 10 quiet minutes.
pub fn sample_resolved_context() -> Value {
    let started = 1_795_827_720_000; // 2026-11-28 10:02:00 KST
    let timing = GroupTiming {
        started_at: started,
        total: 1_204,
        pending: 0,
        last_flush_at: Some(started + 1_500_000),
        next_flush_at: None,
        resolve_at: Some(started + 1_440_000 + 600_000),
    };
    resolved_context(
        "alimtalk-failures",
        r#"{"result_code":"3019"}"#,
        &timing,
        600_000,
        0,
        started + 2_040_000,
    )
}

fn label_of(group: &Map<String, Value>) -> String {
    if group.is_empty() {
        "all".to_string()
    } else {
        group
            .iter()
            .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("(none)")))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Fills the destination fields of a digest context (and of its samples) or of a resolved
/// one: name, type, locale and the texts in that locale.
pub fn for_destination(mut ctx: Value, name: &str, kind: DestinationKind, locale: Locale) -> Value {
    ctx["destination"] = json!(name);
    ctx["destination_type"] = json!(kind.as_str());
    ctx["locale"] = json!(locale.as_str());
    if ctx["kind"] == "digest_resolved" {
        ctx["quiet_for"] = json!(crate::locale::duration(
            ctx["quiet_for_ms"].as_i64().unwrap_or(0),
            locale
        ));
        ctx["summary"] = json!(summary::digest_resolved(&ctx, locale));
        return ctx;
    }
    ctx["summary"] = json!(summary::digest(&ctx, locale));
    if let Some(samples) = ctx["samples"].as_array_mut() {
        for s in samples {
            s["destination"] = json!(name);
            s["destination_type"] = json!(kind.as_str());
            s["locale"] = json!(locale.as_str());
            s["summary"] = json!(summary::hook(s, locale));
        }
    }
    ctx
}

#[cfg(test)]
mod tests;
