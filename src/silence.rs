//! Silences: operator-made, time-bound rules that keep matching hooks out of chat during a
//! known incident. This module is pure (parsing and compiling matchers, deciding which active
//! silence catches a hook); the store keeps silences ([`crate::store::StoredSilence`]) and
//! [`cache`] holds the dispatcher's briefly cached copy of them.
//!
//! Invariants:
//! - A matcher is `key=glob` over the route match keys ([`MatchKey`]), with the same globs as
//!   routes; every matcher of a silence must hold (like the keys of a route's `match`), and a
//!   matcher on a field the hook lacks does not hold.
//! - A silence is active from `starts_at` (inclusive) to `ends_at` (exclusive); expiring it
//!   moves `ends_at` to now. Time comes from the caller, so tests drive it with the clock.
//! - A silence never drops a hook: it is still stored, routed, counted, and kept for
//!   `reroute`; only its chat messages are held back.

mod cache;

use globset::{GlobBuilder, GlobMatcher};

pub use cache::{REFRESH, SilenceCache};

use crate::bizmessage::{Envelope, Hook};
use crate::route::{MatchKey, field};
use crate::store::{NewSilence, SilenceMatcher, StoredSilence};

/// Longest silence accepted (a forgotten silence must not hide alerts for good).
pub const MAX_DURATION_MS: i64 = 90 * 24 * 3600 * 1000;
/// Longest comment kept.
pub const MAX_COMMENT: usize = 500;
/// Matchers per silence at most.
pub const MAX_MATCHERS: usize = 16;

/// A mistake in a silence as given by an operator (CLI or HTTP).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SilenceError {
    #[error("matcher `{0}` is not KEY=GLOB (for example result_code=3019)")]
    Shape(String),
    #[error("matcher `{given}`: unknown key `{key}` (known: {known})")]
    UnknownKey {
        given: String,
        key: String,
        known: String,
    },
    #[error("matcher `{given}`: bad glob: {reason}")]
    Glob { given: String, reason: String },
    #[error("a silence needs at least one matcher (a silence of everything is not allowed)")]
    NoMatchers,
    #[error("a silence takes at most {MAX_MATCHERS} matchers")]
    TooManyMatchers,
    #[error("the duration must be longer than 0s and at most 90 days")]
    Duration,
    #[error("a silence needs a comment saying why (for example the incident number)")]
    NoComment,
    #[error("the comment is longer than {MAX_COMMENT} characters")]
    LongComment,
}

/// A compiled matcher.
#[derive(Debug, Clone)]
struct Condition {
    key: MatchKey,
    glob: GlobMatcher,
}

fn compile_one(m: &SilenceMatcher) -> Result<Condition, SilenceError> {
    let given = format!("{}={}", m.key, m.pattern);
    let key = MatchKey::parse(&m.key).ok_or_else(|| SilenceError::UnknownKey {
        given: given.clone(),
        key: m.key.clone(),
        known: MatchKey::ALL.map(MatchKey::name).join(", "),
    })?;
    let glob = GlobBuilder::new(&m.pattern)
        .literal_separator(false)
        .build()
        .map_err(|e| SilenceError::Glob {
            given,
            reason: e.kind().to_string(),
        })?
        .compile_matcher();
    Ok(Condition { key, glob })
}

/// Parses `key=glob` as an operator writes it.
pub fn parse_matcher(text: &str) -> Result<SilenceMatcher, SilenceError> {
    let Some((key, pattern)) = text.split_once('=') else {
        return Err(SilenceError::Shape(crate::text::truncate(text, 100)));
    };
    let (key, pattern) = (key.trim(), pattern.trim());
    if key.is_empty() || pattern.is_empty() {
        return Err(SilenceError::Shape(crate::text::truncate(text, 100)));
    }
    let m = SilenceMatcher {
        key: key.to_string(),
        pattern: pattern.to_string(),
    };
    compile_one(&m)?;
    Ok(m)
}

/// Checks a silence an operator asks for; the same rules for the CLI and the HTTP API.
pub fn validate(
    matchers: &[SilenceMatcher],
    duration_ms: i64,
    comment: &str,
) -> Result<(), SilenceError> {
    if matchers.is_empty() {
        return Err(SilenceError::NoMatchers);
    }
    if matchers.len() > MAX_MATCHERS {
        return Err(SilenceError::TooManyMatchers);
    }
    for m in matchers {
        compile_one(m)?;
    }
    if duration_ms <= 0 || duration_ms > MAX_DURATION_MS {
        return Err(SilenceError::Duration);
    }
    if comment.trim().is_empty() {
        return Err(SilenceError::NoComment);
    }
    if comment.chars().count() > MAX_COMMENT {
        return Err(SilenceError::LongComment);
    }
    Ok(())
}

/// A checked silence to store, starting now and lasting `duration_ms`.
pub fn new_silence(
    matchers: Vec<SilenceMatcher>,
    duration_ms: i64,
    comment: &str,
    author: Option<&str>,
    now: i64,
) -> Result<NewSilence, SilenceError> {
    validate(&matchers, duration_ms, comment)?;
    Ok(NewSilence {
        matchers,
        starts_at: now,
        ends_at: now.saturating_add(duration_ms),
        comment: comment.trim().to_string(),
        author: author
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .map(|a| crate::text::truncate(a, 100)),
        created_at: now,
    })
}

/// Whether a silence is active at `now`, ended, or yet to start.
pub fn status(s: &StoredSilence, now: i64) -> &'static str {
    if now >= s.ends_at {
        "expired"
    } else if now < s.starts_at {
        "pending"
    } else {
        "active"
    }
}

/// A silence as the CLI (`--format json`) and the HTTP API show it.
pub fn to_json(s: &StoredSilence, now: i64) -> serde_json::Value {
    serde_json::json!({
        "id": s.id,
        "matchers": s.matchers,
        "status": status(s, now),
        "starts_at": crate::context::format_ms(s.starts_at),
        "ends_at": crate::context::format_ms(s.ends_at),
        "starts_at_ms": s.starts_at,
        "ends_at_ms": s.ends_at,
        "comment": s.comment,
        "author": s.author,
    })
}

/// `key=glob, key=glob`, for listings and chat.
pub fn describe(matchers: &[SilenceMatcher]) -> String {
    matchers
        .iter()
        .map(|m| format!("{}={}", m.key, m.pattern))
        .collect::<Vec<_>>()
        .join(", ")
}

/// One silence, compiled.
#[derive(Debug, Clone)]
struct Compiled {
    id: i64,
    starts_at: i64,
    ends_at: i64,
    conditions: Vec<Condition>,
}

/// The silences that are or will become active, compiled for matching.
#[derive(Debug, Clone, Default)]
pub struct Silences {
    list: Vec<Compiled>,
}

impl Silences {
    /// No silences.
    pub fn none() -> Silences {
        Silences::default()
    }

    /// Compiles stored silences. One that no longer compiles (written by a newer bizrelay
    /// with a key this build lacks) is skipped with a warning rather than silencing
    /// everything or nothing.
    pub fn compile(stored: &[StoredSilence]) -> Silences {
        let mut list = Vec::new();
        for s in stored {
            match s.matchers.iter().map(compile_one).collect::<Result<_, _>>() {
                Ok(conditions) if !s.matchers.is_empty() => list.push(Compiled {
                    id: s.id,
                    starts_at: s.starts_at,
                    ends_at: s.ends_at,
                    conditions,
                }),
                Ok(_) => {
                    tracing::warn!(silence = s.id, "a stored silence has no matchers; ignored")
                }
                Err(e) => {
                    tracing::warn!(silence = s.id, error = %e, "a stored silence cannot be used; ignored")
                }
            }
        }
        Silences { list }
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// The ids of the silences held, in order.
    pub fn ids(&self) -> Vec<i64> {
        self.list.iter().map(|s| s.id).collect()
    }

    /// The id of the first silence active at `now` that catches this hook.
    pub fn catching(&self, envelope: &Envelope, hook: &Hook, now: i64) -> Option<i64> {
        self.list
            .iter()
            .filter(|s| s.starts_at <= now && now < s.ends_at)
            .find(|s| {
                s.conditions.iter().all(|c| {
                    field(c.key, envelope, hook).is_some_and(|v| c.glob.is_match(v.as_ref()))
                })
            })
            .map(|s| s.id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bizmessage::parse_hook;

    fn silence(id: i64, matchers: &[&str], starts_at: i64, ends_at: i64) -> StoredSilence {
        StoredSilence {
            id,
            matchers: matchers.iter().map(|m| parse_matcher(m).unwrap()).collect(),
            starts_at,
            ends_at,
            comment: "test".into(),
            author: None,
            created_at: starts_at,
        }
    }

    fn result(code: &str, message_type: &str) -> Hook {
        parse_hook(&format!(
            r#"{{"hookId":"h","kakaoMessageType":"{message_type}","requestId":"r","recipientSeq":1,"resultCode":"{code}"}}"#
        ))
        .unwrap()
    }

    #[test]
    fn matchers_parse_and_name_mistakes() {
        let m = parse_matcher("result_code=30*").unwrap();
        assert_eq!((m.key.as_str(), m.pattern.as_str()), ("result_code", "30*"));
        assert!(matches!(
            parse_matcher("result_code"),
            Err(SilenceError::Shape(_))
        ));
        assert!(matches!(parse_matcher("=1"), Err(SilenceError::Shape(_))));
        let e = parse_matcher("resultcode=1").unwrap_err().to_string();
        assert!(e.contains("unknown key `resultcode`"), "{e}");
        assert!(e.contains("result_code"), "{e}");
        let e = parse_matcher("result_code=[").unwrap_err().to_string();
        assert!(e.contains("bad glob"), "{e}");
    }

    #[test]
    fn validation_refuses_empty_endless_and_unexplained_silences() {
        let m = vec![parse_matcher("result_code=3019").unwrap()];
        assert_eq!(validate(&m, 1_000, "NHN #1"), Ok(()));
        assert_eq!(validate(&[], 1_000, "x"), Err(SilenceError::NoMatchers));
        assert_eq!(validate(&m, 0, "x"), Err(SilenceError::Duration));
        assert_eq!(
            validate(&m, MAX_DURATION_MS + 1, "x"),
            Err(SilenceError::Duration)
        );
        assert_eq!(validate(&m, 1_000, "  "), Err(SilenceError::NoComment));
        assert_eq!(
            validate(&m, 1_000, &"x".repeat(MAX_COMMENT + 1)),
            Err(SilenceError::LongComment)
        );
    }

    #[test]
    fn a_silence_catches_only_matching_hooks_while_active() {
        let env = Envelope::default();
        let set = Silences::compile(&[silence(
            7,
            &["result_code=3019", "message_type=ALIMTALK_*"],
            1_000,
            2_000,
        )]);
        let hit = result("3019", "ALIMTALK_NORMAL");
        assert_eq!(set.catching(&env, &hit, 1_000), Some(7));
        assert_eq!(set.catching(&env, &hit, 1_999), Some(7));
        assert_eq!(set.catching(&env, &hit, 999), None, "not yet active");
        assert_eq!(set.catching(&env, &hit, 2_000), None, "ended");
        // Every matcher must hold.
        assert_eq!(
            set.catching(&env, &result("3019", "FRIENDTALK"), 1_500),
            None
        );
        assert_eq!(
            set.catching(&env, &result("1000", "ALIMTALK_NORMAL"), 1_500),
            None
        );
    }

    #[test]
    fn a_matcher_on_a_missing_field_does_not_hold() {
        let env = Envelope::default();
        let set = Silences::compile(&[silence(1, &["event=*"], 0, 10)]);
        assert_eq!(
            set.catching(&env, &result("3019", "ALIMTALK_NORMAL"), 5),
            None
        );
        let set = Silences::compile(&[silence(1, &["kind=message_result"], 0, 10)]);
        assert_eq!(
            set.catching(&env, &result("3019", "ALIMTALK_NORMAL"), 5),
            Some(1)
        );
    }
}
