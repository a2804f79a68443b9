//! One Slack thread per template review, planned purely: what a template event stored for a
//! `slack_bot` destination carries ([`ThreadEvent`]), and what applying it to a thread's
//! state means ([`plan`]): post a root, update it, post a reply (broadcast for decisions).
//!
//! Invariants:
//! - An event's payload keeps the hook's template context, not a body: the bodies depend on
//!   the thread's state when the event is applied (which comments were shown, whether the
//!   root was lost), so they are rendered then, with the templates loaded then.
//! - An event older than the status the root shows (by `updateDate`) never updates the root;
//!   its new comments are still replied.
//! - A comment is shown once: its id (or, without one, a hash of its fields) is remembered.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::store::{Thread, ThreadKey};

/// The root message's template.
pub const ROOT: &str = "thread_root";
/// A reply with what changed.
pub const REPLY: &str = "thread_reply";
/// The reply of a final decision (TSC03, TSC04), also shown in the channel.
pub const BROADCAST: &str = "thread_broadcast";

/// The marker field of a stored thread event (payloads without it are plain bodies).
const MARKER: &str = "slack_bot_thread";

/// A template event as stored in a `slack_bot` destination's outbox.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ThreadEvent {
    /// Format version of this document.
    pub slack_bot_thread: u32,
    pub sender_key: String,
    pub template_code: String,
    pub status: String,
    /// `updateDate` as received (empty when it had none).
    pub status_at: String,
    /// The hook's template context (what `template_status` would have been rendered with).
    pub context: Value,
}

impl ThreadEvent {
    /// The event of a template hook's context.
    pub fn of_context(context: Value) -> ThreadEvent {
        let text = |k: &str| context[k].as_str().unwrap_or("").to_string();
        ThreadEvent {
            slack_bot_thread: 1,
            sender_key: text("senderKey"),
            template_code: text("templateCode"),
            status: text("status"),
            status_at: text("updateDate"),
            context,
        }
    }

    /// The event a stored payload holds, if it is one.
    pub fn parse(payload: &str) -> Option<ThreadEvent> {
        if !payload.contains(MARKER) {
            return None;
        }
        serde_json::from_str::<ThreadEvent>(payload).ok()
    }

    pub fn to_payload(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    pub fn key(&self, destination: &str) -> ThreadKey {
        ThreadKey {
            destination: destination.to_string(),
            sender_key: self.sender_key.clone(),
            template_code: self.template_code.clone(),
        }
    }

    /// Whether this is a final decision (approved or rejected), replied as a broadcast.
    pub fn is_final(&self) -> bool {
        matches!(self.status.as_str(), "TSC03" | "TSC04")
    }

    fn comments(&self) -> Vec<Value> {
        let mut list: Vec<Value> = self.context["comments"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        // Chronological (`createdAt` sorts as text), stable for ties and missing dates.
        list.sort_by(|a, b| {
            a["createdAt"]
                .as_str()
                .unwrap_or("")
                .cmp(b["createdAt"].as_str().unwrap_or(""))
        });
        list
    }
}

/// What names a comment across events: its id, or a hash of what it says.
pub fn comment_id(c: &Value) -> String {
    match &c["id"] {
        Value::String(s) if !s.is_empty() => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => {
            let mut h = Sha256::new();
            for k in ["createdAt", "userName", "content", "status"] {
                h.update(c[k].to_string().as_bytes());
                h.update([0]);
            }
            format!("h:{}", hex::encode(&h.finalize()[..8]))
        }
    }
}

/// What applying one event to a thread takes.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// No root known: post one (rendered from [`Plan::root`]).
    pub post_root: bool,
    /// Edit the known root to show this event's status.
    pub update_root: bool,
    /// The root's context (with `thread`).
    pub root: Value,
    /// The reply to post, if anything changed: its template and context.
    pub reply: Option<(&'static str, Value)>,
    /// Comment ids the thread will have shown after this event.
    pub shown: Vec<String>,
    /// Whether the root will show this event's status.
    pub takes_status: bool,
}

/// Plans an event against the thread's state (`None`: no root yet). `replaced` says the root
/// is posted anew because the earlier one was deleted or cannot be edited.
pub fn plan(event: &ThreadEvent, thread: Option<&Thread>, replaced: bool) -> Plan {
    let shown: Vec<String> = thread.map(|t| t.shown.clone()).unwrap_or_default();
    let newer = thread.is_none_or(|t| {
        event.status_at.is_empty() || t.status_at.is_empty() || event.status_at >= t.status_at
    });
    let new_comments: Vec<Value> = event
        .comments()
        .into_iter()
        .filter(|c| !shown.contains(&comment_id(c)))
        .collect();
    let previous = thread.map(|t| t.status.clone());
    let status_changed = newer && previous.as_deref().is_some_and(|p| p != event.status);
    let mut all_shown = shown.clone();
    all_shown.extend(new_comments.iter().map(comment_id));
    let thread_ctx = |root: bool| {
        json!({
            "replaced": replaced && root,
            "first": thread.is_none(),
            "previous_status": previous,
            "previous_status_label": previous.as_deref().map(status_label),
            "status_changed": status_changed,
            "final": event.is_final(),
            "new_comments": new_comments,
            "new_comment_count": new_comments.len(),
        })
    };
    let with_thread = |root: bool| {
        let mut ctx = event.context.clone();
        if let Some(obj) = ctx.as_object_mut() {
            obj.insert("thread".into(), thread_ctx(root));
        }
        ctx
    };
    // A fresh root already shows the status; a reply then only carries comments.
    let reply_needed = if thread.is_none() {
        !new_comments.is_empty()
    } else {
        status_changed || !new_comments.is_empty()
    };
    let reply_template = if event.is_final() && newer && (status_changed || thread.is_none()) {
        BROADCAST
    } else {
        REPLY
    };
    Plan {
        post_root: thread.is_none(),
        update_root: thread.is_some() && newer,
        root: with_thread(true),
        reply: reply_needed.then(|| (reply_template, with_thread(false))),
        shown: all_shown,
        takes_status: newer,
    }
}

/// A status label object as the context has them.
fn status_label(status: &str) -> Value {
    match crate::bizmessage::status_label(status) {
        Some((en, ko)) => json!({"en": en, "ko": ko, "known": true}),
        None => json!({"en": status, "ko": status, "known": false}),
    }
}

/// A sample of each thread context, for `check` and the golden renders: a fresh root, an
/// update with a reply, a decision, a replaced root.
pub fn sample_contexts(context: &Value) -> Vec<(&'static str, String, Value)> {
    let event = ThreadEvent::of_context(context.clone());
    let earlier = Thread {
        key: event.key("sample"),
        channel: "C0123456789".into(),
        root_ts: "1.0".into(),
        status: "TSC01".into(),
        status_at: String::new(),
        shown: Vec::new(),
        applied: None,
        created_at: 0,
        updated_at: 0,
    };
    let mut out = Vec::new();
    for (what, thread, replaced) in [
        ("first event", None, false),
        ("later event", Some(&earlier), false),
        ("replaced root", Some(&earlier), true),
    ] {
        let p = plan(&event, thread, replaced);
        out.push((ROOT, what.to_string(), p.root.clone()));
        // Both reply templates are checked with every context that has a reply.
        let reply_ctx = plan(&event, Some(&earlier), false)
            .reply
            .map(|(_, c)| c)
            .unwrap_or_else(|| p.root.clone());
        out.push((REPLY, what.to_string(), reply_ctx.clone()));
        out.push((BROADCAST, what.to_string(), reply_ctx));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(status: &str, at: &str, comments: Value) -> ThreadEvent {
        ThreadEvent::of_context(json!({
            "senderKey": "sk", "templateCode": "ORDER_SHIPPED_V2", "status": status,
            "updateDate": at, "comments": comments,
        }))
    }

    fn thread(status: &str, at: &str, shown: &[&str]) -> Thread {
        Thread {
            key: ThreadKey {
                destination: "reviews".into(),
                sender_key: "sk".into(),
                template_code: "ORDER_SHIPPED_V2".into(),
            },
            channel: "C1".into(),
            root_ts: "1.1".into(),
            status: status.into(),
            status_at: at.into(),
            shown: shown.iter().map(|s| s.to_string()).collect(),
            applied: None,
            created_at: 0,
            updated_at: 0,
        }
    }

    #[test]
    fn payloads_round_trip_and_plain_bodies_are_not_events() {
        let e = event("TSC01", "2026-11-28 09:00:00", json!([]));
        assert_eq!(ThreadEvent::parse(&e.to_payload()), Some(e));
        assert_eq!(ThreadEvent::parse(r#"{"text":"hi"}"#), None);
        assert_eq!(ThreadEvent::parse("not json slack_bot_thread"), None);
    }

    #[test]
    fn first_event_posts_a_root_and_replies_only_with_comments() {
        let p = plan(&event("TSC01", "t1", json!([])), None, false);
        assert!(p.post_root && !p.update_root && p.reply.is_none());
        let p = plan(
            &event("TSC02", "t1", json!([{"id": 1, "content": "?"}])),
            None,
            false,
        );
        assert_eq!(p.reply.as_ref().map(|r| r.0), Some(REPLY));
        assert_eq!(p.shown, vec!["1".to_string()]);
    }

    #[test]
    fn later_events_update_and_reply_with_new_comments_once() {
        let comments = json!([
            {"id": 2, "content": "b", "createdAt": "2026-11-28 10:00:00"},
            {"id": 1, "content": "a", "createdAt": "2026-11-28 09:00:00"},
        ]);
        let p = plan(
            &event("TSC02", "t2", comments),
            Some(&thread("TSC02", "t1", &["1"])),
            false,
        );
        assert!(!p.post_root && p.update_root);
        let (template, ctx) = p.reply.expect("a reply");
        assert_eq!(template, REPLY);
        let new = ctx["thread"]["new_comments"].as_array().unwrap();
        assert_eq!(new.len(), 1);
        assert_eq!(new[0]["content"], "b");
        assert_eq!(ctx["thread"]["status_changed"], false);
        assert_eq!(p.shown, vec!["1".to_string(), "2".to_string()]);
        // Nothing new: no reply at all.
        let p = plan(
            &event("TSC02", "t2", json!([{"id": 1}])),
            Some(&thread("TSC02", "t1", &["1"])),
            false,
        );
        assert!(p.reply.is_none() && p.update_root);
    }

    #[test]
    fn decisions_broadcast_and_older_events_do_not_overwrite() {
        let p = plan(
            &event("TSC04", "t3", json!([])),
            Some(&thread("TSC02", "t2", &[])),
            false,
        );
        assert_eq!(p.reply.as_ref().map(|r| r.0), Some(BROADCAST));
        assert!(p.update_root && p.takes_status);
        let p = plan(
            &event("TSC02", "t1", json!([{"id": 9}])),
            Some(&thread("TSC04", "t3", &[])),
            false,
        );
        assert!(!p.update_root && !p.takes_status);
        let (template, ctx) = p.reply.expect("the new comment is still replied");
        assert_eq!(template, REPLY);
        assert_eq!(ctx["thread"]["status_changed"], false);
    }

    #[test]
    fn comments_without_ids_are_named_by_content() {
        let a = json!({"content": "x", "createdAt": "t"});
        let b = json!({"content": "y", "createdAt": "t"});
        assert_ne!(comment_id(&a), comment_id(&b));
        assert_eq!(comment_id(&a), comment_id(&a.clone()));
        assert_eq!(comment_id(&json!({"id": "c7"})), "c7");
    }
}
