//! Routing rules and matching: which routes a hook takes. Pure, no I/O.
//!
//! Invariants:
//! - Routes are tried in file order; the first match stops the search unless that route has
//!   `continue = true`.
//! - All keys of a `match` table must match; a list means any of its patterns; a condition on a
//!   field the hook lacks does not match; an empty `match` matches everything.
//! - A compiled [`Route`] has only valid keys and globs: every mistake is caught by
//!   [`Route::compile`] with the route's name and the key.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::time::Duration;

use compact_str::CompactString;
use globset::{GlobBuilder, GlobMatcher};
use serde::{Deserialize, Serialize};

use crate::bizmessage::{Envelope, Hook, HookBody, HookKind};

mod overlap;
mod rate;

pub use overlap::{DoubleDigest, double_digests};
pub use rate::{RateConfig, RateSpec};

/// A field of a hook (or its envelope) that rules can match on and digests can group by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MatchKey {
    Kind,
    Event,
    AppKey,
    SenderKey,
    TemplateCode,
    Status,
    CommentStatus,
    MessageType,
    ResultCode,
    Outcome,
    SenderGroupingKey,
    RecipientGroupingKey,
    /// Learned by enrichment (message results only).
    PlusFriendId,
    ResendStatus,
}

impl MatchKey {
    pub const ALL: [MatchKey; 14] = [
        MatchKey::Kind,
        MatchKey::Event,
        MatchKey::AppKey,
        MatchKey::SenderKey,
        MatchKey::TemplateCode,
        MatchKey::Status,
        MatchKey::CommentStatus,
        MatchKey::MessageType,
        MatchKey::ResultCode,
        MatchKey::Outcome,
        MatchKey::SenderGroupingKey,
        MatchKey::RecipientGroupingKey,
        MatchKey::PlusFriendId,
        MatchKey::ResendStatus,
    ];

    pub fn name(self) -> &'static str {
        match self {
            MatchKey::Kind => "kind",
            MatchKey::Event => "event",
            MatchKey::AppKey => "app_key",
            MatchKey::SenderKey => "sender_key",
            MatchKey::TemplateCode => "template_code",
            MatchKey::Status => "status",
            MatchKey::CommentStatus => "comment_status",
            MatchKey::MessageType => "message_type",
            MatchKey::ResultCode => "result_code",
            MatchKey::Outcome => "outcome",
            MatchKey::SenderGroupingKey => "sender_grouping_key",
            MatchKey::RecipientGroupingKey => "recipient_grouping_key",
            MatchKey::PlusFriendId => "plus_friend_id",
            MatchKey::ResendStatus => "resend_status",
        }
    }

    pub fn parse(name: &str) -> Option<MatchKey> {
        MatchKey::ALL.into_iter().find(|k| k.name() == name)
    }

    /// The vendor's field name, used to read hooks of unknown shape.
    fn nhn_field(self) -> Option<&'static str> {
        Some(match self {
            MatchKey::SenderKey => "senderKey",
            MatchKey::TemplateCode => "templateCode",
            MatchKey::Status => "status",
            MatchKey::MessageType => "kakaoMessageType",
            MatchKey::ResultCode => "resultCode",
            MatchKey::SenderGroupingKey => "senderGroupingKey",
            MatchKey::RecipientGroupingKey => "recipientGroupingKey",
            _ => return None,
        })
    }

    /// The values a key can take when the set is closed, to catch typos such as
    /// `kind = "templates"` at load time.
    fn closed_values(self) -> Option<&'static [&'static str]> {
        match self {
            MatchKey::Kind => Some(&["template", "message_result", "unknown"]),
            MatchKey::Outcome => Some(&["success", "uncertain", "failure"]),
            _ => None,
        }
    }
}

/// The key of the digest group or alert series a hook falls into: a JSON object of the `by`
/// keys and their values (null when the hook lacks the field), in the order listed.
pub fn key_of(by: &[MatchKey], envelope: &Envelope, hook: &Hook) -> String {
    let mut map = serde_json::Map::new();
    for key in by {
        let value = field(*key, envelope, hook).map_or(serde_json::Value::Null, |v| {
            serde_json::Value::String(v.into_owned())
        });
        map.insert(key.name().to_string(), value);
    }
    serde_json::Value::Object(map).to_string()
}

/// Reads a match key's value from a hook; `None` when the hook lacks the field.
pub fn field<'h>(key: MatchKey, envelope: &'h Envelope, hook: &'h Hook) -> Option<Cow<'h, str>> {
    let borrowed = |s: &'h Option<String>| s.as_deref().map(Cow::Borrowed);
    let compact = |s: &'h Option<CompactString>| s.as_deref().map(Cow::Borrowed);
    match key {
        MatchKey::Kind => return Some(Cow::Borrowed(hook.kind().as_str())),
        MatchKey::Event => return borrowed(&envelope.event),
        MatchKey::AppKey => return borrowed(&envelope.app_key),
        _ => {}
    }
    match &hook.body {
        HookBody::Template(t) => match key {
            MatchKey::SenderKey => borrowed(&t.sender_key),
            MatchKey::TemplateCode => Some(Cow::Borrowed(t.template_code.as_str())),
            MatchKey::Status => Some(Cow::Borrowed(t.status.as_str())),
            MatchKey::CommentStatus => t
                .newest_comment()
                .and_then(|c| c.status.as_deref())
                .map(Cow::Borrowed),
            _ => None,
        },
        HookBody::MessageResult(r) => match key {
            MatchKey::MessageType => compact(&r.kakao_message_type),
            MatchKey::ResultCode => compact(&r.result_code),
            MatchKey::Outcome => Some(Cow::Borrowed(r.outcome().as_str())),
            MatchKey::SenderGroupingKey => compact(&r.sender_grouping_key),
            MatchKey::RecipientGroupingKey => compact(&r.recipient_grouping_key),
            // Known only once enrichment has looked the message up.
            MatchKey::TemplateCode => borrowed(&r.enrichment.as_ref()?.template_code),
            MatchKey::SenderKey => borrowed(&r.enrichment.as_ref()?.sender_key),
            MatchKey::PlusFriendId => borrowed(&r.enrichment.as_ref()?.plus_friend_id),
            MatchKey::ResendStatus => borrowed(&r.enrichment.as_ref()?.resend_status),
            _ => None,
        },
        HookBody::Unknown(map) => {
            let value = map.get(key.nhn_field()?)?;
            match value {
                serde_json::Value::String(s) => Some(Cow::Borrowed(s.as_str())),
                serde_json::Value::Number(n) => Some(Cow::Owned(n.to_string())),
                _ => None,
            }
        }
    }
}

/// A string or a list of strings in the TOML file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    pub fn into_vec(self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => vec![s],
            OneOrMany::Many(v) => v,
        }
    }
}

/// A route as written in the config file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    pub name: String,
    pub to: OneOrMany,
    #[serde(default)]
    pub template: Option<String>,
    #[serde(default, rename = "continue")]
    pub continue_matching: bool,
    #[serde(default, rename = "match")]
    pub match_: BTreeMap<String, OneOrMany>,
    #[serde(default)]
    pub group: Option<GroupConfig>,
    #[serde(default)]
    pub rate: Option<RateConfig>,
}

/// `[routes.group]`: turns a route's hooks into digests.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupConfig {
    #[serde(default)]
    pub by: Vec<String>,
    #[serde(default = "default_wait", with = "humantime_serde")]
    pub wait: Duration,
    #[serde(default = "default_interval", with = "humantime_serde")]
    pub interval: Duration,
    #[serde(default = "default_max_items")]
    pub max_items: usize,
    /// Off by default: with it, a group that received hooks and then none for this long
    /// sends one "resolved" message.
    #[serde(default, with = "humantime_serde")]
    pub resolve_after: Option<Duration>,
}

fn default_wait() -> Duration {
    Duration::from_secs(30)
}
fn default_interval() -> Duration {
    Duration::from_secs(300)
}
fn default_max_items() -> usize {
    10
}

/// How a grouped route collects hooks into digests.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupSpec {
    pub by: Vec<MatchKey>,
    pub wait: Duration,
    pub interval: Duration,
    pub max_items: usize,
    pub resolve_after: Option<Duration>,
}

/// A compiled route.
#[derive(Debug, Clone)]
pub struct Route {
    pub name: String,
    pub to: Vec<String>,
    /// The template named in the file, if any; see [`Route::template_for`].
    pub template: Option<String>,
    pub continue_matching: bool,
    pub group: Option<GroupSpec>,
    /// A failure-rate rule: the route's message results are counted for rate alerts (and
    /// without a group, that is all the route does with them).
    pub rate: Option<RateSpec>,
    conditions: Vec<Condition>,
}

#[derive(Debug, Clone)]
struct Condition {
    key: MatchKey,
    any_of: Vec<GlobMatcher>,
}

/// A mistake in one route, named by route and key.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("route `{route}`: {key}: {reason}")]
pub struct RouteError {
    pub route: String,
    pub key: String,
    pub reason: String,
}

impl Route {
    pub fn compile(cfg: &RouteConfig) -> Result<Route, Vec<RouteError>> {
        let mut errors = Vec::new();
        let err = |key: String, reason: String| RouteError {
            route: cfg.name.clone(),
            key,
            reason,
        };
        if cfg.name.trim().is_empty() {
            errors.push(err("name".into(), "must not be empty".into()));
        }
        let to = cfg.to.clone().into_vec();
        if to.is_empty() {
            errors.push(err("to".into(), "names no destination".into()));
        }
        let mut conditions = Vec::new();
        for (name, patterns) in &cfg.match_ {
            let key_path = format!("match.{name}");
            let Some(key) = MatchKey::parse(name) else {
                errors.push(err(
                    key_path,
                    format!("unknown match key (known: {})", known_keys()),
                ));
                continue;
            };
            let patterns = patterns.clone().into_vec();
            if patterns.is_empty() {
                errors.push(err(key_path, "empty list matches nothing".into()));
                continue;
            }
            let mut any_of = Vec::new();
            for p in &patterns {
                match GlobBuilder::new(p).literal_separator(false).build() {
                    Ok(g) => {
                        let m = g.compile_matcher();
                        if let Some(values) = key.closed_values()
                            && !values.iter().any(|v| m.is_match(v))
                        {
                            errors.push(err(
                                key_path.clone(),
                                format!("`{p}` matches none of {}", values.join(", ")),
                            ));
                        }
                        any_of.push(m);
                    }
                    Err(e) => errors.push(err(
                        key_path.clone(),
                        format!("bad glob `{p}`: {}", e.kind()),
                    )),
                }
            }
            conditions.push(Condition { key, any_of });
        }
        let group = cfg.group.as_ref().map(|g| {
            let mut by = Vec::new();
            for name in &g.by {
                match MatchKey::parse(name) {
                    Some(k) => by.push(k),
                    None => errors.push(err(
                        "group.by".into(),
                        format!("unknown key `{name}` (known: {})", known_keys()),
                    )),
                }
            }
            if g.max_items == 0 {
                errors.push(err("group.max_items".into(), "must be at least 1".into()));
            }
            if g.interval.is_zero() {
                errors.push(err(
                    "group.interval".into(),
                    "must be longer than 0s".into(),
                ));
            }
            if g.resolve_after.is_some_and(|d| d.is_zero()) {
                errors.push(err(
                    "group.resolve_after".into(),
                    "must be longer than 0s (leave it out to send no resolved message)".into(),
                ));
            } else if g
                .resolve_after
                .is_some_and(|d| d > Duration::from_secs(30 * 86_400))
            {
                errors.push(err(
                    "group.resolve_after".into(),
                    "must be at most 30d".into(),
                ));
            }
            GroupSpec {
                by,
                wait: g.wait,
                interval: g.interval,
                max_items: g.max_items,
                resolve_after: g.resolve_after,
            }
        });
        let rate = match cfg.rate.as_ref().map(|r| r.compile(&err)) {
            Some(Ok(spec)) => Some(spec),
            Some(Err(e)) => {
                errors.extend(e);
                None
            }
            None => None,
        };
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Route {
            name: cfg.name.clone(),
            to,
            template: cfg.template.clone(),
            continue_matching: cfg.continue_matching,
            group,
            rate,
            conditions,
        })
        .and_then(|r| {
            // A rate-only route sends nothing per hook: hooks other than message results
            // would vanish into it, so it must say it takes message results only.
            let swallows = r.rate.is_some()
                && r.group.is_none()
                && (r.may_match_kind(HookKind::Template) || r.may_match_kind(HookKind::Unknown));
            if r.rate.is_some() && r.group.is_none() && r.template.is_some() {
                return Err(vec![err(
                    "template".into(),
                    "a route with only a rate rule sends no message per hook, so its template \
                     would never be used (its alerts render `rate_firing` and `rate_resolved`; \
                     override those in the template folder)"
                        .into(),
                )]);
            }
            if swallows {
                Err(vec![err(
                    "rate".into(),
                    "a rate rule counts message results only, and this route sends nothing \
                     else, so other hooks would be lost in it: add `kind = \"message_result\"` \
                     to its match"
                        .into(),
                )])
            } else {
                Ok(r)
            }
        })
    }

    /// Whether its `match` tests this key.
    pub fn matches_on(&self, key: MatchKey) -> bool {
        self.conditions.iter().any(|c| c.key == key)
    }

    /// Whether every condition holds for this hook.
    pub fn matches(&self, envelope: &Envelope, hook: &Hook) -> bool {
        self.conditions.iter().all(|c| {
            field(c.key, envelope, hook).is_some_and(|v| c.any_of.iter().any(|g| g.is_match(&*v)))
        })
    }

    /// The template a hook of this kind renders with on this route.
    pub fn template_for(&self, kind: HookKind) -> &str {
        match (&self.template, &self.group) {
            (Some(t), _) => t,
            (None, Some(_)) => "message_digest",
            (None, None) => kind.default_template(),
        }
    }

    /// The templates this route can use, for validation.
    pub fn templates_used(&self) -> Vec<&str> {
        let mut used = match (&self.template, &self.group, &self.rate) {
            (_, None, Some(_)) => vec![],
            (Some(t), _, _) => vec![t.as_str()],
            (None, Some(_), _) => vec!["message_digest"],
            (None, None, None) => vec!["template_status", "message_result", "unknown_event"],
        };
        if self
            .group
            .as_ref()
            .is_some_and(|g| g.resolve_after.is_some())
        {
            used.push(crate::digest::RESOLVED_TEMPLATE);
        }
        if self.rate.is_some() {
            used.extend(crate::rate::TEMPLATES);
        }
        used
    }

    /// Whether this route can match hooks of `kind`: its `kind` condition allows it, and
    /// every field it tests exists in that kind's shape (hooks of unknown shape are assumed
    /// to be matched only by routes that ask for them or test no fields).
    pub fn may_match_kind(&self, kind: HookKind) -> bool {
        self.conditions.iter().all(|c| match c.key {
            MatchKey::Kind => c.any_of.iter().any(|g| g.is_match(kind.as_str())),
            MatchKey::Event | MatchKey::AppKey => true,
            // Message results have them once enriched.
            MatchKey::SenderKey | MatchKey::TemplateCode => {
                kind == HookKind::Template || kind == HookKind::MessageResult
            }
            MatchKey::Status | MatchKey::CommentStatus => kind == HookKind::Template,
            MatchKey::MessageType
            | MatchKey::ResultCode
            | MatchKey::Outcome
            | MatchKey::SenderGroupingKey
            | MatchKey::RecipientGroupingKey
            | MatchKey::PlusFriendId
            | MatchKey::ResendStatus => kind == HookKind::MessageResult,
        })
    }
}

fn known_keys() -> String {
    MatchKey::ALL.map(MatchKey::name).join(", ")
}

/// The routes a hook takes, in file order, honouring `continue`.
pub fn route<'r>(routes: &'r [Route], envelope: &Envelope, hook: &Hook) -> Vec<&'r Route> {
    let mut taken = Vec::new();
    for r in routes {
        if r.matches(envelope, hook) {
            taken.push(r);
            if !r.continue_matching {
                break;
            }
        }
    }
    taken
}

#[cfg(test)]
mod tests;
