//! Chat services: what each accepts (payload limits, fallbacks) and what their answers mean
//! (response classification). No I/O here; `deliver` does the posting.
//!
//! Invariants:
//! - [`fit`] turns a rendered body into one the service accepts or reports why it cannot;
//!   over-long text is shortened with a visible `…`, never refused.
//! - [`classify`] is the only place that decides retry versus dead letter.

pub mod audit;
pub mod console;
pub mod slack;
pub mod teams;

use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

/// The kinds of destination bizrelay can post to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum DestinationKind {
    Slack,
    Teams,
    Console,
}

impl DestinationKind {
    pub const ALL: [DestinationKind; 3] = [
        DestinationKind::Slack,
        DestinationKind::Teams,
        DestinationKind::Console,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DestinationKind::Slack => "slack",
            DestinationKind::Teams => "teams",
            DestinationKind::Console => "console",
        }
    }

    /// Whether bodies are JSON (Slack, Teams) or plain text (console).
    pub fn is_json(self) -> bool {
        !matches!(self, DestinationKind::Console)
    }
}

/// A rendered body that breaks a rule truncation cannot repair.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum LimitError {
    #[error("output is not valid JSON: {0}")]
    NotJson(String),
    #[error("{0}")]
    Shape(String),
}

/// Parses a rendered body and makes it fit the destination's limits.
pub fn fit(kind: DestinationKind, rendered: &str) -> Result<String, LimitError> {
    match kind {
        DestinationKind::Console => Ok(console::fit(rendered)),
        DestinationKind::Slack | DestinationKind::Teams => {
            let mut value: serde_json::Value = serde_json::from_str(rendered).map_err(|e| {
                LimitError::NotJson(format!(
                    "{} at line {} column {}",
                    category(&e),
                    e.line(),
                    e.column()
                ))
            })?;
            if kind == DestinationKind::Slack {
                slack::fit(&mut value)?;
            } else {
                teams::fit(&mut value)?;
            }
            Ok(value.to_string())
        }
    }
}

fn category(e: &serde_json::Error) -> &'static str {
    match e.classify() {
        serde_json::error::Category::Eof => "unexpected end",
        serde_json::error::Category::Syntax => "syntax error",
        serde_json::error::Category::Data => "unexpected value",
        serde_json::error::Category::Io => "read error",
    }
}

/// Index of the longest text; of equally long ones, the first (texts are in reading order, so
/// the newest comment, usually the one that matters, is shortened last).
pub(crate) fn first_longest(texts: &[&mut String]) -> Option<usize> {
    let mut best: Option<(usize, usize)> = None;
    for (i, t) in texts.iter().enumerate() {
        let n = t.chars().count();
        if best.is_none_or(|(_, b)| n > b) {
            best = Some((i, n));
        }
    }
    best.map(|(i, _)| i)
}

/// What a fallback message says when a template fails.
#[derive(Debug, Clone, Default)]
pub struct FallbackInfo {
    pub title: String,
    pub facts: Vec<(String, String)>,
}

/// A plain message built without templates, sent when a template fails at run time.
pub fn fallback(kind: DestinationKind, info: &FallbackInfo) -> String {
    match kind {
        DestinationKind::Slack => slack::fallback(info),
        DestinationKind::Teams => teams::fallback(info),
        DestinationKind::Console => console::fallback(info),
    }
}

/// What to do after one attempt to post.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// 2xx: done.
    Delivered,
    /// 429: pause the whole destination for this long, then retry.
    Throttled(Duration),
    /// 408, 5xx except 501, timeouts, connection errors: retry with backoff.
    Retry,
    /// 400/413/422 and other 4xx: the body is wrong, resending it cannot help.
    DeadPayload,
    /// 401/403/404/410: the destination is broken or gone; tell the operator.
    DeadDestination,
}

/// Longest `Retry-After` honoured; longer values are clamped (a typo or hostile header must
/// not stall a destination for days).
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(15 * 60);
/// Pause used for a 429 without a usable `Retry-After`.
pub const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(5);

/// Classifies an HTTP answer. `status` is `None` when no answer came (timeout, connection
/// error). Pure and table-tested.
pub fn classify(status: Option<u16>, retry_after: Option<&str>, now: SystemTime) -> Verdict {
    let Some(status) = status else {
        return Verdict::Retry;
    };
    match status {
        200..=299 => Verdict::Delivered,
        429 => Verdict::Throttled(parse_retry_after(retry_after, now)),
        408 => Verdict::Retry,
        501 => Verdict::DeadPayload,
        500..=599 => Verdict::Retry,
        401 | 403 | 404 | 410 => Verdict::DeadDestination,
        _ => Verdict::DeadPayload,
    }
}

/// `Retry-After` as seconds or an HTTP date, clamped to `1s..=MAX_RETRY_AFTER`.
pub fn parse_retry_after(value: Option<&str>, now: SystemTime) -> Duration {
    let Some(value) = value.map(str::trim) else {
        return DEFAULT_RETRY_AFTER;
    };
    let wait = if let Ok(secs) = value.parse::<u64>() {
        Duration::from_secs(secs)
    } else if let Ok(secs) = value.parse::<f64>()
        && secs.is_finite()
        && secs >= 0.0
    {
        Duration::from_secs_f64(secs.min(MAX_RETRY_AFTER.as_secs_f64()))
    } else if let Ok(at) = httpdate::parse_http_date(value) {
        at.duration_since(now).unwrap_or(Duration::ZERO)
    } else {
        DEFAULT_RETRY_AFTER
    };
    wait.clamp(Duration::from_secs(1), MAX_RETRY_AFTER)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification_table() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let cases: &[(Option<u16>, Option<&str>, Verdict)] = &[
            (Some(200), None, Verdict::Delivered),
            (Some(202), None, Verdict::Delivered),
            (Some(204), None, Verdict::Delivered),
            (
                Some(429),
                Some("2"),
                Verdict::Throttled(Duration::from_secs(2)),
            ),
            (Some(429), None, Verdict::Throttled(DEFAULT_RETRY_AFTER)),
            (Some(408), None, Verdict::Retry),
            (Some(500), None, Verdict::Retry),
            (Some(502), None, Verdict::Retry),
            (Some(503), Some("30"), Verdict::Retry),
            (Some(504), None, Verdict::Retry),
            (Some(501), None, Verdict::DeadPayload),
            (Some(400), None, Verdict::DeadPayload),
            (Some(413), None, Verdict::DeadPayload),
            (Some(422), None, Verdict::DeadPayload),
            (Some(405), None, Verdict::DeadPayload),
            (Some(301), None, Verdict::DeadPayload),
            (Some(401), None, Verdict::DeadDestination),
            (Some(403), None, Verdict::DeadDestination),
            (Some(404), None, Verdict::DeadDestination),
            (Some(410), None, Verdict::DeadDestination),
            (None, None, Verdict::Retry),
        ];
        for (status, retry_after, want) in cases {
            assert_eq!(&classify(*status, *retry_after, now), want, "{status:?}");
        }
    }

    #[test]
    fn retry_after_forms_and_clamping() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let date = httpdate::fmt_http_date(now + Duration::from_secs(90));
        let past = httpdate::fmt_http_date(now - Duration::from_secs(90));
        let cases = [
            (Some("2"), Duration::from_secs(2)),
            (Some(" 7 "), Duration::from_secs(7)),
            (Some("0"), Duration::from_secs(1)),
            (Some("1.5"), Duration::from_secs_f64(1.5)),
            (Some("86400"), MAX_RETRY_AFTER),
            (Some("-3"), DEFAULT_RETRY_AFTER),
            (Some("soon"), DEFAULT_RETRY_AFTER),
            (Some(date.as_str()), Duration::from_secs(90)),
            (Some(past.as_str()), Duration::from_secs(1)),
            (None, DEFAULT_RETRY_AFTER),
        ];
        for (value, want) in cases {
            assert_eq!(parse_retry_after(value, now), want, "{value:?}");
        }
    }

    #[test]
    fn fit_rejects_non_json_for_chat_destinations() {
        let err = fit(DestinationKind::Slack, "{\"text\": \"a\",}").unwrap_err();
        assert!(matches!(err, LimitError::NotJson(_)), "{err}");
        assert_eq!(fit(DestinationKind::Console, "plain").unwrap(), "plain");
    }
}
